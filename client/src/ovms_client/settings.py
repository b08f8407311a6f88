"""Settings: one typed model, read from a profile, an env file, the environment and flags.

Each setting is declared once, as a field of `Settings`: its type, default, description and
the parser that checks a raw value. Everything else is derived from that field: the profile
key and `OVMS_CLIENT_<KEY>` variable (from its name), the command-line flag and its `--help`
text (cli.py), the README table (`markdown_table`, written by client/scripts/settings_table.py)
and the JSON that `--check` prints.

A setting `score_threshold` is `score_threshold:` in the profile YAML,
`OVMS_CLIENT_SCORE_THRESHOLD` in an env file or the environment, and `--score-threshold`
on the command line. Precedence, lowest first: defaults, profile, env file, process
environment, flags. Relative paths resolve against the directory of the profile or env file
that set them, and against the working directory for the environment and flags.
"""

from __future__ import annotations

import contextvars
import dataclasses
import enum
import importlib.util
import math
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import core_schema

from ovms_client.errors import ConfigError

ENV_PREFIX = "OVMS_CLIENT_"
# Variables that locate the configuration rather than being part of it.
META_ENV = {"PROFILE", "ENV_FILE", "PROFILES_DIR"}
# The profiles shipped inside the package (wheel), so `--profile NAME` works after a plain
# `pip install`; the image also copies them to /opt/ovms-client/profiles and points
# OVMS_CLIENT_PROFILES_DIR there.
SHIPPED_PROFILES = Path(__file__).resolve().parent / "profiles"


class SourceKind(str, enum.Enum):
    VIDEO = "video"
    IMAGES = "images"
    CAMERA = "camera"
    STREAM = "stream"
    # An Intel RealSense camera (realsense://SERIAL, or realsense:// for the first one) and a
    # RealSense recording (.bag, .db3) played back by librealsense; both need pyrealsense2.
    REALSENSE = "realsense"
    RECORDING = "recording"

    @property
    def live(self) -> bool:
        return self in (SourceKind.CAMERA, SourceKind.STREAM, SourceKind.REALSENSE)


@dataclass(frozen=True)
class InputSpec:
    stream_id: str
    source: str
    kind: SourceKind


@dataclass(frozen=True)
class Origin:
    """Where a raw value came from, so errors can point at it."""

    kind: str  # "profile", "env file", "environment", "flag"
    where: str
    base_dir: Path
    key: str = ""  # as written there: the profile key, variable name or flag

    def describe(self) -> str:
        if self.kind == "profile":
            return f"profile {self.where}, key '{self.key}'"
        if self.kind == "env file":
            return f"env file {self.where}, {self.key}"
        if self.kind == "environment":
            return f"environment variable {self.key}"
        return f"flag {self.key}"


# --- parsers: each turns a raw value (a YAML scalar or list, env text, flag text) into the
# setting's value or raises ValueError("expected ..."), the text users read after the
# setting's name and the value's origin. They are attached to the fields of `Settings` as
# pydantic plain validators, so pydantic runs them in field order and reports the field.


class Parser:
    metavar = "VALUE"

    def parse(self, raw: Any, base: Path) -> Any:
        raise NotImplementedError

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            lambda raw, info: self.parse(raw, _base_dir(info))
        )


def _base_dir(info: ValidationInfo) -> Path:
    """The directory relative paths in this field's value resolve against."""
    origins: Mapping[str, Origin] = (info.context or {}).get("origins", {})
    origin = origins.get(info.field_name or "")
    # Without an origin (Settings built in code, not by `load`): the working directory.
    return origin.base_dir if origin is not None else Path.cwd()


def _scalar_text(raw: Any) -> str:
    if isinstance(raw, (list, dict)) or raw is None:
        raise ValueError("expected a single value")
    return str(raw).strip()


@dataclass(frozen=True)
class Text(Parser):
    required: bool = False
    metavar: str = "TEXT"

    def parse(self, raw: Any, base: Path) -> str | None:
        text = _scalar_text(raw)
        if not text and self.required:
            raise ValueError("expected a non-empty value")
        return text or None


