"""Detector then classifier: each detection's box, cut from the frame, goes to a second model
on the same server, and the detection carries what that model made of it.

This is what Intel's automated-self-checkout pipelines did (a YOLO detector, then a product
classifier on its boxes). The classifier's input is read from its metadata: size, layout
(NHWC or NCHW by where the 3 channels are) and element type; crops are stretched to its size
like frames are for the detector, with values 0..255.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

import numpy as np

from ovms_client.adapters import Classification, ClassificationAdapter, Detection
from ovms_client.api import ModelInfo, TensorInfo
from ovms_client.errors import ConfigError
from ovms_client.link import ServerLink
from ovms_client.preprocess import Preprocess

# Boxes narrower or lower than this (pixels) are not classified: nothing to see in them.
MIN_CROP_PX = 4
_INPUT_TYPES = ("uint8", "float32")


def classifier_input(model: str, info: ModelInfo, color_order: str) -> tuple[str, Preprocess]:
    """The classifier's one image input and how crops become its tensor, from its metadata."""
    if len(info.inputs) != 1:
        names = [t.name for t in info.inputs]
        raise ConfigError(
            f"setting 'classifier_model': model '{model}' has inputs {names}; a classifier "
            f"takes one image input"
        )
    tensor = info.inputs[0]
    shape = tensor.shape
    layout = _layout(shape)
    if layout is None:
        raise ConfigError(
            f"setting 'classifier_model': model '{model}' input '{tensor.name}' has shape "
            f"{list(shape)}; expected a 4-D image input with 3 channels, [1,H,W,3] or [1,3,H,W]"
        )
    height, width = (shape[1], shape[2]) if layout == "NHWC" else (shape[2], shape[3])
    if height <= 0 or width <= 0:
        raise ConfigError(
            f"setting 'classifier_model': model '{model}' input '{tensor.name}' has a dynamic "
            f"size (shape {list(shape)}); serve it with a fixed shape"
        )
    if tensor.dtype not in _INPUT_TYPES:
        raise ConfigError(
            f"setting 'classifier_model': model '{model}' input '{tensor.name}' takes "
            f"{tensor.dtype}; crops are sent as {' or '.join(_INPUT_TYPES)}"
        )
    return tensor.name, Preprocess(width, height, layout, color_order, tensor.dtype)


def _layout(shape: tuple[int, ...]) -> str | None:
    if len(shape) != 4:
        return None
    if shape[3] == 3:
        return "NHWC"
    if shape[1] == 3:
        return "NCHW"
    return None


def check_labels_cover(
    model: str, outputs: tuple[TensorInfo, ...], labels: dict[int, str], labels_file: str
) -> None:
    """Refuse a labels file that names fewer classes than the classifier gives scores for."""
    classes = [
        math.prod(t.shape)
        for t in outputs
        if t.shape and all(d > 0 for d in t.shape) and math.prod(t.shape) == max(t.shape) > 1
    ]
    if len(classes) != 1:
        return  # the adapter reports outputs it cannot read on the first crop
    missing = [i for i in range(classes[0]) if i not in labels]
    if missing:
        raise ConfigError(
            f"setting 'classifier_labels': {labels_file} names {len(labels)} classes, but model "
            f"'{model}' scores {classes[0]} (no label for class {missing[0]}"
            f"{' and ' + str(len(missing) - 1) + ' more' if len(missing) > 1 else ''}); "
            f"use the labels file made for this model"
        )


@dataclasses.dataclass(frozen=True)
class CropClassifier:
    """Classifies the boxes of a frame's detections with a second model."""

    link: ServerLink
    input_name: str
    preprocess: Preprocess
    adapter: ClassificationAdapter
    # Detection labels whose boxes are classified; all when empty.
    only: frozenset[str] = frozenset()

    def __call__(
        self, image: np.ndarray, detections: Sequence[Detection | Classification]
    ) -> tuple[list[Detection | Classification], float]:
        """The detections with their classes, and the seconds spent in classifier requests.

        Detections the classifier skips (another label, a box too small) keep classes None.
        """
        height, width = image.shape[:2]
        spent = 0.0
        result: list[Detection | Classification] = []
        for detection in detections:
            if not isinstance(detection, Detection) or (
                self.only and detection.label not in self.only
            ):
                result.append(detection)
                continue
            x0 = max(0, math.floor(detection.xmin))
            y0 = max(0, math.floor(detection.ymin))
            x1 = min(width, math.ceil(detection.xmax))
            y1 = min(height, math.ceil(detection.ymax))
            if x1 - x0 < MIN_CROP_PX or y1 - y0 < MIN_CROP_PX:
                result.append(detection)
                continue
            tensor = self.preprocess(np.ascontiguousarray(image[y0:y1, x0:x1]))
            started = time.perf_counter()
            outputs, _latency = self.link.infer(self.input_name, tensor)
            spent += time.perf_counter() - started
            classes = self.adapter(outputs, x1 - x0, y1 - y0)
            result.append(dataclasses.replace(detection, classes=tuple(classes)))
        return result, spent
