"""Optional outputs beside the JSON lines: a Prometheus /metrics endpoint, MQTT publishing
and annotated frames."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ovms_client.adapters import Classification, Detection
from ovms_client.errors import ConfigError
from ovms_client.results import Metrics

log = logging.getLogger(__name__)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def render_prometheus(metrics: Metrics, server_up: bool) -> str:
    """Prometheus text exposition format 0.0.4."""
    snapshot = metrics.snapshot()
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")

    family("ovms_client_server_up", "gauge", "1 while the model server answers, 0 during an "
           "outage.")
    lines.append(f"ovms_client_server_up {int(server_up)}")
    per_stream = (
        ("ovms_client_frames_total", "counter", "Frames with results.", "frames"),
        ("ovms_client_errors_total", "counter", "Inference requests that failed (and were "
         "retried after the server came back).", "errors"),
        ("ovms_client_dropped_frames_total", "counter", "Frames of live sources discarded "
         "because inference was behind.", "dropped"),
        ("ovms_client_fps", "gauge", "Frames with results per second over the last 5 s.",
         "fps"),
    )
    for name, kind, help_text, key in per_stream:
        family(name, kind, help_text)
        for sid, stats in snapshot.items():
            lines.append(f'{name}{{stream="{_label(sid)}"}} {_number(round(stats[key], 3))}')
    name = "ovms_client_request_latency_seconds"
    family(name, "histogram", "Round trip of inference requests.")
    for sid, stats in snapshot.items():
        stream = _label(sid)
        for bound, count in stats["latency_buckets"]:
            lines.append(f'{name}_bucket{{stream="{stream}",le="{_number(bound)}"}} {count}')
        lines.append(f'{name}_sum{{stream="{stream}"}} {stats["latency_sum"]!r}')
        lines.append(f'{name}_count{{stream="{stream}"}} {stats["frames"]}')
    return "\n".join(lines) + "\n"


class PrometheusServer:
    """GET /metrics on a background thread (stdlib http.server)."""

    def __init__(self, address: str, port: int, metrics: Metrics,
                 server_up: Callable[[], bool]) -> None:
        def render() -> str:
            return render_prometheus(metrics, server_up())

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                body = render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                # Scrapes every few seconds would drown the client's own log.
                return

        try:
            self._server = ThreadingHTTPServer((address, port), Handler)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {address}:{port} for /metrics (settings "
                              f"'prometheus_address', 'prometheus_port'): {exc.strerror}") from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="prometheus",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("serving Prometheus metrics on http://%s:%d/metrics",
                 self._server.server_address[0], self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


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
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="",
                                   protocol=mqtt.MQTTv311)
        self._client.max_queued_messages_set(self.MAX_QUEUED)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._down_logged = False
        self._address = broker
        self._last: Any = None
        self._client.connect_async(host.strip("[]"), int(port))
        self._client.loop_start()

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any,
                    _props: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT broker %s refused the connection: %s", self._address, reason)
            return
        self._connected_once.set()
        self._down_logged = False
        log.info("publishing results to MQTT broker %s, topic %s", self._address, self._topic)

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any,
                       _props: Any = None) -> None:
        if not self._down_logged:
            self._down_logged = True
            log.warning("MQTT broker %s disconnected (%s); reconnecting in the background",
                        self._address, reason)

    def wait_connected(self, timeout: float) -> bool:
        return self._connected_once.wait(timeout)

    def publish(self, record: dict[str, Any]) -> None:
        topic = self._topic.format(stream=record.get("stream", "all"))
        self._last = self._client.publish(topic, json.dumps(record, separators=(",", ":")),
                                          qos=self._qos)

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
            raise ConfigError(f"cannot create {directory} (setting 'annotate_dir'): "
                              f"{exc.strerror}") from None
        self._failed = False

    def write(self, stream_id: str, frame_index: int, image: np.ndarray,
              results: Sequence[Detection | Classification]) -> None:
        canvas = draw(image, results)
        path = self.directory / stream_id / f"{frame_index:08d}.jpg"
        if not cv2.imwrite(str(path), canvas) and not self._failed:
            self._failed = True
            log.warning("cannot write annotated frame %s; further failures are not logged",
                        path)


def draw(image: np.ndarray, results: Sequence[Detection | Classification]) -> np.ndarray:
    canvas = image.copy()
    scale = max(0.4, canvas.shape[0] / 720.0 * 0.6)
    thickness = max(1, round(canvas.shape[0] / 360))
    line = 0
    for result in results:
        text = f"{result.label} {result.score:.2f}"
        if isinstance(result, Detection):
            p0 = (round(result.xmin), round(result.ymin))
            cv2.rectangle(canvas, p0, (round(result.xmax), round(result.ymax)), _BOX_COLOUR,
                          thickness)
            origin = (p0[0], max(p0[1] - 4, 12))
        else:
            line += 1
            origin = (8, round(line * 28 * scale / 0.6))
        cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, _BOX_COLOUR,
                    thickness, cv2.LINE_AA)
    return canvas