@dataclass(frozen=True)
class Integer(Parser):
    low: int
    high: int | None = None
    metavar: str = "N"

    def parse(self, raw: Any, base: Path) -> int:
        if isinstance(raw, bool):
            raise ValueError("expected an integer")
        try:
            value = int(_scalar_text(raw))
        except ValueError:
            raise ValueError("expected an integer") from None
        if value < self.low or (self.high is not None and value > self.high):
            bound = (
                f"between {self.low} and {self.high}" if self.high is not None else f">= {self.low}"
            )
            raise ValueError(f"expected an integer {bound}")
        return value


@dataclass(frozen=True)
class Number(Parser):
    low: float
    high: float | None = None
    low_open: bool = False
    metavar: str = "X"

    def parse(self, raw: Any, base: Path) -> float:
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        try:
            value = float(_scalar_text(raw))
        except ValueError:
            raise ValueError("expected a number") from None
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low or (self.high is not None and value > self.high) or math.isnan(value):
            if self.high is not None:
                bound = f"between {self.low} and {self.high}"
            else:
                bound = f"> {self.low}" if self.low_open else f">= {self.low}"
            raise ValueError(f"expected a number {bound}")
        return value


class Flag(Parser):
    def parse(self, raw: Any, base: Path) -> bool:
        if isinstance(raw, bool):
            return raw
        text = _scalar_text(raw).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")


