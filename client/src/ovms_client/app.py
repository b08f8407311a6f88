"""One client run: wire what every run needs, then hand over to the mode.

`App.run` opens the results writer and the server link, waits for the model and checks the
settings against its metadata; the mode (modes.py) does the rest: `StreamsMode` processes
every input, `DensityMode` searches how many copies of the first input the server sustains.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from ovms_client.adapters import AdapterOptions, ClassificationAdapter, make_adapter
from ovms_client.api import ModelInfo, ServingApi, make_api
from ovms_client.crops import CropClassifier, check_labels_cover, classifier_input
from ovms_client.errors import ClientError, ConfigError, ExitCode
from ovms_client.labels import load_labels
from ovms_client.link import ServerLink, StopRequested
from ovms_client.modes import DensityMode, Mode, Model, Run, StreamsMode
from ovms_client.pipeline import Failure
from ovms_client.preprocess import Preprocess
from ovms_client.results import JsonLinesWriter
from ovms_client.settings import Settings

log = logging.getLogger(__name__)


def resolve_input(settings: Settings, info: ModelInfo) -> tuple[str, Preprocess]:
    """Pick the model input and check the profile's preprocessing against its metadata."""
    names = [t.name for t in info.inputs]
    if settings.input_name:
        tensor = next((t for t in info.inputs if t.name == settings.input_name), None)
        if tensor is None:
            raise ConfigError(
                f"setting 'input_name' is {settings.input_name!r}, but model "
                f"'{settings.model_name}' has inputs {names}"
            )
    elif len(info.inputs) == 1:
        tensor = info.inputs[0]
    else:
        raise ConfigError(
            f"model '{settings.model_name}' has inputs {names}: set 'input_name' to the image input"
        )
    shape = tensor.shape
    if len(shape) != 4:
        raise ConfigError(
            f"model input '{tensor.name}' has shape {list(shape)}; expected a "
            f"4-D image input (NHWC or NCHW)"
        )
    if settings.layout == "NHWC":
        height, width, channels = shape[1], shape[2], shape[3]
    else:
        channels, height, width = shape[1], shape[2], shape[3]
    if channels not in (3, -1):
        raise ConfigError(
            f"model input '{tensor.name}' has shape {list(shape)}: with "
            f"layout {settings.layout} that is {channels} channels, expected 3; "
            f"check setting 'layout'"
        )
    if settings.input_size is not None:
        width_set, height_set = settings.input_size
        if (width > 0 and width != width_set) or (height > 0 and height != height_set):
            raise ConfigError(
                f"setting 'input_size' is {width_set}x{height_set}, but model "
                f"input '{tensor.name}' is {width}x{height} (shape "
                f"{list(shape)}, layout {settings.layout})"
            )
        width, height = width_set, height_set
    elif width <= 0 or height <= 0:
        raise ConfigError(
            f"model input '{tensor.name}' has a dynamic size (shape "
            f"{list(shape)}): set 'input_size' to WIDTHxHEIGHT"
        )
    if tensor.dtype != settings.dtype:
        raise ConfigError(
            f"setting 'dtype' is {settings.dtype}, but model input "
            f"'{tensor.name}' takes {tensor.dtype}"
        )
    return tensor.name, Preprocess(
        width,
        height,
        settings.layout,
        settings.color_order,
        settings.dtype,
        settings.mean,
        settings.scale,
        settings.encoding,
        settings.jpeg_quality,
    )


