"""One client run: open inputs, wait for the model, run every stream, write the summary."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ovms_client.adapters import Adapter, AdapterOptions, make_adapter
from ovms_client.api import ModelInfo, ServingApi, make_api
from ovms_client.density import DensityResult, find_density
from ovms_client.errors import ClientError, ConfigError, ExitCode
from ovms_client.exporters import Annotator, MqttPublisher, PrometheusServer
from ovms_client.labels import load_labels
from ovms_client.link import ServerLink, StopRequested
from ovms_client.pipeline import Failure, StreamRunner
from ovms_client.preprocess import Preprocess
from ovms_client.results import JsonLinesWriter, Metrics, OrderedEmitter
from ovms_client.settings import InputSpec, Settings
from ovms_client.sources import FrameSource, make_source

log = logging.getLogger(__name__)

# How long stopping may wait for in-flight requests before giving up on them.
STOP_GRACE_S = 15.0


def resolve_input(settings: Settings, info: ModelInfo) -> tuple[str, Preprocess]:
    """Pick the model input and check the profile's preprocessing against its metadata."""
    names = [t.name for t in info.inputs]
    if settings.input_name:
        tensor = next((t for t in info.inputs if t.name == settings.input_name), None)
        if tensor is None:
            raise ConfigError(f"setting 'input_name' is {settings.input_name!r}, but model "
                              f"'{settings.model_name}' has inputs {names}")
    elif len(info.inputs) == 1:
        tensor = info.inputs[0]
    else:
        raise ConfigError(f"model '{settings.model_name}' has inputs {names}: set "
                          f"'input_name' to the image input")
    shape = tensor.shape
    if len(shape) != 4:
        raise ConfigError(f"model input '{tensor.name}' has shape {list(shape)}; expected a "
                          f"4-D image input (NHWC or NCHW)")
    if settings.layout == "NHWC":
        height, width, channels = shape[1], shape[2], shape[3]
    else:
        channels, height, width = shape[1], shape[2], shape[3]
    if channels not in (3, -1):
        raise ConfigError(f"model input '{tensor.name}' has shape {list(shape)}: with "
                          f"layout {settings.layout} that is {channels} channels, expected 3; "
                          f"check setting 'layout'")
    if settings.input_size is not None:
        width_set, height_set = settings.input_size
        if (width > 0 and width != width_set) or (height > 0 and height != height_set):
            raise ConfigError(f"setting 'input_size' is {width_set}x{height_set}, but model "
                              f"input '{tensor.name}' is {width}x{height} (shape "
                              f"{list(shape)}, layout {settings.layout})")
        width, height = width_set, height_set
    elif width <= 0 or height <= 0:
        raise ConfigError(f"model input '{tensor.name}' has a dynamic size (shape "
                          f"{list(shape)}): set 'input_size' to WIDTHxHEIGHT")
    if tensor.dtype != settings.dtype:
        raise ConfigError(f"setting 'dtype' is {settings.dtype}, but model input "
                          f"'{tensor.name}' takes {tensor.dtype}")
    return tensor.name, Preprocess(width, height, settings.layout, settings.color_order,
                                   settings.dtype, settings.mean, settings.scale)


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


# Stream density: how long streams run before a trial's measurement starts (connections,
# first requests, OpenVINO's first inferences), and how long a trial may take to wind down.
DENSITY_WARMUP_S = 1.5
DENSITY_WIND_DOWN_S = 10.0


