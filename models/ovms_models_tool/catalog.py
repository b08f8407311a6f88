"""Load and validate `catalog.yml`: every problem is reported with the entry and the field."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import yaml

from ovms_models_tool.errors import ToolError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
LABEL_LINE_RE = re.compile(r"^(\d+)[\s:]+(.+)$")
PACKAGE_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")

# OpenVINO element type names accepted for converted inputs.
ELEMENT_TYPES = frozenset(
    {"boolean", "u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f16", "bf16", "f32", "f64"}
)

# Which file extensions each source format needs when served by OVMS as fetched.
SERVED_AS_IS: dict[str, tuple[str, ...]] = {
    "ir": (".xml", ".bin"),
    "onnx": (".onnx",),
    "tflite": (".tflite",),
    "paddle": (".pdmodel", ".pdiparams"),
}
# The extension of the file handed to openvino.convert_model, per source format.
CONVERTIBLE: dict[str, str] = {
    "tf": ".pb",
    "onnx": ".onnx",
    "tflite": ".tflite",
    "paddle": ".pdmodel",
    # Darknet YOLO: the network description first, then its .weights (darknet.py builds it).
    "darknet": ".cfg",
}
# Every file a convertible format needs, by extension, when it needs more than its first.
CONVERT_NEEDS: dict[str, tuple[str, ...]] = {"darknet": (".cfg", ".weights")}
OVMS_KEYS = frozenset({"shape", "layout", "plugin_config", "nireq", "batch_size", "target_device"})


class CatalogError(ToolError):
    """The catalog file is unreadable or an entry breaks the schema."""


@dataclass(frozen=True)
class SourceFile:
    """One fetched file: `location` is a URL (url source) or a path inside the package (pypi)."""

    location: str
    sha256: str
    name: str


@dataclass(frozen=True)
class Source:
    type: str
    files: tuple[SourceFile, ...]
    package: str = ""
    package_version: str = ""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    source: str
    shape: tuple[int, ...] | None = None
    type: str | None = None


@dataclass(frozen=True)
class ConvertSpec:
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    compress_to_fp16: bool = False


@dataclass(frozen=True)
class ModelEntry:
    name: str
    version: int
    source: Source
    format: str
    convert: ConvertSpec | None
    ovms: dict[str, Any] = field(default_factory=dict)
    labels: Path | None = None
    description: str = ""
    license: str = ""

    @property
    def digest(self) -> str:
        """Fingerprint of everything that decides the files of a version directory.

        A change here under an unchanged version number would give OVMS different files in a
        directory it has already loaded, which it never re-reads.
        """
        decisive = {
            "source": dataclasses.asdict(self.source),
            "format": self.format,
            "convert": dataclasses.asdict(self.convert) if self.convert else None,
        }
        text = json.dumps(decisive, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Catalog:
    path: Path
    models: tuple[ModelEntry, ...]

    def select(self, names: list[str]) -> list[ModelEntry]:
        """The named entries in the order given, or all entries when `names` is empty."""
        if not names:
            return list(self.models)
        by_name = {m.name: m for m in self.models}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            known = ", ".join(sorted(by_name)) or "(none)"
            raise ToolError(
                f"unknown model {', '.join(repr(n) for n in unknown)}: "
                f"catalog {self.path} has {known}"
            )
        return [by_name[n] for n in dict.fromkeys(names)]


class _Where:
    """Builds error messages that point at one entry and field of the catalog."""

    def __init__(self, path: Path, entry: str) -> None:
        self.path = path
        self.entry = entry

    def error(self, field_name: str, problem: str) -> CatalogError:
        return CatalogError(f"catalog {self.path}: {self.entry}: {field_name}: {problem}")


def _mapping(where: _Where, name: str, value: object, allowed: set[str] | frozenset[str]) -> dict:
    if not isinstance(value, dict):
        raise where.error(name, f"expected a mapping, got {type(value).__name__}")
    extra = sorted(str(k) for k in value if k not in allowed)
    if extra:
        raise where.error(name, f"unknown key(s) {', '.join(extra)}; allowed: {sorted(allowed)}")
    return value


def _string(where: _Where, name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        hint = " (quote it in YAML)" if isinstance(value, (int, float)) else ""
        raise where.error(name, f"expected a non-empty string, got {value!r}{hint}")
    return value


def _sha256(where: _Where, name: str, value: object) -> str:
    text = _string(where, name, value).lower()
    if not SHA256_RE.match(text):
        raise where.error(name, f"expected 64 hexadecimal characters, got {value!r}")
    return text


def _plain_file_name(where: _Where, name: str, value: str) -> str:
    if "/" in value or value in (".", "..") or value.startswith("."):
        raise where.error(name, f"expected a plain file name, got {value!r}")
    return value


def _url_file(where: _Where, name: str, raw: object) -> SourceFile:
    item = _mapping(where, name, raw, {"url", "sha256", "name"})
    for key in ("url", "sha256"):
        if key not in item:
            raise where.error(f"{name}.{key}", "required")
    url = _string(where, f"{name}.url", item["url"])
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise where.error(f"{name}.url", f"expected an http:// or https:// URL, got {url!r}")
    default_name = PurePosixPath(parsed.path).name
    file_name = _string(where, f"{name}.name", item.get("name", default_name or "-"))
    return SourceFile(
        location=url,
        sha256=_sha256(where, f"{name}.sha256", item["sha256"]),
        name=_plain_file_name(where, f"{name}.name", file_name),
    )


def _pypi_file(where: _Where, name: str, raw: object) -> SourceFile:
    item = _mapping(where, name, raw, {"path", "sha256"})
    for key in ("path", "sha256"):
        if key not in item:
            raise where.error(f"{name}.{key}", "required")
    path = PurePosixPath(_string(where, f"{name}.path", item["path"]))
    if path.is_absolute() or ".." in path.parts:
        raise where.error(f"{name}.path", f"expected a path inside the package, got {str(path)!r}")
    return SourceFile(
        location=str(path), sha256=_sha256(where, f"{name}.sha256", item["sha256"]), name=path.name
    )


def _source(where: _Where, raw: object) -> Source:
    item = _mapping(where, "source", raw, {"type", "files", "package", "version"})
    kind = item.get("type")
    if kind not in ("url", "pypi"):
        raise where.error("source.type", f"expected 'url' or 'pypi', got {kind!r}")
    if kind == "url":
        if "package" in item or "version" in item:
            raise where.error("source", "'package' and 'version' belong to a pypi source")
        files = tuple(
            _url_file(where, f"source.files[{i}]", f) for i, f in enumerate(_files(where, item))
        )
        return Source(type="url", files=files)
    package = _string(where, "source.package", item.get("package"))
    if not PACKAGE_RE.match(package):
        raise where.error("source.package", f"expected a PyPI project name, got {package!r}")
    version = _string(where, "source.version", item.get("version"))
    files = tuple(
        _pypi_file(where, f"source.files[{i}]", f) for i, f in enumerate(_files(where, item))
    )
    return Source(type="pypi", files=files, package=package, package_version=version)


def _files(where: _Where, source: dict) -> list:
    raw_files = source.get("files")
    if not isinstance(raw_files, list) or not raw_files:
        raise where.error("source.files", "expected a non-empty list")
    return raw_files


def _tensor(where: _Where, name: str, raw: object, with_shape: bool) -> TensorSpec:
    allowed = {"name", "source", "shape", "type"} if with_shape else {"name", "source"}
    item = _mapping(where, name, raw, allowed)
    tensor_name = _string(where, f"{name}.name", item.get("name"))
    source = _string(where, f"{name}.source", item.get("source", tensor_name))
    shape = item.get("shape")
    if shape is not None and (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
    ):
        raise where.error(f"{name}.shape", f"expected a list of positive integers, got {shape!r}")
    elem = item.get("type")
    if elem is not None and elem not in ELEMENT_TYPES:
        raise where.error(f"{name}.type", f"expected one of {sorted(ELEMENT_TYPES)}, got {elem!r}")
    return TensorSpec(
        name=tensor_name, source=source, shape=tuple(shape) if shape else None, type=elem
    )


def _convert(where: _Where, raw: object) -> ConvertSpec:
    item = _mapping(where, "convert", raw or {}, {"inputs", "outputs", "compress_to_fp16"})
    specs: dict[str, tuple[TensorSpec, ...]] = {}
    for key in ("inputs", "outputs"):
        raw_list = item.get(key, [])
        if not isinstance(raw_list, list):
            raise where.error(f"convert.{key}", "expected a list")
        specs[key] = tuple(
            _tensor(where, f"convert.{key}[{i}]", t, with_shape=key == "inputs")
            for i, t in enumerate(raw_list)
        )
        names = [t.name for t in specs[key]]
        if len(set(names)) != len(names):
            raise where.error(f"convert.{key}", f"tensor names repeat: {names}")
    compress = item.get("compress_to_fp16", False)
    if not isinstance(compress, bool):
        raise where.error("convert.compress_to_fp16", f"expected true or false, got {compress!r}")
    return ConvertSpec(inputs=specs["inputs"], outputs=specs["outputs"], compress_to_fp16=compress)


def _check_files_fit_format(where: _Where, fmt: str, source: Source, converting: bool) -> None:
    names = [f.name for f in source.files]
    if len(set(names)) != len(names):
        raise where.error("source.files", f"file names repeat: {names}")
    suffixes = [PurePosixPath(n).suffix.lower() for n in names]
    if converting:
        wanted = CONVERTIBLE[fmt]
        if suffixes[0] != wanted:
            raise where.error(
                "source.files[0]",
                f"format {fmt} is converted from a {wanted} file listed first, got {names[0]!r}",
            )
        needed = CONVERT_NEEDS.get(fmt, ())
        if needed and sorted(suffixes) != sorted(needed):
            raise where.error(
                "source.files",
                f"format {fmt} is converted from exactly one file of each of {list(needed)}, "
                f"got {names}",
            )
        return
    wanted_set = SERVED_AS_IS[fmt]
    if sorted(suffixes) != sorted(wanted_set):
        raise where.error(
            "source.files",
            f"format {fmt} is served as fetched and needs exactly one file of each of "
            f"{list(wanted_set)}, got {names}",
        )


def _ovms(where: _Where, raw: object) -> dict[str, Any]:
    item = _mapping(where, "ovms", raw or {}, OVMS_KEYS)
    plugin_config = item.get("plugin_config", {})
    if not isinstance(plugin_config, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float, bool))
        for k, v in plugin_config.items()
    ):
        raise where.error(
            "ovms.plugin_config", f"expected a mapping of names to scalars, got {plugin_config!r}"
        )
    for key in ("nireq",):
        value = item.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise where.error(f"ovms.{key}", f"expected a positive integer, got {value!r}")
    return dict(item)


def _labels(where: _Where, catalog_dir: Path, raw: object) -> Path:
    path = catalog_dir / _string(where, "labels", raw)
    try:
        load_labels(path)
    except ToolError as exc:
        raise where.error("labels", str(exc)) from exc
    return path


def _entry(path: Path, index: int, raw: object) -> ModelEntry:
    name_hint = raw.get("name") if isinstance(raw, dict) else None
    where = _Where(path, f"models[{index}]" + (f" ({name_hint})" if name_hint else ""))
    item = _mapping(
        where,
        "entry",
        raw,
        {
            "name",
            "description",
            "license",
            "version",
            "source",
            "format",
            "convert",
            "ovms",
            "labels",
        },
    )
    for key in ("name", "version", "source", "format"):
        if key not in item:
            raise where.error(key, "required")
    name = _string(where, "name", item["name"])
    if not NAME_RE.match(name):
        raise where.error(
            "name", f"expected lower-case letters, digits, '.', '_', '-', got {name!r}"
        )
    version = item["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise where.error(
            "version", f"expected a positive integer (OVMS version directory), got {version!r}"
        )
    fmt = item["format"]
    if fmt not in SERVED_AS_IS and fmt not in CONVERTIBLE:
        formats = sorted(set(SERVED_AS_IS) | set(CONVERTIBLE))
        raise where.error("format", f"expected one of {formats}, got {fmt!r}")
    converting = "convert" in item
    if converting and fmt not in CONVERTIBLE:
        raise where.error(
            "convert", f"format {fmt} cannot be converted; formats that can: {sorted(CONVERTIBLE)}"
        )
    if not converting and fmt not in SERVED_AS_IS:
        raise where.error(
            "convert", f"format {fmt} is not served by OVMS as is: add a convert: mapping"
        )
    source = _source(where, item["source"])
    _check_files_fit_format(where, fmt, source, converting)
    description = item.get("description", "")
    if not isinstance(description, str):
        raise where.error("description", f"expected a string, got {description!r}")
    license_text = item.get("license", "")
    if not isinstance(license_text, str):
        raise where.error("license", f"expected a string (an SPDX id or a note), got {license_text!r}")
    return ModelEntry(
        name=name,
        version=version,
        source=source,
        format=fmt,
        convert=_convert(where, item["convert"]) if converting else None,
        ovms=_ovms(where, item.get("ovms")),
        labels=_labels(where, path.parent, item["labels"]) if "labels" in item else None,
        description=description,
        license=license_text,
    )


def load_catalog(path: Path) -> Catalog:
    """Read and validate a catalog; raise CatalogError naming the entry and field at fault."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"catalog {path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalog {path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise CatalogError(f"catalog {path}: expected a mapping with a 'models' list at the top")
    models = tuple(_entry(path, i, raw) for i, raw in enumerate(data["models"]))
    seen: set[str] = set()
    for i, model in enumerate(models):
        if model.name in seen:
            raise CatalogError(f"catalog {path}: models[{i}] ({model.name}): name: used twice")
        seen.add(model.name)
    return Catalog(path=path, models=models)


def load_labels(path: Path) -> dict[int, str]:
    """Parse a labels file: `<class id> <name>` (or `<class id>: <name>`) lines, `#` comments.

    The inference client reads the same form.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ToolError(f"labels file {path}: cannot read: {exc.strerror or exc}") from exc
    labels: dict[int, str] = {}
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        match = LABEL_LINE_RE.match(text)
        if not match:
            raise ToolError(
                f"labels file {path}:{number}: expected '<class id> <name>', got {line!r}"
            )
        class_id = int(match.group(1))
        if class_id in labels:
            raise ToolError(f"labels file {path}:{number}: class id {class_id} appears twice")
        labels[class_id] = match.group(2).strip()
    if not labels:
        raise ToolError(f"labels file {path}: no labels in it")
    return labels