class Choice(Parser):
    """One of the values of the field's Literal type, in any letter case."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        choices: tuple[str, ...] = typing.get_args(source)

        def parse(raw: Any) -> str:
            text = _scalar_text(raw).lower()
            for choice in choices:
                if choice.lower() == text:
                    return choice
            raise ValueError("expected one of " + ", ".join(choices))

        return core_schema.no_info_plain_validator_function(parse)


_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+)):(?P<port>\d+)$")


class Address(Parser):
    metavar = "HOST:PORT"

    def parse(self, raw: Any, base: Path) -> str:
        text = _scalar_text(raw)
        match = _HOST_PORT.match(text)
        if not match or not 1 <= int(match.group("port")) <= 65535:
            raise ValueError(
                "expected HOST:PORT with a port between 1 and 65535, "
                "e.g. 127.0.0.1:9000 or [::1]:9000"
            )
        return text


class Size(Parser):
    metavar = "WxH"

    def parse(self, raw: Any, base: Path) -> tuple[int, int] | None:
        if isinstance(raw, list) and len(raw) == 2:
            raw = f"{raw[0]}x{raw[1]}"
        text = _scalar_text(raw).lower()
        if not text:
            return None
        match = re.fullmatch(r"(\d+)\s*x\s*(\d+)", text)
        if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
            raise ValueError("expected WIDTHxHEIGHT in pixels, e.g. 300x300")
        return int(match.group(1)), int(match.group(2))


class PerChannel(Parser):
    metavar = "V[,V,V]"

    def parse(self, raw: Any, base: Path) -> tuple[float, ...] | None:
        items = raw if isinstance(raw, list) else _scalar_text(raw).split(",")
        if items == [""]:
            return None
        try:
            values = tuple(float(v) for v in items)
        except (TypeError, ValueError):
            values = ()
        if len(values) not in (1, 3) or any(math.isnan(v) for v in values):
            raise ValueError(
                "expected one number or three (per channel, in color_order), "
                "e.g. 255 or 123.7,116.3,103.5"
            )
        return values


class Directory(Parser):
    metavar = "DIR"

    def parse(self, raw: Any, base: Path) -> Path | None:
        text = _scalar_text(raw)
        if not text:
            return None
        path = Path(text) if Path(text).is_absolute() else base / text
        if path.exists() and not path.is_dir():
            raise ValueError(f"expected a directory (created if missing), but {path} is a file")
        return path


class Topic(Parser):
    metavar = "TOPIC"

    def parse(self, raw: Any, base: Path) -> str:
        text = _scalar_text(raw)
        if not text or "#" in text or "+" in text:
            raise ValueError(
                "expected an MQTT topic without wildcards (+ or #), e.g. ovms-client/{stream}"
            )
        try:
            text.format(stream="s")
        except (KeyError, IndexError, ValueError):
            raise ValueError("expected a topic whose only placeholder is {stream}") from None
        return text


class BindAddress(Parser):
    metavar = "ADDRESS"

    def parse(self, raw: Any, base: Path) -> str:
        text = _scalar_text(raw)
        if not re.fullmatch(r"[0-9A-Za-z.:_-]+", text):
            raise ValueError("expected an IP address or host name to listen on, e.g. 0.0.0.0")
        return text


# Whether settings that name files need the files on this machine. Off for `--check
# --no-file-checks`: the Ansible role checks a store's settings on its controller, where the
# store's paths do not exist.
FILES_MUST_EXIST: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "files_must_exist", default=True
)


class ExistingFile(Parser):
    metavar = "FILE"

    def parse(self, raw: Any, base: Path) -> Path | None:
        text = _scalar_text(raw)
        if not text:
            return None
        path = (base / text).expanduser() if not Path(text).is_absolute() else Path(text)
        if FILES_MUST_EXIST.get() and not path.is_file():
            raise ValueError(f"expected an existing readable file, but {path} is not a file")
        return path


class Output(Parser):
    metavar = "FILE"

    def parse(self, raw: Any, base: Path) -> str:
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
REALSENSE_SCHEME = "realsense://"
_REALSENSE_SERIAL = re.compile(r"^[0-9A-Za-z_-]*$")
RECORDING_SUFFIXES = {".bag", ".db3"}


def classify_source(text: str, base: Path) -> tuple[SourceKind, str]:
    """Tell which kind of input a source string names; files must exist."""
    if text.isdigit() or _CAMERA_DEVICE.match(text):
        return SourceKind.CAMERA, text
    if text.lower().startswith(REALSENSE_SCHEME):
        serial = text[len(REALSENSE_SCHEME) :]
        if not _REALSENSE_SERIAL.match(serial):
            raise ValueError(
                f"expected realsense://SERIAL (the camera's serial number, letters and digits) "
                f"or realsense:// for the first camera, got {text!r}"
            )
        return SourceKind.REALSENSE, REALSENSE_SCHEME + serial
    if _URL.match(text):
        return SourceKind.STREAM, text
    path = Path(text) if Path(text).is_absolute() else base / text
    if path.is_dir():
        return SourceKind.IMAGES, str(path)
    if path.is_file() or not FILES_MUST_EXIST.get():
        suffix = path.suffix.lower()
        if suffix in RECORDING_SUFFIXES:
            return SourceKind.RECORDING, str(path)
        kind = SourceKind.IMAGES if suffix in _IMAGE_SUFFIXES else SourceKind.VIDEO
        return kind, str(path)
    raise ValueError(
        f"expected a video file, image file, image folder, camera (/dev/videoN or an index), "
        f"rtsp:// URL, realsense:// camera or RealSense recording (.bag), but {path} does not "
        f"exist"
    )


class Words(Parser):
    """A list of names: a YAML list, or comma-separated text."""

    metavar = "NAME[,NAME...]"

    def parse(self, raw: Any, base: Path) -> tuple[str, ...]:
        items = raw if isinstance(raw, list) else _scalar_text(raw).split(",")
        words = tuple(str(item).strip() for item in items if str(item).strip())
        return tuple(dict.fromkeys(words))


class Inputs(Parser):
    metavar = "SOURCE"

    def parse(self, raw: Any, base: Path) -> tuple[InputSpec, ...]:
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
                    raise ValueError(
                        "expected each list entry to be a source string or a "
                        "mapping with 'source' and an optional 'id'"
                    )
                source = str(entry["source"])
                stream_id = str(entry.get("id") or f"stream{index}")
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
class Names:
    """How a setting is spelt where its name alone does not say it."""

    # Other profile keys (and OVMS_CLIENT_ variables) the setting is read under.
    aliases: tuple[str, ...] = ()
    # The flag, when it is not --name-with-dashes.
    flag: str | None = None
    # The flag may be given several times, each adding to a list.
    repeatable: bool = False
    # What leaving it unset means, for settings whose default is None.
    unset: str | None = None


Api = Literal["kserve", "tfs"]
Layout = Literal["NHWC", "NCHW"]
ColorOrder = Literal["RGB", "BGR"]
Dtype = Literal["uint8", "float32"]
Encoding = Literal["raw", "jpeg"]
AdapterName = Literal["ssd", "yolo", "classification"]
YoloVariant = Literal["auto", "v5", "v8"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


def tfs_api_installed() -> bool:
    """Whether ovmsclient, which only `api: tfs` needs (the [tfs] extra), is installed."""
    return importlib.util.find_spec("ovmsclient") is not None


def _doc(text: str) -> Any:
    return Field(description=text)


class Settings(BaseModel):
    """Every setting of the client, in the order --help and the README list them."""

    # Fields named model_* are settings here, not pydantic API.
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model_name: Annotated[
        str, Text(required=True, metavar="NAME"), _doc("model name as served by OVMS")
    ]
    model_version: Annotated[int, Integer(0), _doc("model version; 0 lets the server choose")] = 0
    api: Annotated[
        Api,
        Choice(),
        _doc(
            "gRPC API: `kserve` (KServe v2, tritonclient) or `tfs` (TensorFlow Serving, needs the "
            "`[tfs]` extra; OVMS 2026.2 or older)"
        ),
    ] = "kserve"
    server_address: Annotated[
        str, Address(), _doc("OVMS gRPC address `HOST:PORT` (`[::1]:9000` for IPv6)")
    ]
    tls_ca: Annotated[
        Path | None,
        ExistingFile(),
        _doc("CA certificate (PEM) that signed the server's certificate; setting it turns TLS on"),
    ] = None
    tls_cert: Annotated[
        Path | None,
        ExistingFile(),
        _doc("client certificate (PEM) for mutual TLS; needs `tls_key` and `tls_ca`"),
    ] = None
    tls_key: Annotated[
        Path | None, ExistingFile(), _doc("client private key (PEM) for mutual TLS")
    ] = None
    tls_server_name: Annotated[
        str | None,
        Text(metavar="NAME"),
        _doc(
            "name to verify in the server certificate when it differs from the host in "
            "`server_address`"
        ),
    ] = None
    inputs: Annotated[
        tuple[InputSpec, ...],
        Inputs(),
        Names(aliases=("input",), flag="--input", repeatable=True),
        _doc(
            "sources, one stream each: video file, image file or folder, camera "
            "(`/dev/videoN` or an index), `rtsp://` or `http(s)://` URL, RealSense camera "
            "(`realsense://SERIAL`, `realsense://` for the first) or recording (`.bag`; both "
            "need the `[realsense]` extra); comma-separated in env, `--input` repeatable"
        ),
    ]
    loop: Annotated[bool, Flag(), _doc("restart video files and image folders at their end")] = (
        False
    )
    input_fps: Annotated[
        float | None,
        Number(0.0, metavar="FPS"),
        Names(unset="the video's own rate when looping, else 0"),
        _doc(
            "read at most this many frames/s per stream, like a camera (e.g. `15`, or `2` to "
            "spare the CPU); 0 reads as fast as the server answers. Unset: a looping video file "
            "plays at the frame rate it declares, anything else unpaced"
        ),
    ] = None
    input_name: Annotated[
        str | None,
        Text(metavar="NAME"),
        Names(unset="model's only input"),
        _doc("model input to feed"),
    ] = None
    input_size: Annotated[
        tuple[int, int] | None,
        Size(),
        Names(unset="from model metadata"),
        _doc("`WIDTHxHEIGHT` frames are resized to (cv2.INTER_LINEAR)"),
    ] = None
    layout: Annotated[Layout, Choice(), _doc("model input layout")] = "NHWC"
    color_order: Annotated[ColorOrder, Choice(), _doc("channel order the model expects")] = "RGB"
    dtype: Annotated[
        Dtype, Choice(), _doc("input element type (values 0..255 unless `mean`/`scale` are set)")
    ] = "uint8"
    encoding: Annotated[
        Encoding,
        Choice(),
        _doc(
            "how frames travel to the server: `raw` tensors, or `jpeg`: resized on the client "
            "to the model's size, JPEG-encoded and sent as one KServe `BYTES` element that OVMS "
            "decodes (its binary inputs; needs `api: kserve` and an NHWC model input), about a "
            "tenth of raw's bytes"
        ),
    ] = "raw"
    jpeg_quality: Annotated[
        int,
        Integer(1, 100, metavar="Q"),
        _doc(
            "`jpeg`: JPEG quality, 1 (smallest) to 100 (best); colour is kept at full "
            "resolution (4:4:4)"
        ),
    ] = 85
    mean: Annotated[
        tuple[float, ...] | None,
        PerChannel(),
        _doc(
            "`float32` only: subtracted from pixel values (0..255), one value or three in "
            "`color_order`"
        ),
    ] = None
    scale: Annotated[
        tuple[float, ...] | None,
        PerChannel(),
        _doc(
            "`float32` only: pixel values (after `mean`) are divided by it, e.g. `255` for YOLO "
            "exports that take 0..1"
        ),
    ] = None
    adapter: Annotated[
        AdapterName, Choice(), _doc("how outputs are read (see Adapters in the client README)")
    ] = "ssd"
    score_threshold: Annotated[
        float, Number(0.0, 1.0), _doc("minimum detection (or class) score, 0..1")
    ] = 0.5
    iou_threshold: Annotated[
        float,
        Number(0.0, 1.0),
        _doc("`yolo`: NMS merges boxes of one class that overlap more than this IoU"),
    ] = 0.45
    top_k: Annotated[
        int, Integer(1, 1000), _doc("`classification`: most classes reported per frame")
    ] = 5
    yolo_variant: Annotated[
        YoloVariant,
        Choice(),
        _doc("`yolo`: `v5` ([1,N,5+C]), `v8` ([1,4+C,N]) or `auto` (by shape)"),
    ] = "auto"
    labels: Annotated[
        Path | None,
        ExistingFile(),
        _doc("labels file: plain lines (line N names class N, from 0) or `ID LABEL` lines"),
    ] = None
    classifier_model: Annotated[
        str | None,
        Text(metavar="NAME"),
        _doc(
            "classify the box of every detection with this model on the same server (detector "
            "then classifier); each detection gets its `classes`. Off when unset"
        ),
    ] = None
    classifier_labels: Annotated[
        Path | None,
        ExistingFile(),
        _doc("labels file of `classifier_model`'s classes (required with it)"),
    ] = None
    classifier_top_k: Annotated[
        int, Integer(1, 1000), _doc("`classifier_model`: classes reported per detection")
    ] = 1
    classifier_color_order: Annotated[
        ColorOrder, Choice(), _doc("`classifier_model`: channel order it expects")
    ] = "RGB"
    classify_labels: Annotated[
        tuple[str, ...],
        Words(),
        Names(unset="every detection"),
        _doc(
            "`classifier_model`: classify only detections with these labels (a list, or "
            "comma-separated); every detection when empty"
        ),
    ] = ()
    output: Annotated[
        str,
        Output(),
        _doc("JSON-lines file (appended to, parent directories created) or `-` for stdout"),
    ] = "-"
    output_max_mb: Annotated[
        float,
        Number(0.0, metavar="MIB"),
        _doc(
            "rotate the file when it passes this many MiB: `FILE` becomes `FILE.1`, `FILE.1` "
            "becomes `FILE.2`, ...; `0` never rotates"
        ),
    ] = 64.0
    output_backups: Annotated[
        int, Integer(1, 100), _doc("rotated files kept; the oldest is deleted")
    ] = 4
    annotate_dir: Annotated[
        Path | None,
        Directory(),
        _doc(
            "write every frame with its results drawn as `DIR/STREAM/FRAME.jpg`; off when unset "
            "(costs a JPEG encode per frame)"
        ),
    ] = None
    mqtt_broker: Annotated[
        str | None,
        Address(),
        _doc(
            "publish each frame's JSON record to this MQTT broker `HOST:PORT` (MQTT 3.1.1, no "
            "TLS); off when unset"
        ),
    ] = None
    mqtt_topic: Annotated[str, Topic(), _doc("topic; `{stream}` becomes the stream id")] = (
        "ovms-client/{stream}"
    )
    mqtt_qos: Annotated[int, Integer(0, 2), _doc("MQTT QoS 0, 1 or 2")] = 0
    prometheus_port: Annotated[
        int,
        Integer(0, 65535, metavar="PORT"),
        _doc("serve Prometheus metrics on `http://ADDRESS:PORT/metrics`; 0 = off"),
    ] = 0
    prometheus_address: Annotated[
        str, BindAddress(), _doc("address the `/metrics` endpoint listens on")
    ] = "0.0.0.0"
    metrics_interval: Annotated[
        float,
        Number(0.0, metavar="SECONDS"),
        _doc("seconds between metrics lines; 0 turns them off"),
    ] = 5.0
    ready_timeout: Annotated[
        float,
        Number(0.0, metavar="SECONDS"),
        _doc("seconds to wait at start for the model to be ready"),
    ] = 60.0
    request_timeout: Annotated[
        float,
        Number(0.0, low_open=True, metavar="SECONDS"),
        _doc("seconds allowed per gRPC request"),
    ] = 10.0
    in_flight: Annotated[int, Integer(1, 64), _doc("requests in flight per stream (1..64)")] = 2
    max_frames: Annotated[
        int, Integer(0), _doc("stop each stream after this many frames; 0 = no limit")
    ] = 0
    log_level: Annotated[LogLevel, Choice(), _doc("level of the human-readable log on stderr")] = (
        "INFO"
    )
    stream_density: Annotated[
        bool,
        Flag(),
        _doc(
            "stream density mode instead of a normal run: find how many copies of the first "
            "input each sustain `density_target_fps`, write that and exit"
        ),
    ] = False
    density_target_fps: Annotated[
        float,
        Number(0.0, low_open=True, metavar="FPS"),
        _doc("stream density: frames/s every stream must sustain"),
    ] = 14.9
    density_max_streams: Annotated[
        int, Integer(1, 256), _doc("stream density: most streams tried")
    ] = 16
    density_trial_s: Annotated[
        float,
        Number(1.0, 600.0, metavar="SECONDS"),
        _doc(
            "stream density: seconds each number of streams is measured for (after 1.5 s of "
            "warm-up)"
        ),
    ] = 8.0

    @property
    def tls(self) -> bool:
        return self.tls_ca is not None

    @model_validator(mode="after")
    def _check_combinations(self, info: ValidationInfo) -> Settings:
        if (self.mean or self.scale) and self.dtype != "float32":
            raise ValueError(
                "settings 'mean' and 'scale' need dtype float32: uint8 inputs are sent as decoded"
            )
        if self.scale and any(v == 0 for v in self.scale):
            raise ValueError(
                f"setting 'scale' is {list(self.scale)}: pixel values are "
                f"divided by it, so it cannot be 0"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError(
                "settings 'tls_cert' and 'tls_key' go together: set both for mutual TLS, or neither"
            )
        if self.tls_cert is not None and self.tls_ca is None:
            raise ValueError(
                "setting 'tls_cert' needs 'tls_ca' too: the CA certificate that "
                "signed the server's certificate"
            )
        if self.tls_server_name and not self.tls:
            raise ValueError(
                "setting 'tls_server_name' only applies with TLS: set 'tls_ca' as well"
            )
        if self.encoding == "jpeg":
            _check_jpeg(self, info)
        if self.classifier_model is not None:
            if self.adapter == "classification":
                raise ValueError(
                    f"setting 'classifier_model' is {self.classifier_model!r}: it classifies the "
                    f"boxes of a detector, but adapter is classification (no boxes); set adapter "
                    f"to ssd or yolo, or unset classifier_model"
                )
            if self.classifier_labels is None:
                raise ValueError(
                    f"setting 'classifier_model' is {self.classifier_model!r} but "
                    f"'classifier_labels' is unset: a classifier without labels gives bare class "
                    f"numbers; set classifier_labels to the file naming its classes (line N = "
                    f"class N)"
                )
        if self.api == "tfs" and not tfs_api_installed():
            origin = (info.context or {}).get("origins", {}).get("api")
            where = f" (from {origin.describe()})" if origin is not None else ""
            raise ValueError(
                f"setting 'api' is tfs{where}, which needs the ovmsclient "
                "package: install edge-retail-ovms-client[tfs], or set api: kserve"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """The effective settings as plain JSON-ready values (for --check)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "inputs":
                value = [
                    {"id": i.stream_id, "source": i.source, "kind": i.kind.value} for i in value
                ]
            elif isinstance(value, tuple) and name in ("mean", "scale", "classify_labels"):
                value = list(value)
            elif name == "input_size" and value is not None:
                value = f"{value[0]}x{value[1]}"
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        return out


