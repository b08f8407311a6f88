"""Settings: one flat set of names shared by the profile, env variables and CLI flags.

A setting `score_threshold` is `score_threshold:` in the profile YAML,
`OVMS_CLIENT_SCORE_THRESHOLD` in an env file or the environment, and `--score-threshold`
on the command line. Precedence, lowest first: defaults, profile, env file, process
environment, flags. Relative paths resolve against the directory of the profile or env file
that set them, and against the working directory for the environment and flags.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovms_client.errors import ConfigError

ENV_PREFIX = "OVMS_CLIENT_"
# Variables that locate the configuration rather than being part of it.
META_ENV = {"PROFILE", "ENV_FILE", "PROFILES_DIR"}


class SourceKind(str, enum.Enum):
    VIDEO = "video"
    IMAGES = "images"
    CAMERA = "camera"
    STREAM = "stream"

    @property
    def live(self) -> bool:
        return self in (SourceKind.CAMERA, SourceKind.STREAM)


@dataclass(frozen=True)
class InputSpec:
    stream_id: str
    source: str
    kind: SourceKind


@dataclass(frozen=True)
class Origin:
    """Where a raw value came from, so errors can point at it."""

    kind: str  # "default", "profile", "env file", "environment", "flag"
    where: str
    base_dir: Path

    def describe(self, name: str) -> str:
        if self.kind == "profile":
            return f"profile {self.where}, key '{name}'"
        if self.kind == "env file":
            return f"env file {self.where}, {env_name(name)}"
        if self.kind == "environment":
            return f"environment variable {env_name(name)}"
        if self.kind == "flag":
            return f"flag {flag_name(name)}"
        return "default"


@dataclass(frozen=True)
class Settings:
    model_name: str
    server_address: str
    inputs: tuple[InputSpec, ...]
    api: str = "kserve"
    model_version: int = 0
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_server_name: str | None = None
    loop: bool = False
    input_fps: float = 0.0
    input_name: str | None = None
    input_size: tuple[int, int] | None = None
    layout: str = "NHWC"
    color_order: str = "RGB"
    dtype: str = "uint8"
    mean: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    adapter: str = "ssd"
    score_threshold: float = 0.5
    iou_threshold: float = 0.45
    top_k: int = 5
    yolo_variant: str = "auto"
    labels: Path | None = None
    output: str = "-"
    output_max_mb: float = 64.0
    output_backups: int = 4
    annotate_dir: Path | None = None
    mqtt_broker: str | None = None
    mqtt_topic: str = "ovms-client/{stream}"
    mqtt_qos: int = 0
    prometheus_port: int = 0
    prometheus_address: str = "0.0.0.0"
    metrics_interval: float = 5.0
    ready_timeout: float = 60.0
    request_timeout: float = 10.0
    in_flight: int = 2
    max_frames: int = 0
    log_level: str = "INFO"
    stream_density: bool = False
    density_target_fps: float = 14.9
    density_max_streams: int = 16
    density_trial_s: float = 8.0

    @property
    def tls(self) -> bool:
        return self.tls_ca is not None

    def to_dict(self) -> dict[str, Any]:
        """The effective settings as plain JSON-ready values (for --check)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "inputs":
                value = [{"id": i.stream_id, "source": i.source, "kind": i.kind.value}
                         for i in value]
            elif isinstance(value, tuple) and f.name in ("mean", "scale"):
                value = list(value)
            elif f.name == "input_size" and value is not None:
                value = f"{value[0]}x{value[1]}"
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


# --- value parsers: each takes the raw value and its base dir, raises ValueError("expected ...")


def _scalar_text(raw: Any) -> str:
    if isinstance(raw, (list, dict)) or raw is None:
        raise ValueError("expected a single value")
    return str(raw).strip()


def _text(raw: Any, _base: Path) -> str | None:
    text = _scalar_text(raw)
    return text or None


def _required_text(raw: Any, base: Path) -> str:
    text = _text(raw, base)
    if text is None:
        raise ValueError("expected a non-empty value")
    return text


