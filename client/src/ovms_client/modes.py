"""What a run does once the model is ready: process every stream, or search stream density.

`App` (app.py) wires what both modes share (results writer, server link, the model as the
settings read it) and hands it over as a `Run`; each mode owns everything else: its inputs,
its exporters and its last lines.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ovms_client.adapters import Adapter
from ovms_client.crops import CropClassifier
from ovms_client.density import DensityResult, find_density
from ovms_client.errors import ClientError, ConfigError
from ovms_client.exporters import Annotator, MqttPublisher, PrometheusServer
from ovms_client.link import ServerLink, StopRequested
from ovms_client.pipeline import Failure, StreamRunner
from ovms_client.preprocess import Preprocess
from ovms_client.results import JsonLinesWriter, Metrics, OrderedEmitter
from ovms_client.settings import InputSpec, Settings
from ovms_client.sources import FrameSource, make_source

log = logging.getLogger(__name__)

# How long stopping may wait for in-flight requests before giving up on them.
STOP_GRACE_S = 15.0
# Stream density: how long streams run before a trial's measurement starts (connections,
# first requests, OpenVINO's first inferences), and how long a trial may take to wind down.
DENSITY_WARMUP_S = 1.5
DENSITY_WIND_DOWN_S = 10.0


@dataclass(frozen=True)
class Model:
    """The served model as the settings read it: the input to feed, how, and the adapter."""

    input_name: str
    preprocess: Preprocess
    adapter: Adapter
    # Detector then classifier (classifier_model): classifies each detection's box.
    classifier: CropClassifier | None = None


@dataclass(frozen=True)
class Run:
    """What App wired for a mode: shared by both, owned (opened and closed) by App."""

    settings: Settings
    stop: threading.Event
    writer: JsonLinesWriter
    link: ServerLink
    failure: Failure
    stopped_by_signal: Callable[[], bool]

    def summary(self, metrics: Metrics) -> dict[str, Any]:
        """The summary line: what was done, and why the run ended."""
        summary = metrics.summary()
        summary["server_outages"] = self.link.outages
        summary["exit_code"] = int(self.failure.exit_code)
        if self.failure.error is not None or self.failure.unexpected is not None:
            summary["stopped_by"] = "error"
        elif self.stopped_by_signal():
            summary["stopped_by"] = "signal"
        else:
            summary["stopped_by"] = "end of input"
        if self.failure.error is not None:
            summary["error"] = str(self.failure.error)
        return summary


class Mode(Protocol):
    def start(self, run: Run) -> None:
        """Start what runs while the server is waited for (exporters)."""

    def run(self, run: Run, model: Model) -> None:
        """The mode's work, once the model is ready; ClientErrors go to run.failure."""

    def finish(self, run: Run) -> None:
        """Write the mode's last lines; called on every exit after start, before the
        writer closes."""

    def close(self) -> None:
        """Release what the mode opened; safe to call at any point, more than once."""


class Fanout:
    """Per-frame records go to the JSON lines and, when set up, to MQTT."""

    def __init__(self, writer: JsonLinesWriter, publisher: MqttPublisher | None) -> None:
        self.writer = writer
        self.publisher = publisher

    def write(self, record: dict[str, Any]) -> None:
        self.writer.write(record)
        if self.publisher is not None:
            self.publisher.publish(record)


class NullSink:
    def write(self, record: dict[str, Any]) -> None:
        return