def _check_jpeg(settings: Settings, info: ValidationInfo) -> None:
    """What OVMS's binary inputs need: the KServe API, an NHWC input, no client-side maths."""
    origins: Mapping[str, Origin] = (info.context or {}).get("origins", {})

    def where(name: str) -> str:
        origin = origins.get(name)
        return f" (from {origin.describe()})" if origin is not None else ""

    if settings.api != "kserve":
        raise ValueError(
            f"setting 'encoding' is jpeg{where('encoding')}, but 'api' is "
            f"{settings.api}{where('api')}: OVMS takes encoded images (binary inputs) only on "
            "the KServe API; set api: kserve, or encoding: raw"
        )
    if settings.layout != "NHWC":
        raise ValueError(
            f"setting 'encoding' is jpeg{where('encoding')}, but 'layout' is "
            f"{settings.layout}{where('layout')}: OVMS decodes images to NHWC and refuses them "
            "for an NCHW input; serve the model with layout NHWC:NCHW (OVMS config) and set "
            "layout: NHWC, or set encoding: raw"
        )
    if settings.mean or settings.scale:
        raise ValueError(
            f"setting 'encoding' is jpeg{where('encoding')}: OVMS turns the decoded 0..255 pixels "
            "into the model's type itself, so 'mean' and 'scale' cannot be applied; fold them "
            "into the model, or set encoding: raw"
        )