class App:
    def __init__(
        self,
        settings: Settings,
        stop: threading.Event,
        api: ServingApi | None = None,
        classifier_api: ServingApi | None = None,
    ):
        self.settings = settings
        self.stop = stop
        self._api = api
        self._classifier_api = classifier_api
        self._classifier_link: ServerLink | None = None
        self.stopped_by_signal = False

    def run(self) -> ExitCode:
        settings = self.settings
        adapter_options = AdapterOptions(
            settings.adapter,
            settings.score_threshold,
            load_labels(settings.labels),
            settings.iou_threshold,
            settings.top_k,
            settings.yolo_variant,
            settings.model_name,
        )
        mode: Mode = (DensityMode if settings.stream_density else StreamsMode)(settings, self.stop)
        failure = Failure(self.stop)
        # Closed in reverse order of opening, whatever happens: the writer after the mode's
        # last lines, the link after the writer, the mode's inputs and exporters last.
        with contextlib.ExitStack() as opened:
            opened.callback(mode.close)
            link = ServerLink(self._api or make_api(settings), settings.model_name, self.stop)
            opened.callback(link.close)
            if settings.classifier_model is not None:
                # The second model of detector-then-classifier, on the same server: a link of
                # its own, so each model's readiness and outages are its own.
                classifier_settings = settings.model_copy(
                    update={"model_name": settings.classifier_model, "model_version": 0}
                )
                self._classifier_link = ServerLink(
                    self._classifier_api or make_api(classifier_settings),
                    settings.classifier_model,
                    self.stop,
                )
                opened.callback(self._classifier_link.close)
            writer = JsonLinesWriter(
                settings.output, int(settings.output_max_mb * 1024 * 1024), settings.output_backups
            )
            opened.callback(writer.close)
            run = Run(settings, self.stop, writer, link, failure, lambda: self.stopped_by_signal)
            try:
                mode.start(run)
                model = self._wait_for_model(link, adapter_options)
                if model is not None:
                    mode.run(run, model)
            except ClientError as exc:
                failure.report(exc)
            finally:
                mode.finish(run)
        if failure.error is not None:
            raise failure.error
        if failure.unexpected is not None:
            raise failure.unexpected
        return ExitCode.OK

    def _wait_for_model(self, link: ServerLink, options: AdapterOptions) -> Model | None:
        """Wait until the model is ready and read it as the settings say; None if stopped."""
        settings = self.settings
        try:
            info = link.wait_ready(settings.ready_timeout)
        except StopRequested:
            return None
        input_name, preprocess = resolve_input(settings, info)
        adapter = make_adapter(options, preprocess.width, preprocess.height)
        log.info(
            "model '%s' ready on %s (%s); input '%s' %dx%d %s %s %s, sent %s; adapter %s",
            settings.model_name,
            settings.server_address,
            settings.api,
            input_name,
            preprocess.width,
            preprocess.height,
            settings.layout,
            settings.color_order,
            settings.dtype,
            "raw" if settings.encoding == "raw" else f"as JPEG q{settings.jpeg_quality}",
            settings.adapter,
        )
        classifier = None
        if self._classifier_link is not None:
            classifier = self._wait_for_classifier(self._classifier_link)
            if classifier is None:
                return None
        return Model(input_name, preprocess, adapter, classifier)

    def _wait_for_classifier(self, link: ServerLink) -> CropClassifier | None:
        settings = self.settings
        assert settings.classifier_model is not None and settings.classifier_labels is not None
        labels = load_labels(settings.classifier_labels)
        try:
            info = link.wait_ready(settings.ready_timeout)
        except StopRequested:
            return None
        input_name, preprocess = classifier_input(
            settings.classifier_model, info, settings.classifier_color_order
        )
        check_labels_cover(
            settings.classifier_model, info.outputs, labels, str(settings.classifier_labels)
        )
        adapter = ClassificationAdapter(
            0.0, labels, settings.classifier_top_k, settings.classifier_model
        )
        log.info(
            "classifier '%s' ready; input '%s' %dx%d %s %s %s; classifies %s",
            settings.classifier_model,
            input_name,
            preprocess.width,
            preprocess.height,
            preprocess.layout,
            preprocess.color_order,
            preprocess.dtype,
            ", ".join(settings.classify_labels) or "every detection",
        )
        return CropClassifier(
            link, input_name, preprocess, adapter, frozenset(settings.classify_labels)
        )
