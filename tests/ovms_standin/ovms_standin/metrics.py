"""Prometheus text exposition with OVMS's metric families, labels and buckets."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable

# Bucket bounds OVMS uses for its *_time_us histograms.
BUCKETS_US = (
    10,
    18,
    32,
    58,
    104,
    188,
    340,
    612,
    1101,
    1983,
    3570,
    6426,
    11568,
    20822,
    37481,
    67466,
    121439,
    218591,
    393464,
    708235,
    1274823,
    2294682,
    4130428,
    7434771,
    13382588,
    24088659,
    43359586,
    78047255,
    140485060,
    252873108,
    455171596,
    819308872,
    1474755971,
)

REQUESTS_SUCCESS = "ovms_requests_success"
REQUESTS_FAIL = "ovms_requests_fail"
REQUEST_TIME = "ovms_request_time_us"
STREAMS = "ovms_streams"
INFERENCE_TIME = "ovms_inference_time_us"
WAIT_FOR_INFER_REQ = "ovms_wait_for_infer_req_time_us"
CURRENT_REQUESTS = "ovms_current_requests"
INFER_REQ_QUEUE_SIZE = "ovms_infer_req_queue_size"
INFER_REQ_ACTIVE = "ovms_infer_req_active"

_FAMILIES = {
    REQUESTS_SUCCESS: ("counter", "Number of successful requests to a model or a DAG."),
    REQUESTS_FAIL: ("counter", "Number of failed requests to a model or a DAG."),
    REQUEST_TIME: ("histogram", "Processing time of requests to a model or a DAG."),
    STREAMS: ("gauge", "Number of OpenVINO execution streams."),
    INFERENCE_TIME: ("histogram", "Inference execution time in the OpenVINO backend."),
    WAIT_FOR_INFER_REQ: ("histogram", "Request waiting time in the scheduling queue."),
    CURRENT_REQUESTS: ("gauge", "Number of inference requests currently in process."),
    INFER_REQ_QUEUE_SIZE: ("gauge", "Inference request queue size (nireq)."),
    INFER_REQ_ACTIVE: (
        "gauge",
        "Number of currently consumed inference request from the processing queue.",
    ),
}
DEFAULT_FAMILIES = (
    REQUESTS_SUCCESS,
    REQUESTS_FAIL,
    REQUEST_TIME,
    STREAMS,
    INFERENCE_TIME,
    WAIT_FOR_INFER_REQ,
    CURRENT_REQUESTS,
)
ALL_FAMILIES = tuple(_FAMILIES)

Labels = tuple[tuple[str, str], ...]


@dataclasses.dataclass
class _Histogram:
    counts: list[int] = dataclasses.field(default_factory=lambda: [0] * len(BUCKETS_US))
    total: float = 0.0
    count: int = 0


class Registry:
    """Thread-safe store of series; families not enabled are accepted and not shown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._enabled: frozenset[str] = frozenset()
        self._values: dict[str, dict[Labels, float]] = {name: {} for name in _FAMILIES}
        self._histograms: dict[str, dict[Labels, _Histogram]] = {name: {} for name in _FAMILIES}

    @property
    def enabled(self) -> bool:
        return bool(self._enabled)

    def enable(self, families: Iterable[str]) -> None:
        chosen = tuple(families) or DEFAULT_FAMILIES
        unknown = [name for name in chosen if name not in _FAMILIES]
        if unknown:
            raise ValueError(
                f"metrics_list has unsupported metric(s) {', '.join(unknown)}; "
                f"supported: {', '.join(ALL_FAMILIES)}"
            )
        self._enabled = frozenset(chosen)

    def touch(self, family: str, labels: Labels) -> None:
        """Create a series at zero, as OVMS lists every series of a loaded model."""
        with self._lock:
            if _FAMILIES[family][0] == "histogram":
                self._histograms[family].setdefault(labels, _Histogram())
            else:
                self._values[family].setdefault(labels, 0.0)

    def add(self, family: str, labels: Labels, amount: float = 1.0) -> None:
        with self._lock:
            series = self._values[family]
            series[labels] = series.get(labels, 0.0) + amount

    def set(self, family: str, labels: Labels, value: float) -> None:
        with self._lock:
            self._values[family][labels] = value

    def observe(self, family: str, labels: Labels, value_us: float) -> None:
        with self._lock:
            histogram = self._histograms[family].setdefault(labels, _Histogram())
            for index, bound in enumerate(BUCKETS_US):
                if value_us <= bound:
                    histogram.counts[index] += 1
            histogram.total += value_us
            histogram.count += 1

    def value(self, family: str, labels: Labels) -> float:
        with self._lock:
            return self._values[family].get(labels, 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for family, (kind, help_text) in _FAMILIES.items():
                if family not in self._enabled:
                    continue
                lines.append(f"# HELP {family} {help_text}")
                lines.append(f"# TYPE {family} {kind}")
                if kind == "histogram":
                    for labels, hist in self._histograms[family].items():
                        lines.extend(_histogram_lines(family, labels, hist))
                else:
                    for labels, value in self._values[family].items():
                        lines.append(f"{family}{_labels(labels)} {_number(value)}")
        return "\n".join(lines) + "\n"


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{value}"' for key, value in labels)
    return "{" + inner + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _histogram_lines(family: str, labels: Labels, hist: _Histogram) -> list[str]:
    lines = [
        f"{family}_count{_labels(labels)} {hist.count}",
        f"{family}_sum{_labels(labels)} {_number(hist.total)}",
    ]
    for bound, count in zip(BUCKETS_US, hist.counts, strict=True):
        lines.append(f"{family}_bucket{_labels((*labels, ('le', str(bound))))} {count}")
    lines.append(f"{family}_bucket{_labels((*labels, ('le', '+Inf')))} {hist.count}")
    return lines


@dataclasses.dataclass(frozen=True)
class Reporter:
    """The series of one model version, labelled the way OVMS labels them."""

    registry: Registry
    name: str
    version: int

    API_METHODS = (
        ("TensorFlowServing", "Predict", True),
        ("TensorFlowServing", "GetModelMetadata", True),
        ("TensorFlowServing", "GetModelStatus", False),
        ("KServe", "ModelInfer", True),
        ("KServe", "ModelMetadata", True),
        ("KServe", "ModelReady", False),
    )

    def _method_labels(self, api: str, interface: str, method: str, versioned: bool) -> Labels:
        labels: Labels = (
            ("api", api),
            ("interface", interface),
            ("method", method),
            ("name", self.name),
        )
        return labels + ((("version", str(self.version)),) if versioned else ())

    def _version_labels(self) -> Labels:
        return (("name", self.name), ("version", str(self.version)))

    def create_series(self, nireq: int, streams: int) -> None:
        for api, method, versioned in self.API_METHODS:
            for interface in ("gRPC", "REST"):
                labels = self._method_labels(api, interface, method, versioned)
                self.registry.touch(REQUESTS_SUCCESS, labels)
                self.registry.touch(REQUESTS_FAIL, labels)
        for interface in ("gRPC", "REST"):
            labels = (("interface", interface), *self._version_labels())
            self.registry.touch(REQUEST_TIME, labels)
        version_labels = self._version_labels()
        self.registry.touch(INFERENCE_TIME, version_labels)
        self.registry.touch(WAIT_FOR_INFER_REQ, version_labels)
        self.registry.touch(CURRENT_REQUESTS, version_labels)
        self.registry.touch(INFER_REQ_ACTIVE, version_labels)
        self.registry.set(STREAMS, version_labels, streams)
        self.registry.set(INFER_REQ_QUEUE_SIZE, version_labels, nireq)

    def request(self, api: str, interface: str, method: str, ok: bool) -> None:
        versioned = method not in ("GetModelStatus", "ModelReady")
        family = REQUESTS_SUCCESS if ok else REQUESTS_FAIL
        self.registry.add(family, self._method_labels(api, interface, method, versioned))

    def request_time(self, interface: str, micros: float) -> None:
        labels = (("interface", interface), *self._version_labels())
        self.registry.observe(REQUEST_TIME, labels, micros)

    def inference_time(self, micros: float) -> None:
        self.registry.observe(INFERENCE_TIME, self._version_labels(), micros)

    def wait_time(self, micros: float) -> None:
        self.registry.observe(WAIT_FOR_INFER_REQ, self._version_labels(), micros)

    def current(self, delta: int) -> None:
        self.registry.add(CURRENT_REQUESTS, self._version_labels(), delta)

    def active(self, delta: int) -> None:
        self.registry.add(INFER_REQ_ACTIVE, self._version_labels(), delta)
