"""config.json: schema validation, parsing into model configs, version policies.

The schema states the same constraints as OVMS's config schema (model keys, version policy
shapes, no unknown keys) and is checked with rapidjson's validator, the engine OVMS uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pathlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import rapidjson

from .devices import DEFAULT_DEVICE, Record

_STRING = {"type": "string"}
# Laid out like OVMS's MODELS_CONFIG_SCHEMA (src/schema.cpp): the same definitions under the
# same names, so rapidjson reports the same schema pointers (#/definitions/model_config/...).
# OVMS puts "additionalProperties": false *inside* "properties" of model_config and of
# monitoring, where it names a property rather than forbidding extra keys; kept as it is, so
# an extra key next to "config" fails on maxProperties, as in OVMS.
_DEFINITIONS: dict[str, Any] = {
    "model_config": {
        "type": "object",
        "required": ["config"],
        "maxProperties": 1,
        "properties": {
            "config": {
                "type": "object",
                "required": ["name"],
                # OVMS 2026.3 dropped stateful, idle_sequence_cleanup,
                # low_latency_transformation and max_sequence_number from this list.
                "properties": {
                    "name": _STRING,
                    "base_path": _STRING,
                    "batch_size": {"type": ["integer", "string"], "minimum": 0},
                    "graph_path": _STRING,
                    "subconfig": _STRING,
                    "model_version_policy": {"$ref": "#/definitions/model_version_policy"},
                    "shape": {"$ref": "#/definitions/layout_shape_def"},
                    "layout": {"$ref": "#/definitions/layout_shape_def"},
                    "nireq": {"type": "integer", "minimum": 0},
                    "target_device": _STRING,
                    "allow_cache": {"type": "boolean"},
                    "plugin_config": {
                        "type": "object",
                        "additionalProperties": {
                            "anyOf": [{"type": "string"}, {"type": "boolean"}, {"type": "number"}]
                        },
                    },
                    "custom_loader_options": {
                        "type": "object",
                        "required": ["loader_name"],
                        "properties": {"loader_name": _STRING},
                        "minProperties": 1,
                    },
                },
                "additionalProperties": False,
            },
            "additionalProperties": False,
        },
    },
    "custom_loader_config": {
        "type": "object",
        "required": ["config"],
        "maxProperties": 1,
        "properties": {
            "config": {
                "type": "object",
                "required": ["loader_name", "library_path"],
                "properties": {
                    "loader_name": _STRING,
                    "library_path": _STRING,
                    "loader_config_file": _STRING,
                },
                "additionalProperties": False,
            },
            "additionalProperties": False,
        },
    },
    "layout_shape_def": {
        "oneOf": [
            {"type": "object", "additionalProperties": {"type": "string"}},
            {"type": "string"},
        ]
    },
    "all_version_policy": {
        "type": "object",
        "additionalProperties": False,
        "properties": {},
        "minProperties": 0,
        "maxProperties": 0,
    },
    "specific_version_policy": {
        "type": "object",
        "additionalProperties": False,
        "maxProperties": 1,
        "properties": {"versions": {"type": "array", "items": {"type": "integer", "minimum": 1}}},
        "required": ["versions"],
    },
    "latest_version_policy": {
        "type": "object",
        "additionalProperties": False,
        "maxProperties": 1,
        "properties": {"num_versions": {"type": "integer", "minimum": 1}},
        "required": ["num_versions"],
    },
    "model_version_policy": {
        "oneOf": [
            {
                "maxProperties": 1,
                "properties": {kind: {"$ref": f"#/definitions/{kind}_version_policy"}},
                "required": [kind],
                "additionalProperties": False,
            }
            for kind in ("all", "specific", "latest")
        ]
    },
}
# Pipelines, MediaPipe graphs and custom node libraries are not served by the stand-in; their
# lists only have to be arrays of objects here (OVMS checks their entries in detail).
_ARRAY_OF_OBJECTS = {"type": "array", "items": {"type": "object"}}
CONFIG_SCHEMA: dict[str, Any] = {
    "definitions": _DEFINITIONS,
    "type": "object",
    "required": ["model_config_list"],
    "properties": {
        "custom_loader_config_list": {
            "type": "array",
            "items": {"$ref": "#/definitions/custom_loader_config"},
        },
        "model_config_list": {"type": "array", "items": {"$ref": "#/definitions/model_config"}},
        "pipeline_config_list": _ARRAY_OF_OBJECTS,
        "mediapipe_config_list": _ARRAY_OF_OBJECTS,
        "custom_node_library_config_list": _ARRAY_OF_OBJECTS,
        "monitoring": {
            "maxProperties": 1,
            "type": "object",
            "required": ["metrics"],
            "properties": {
                "metrics": {
                    "type": "object",
                    "required": ["enable"],
                    "properties": {
                        "enable": {"type": "boolean"},
                        "metrics_list": {"type": "array", "items": _STRING},
                    },
                    "additionalProperties": False,
                },
                "additionalProperties": False,
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
REMOVED_MODEL_KEYS = (
    "stateful",
    "idle_sequence_cleanup",
    "low_latency_transformation",
    "max_sequence_number",
)
_VALIDATOR = rapidjson.Validator(json.dumps(CONFIG_SCHEMA))
_DIM = re.compile(r"^(-1|\d+|\d+:\d+)$")


class ConfigError(Exception):
    """config.json cannot be used; the message says what and where."""


class ModelConfigError(Exception):
    """One model's entry is unusable; other models still load."""


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which of the version directories found get served."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def select(self, available: Iterable[int]) -> list[int]:
        found = sorted(set(available))
        if self.kind == "all":
            return found
        if self.kind == "specific":
            return [v for v in found if v in self.versions]
        return found[-self.num_versions :]

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> VersionPolicy:
        if not value:
            return cls()
        if "all" in value:
            return cls(kind="all")
        if "specific" in value:
            return cls(kind="specific", versions=tuple(value["specific"]["versions"]))
        return cls(kind="latest", num_versions=int(value["latest"]["num_versions"]))