def _int_in(low: int, high: int | None) -> Callable[[Any, Path], int]:
    def parse(raw: Any, _base: Path) -> int:
        if isinstance(raw, bool):
            raise ValueError("expected an integer")
        try:
            value = int(_scalar_text(raw))
        except ValueError:
            raise ValueError("expected an integer") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise ValueError(f"expected an integer {bound}")
        return value

    return parse


def _float_in(
    low: float, high: float | None, low_open: bool = False
) -> Callable[[Any, Path], float]:
    def parse(raw: Any, _base: Path) -> float:
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        try:
            value = float(_scalar_text(raw))
        except ValueError:
            raise ValueError("expected a number") from None
        too_low = value <= low if low_open else value < low
        if too_low or (high is not None and value > high) or math.isnan(value):
            if high is not None:
                bound = f"between {low} and {high}"
            else:
                bound = f"> {low}" if low_open else f">= {low}"
            raise ValueError(f"expected a number {bound}")
        return value

    return parse


def _bool(raw: Any, _base: Path) -> bool:
    if isinstance(raw, bool):
        return raw
    text = _scalar_text(raw).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _choice(*choices: str, upper: bool = False) -> Callable[[Any, Path], str]:
    def parse(raw: Any, _base: Path) -> str:
        text = _scalar_text(raw)
        text = text.upper() if upper else text.lower()
        if text not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return text

    return parse


_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+)):(?P<port>\d+)$")


def _address(raw: Any, _base: Path) -> str:
    text = _scalar_text(raw)
    match = _HOST_PORT.match(text)
    if not match or not 1 <= int(match.group("port")) <= 65535:
        raise ValueError("expected HOST:PORT with a port between 1 and 65535, "
                         "e.g. 127.0.0.1:9000 or [::1]:9000")
    return text


def _size(raw: Any, _base: Path) -> tuple[int, int] | None:
    if isinstance(raw, list) and len(raw) == 2:
        raw = f"{raw[0]}x{raw[1]}"
    text = _scalar_text(raw).lower()
    if not text:
        return None
    match = re.fullmatch(r"(\d+)\s*x\s*(\d+)", text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise ValueError("expected WIDTHxHEIGHT in pixels, e.g. 300x300")
    return int(match.group(1)), int(match.group(2))


def _per_channel(raw: Any, _base: Path) -> tuple[float, ...] | None:
    items = raw if isinstance(raw, list) else _scalar_text(raw).split(",")
    if items == [""]:
        return None
    try:
        values = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        values = ()
    if len(values) not in (1, 3) or any(math.isnan(v) for v in values):
        raise ValueError("expected one number or three (per channel, in color_order), "
                         "e.g. 255 or 123.7,116.3,103.5")
    return values


def _directory(raw: Any, base: Path) -> Path | None:
    text = _scalar_text(raw)
    if not text:
        return None
    path = Path(text) if Path(text).is_absolute() else base / text
    if path.exists() and not path.is_dir():
        raise ValueError(f"expected a directory (created if missing), but {path} is a file")
    return path


def _topic(raw: Any, _base: Path) -> str:
    text = _scalar_text(raw)
    if not text or "#" in text or "+" in text:
        raise ValueError("expected an MQTT topic without wildcards (+ or #), e.g. "
                         "ovms-client/{stream}")
    try:
        text.format(stream="s")
    except (KeyError, IndexError, ValueError):
        raise ValueError("expected a topic whose only placeholder is {stream}") from None
    return text


def _bind_address(raw: Any, _base: Path) -> str:
    text = _scalar_text(raw)
    if not re.fullmatch(r"[0-9A-Za-z.:_-]+", text):
        raise ValueError("expected an IP address or host name to listen on, e.g. 0.0.0.0")
    return text


def _existing_file(raw: Any, base: Path) -> Path | None:
    text = _scalar_text(raw)
    if not text:
        return None
    path = (base / text).expanduser() if not Path(text).is_absolute() else Path(text)
    if not path.is_file():
        raise ValueError(f"expected an existing readable file, but {path} is not a file")
    return path


def _output(raw: Any, base: Path) -> str:
    text = _scalar_text(raw)
    if text in ("", "-"):
        return "-"
    path = Path(text) if Path(text).is_absolute() else base / text
    if path.is_dir():
        raise ValueError(f"expected a file path or '-' for stdout, but {path} is a directory")
    return str(path)


_CAMERA_DEVICE = re.compile(r"^/dev/video\d+$")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)


