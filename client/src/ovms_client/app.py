"""One client run: open inputs, wait for the model, run every stream, write the summary."""

from __future__ import annotations

import logging
import threading
import time

from ovms_client.adapters import make_adapter
from ovms_client.api import ModelInfo, ServingApi, make_api
from ovms_client.errors import ClientError, ConfigError, ExitCode
from ovms_client.labels import load_labels
from ovms_client.link import ServerLink, StopRequested
from ovms_client.pipeline import Failure, StreamRunner
from ovms_client.preprocess import Preprocess
from ovms_client.results import JsonLinesWriter, Metrics, OrderedEmitter
from ovms_client.settings import Settings
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
                                   settings.dtype)


class App:
    def __init__(self, settings: Settings, stop: threading.Event, api: ServingApi | None = None):
        self.settings = settings
        self.stop = stop
        self._api = api
        self.stopped_by_signal = False

    def run(self) -> ExitCode:
        settings = self.settings
        labels = load_labels(settings.labels)
        adapter = make_adapter(settings.adapter, settings.score_threshold, labels)
        sources: list[FrameSource] = []
        try:
            for spec in settings.inputs:
                sources.append(make_source(spec, settings.loop, self.stop))
            writer = JsonLinesWriter(settings.output)
        except ClientError:
            for source in sources:
                source.close()
            raise
        link = ServerLink(self._api or make_api(settings), settings.model_name, self.stop)
        metrics = Metrics([spec.stream_id for spec in settings.inputs])
        failure = Failure(self.stop)
        emitters: list[OrderedEmitter] = []
        try:
            try:
                info = link.wait_ready(settings.ready_timeout)
            except StopRequested:
                info = None
            if info is not None:
                input_name, preprocess = resolve_input(settings, info)
                log.info("model '%s' ready on %s (%s); input '%s' %dx%d %s %s %s; %d stream(s)",
                         settings.model_name, settings.server_address, settings.api, input_name,
                         preprocess.width, preprocess.height, settings.layout,
                         settings.color_order, settings.dtype, len(sources))
                metrics.reset_clock()
                runners = []
                for spec, source in zip(settings.inputs, sources, strict=True):
                    emitter = OrderedEmitter(writer)
                    emitters.append(emitter)
                    runners.append(StreamRunner(
                        spec, source, link, input_name, preprocess, adapter, emitter, metrics,
                        self.stop, failure, settings.in_flight, settings.max_frames))
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
            summary = metrics.summary()
            summary["server_outages"] = link.outages
            summary["exit_code"] = int(failure.exit_code)
            summary["stopped_by"] = self._stop_reason(failure)
            if failure.error is not None:
                summary["error"] = str(failure.error)
            writer.write(summary)
            writer.close()
            link.close()
        if failure.error is not None:
            raise failure.error
        if failure.unexpected is not None:
            raise failure.unexpected
        return ExitCode.OK

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