# --- what the CLI, the README and error messages need to know of each setting, derived from
# the model above.


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


@dataclass(frozen=True)
class SettingInfo:
    name: str
    help: str  # Markdown: `code` spans
    parser: Parser
    annotation: Any
    default: Any
    required: bool
    names: Names

    @property
    def env(self) -> str:
        return env_name(self.name)

    @property
    def envs(self) -> tuple[str, ...]:
        return (self.env, *(env_name(alias) for alias in self.names.aliases))

    @property
    def flag(self) -> str:
        return self.names.flag or "--" + self.name.replace("_", "-")

    @property
    def is_bool(self) -> bool:
        return isinstance(self.parser, Flag)

    @property
    def choices(self) -> tuple[str, ...]:
        return typing.get_args(self.annotation) if isinstance(self.parser, Choice) else ()

    @property
    def metavar(self) -> str:
        if self.choices:
            return "{" + ",".join(self.choices) + "}"
        return self.parser.metavar

    @property
    def default_text(self) -> str:
        """The default as the README and --help show it."""
        if self.required:
            return "required"
        value = self.default
        if value is None:
            return self.names.unset or "unset"
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)


def _setting_info(name: str) -> SettingInfo:
    field = Settings.model_fields[name]
    parser = next(m for m in field.metadata if isinstance(m, Parser))
    names = next((m for m in field.metadata if isinstance(m, Names)), Names())
    return SettingInfo(
        name=name,
        help=field.description or "",
        parser=parser,
        annotation=field.annotation,
        default=field.default,
        required=field.is_required(),
        names=names,
    )


