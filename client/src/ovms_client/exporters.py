"""Optional outputs beside the JSON lines: a Prometheus /metrics endpoint, MQTT publishing
and annotated frames."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

import cv2
import numpy as np
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ovms_client.adapters import Classification, Detection
from ovms_client.errors import ConfigError
from ovms_client.results import Metrics

log = logging.getLogger(__name__)


# Families served per stream (label `stream`): name, kind, help, key in Metrics.snapshot().
_PER_STREAM: tuple[tuple[str, type[CounterMetricFamily | GaugeMetricFamily], str, str], ...] = (
    ("ovms_client_frames_total", CounterMetricFamily, "Frames with results.", "frames"),
    (
        "ovms_client_errors_total",
        CounterMetricFamily,
        "Inference requests that failed (and were retried after the server came back).",
        "errors",
    ),
    (
        "ovms_client_dropped_frames_total",
        CounterMetricFamily,
        "Frames of live sources discarded because inference was behind.",
        "dropped",
    ),
    (
        "ovms_client_fps",
        GaugeMetricFamily,
        "Frames with results per second over the last 5 s.",
        "fps",
    ),
)


class ClientCollector(Collector):
    """Reads the client's own counters (results.Metrics) at each scrape.

    A custom collector rather than prometheus_client Counter/Histogram objects: Metrics
    already counts every frame for the metrics and summary lines, under one lock, so the
    endpoint reports the same numbers without a second set of counters on the hot path.
    """

    def __init__(self, metrics: Metrics, server_up: Callable[[], bool]) -> None:
        self._metrics = metrics
        self._server_up = server_up

    def collect(self) -> Iterator[Metric]:
        snapshot = self._metrics.snapshot()
        yield GaugeMetricFamily(
            "ovms_client_server_up",
            "1 while the model server answers, 0 during an outage.",
            value=int(self._server_up()),
        )
        for name, family_type, help_text, key in _PER_STREAM:
            family = family_type(name, help_text, labels=["stream"])
            for sid, stats in snapshot.items():
                family.add_metric([sid], round(stats[key], 3))
            yield family
        latency = HistogramMetricFamily(
            "ovms_client_request_latency_seconds",
            "Round trip of inference requests.",
            labels=["stream"],
        )
        for sid, stats in snapshot.items():
            latency.add_metric(
                [sid],
                [(floatToGoString(bound), count) for bound, count in stats["latency_buckets"]],
                stats["latency_sum"],
            )
        yield latency


def _registry(metrics: Metrics, server_up: Callable[[], bool]) -> CollectorRegistry:
    # A registry of its own: the endpoint serves the client's metrics only, not the default
    # registry's process and platform collectors, and several endpoints can coexist (tests).
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClientCollector(metrics, server_up))
    return registry


def render_prometheus(metrics: Metrics, server_up: bool) -> str:
    """The text exposition format, as the endpoint serves it."""
    return generate_latest(_registry(metrics, lambda: server_up)).decode()


class PrometheusServer:
    """GET /metrics on a background thread (prometheus_client's HTTP server)."""

    def __init__(
        self, address: str, port: int, metrics: Metrics, server_up: Callable[[], bool]
    ) -> None:
        self._address = address
        self._registry = _registry(metrics, server_up)
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._server, self._thread = start_http_server(
                self.port, self._address, registry=self._registry
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self._address}:{self.port} for /metrics (settings "
                f"'prometheus_address', 'prometheus_port'): {exc.strerror}"
            ) from None
        self.port = self._server.server_address[1]
        log.info("serving Prometheus metrics on http://%s:%d/metrics", self._address, self.port)

    def close(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()


class MqttPublisher:
    """Publishes each frame's record as JSON; paho's network thread reconnects on its own and
    queues (boundedly) while the broker is away, so a broker outage never stalls inference."""

    MAX_QUEUED = 10_000
    CLOSE_WAIT_S = 5.0

    def __init__(self, broker: str, topic: str, qos: int) -> None:
        import paho.mqtt.client as mqtt

        host, _sep, port = broker.rpartition(":")
        self._topic = topic
        self._qos = qos
        self._connected_once = threading.Event()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311
        )
        self._client.max_queued_messages_set(self.MAX_QUEUED)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._down_logged = False
        self._address = broker
        self._last: Any = None
        self._client.connect_async(host.strip("[]"), int(port))
        self._client.loop_start()

    def _on_connect(
        self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT broker %s refused the connection: %s", self._address, reason)
            return
        self._connected_once.set()
        self._down_logged = False
        log.info("publishing results to MQTT broker %s, topic %s", self._address, self._topic)

    def _on_disconnect(
        self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None
    ) -> None:
        if not self._down_logged:
            self._down_logged = True
            log.warning(
                "MQTT broker %s disconnected (%s); reconnecting in the background",
                self._address,
                reason,
            )

    def wait_connected(self, timeout: float) -> bool:
        return self._connected_once.wait(timeout)

    def publish(self, record: dict[str, Any]) -> None:
        topic = self._topic.format(stream=record.get("stream", "all"))
        self._last = self._client.publish(
            topic, json.dumps(record, separators=(",", ":")), qos=self._qos
        )

    def close(self) -> None:
        # Let the last results leave before stopping (a SIGTERM must not lose them), but do
        # not hang on a broker that is away.
        if self._last is not None and self._client.is_connected():
            try:
                self._last.wait_for_publish(self.CLOSE_WAIT_S)
            except (RuntimeError, ValueError) as exc:
                log.warning("MQTT: last results not confirmed by %s: %s", self._address, exc)
        self._client.loop_stop()
        self._client.disconnect()


_BOX_COLOUR = (0, 200, 255)  # BGR orange: readable on most retail scenes


class Annotator:
    """Writes `DIR/STREAM/FRAME.jpg` with the results drawn on the original frame."""

    def __init__(self, directory: Path, stream_ids: Sequence[str]) -> None:
        self.directory = directory
        try:
            for sid in stream_ids:
                (directory / sid).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create {directory} (setting 'annotate_dir'): {exc.strerror}"
            ) from None
        self._failed = False

    def write(
        self,
        stream_id: str,
        frame_index: int,
        image: np.ndarray,
        results: Sequence[Detection | Classification],
    ) -> None:
        canvas = draw(image, results)
        path = self.directory / stream_id / f"{frame_index:08d}.jpg"
        if not cv2.imwrite(str(path), canvas) and not self._failed:
            self._failed = True
            log.warning("cannot write annotated frame %s; further failures are not logged", path)


def draw(image: np.ndarray, results: Sequence[Detection | Classification]) -> np.ndarray:
    canvas = image.copy()
    scale = max(0.4, canvas.shape[0] / 720.0 * 0.6)
    thickness = max(1, round(canvas.shape[0] / 360))
    line = 0
    for result in results:
        text = f"{result.label} {result.score:.2f}"
        if isinstance(result, Detection):
            p0 = (round(result.xmin), round(result.ymin))
            cv2.rectangle(
                canvas, p0, (round(result.xmax), round(result.ymax)), _BOX_COLOUR, thickness
            )
            origin = (p0[0], max(p0[1] - 4, 12))
        else:
            line += 1
            origin = (8, round(line * 28 * scale / 0.6))
        cv2.putText(
            canvas,
            text,
            origin,
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            _BOX_COLOUR,
            thickness,
            cv2.LINE_AA,
        )
    return canvas