def classify_source(text: str, base: Path) -> tuple[SourceKind, str]:
    """Tell which kind of input a source string names; files must exist."""
    if text.isdigit() or _CAMERA_DEVICE.match(text):
        return SourceKind.CAMERA, text
    if _URL.match(text):
        return SourceKind.STREAM, text
    path = Path(text) if Path(text).is_absolute() else base / text
    if path.is_dir():
        return SourceKind.IMAGES, str(path)
    if path.is_file():
        kind = SourceKind.IMAGES if path.suffix.lower() in _IMAGE_SUFFIXES else SourceKind.VIDEO
        return kind, str(path)
    raise ValueError(
        f"expected a video file, image file, image folder, camera (/dev/videoN or an index) "
        f"or rtsp:// URL, but {path} does not exist"
    )


def _inputs(raw: Any, base: Path) -> tuple[InputSpec, ...]:
    if isinstance(raw, str):
        entries: list[Any] = [part.strip() for part in raw.split(",") if part.strip()]
    elif isinstance(raw, list):
        entries = raw
    else:
        raise ValueError("expected a source or a list of sources")
    if not entries:
        raise ValueError("expected at least one source")
    specs = []
    for index, entry in enumerate(entries):
        if isinstance(entry, dict):
            unknown = set(entry) - {"source", "id"}
            if unknown or "source" not in entry:
                raise ValueError("expected each list entry to be a source string or a mapping "
                                 "with 'source' and an optional 'id'")
            source, stream_id = str(entry["source"]), str(entry.get("id") or f"stream{index}")
        elif isinstance(entry, (str, int)) and not isinstance(entry, bool):
            source, stream_id = str(entry), f"stream{index}"
        else:
            raise ValueError("expected each list entry to be a source string")
        kind, resolved = classify_source(source.strip(), base)
        specs.append(InputSpec(stream_id=stream_id, source=resolved, kind=kind))
    ids = [spec.stream_id for spec in specs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"expected unique stream ids, got {ids}")
    return tuple(specs)