SETTINGS: dict[str, SettingInfo] = {name: _setting_info(name) for name in Settings.model_fields}
# Every key a setting is read under (profile key, lower-case variable suffix) -> its name.
KEYS: dict[str, str] = {
    key: info.name for info in SETTINGS.values() for key in (info.name, *info.names.aliases)
}


def flag_name(name: str) -> str:
    return SETTINGS[name].flag


def markdown_table() -> str:
    """The README's settings table, generated from the model so the two cannot drift."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| setting | env | flag | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for info in SETTINGS.values():
        setting = f"`{info.name}`" + "".join(f" (also `{a}`)" for a in info.names.aliases)
        env = " / ".join(f"`{env}`" for env in info.envs)
        if info.is_bool:
            flag = f"`{info.flag}` / `--no-{info.flag[2:]}`"
        else:
            flag = f"`{info.flag} {info.metavar}`" + (
                " (repeatable)" if info.names.repeatable else ""
            )
        default = info.default_text
        if not info.required and info.default is not None:
            default = f"`{default}`"
        rows.append(f"| {setting} | {env} | {cell(flag)} | {cell(default)} | {cell(info.help)} |")
    return "\n".join(rows) + "\n"


# --- the layers values come from


RawValues = dict[str, tuple[Any, Origin]]


def _canonical(key: str, origin: Origin) -> str:
    name = KEYS.get(key)
    if name is None:
        label = origin.key if origin.kind in ("env file", "environment") else f"'{key}'"
        where = f" in {origin.kind} {origin.where}" if origin.where else f" in {origin.kind}"
        raise ConfigError(f"unknown setting {label}{where}; known settings: {', '.join(SETTINGS)}")
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
    base = Origin("profile", str(path), path.parent.resolve())
    values: RawValues = {}
    for key, value in data.items():
        origin = dataclasses.replace(base, key=str(key))
        name = _canonical(str(key), origin)
        if name in values:
            spelt = " and ".join(f"'{k}'" for k in (values[name][1].key, str(key)))
            raise ConfigError(f"profile {path} sets '{name}' twice (as {spelt})")
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
            stripped = stripped[len("export ") :].lstrip()
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ConfigError(f"env file {path} line {number}: expected KEY=VALUE, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        result[key] = value
    return result


def env_values(env: Mapping[str, str], base: Origin) -> RawValues:
    values: RawValues = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        short = key[len(ENV_PREFIX) :]
        if short in META_ENV:
            continue
        origin = dataclasses.replace(base, key=key)
        values[_canonical(short.lower(), origin)] = (value, origin)
    return values


def flag_values(flags: Mapping[str, Any], cwd: Path) -> RawValues:
    return {
        name: (value, Origin("flag", "", cwd, flag_name(name))) for name, value in flags.items()
    }


def build(layers: list[RawValues]) -> Settings:
    """Merge layers (later wins), parse and validate every value."""
    merged: RawValues = {}
    for layer in layers:
        merged.update(layer)
    origins = {name: origin for name, (_raw, origin) in merged.items()}
    try:
        return Settings.model_validate(
            {name: raw for name, (raw, _origin) in merged.items()}, context={"origins": origins}
        )
    except ValidationError as exc:
        raise _config_error(exc, merged) from None


def _config_error(exc: ValidationError, merged: RawValues) -> ConfigError:
    """The first problem, in field order, as a message naming the setting and its origin."""
    error = exc.errors()[0]
    cause = (error.get("ctx") or {}).get("error")
    reason = str(cause) if cause is not None else error["msg"]
    if not error["loc"]:
        return ConfigError(reason)
    info = SETTINGS[str(error["loc"][0])]
    if error["type"] == "missing":
        return ConfigError(
            f"setting '{info.name}' is required ({info.help.replace('`', '')}): set "
            f"'{info.name}:' in the profile, {info.env} or {info.flag}"
        )
    raw, origin = merged[info.name]
    return ConfigError(
        f"invalid value {raw!r} for setting '{info.name}' (from {origin.describe()}): {reason}"
    )


def shipped_profiles() -> list[str]:
    return sorted(p.stem for p in SHIPPED_PROFILES.glob("*.yaml"))


def resolve_profile(name: str, environ: Mapping[str, str], cwd: Path) -> Path:
    """A path, or the bare name of a shipped profile (e.g. person-detection-ssd).

    Bare names are looked up in OVMS_CLIENT_PROFILES_DIR when it is set, then among the
    profiles inside the package.
    """
    path = Path(name) if Path(name).is_absolute() else cwd / name
    if path.exists() or "/" in name:
        return path
    directories = [Path(d) for d in [environ.get(ENV_PREFIX + "PROFILES_DIR")] if d]
    for directory in [*directories, SHIPPED_PROFILES]:
        for candidate in (directory / name, directory / f"{name}.yaml"):
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
    layers.append(flag_values(flags, cwd))
    return build(layers)