@dataclasses.dataclass(frozen=True)
class DimSpec:
    """A dimension from a config shape: -1 any, (lo, hi) a range, or a fixed size."""

    low: int
    high: int

    @property
    def dynamic(self) -> bool:
        return self.low == -1


@dataclasses.dataclass(frozen=True)
class ShapeSpec:
    auto: bool = False
    dims: tuple[DimSpec, ...] = ()


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One model_config_list entry, parsed; `raw` is kept to notice changes on reload."""

    name: str
    base_path: pathlib.Path
    target_device: str
    nireq: int
    plugin_config: Mapping[str, str]
    policy: VersionPolicy
    batch_size: int | str | None
    shapes: Mapping[str, ShapeSpec]
    layouts: Mapping[str, str]
    raw: str


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    models: tuple[ModelConfig, ...]
    metrics_enable: bool | None
    metrics_list: tuple[str, ...]
    md5: str
    ignored_sections: tuple[str, ...]
    # The model whose plugin_config stopped reading the model list (None: read to the end).
    stopped_at: str | None = None


ANONYMOUS = ""


def parse_shape(text: str) -> ShapeSpec:
    value = text.strip()
    if value == "auto":
        return ShapeSpec(auto=True)
    if len(value) < 2 or (value[0], value[-1]) not in (("(", ")"), ("[", "]")):
        raise ModelConfigError(f"The provided shape is in wrong format: '{text}'")
    dims = []
    for part in value[1:-1].split(","):
        token = part.strip()
        if not _DIM.match(token):
            raise ModelConfigError(f"The provided shape is in wrong format: '{text}'")
        if ":" in token:
            low, high = (int(x) for x in token.split(":"))
            dims.append(DimSpec(low, high))
        else:
            size = int(token)
            dims.append(DimSpec(size, size))
    return ShapeSpec(dims=tuple(dims))


def _parse_shapes(value: Any) -> dict[str, ShapeSpec]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {ANONYMOUS: parse_shape(value)}
    return {name: parse_shape(text) for name, text in value.items()}


def _parse_layouts(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    items = {ANONYMOUS: value} if isinstance(value, str) else dict(value)
    for name, text in items.items():
        parts = text.split(":")
        if len(parts) > 2 or not all(re.fullmatch(r"[A-Za-z.?]+", p) for p in parts):
            raise ModelConfigError(
                f"The provided layout is in wrong format: '{text}' for input '{name or '*'}'"
            )
    return items


def _plugin_value(value: Any) -> str:
    if isinstance(value, bool):
        return "YES" if value else "NO"
    return str(value)


def parse_model(entry: Mapping[str, Any], config_dir: pathlib.Path) -> ModelConfig:
    name = entry["name"]
    base_path = pathlib.Path(entry.get("base_path", name))
    if not base_path.is_absolute():
        base_path = config_dir / base_path
    batch = entry.get("batch_size")
    if isinstance(batch, str) and batch != "auto":
        if not batch.isdigit():
            raise ModelConfigError(f"batch_size must be a number or 'auto', got '{batch}'")
        batch = int(batch)
    if batch == 0:
        batch = None
    return ModelConfig(
        name=name,
        base_path=base_path,
        # No (or an empty) target_device: OVMS 2026.3+ recommends one, CPU without a GPU.
        target_device=entry.get("target_device") or DEFAULT_DEVICE,
        nireq=int(entry.get("nireq", 0)),
        plugin_config={k: _plugin_value(v) for k, v in entry.get("plugin_config", {}).items()},
        policy=VersionPolicy.from_json(entry.get("model_version_policy")),
        batch_size=batch,
        shapes=_parse_shapes(entry.get("shape")),
        layouts=_parse_layouts(entry.get("layout")),
        raw=json.dumps(entry, sort_keys=True),
    )


def validate_schema(text: str) -> None:
    """Check config text against the schema; the raw text, so duplicated keys count as in OVMS."""
    try:
        _VALIDATOR(text)
    except rapidjson.ValidationError as error:
        keyword, schema_pointer, document_pointer = error.args
        raise ConfigError(
            f"JSON schema parse error:{schema_pointer}. Keyword:{keyword} Key: {document_pointer}"
        ) from None
    except ValueError as error:  # text Python's json accepts and rapidjson does not (NaN)
        raise ConfigError(f"Configuration file is not a valid JSON file. Error: {error}") from None


PluginCheck = Callable[[ModelConfig], "list[Record] | None"]


def parse_document(
    text: str, config_dir: pathlib.Path, plugin_check: PluginCheck | None = None
) -> tuple[ServerConfig, list[Record]]:
    """Parse and validate a config document; return it and the lines to log about it.

    Entries are taken in OVMS's order (ModelManager::ConfigLoader::loadModels): an entry that
    does not parse is skipped; then its plugin_config is checked against the target device,
    and an unsupported key stops reading the list there: that model and every one after it
    are left out (ServerConfig.stopped_at names it); then a repeated name is skipped.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"Configuration file is not a valid JSON file. Error: {error}") from None
    validate_schema(text)
    models: list[ModelConfig] = []
    problems: list[Record] = []
    seen: set[str] = set()
    stopped_at: str | None = None
    for item in document["model_config_list"]:
        entry = item["config"]
        try:
            model = parse_model(entry, config_dir)
        except ModelConfigError as error:
            problems.append(
                (logging.ERROR, f"Parsing model: {entry['name']} config failed: {error}")
            )
            continue
        failure = plugin_check(model) if plugin_check is not None else None
        if failure is not None:
            problems.extend(failure)
            problems.append((logging.ERROR, "Plugin config contains unsupported keys"))
            stopped_at = model.name
            break
        if model.name in seen:
            problems.append(
                (
                    logging.WARNING,
                    (
                        f"Duplicated model names: {model.name} defined in config file. "
                        "Only first definition will be loaded."
                    ),
                )
            )
            continue
        seen.add(model.name)
        models.append(model)
    if any(level >= logging.WARNING for level, _text in problems):
        problems.append((logging.ERROR, "Loading main OVMS config models failed."))
    metrics = document.get("monitoring", {}).get("metrics", {})
    ignored = tuple(
        key for key in document if key not in ("model_config_list", "monitoring") and document[key]
    )
    config = ServerConfig(
        models=tuple(models),
        metrics_enable=metrics.get("enable"),
        metrics_list=tuple(metrics.get("metrics_list", ())),
        md5=hashlib.md5(text.encode()).hexdigest(),
        ignored_sections=ignored,
        stopped_at=stopped_at,
    )
    return config, problems


def single_model_document(name: str, path: str, flags: Mapping[str, Any]) -> str:
    """Express --model_name/--model_path mode as the equivalent config document."""
    entry: dict[str, Any] = {"name": name, "base_path": path}
    for key in ("batch_size", "shape", "layout", "target_device"):
        if key in flags:
            entry[key] = flags[key]
    if "nireq" in flags:
        entry["nireq"] = int(flags["nireq"])
    for key in ("model_version_policy", "plugin_config"):
        if key in flags:
            try:
                entry[key] = json.loads(str(flags[key]))
            except json.JSONDecodeError:
                raise ConfigError(f"--{key} is not valid JSON: {flags[key]}") from None
    return json.dumps({"model_config_list": [{"config": entry}]})