@dataclass(frozen=True)
class FieldSpec:
    name: str
    parse: Callable[[Any, Path], Any]
    help: str
    required: bool = False


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("model_name", _required_text, "model name as served by OVMS", required=True),
    FieldSpec("model_version", _int_in(0, None), "model version; 0 lets the server choose"),
    FieldSpec("api", _choice("kserve", "tfs"), "gRPC API: kserve (KServe v2) or tfs "
              "(TensorFlow Serving, OVMS 2026.2 or older)"),
    FieldSpec("server_address", _address, "OVMS gRPC address HOST:PORT", required=True),
    FieldSpec("tls_ca", _existing_file, "CA certificate (PEM) to verify the server; turns TLS on"),
    FieldSpec("tls_cert", _existing_file, "client certificate (PEM) for mutual TLS"),
    FieldSpec("tls_key", _existing_file, "client private key (PEM) for mutual TLS"),
    FieldSpec("tls_server_name", _text, "name to verify in the server certificate, when it "
              "differs from the host in server_address"),
    FieldSpec("inputs", _inputs, "input sources: video file, image file or folder, camera "
              "(/dev/videoN or index), rtsp:// URL; comma-separated in env", required=True),
    FieldSpec("loop", _bool, "restart video files and image folders at their end"),
    FieldSpec("input_fps", _float_in(0.0, None), "read at most this many frames/s per "
              "stream instead of as fast as the server answers; 0 = not paced"),
    FieldSpec("input_name", _text, "model input name; default: the model's only input"),
    FieldSpec("input_size", _size, "model input WIDTHxHEIGHT; default: from model metadata"),
    FieldSpec("layout", _choice("NHWC", "NCHW", upper=True), "model input layout"),
    FieldSpec("color_order", _choice("RGB", "BGR", upper=True), "channel order the model expects"),
    FieldSpec("dtype", _choice("uint8", "float32"), "input element type"),
    FieldSpec("mean", _per_channel, "float32 only: subtracted from pixel values (0..255) "
              "before dividing by scale; one value or three"),
    FieldSpec("scale", _per_channel, "float32 only: pixel values are divided by it, e.g. 255 "
              "for models that take 0..1; one value or three"),
    FieldSpec("adapter", _choice("ssd", "yolo", "classification"),
              "how to read the outputs: ssd, yolo or classification"),
    FieldSpec("score_threshold", _float_in(0.0, 1.0), "minimum detection or class score"),
    FieldSpec("iou_threshold", _float_in(0.0, 1.0), "yolo: boxes of one class overlapping more "
              "than this (IoU) are merged by NMS"),
    FieldSpec("top_k", _int_in(1, 1000), "classification: classes reported per frame"),
    FieldSpec("yolo_variant", _choice("auto", "v5", "v8"), "yolo: output layout, v5 "
              "[1,N,5+C] or v8 [1,4+C,N]; auto tells them apart by shape"),
    FieldSpec("labels", _existing_file, "labels file: one label per line (line N = class N) "
              "or 'ID LABEL' lines"),
    FieldSpec("output", _output, "results file (JSON lines); '-' for stdout"),
    FieldSpec("output_max_mb", _float_in(0.0, None), "rotate the results file when it "
              "passes this many MiB (FILE -> FILE.1 -> ...); 0 = never"),
    FieldSpec("output_backups", _int_in(1, 100), "rotated results files kept (FILE.1 is "
              "the newest); older ones are deleted"),
    FieldSpec("annotate_dir", _directory, "write each frame with its results drawn on it as "
              "JPEG files into this directory (one subdirectory per stream); off when unset"),
    FieldSpec("mqtt_broker", _address, "publish each frame's results to this MQTT broker "
              "HOST:PORT; off when unset"),
    FieldSpec("mqtt_topic", _topic, "MQTT topic; {stream} is replaced by the stream id"),
    FieldSpec("mqtt_qos", _int_in(0, 2), "MQTT quality of service: 0, 1 or 2"),
    FieldSpec("prometheus_port", _int_in(0, 65535), "serve Prometheus metrics on "
              "http://ADDRESS:PORT/metrics; 0 = off"),
    FieldSpec("prometheus_address", _bind_address, "address the /metrics endpoint listens on"),
    FieldSpec("metrics_interval", _float_in(0.0, None), "seconds between metrics lines; 0 = off"),
    FieldSpec("ready_timeout", _float_in(0.0, None), "seconds to wait at start for the model "
              "to be ready"),
    FieldSpec("request_timeout", _float_in(0.0, None, low_open=True), "seconds per request"),
    FieldSpec("in_flight", _int_in(1, 64), "requests in flight per stream"),
    FieldSpec("max_frames", _int_in(0, None),
              "stop each stream after this many frames; 0 = no limit"),
    FieldSpec("log_level", _choice("DEBUG", "INFO", "WARNING", "ERROR", upper=True),
              "log level of the human-readable log on stderr"),
    FieldSpec("stream_density", _bool, "instead of processing the inputs once, find the "
              "largest number of copies of the first input that each sustain "
              "density_target_fps, print it and exit"),
    FieldSpec("density_target_fps", _float_in(0.0, None, low_open=True),
              "stream density: frames/s each stream must sustain"),
    FieldSpec("density_max_streams", _int_in(1, 256), "stream density: most streams tried"),
    FieldSpec("density_trial_s", _float_in(1.0, 600.0), "stream density: seconds each "
              "number of streams is measured for"),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}
# The profile may say `input:` (one source) as well as `inputs:` (a list).
ALIASES = {"input": "inputs"}


RawValues = dict[str, tuple[Any, Origin]]


def _canonical(name: str, origin: Origin) -> str:
    name = ALIASES.get(name, name)
    if name not in FIELD_BY_NAME:
        label = env_name(name) if origin.kind in ("env file", "environment") else f"'{name}'"
        where = f" in {origin.kind} {origin.where}" if origin.where else f" in {origin.kind}"
        raise ConfigError(
            f"unknown setting {label}{where}; known settings: {', '.join(FIELD_BY_NAME)}"
        )
    return name