class StreamsMode:
    """The normal run: every input is a stream; metrics lines while it runs, optional
    Prometheus/MQTT/annotated frames, and a summary line at the end."""

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.metrics = Metrics([spec.stream_id for spec in settings.inputs])
        self._sources: list[FrameSource] = []
        self._emitters: list[OrderedEmitter] = []
        self._exporters: list[PrometheusServer | MqttPublisher] = []
        self._publisher: MqttPublisher | None = None
        self._annotator: Annotator | None = None
        # Inputs open first: a missing file is reported (exit 4) before the server is
        # contacted.
        try:
            for spec in settings.inputs:
                self._sources.append(make_source(spec, settings.loop, stop, settings.input_fps))
        except ClientError:
            self.close()
            raise

    def start(self, run: Run) -> None:
        settings = self.settings
        if settings.prometheus_port:
            prometheus = PrometheusServer(
                settings.prometheus_address,
                settings.prometheus_port,
                self.metrics,
                lambda: run.link.up,
            )
            prometheus.start()
            self._exporters.append(prometheus)
        if settings.mqtt_broker:
            self._publisher = MqttPublisher(
                settings.mqtt_broker, settings.mqtt_topic, settings.mqtt_qos
            )
            self._exporters.append(self._publisher)
        if settings.annotate_dir is not None:
            self._annotator = Annotator(
                settings.annotate_dir, [spec.stream_id for spec in settings.inputs]
            )

    def run(self, run: Run, model: Model) -> None:
        settings = self.settings
        self.metrics.reset_clock()
        sink = Fanout(run.writer, self._publisher)
        runners = []
        for spec, source in zip(settings.inputs, self._sources, strict=True):
            emitter = OrderedEmitter(sink)
            self._emitters.append(emitter)
            runners.append(
                StreamRunner(
                    spec,
                    source,
                    run.link,
                    model.input_name,
                    model.preprocess,
                    model.adapter,
                    emitter,
                    self.metrics,
                    self.stop,
                    run.failure,
                    settings.in_flight,
                    settings.max_frames,
                    self._annotator,
                    model.classifier,
                )
            )
        for runner in runners:
            runner.start()
        # From here each reader thread owns (and closes) its source.
        self._sources = []
        self._supervise(runners, run)

    def finish(self, run: Run) -> None:
        self._close_sources()
        for emitter in self._emitters:
            emitter.flush()
        run.writer.write(run.summary(self.metrics))

    def close(self) -> None:
        self._close_sources()
        for exporter in self._exporters:
            exporter.close()
        self._exporters = []

    def _close_sources(self) -> None:
        for source in self._sources:
            source.close()
        self._sources = []

    def _supervise(self, runners: list[StreamRunner], run: Run) -> None:
        """Write metrics lines until every stream has ended; bound the wait after a stop."""
        interval = self.settings.metrics_interval
        next_metrics = time.monotonic() + interval if interval else None
        stop_deadline: float | None = None
        while any(runner.alive() for runner in runners):
            now = time.monotonic()
            if next_metrics is not None and now >= next_metrics:
                run.writer.write(self.metrics.window(run.link.up))
                next_metrics = now + interval
            if self.stop.is_set():
                if stop_deadline is None:
                    stop_deadline = now + STOP_GRACE_S
                elif now >= stop_deadline:
                    log.warning(
                        "requests still in flight after %.0f s; exiting without them", STOP_GRACE_S
                    )
                    return
            if self.stop.is_set():
                time.sleep(0.05)
            else:
                # Event.wait, not Thread.join: the signal handler's stop.set() wakes it at once.
                self.stop.wait(
                    0.1 if next_metrics is None else max(0.0, min(0.1, next_metrics - now))
                )


class DensityMode:
    """Stream density: the most copies of the first input that each sustain
    density_target_fps; one stream_density line."""

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        first = settings.inputs[0]
        if first.kind.live:
            raise ConfigError(
                "setting 'stream_density' needs a video file or image input to "
                f"replicate, but the first input is a {first.kind.value} "
                f"({first.source})"
            )
        self.settings = settings
        self.stop = stop
        self.result: DensityResult | None = None

    def start(self, run: Run) -> None:
        return

    def run(self, run: Run, model: Model) -> None:
        self.result = self._search(run, model)
        run.writer.write(self.result.to_json())

    def finish(self, run: Run) -> None:
        # Without a result (server never ready, stopped, an error) the output still ends with
        # a summary line, saying why.
        if self.result is None:
            run.writer.write(run.summary(Metrics([s.stream_id for s in self.settings.inputs])))

    def close(self) -> None:
        return

    def _search(self, run: Run, model: Model) -> DensityResult:
        settings = self.settings
        first = settings.inputs[0]

        def trial(count: int) -> list[float]:
            if self.stop.is_set():
                raise StopRequested
            trial_stop = threading.Event()
            specs = [InputSpec(f"density{i}", first.source, first.kind) for i in range(count)]
            # Not paced (input_fps does not apply): a trial measures what each stream can
            # sustain, which a paced reader would cap.
            metrics = Metrics([spec.stream_id for spec in specs])
            runners = [
                StreamRunner(
                    spec,
                    make_source(spec, True, trial_stop),
                    run.link,
                    model.input_name,
                    model.preprocess,
                    model.adapter,
                    OrderedEmitter(NullSink()),
                    metrics,
                    trial_stop,
                    run.failure,
                    settings.in_flight,
                    0,
                    classifier=model.classifier,
                )
                for spec in specs
            ]
            for runner in runners:
                runner.start()
            try:
                self.stop.wait(DENSITY_WARMUP_S)
                before = metrics.snapshot()
                started = time.monotonic()
                self.stop.wait(settings.density_trial_s)
                after = metrics.snapshot()
                elapsed = time.monotonic() - started
            finally:
                trial_stop.set()
                deadline = time.monotonic() + DENSITY_WIND_DOWN_S
                while any(r.alive() for r in runners) and time.monotonic() < deadline:
                    time.sleep(0.02)
            failure = run.failure
            if failure.error is not None or failure.unexpected is not None or self.stop.is_set():
                raise StopRequested
            return [
                (after[s.stream_id]["frames"] - before[s.stream_id]["frames"]) / elapsed
                for s in specs
            ]

        log.info(
            "stream density: finding how many copies of %s each sustain %.2f fps "
            "(at most %d streams, %.0f s per trial)",
            first.source,
            settings.density_target_fps,
            settings.density_max_streams,
            settings.density_trial_s,
        )
        try:
            result = find_density(trial, settings.density_target_fps, settings.density_max_streams)
        except StopRequested:
            result = DensityResult(settings.density_target_fps, settings.density_max_streams)
        log.info(
            "stream density: %d stream(s) each sustain %.2f fps%s",
            result.streams,
            settings.density_target_fps,
            " (search capped: more may)" if result.capped else "",
        )
        return result