class App:
    def __init__(self, settings: Settings, stop: threading.Event, api: ServingApi | None = None):
        self.settings = settings
        self.stop = stop
        self._api = api
        self.stopped_by_signal = False
        self.prometheus_port: int | None = None

    def run(self) -> ExitCode:
        settings = self.settings
        if settings.stream_density and settings.inputs[0].kind.live:
            first = settings.inputs[0]
            raise ConfigError("setting 'stream_density' needs a video file or image input to "
                              f"replicate, but the first input is a {first.kind.value} "
                              f"({first.source})")
        adapter_options = AdapterOptions(
            settings.adapter, settings.score_threshold, load_labels(settings.labels),
            settings.iou_threshold, settings.top_k, settings.yolo_variant)
        sources: list[FrameSource] = []
        closers: list[Any] = []
        try:
            if not settings.stream_density:
                for spec in settings.inputs:
                    sources.append(make_source(spec, settings.loop, self.stop,
                                               settings.input_fps))
            writer = JsonLinesWriter(settings.output, int(settings.output_max_mb * 1024 * 1024),
                                     settings.output_backups)
        except ClientError:
            for source in sources:
                source.close()
            raise
        link = ServerLink(self._api or make_api(settings), settings.model_name, self.stop)
        stream_ids = [spec.stream_id for spec in settings.inputs]
        metrics = Metrics(stream_ids)
        failure = Failure(self.stop)
        emitters: list[OrderedEmitter] = []
        density: DensityResult | None = None
        try:
            publisher = None
            annotator = None
            if not settings.stream_density:
                if settings.prometheus_port:
                    prometheus = PrometheusServer(settings.prometheus_address,
                                                  settings.prometheus_port, metrics,
                                                  lambda: link.up)
                    closers.append(prometheus)
                    prometheus.start()
                    self.prometheus_port = prometheus.port
                if settings.mqtt_broker:
                    publisher = MqttPublisher(settings.mqtt_broker, settings.mqtt_topic,
                                              settings.mqtt_qos)
                    closers.append(publisher)
                if settings.annotate_dir is not None:
                    annotator = Annotator(settings.annotate_dir, stream_ids)
            try:
                info = link.wait_ready(settings.ready_timeout)
            except StopRequested:
                info = None
            if info is not None:
                input_name, preprocess = resolve_input(settings, info)
                adapter = make_adapter(adapter_options, preprocess.width, preprocess.height)
                log.info("model '%s' ready on %s (%s); input '%s' %dx%d %s %s %s; adapter %s",
                         settings.model_name, settings.server_address, settings.api, input_name,
                         preprocess.width, preprocess.height, settings.layout,
                         settings.color_order, settings.dtype, settings.adapter)
                if settings.stream_density:
                    density = self._density(link, input_name, preprocess, adapter, failure)
                    writer.write(density.to_json())
                    return self._finish(failure)
                metrics.reset_clock()
                sink = Fanout(writer, publisher)
                runners = []
                for spec, source in zip(settings.inputs, sources, strict=True):
                    emitter = OrderedEmitter(sink)
                    emitters.append(emitter)
                    runners.append(StreamRunner(
                        spec, source, link, input_name, preprocess, adapter, emitter, metrics,
                        self.stop, failure, settings.in_flight, settings.max_frames,
                        annotator))
                for runner in runners:
                    runner.start()
                # From here each reader thread owns (and closes) its source.
                sources = []
                self._supervise(runners, metrics, link, writer)
        except ClientError as exc:
            failure.report(exc)
        finally:
            for source in sources:
                source.close()
            for emitter in emitters:
                emitter.flush()
            if density is None:
                summary = metrics.summary()
                summary["server_outages"] = link.outages
                summary["exit_code"] = int(failure.exit_code)
                summary["stopped_by"] = self._stop_reason(failure)
                if failure.error is not None:
                    summary["error"] = str(failure.error)
                writer.write(summary)
            writer.close()
            for closer in closers:
                closer.close()
            link.close()
        return self._finish(failure)

    @staticmethod
    def _finish(failure: Failure) -> ExitCode:
        if failure.error is not None:
            raise failure.error
        if failure.unexpected is not None:
            raise failure.unexpected
        return ExitCode.OK

    def _density(self, link: ServerLink, input_name: str, preprocess: Preprocess,
                 adapter: Adapter, failure: Failure) -> DensityResult:
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
                StreamRunner(spec, make_source(spec, True, trial_stop), link, input_name,
                             preprocess, adapter, OrderedEmitter(NullSink()), metrics,
                             trial_stop, failure, settings.in_flight, 0)
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
            if failure.error is not None or failure.unexpected is not None or self.stop.is_set():
                raise StopRequested
            return [(after[s.stream_id]["frames"] - before[s.stream_id]["frames"]) / elapsed
                    for s in specs]

        log.info("stream density: finding how many copies of %s each sustain %.2f fps "
                 "(at most %d streams, %.0f s per trial)", first.source,
                 settings.density_target_fps, settings.density_max_streams,
                 settings.density_trial_s)
        try:
            result = find_density(trial, settings.density_target_fps,
                                  settings.density_max_streams)
        except StopRequested:
            result = DensityResult(settings.density_target_fps, settings.density_max_streams)
        log.info("stream density: %d stream(s) each sustain %.2f fps%s", result.streams,
                 settings.density_target_fps,
                 " (search capped: more may)" if result.capped else "")
        return result

    def _stop_reason(self, failure: Failure) -> str:
        if failure.error is not None or failure.unexpected is not None:
            return "error"
        if self.stopped_by_signal:
            return "signal"
        return "end of input"

    def _supervise(self, runners: list[StreamRunner], metrics: Metrics, link: ServerLink,
                   writer: JsonLinesWriter) -> None:
        interval = self.settings.metrics_interval
        next_metrics = time.monotonic() + interval if interval else None
        stop_deadline: float | None = None
        while any(runner.alive() for runner in runners):
            now = time.monotonic()
            if next_metrics is not None and now >= next_metrics:
                writer.write(metrics.window(link.up))
                next_metrics = now + interval
            if self.stop.is_set():
                if stop_deadline is None:
                    stop_deadline = now + STOP_GRACE_S
                elif now >= stop_deadline:
                    log.warning("requests still in flight after %.0f s; exiting without them",
                                STOP_GRACE_S)
                    return
            if self.stop.is_set():
                time.sleep(0.05)
            else:
                # Event.wait, not Thread.join: the signal handler's stop.set() wakes it at once.
                self.stop.wait(0.1 if next_metrics is None else
                               max(0.0, min(0.1, next_metrics - now)))