def read_profile(path: Path) -> RawValues:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read profile {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"profile {path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"profile {path} must be a YAML mapping of setting: value")
    origin = Origin("profile", str(path), path.parent.resolve())
    values: RawValues = {}
    for key, value in data.items():
        name = _canonical(str(key), origin)
        if name in values:
            raise ConfigError(f"profile {path} sets '{name}' twice (as 'input' and 'inputs')")
        values[name] = (value, origin)
    return values


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped; optional `export ` and quotes."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read env file {path}: {exc.strerror}") from None
    result: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export "):].lstrip()
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ConfigError(f"env file {path} line {number}: expected KEY=VALUE, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        result[key] = value
    return result


def env_values(env: Mapping[str, str], origin: Origin) -> RawValues:
    values: RawValues = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        short = key[len(ENV_PREFIX):]
        if short in META_ENV:
            continue
        values[_canonical(short.lower(), origin)] = (value, origin)
    return values


def build(layers: list[RawValues]) -> Settings:
    """Merge layers (later wins), parse and validate every value."""
    merged: RawValues = {}
    for layer in layers:
        merged.update(layer)
    parsed: dict[str, Any] = {}
    for spec in FIELDS:
        if spec.name not in merged:
            if spec.required:
                raise ConfigError(
                    f"setting '{spec.name}' is required ({spec.help}): set '{spec.name}:' in "
                    f"the profile, {env_name(spec.name)} or {flag_name(spec.name)}"
                )
            continue
        raw, origin = merged[spec.name]
        try:
            parsed[spec.name] = spec.parse(raw, origin.base_dir)
        except ValueError as exc:
            raise ConfigError(
                f"invalid value {raw!r} for setting '{spec.name}' "
                f"(from {origin.describe(spec.name)}): {exc}"
            ) from None
    parsed = {k: v for k, v in parsed.items() if v is not None}
    settings = Settings(**parsed)
    _check_combinations(settings)
    return settings


def _check_combinations(settings: Settings) -> None:
    if (settings.mean or settings.scale) and settings.dtype != "float32":
        raise ConfigError("settings 'mean' and 'scale' need dtype float32: uint8 inputs are "
                          "sent as decoded")
    if settings.scale and any(v == 0 for v in settings.scale):
        raise ConfigError(f"setting 'scale' is {list(settings.scale)}: pixel values are "
                          f"divided by it, so it cannot be 0")
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ConfigError("settings 'tls_cert' and 'tls_key' go together: set both for mutual "
                          "TLS, or neither")
    if settings.tls_cert is not None and settings.tls_ca is None:
        raise ConfigError("setting 'tls_cert' needs 'tls_ca' too: the CA certificate that "
                          "signed the server's certificate")
    if settings.tls_server_name and not settings.tls:
        raise ConfigError("setting 'tls_server_name' only applies with TLS: set 'tls_ca' as well")


DEFAULT_PROFILES_DIR = "/opt/ovms-client/profiles"


def resolve_profile(name: str, environ: Mapping[str, str], cwd: Path) -> Path:
    """A path, or the bare name of a shipped profile (e.g. person-detection-ssd)."""
    path = Path(name) if Path(name).is_absolute() else cwd / name
    if path.exists() or "/" in name:
        return path
    shipped = Path(environ.get(ENV_PREFIX + "PROFILES_DIR", DEFAULT_PROFILES_DIR))
    for candidate in (shipped / name, shipped / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    return path


def load(
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    cwd: Path,
    profile: str | None = None,
    env_file: str | None = None,
) -> Settings:
    """Read profile, env file, environment and flags and build the effective settings.

    `flags` maps setting names to values given on the command line (absent = not given).
    """
    layers: list[RawValues] = []
    profile = profile or environ.get(ENV_PREFIX + "PROFILE") or None
    if profile:
        layers.append(read_profile(resolve_profile(profile, environ, cwd)))
    env_file = env_file or environ.get(ENV_PREFIX + "ENV_FILE") or None
    if env_file:
        env_path = Path(env_file) if Path(env_file).is_absolute() else cwd / env_file
        origin = Origin("env file", str(env_path), env_path.parent.resolve())
        layers.append(env_values(parse_env_file(env_path), origin))
    layers.append(env_values(environ, Origin("environment", "", cwd)))
    flag_origin = Origin("flag", "", cwd)
    layers.append({name: (value, flag_origin) for name, value in flags.items()})
    return build(layers)
