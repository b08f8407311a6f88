"""Read model outputs into detections with boxes in the original frame's pixels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ovms_client.errors import InferenceError
from ovms_client.labels import label_for


@dataclass(frozen=True)
class Classification:
    label: str
    class_id: int
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "class_id": self.class_id, "score": round(self.score, 4)}


@dataclass(frozen=True)
class Detection:
    label: str
    class_id: int
    score: float
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    # What a classifier made of the box (classifier_model), best first; None: not classified.
    classes: tuple[Classification, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "label": self.label,
            "class_id": self.class_id,
            "score": round(self.score, 4),
            "box": {
                "xmin": round(self.xmin, 1),
                "ymin": round(self.ymin, 1),
                "xmax": round(self.xmax, 1),
                "ymax": round(self.ymax, 1),
            },
        }
        if self.classes is not None:
            record["classes"] = [c.to_json() for c in self.classes]
        return record


def _of_model(model: str) -> str:
    return f" of model '{model}'" if model else ""


def _shapes(outputs: Mapping[str, np.ndarray]) -> dict[str, list[int]]:
    return {name: list(value.shape) for name, value in outputs.items()}


class Adapter(Protocol):
    # The key of the per-frame record the results go under: "detections" or "classes".
    kind: str

    def __call__(
        self, outputs: Mapping[str, np.ndarray], frame_width: int, frame_height: int
    ) -> Sequence[Detection | Classification]: ...


_TF_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")


def _find_tf_outputs(outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Match TF Object Detection API outputs by name, tolerating ':0' and scope prefixes."""
    found: dict[str, np.ndarray] = {}
    for wanted in _TF_OUTPUTS:
        for name, value in outputs.items():
            base = name.split(":")[0].rsplit("/", 1)[-1]
            if base == wanted:
                found[wanted] = value
                break
    required = {"detection_boxes", "detection_scores", "detection_classes"}
    return found if required <= found.keys() else None


def _find_detection_output(outputs: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The OMZ/Caffe DetectionOutput tensor: [1, 1, N, 7] rows of
    (image_id, label, confidence, xmin, ymin, xmax, ymax), normalised coordinates."""
    candidates = [v for v in outputs.values() if v.ndim >= 2 and v.shape[-1] == 7]
    return candidates[0] if len(candidates) == 1 else None


class SsdAdapter:
    """SSD-style detectors in either of the two output layouts OVMS users meet."""

    kind = "detections"

    def __init__(self, score_threshold: float, labels: dict[int, str], model: str = "") -> None:
        self.score_threshold = score_threshold
        self.labels = labels
        self.model = model

    def __call__(
        self, outputs: Mapping[str, np.ndarray], frame_width: int, frame_height: int
    ) -> list[Detection]:
        tf_outputs = _find_tf_outputs(outputs)
        if tf_outputs is not None:
            rows = self._tf_rows(tf_outputs)
        else:
            detection_output = _find_detection_output(outputs)
            if detection_output is None:
                raise InferenceError(
                    f"adapter 'ssd' cannot read the outputs{_of_model(self.model)} "
                    f"{_shapes(outputs)}: expected "
                    f"detection_boxes/detection_scores/detection_classes(/num_detections) "
                    f"(TF Object Detection API) or one DetectionOutput tensor [1,1,N,7]"
                )
            rows = self._detection_output_rows(detection_output)
        return [self._detection(row, frame_width, frame_height) for row in rows]

    def _tf_rows(self, out: dict[str, np.ndarray]) -> np.ndarray:
        boxes = out["detection_boxes"].reshape(-1, 4).astype(np.float32)
        scores = out["detection_scores"].reshape(-1).astype(np.float32)
        classes = out["detection_classes"].reshape(-1).astype(np.float32)
        count = len(scores)
        if "num_detections" in out and out["num_detections"].size:
            count = min(count, int(out["num_detections"].reshape(-1)[0]))
        boxes, scores, classes = boxes[:count], scores[:count], classes[:count]
        # TF boxes are (ymin, xmin, ymax, xmax); rows here are (class, score, x0, y0, x1, y1).
        rows = np.column_stack(
            [classes, scores, boxes[:, 1], boxes[:, 0], boxes[:, 3], boxes[:, 2]]
        )
        return rows[scores >= self.score_threshold]

    def _detection_output_rows(self, tensor: np.ndarray) -> np.ndarray:
        rows = tensor.reshape(-1, 7).astype(np.float32)
        # image_id -1 marks the end of the valid rows.
        ends = np.flatnonzero(rows[:, 0] < 0)
        if ends.size:
            rows = rows[: ends[0]]
        rows = rows[:, 1:]
        return rows[rows[:, 1] >= self.score_threshold]

    def _detection(self, row: np.ndarray, width: int, height: int) -> Detection:
        class_id = round(float(row[0]))
        x0, y0, x1, y1 = (float(np.clip(v, 0.0, 1.0)) for v in row[2:6])
        return Detection(
            label=label_for(self.labels, class_id),
            class_id=class_id,
            score=float(row[1]),
            xmin=x0 * width,
            ymin=y0 * height,
            xmax=x1 * width,
            ymax=y1 * height,
        )


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def quantised_probabilities(raw: np.ndarray) -> np.ndarray:
    """Probabilities from an integer (quantised) softmax output.

    A quantised softmax keeps a fixed scale and zero point (TensorFlow Lite: 1/256 and 0 for
    uint8, 1/256 and -128 for int8), which OVMS does not report; shifting to the zero point
    and dividing by the sum gives the same distribution without them.
    """
    values = raw.astype(np.float64)
    if np.issubdtype(raw.dtype, np.signedinteger):
        values -= float(np.iinfo(raw.dtype).min)
    total = float(values.sum())
    if total <= 0.0:
        return np.zeros(raw.shape, np.float32)
    return (values / total).astype(np.float32)


class ClassificationAdapter:
    """One score per class, [1,C] or [1,C,1,1] (OMZ) or similar: the top_k classes.

    Scores are reported as the model gives them when they already are a probability
    distribution (all within 0..1, summing to about 1); logits (as many PyTorch and ONNX
    exports give) go through a softmax first, and integer outputs (a quantised softmax, as
    int8 TensorFlow Lite models give) are turned back into probabilities, so score_threshold
    always compares probabilities.
    """

    kind = "classes"

    def __init__(
        self, score_threshold: float, labels: dict[int, str], top_k: int, model: str = ""
    ) -> None:
        self.score_threshold = score_threshold
        self.labels = labels
        self.top_k = top_k
        self.model = model

    def __call__(
        self, outputs: Mapping[str, np.ndarray], frame_width: int, frame_height: int
    ) -> list[Classification]:
        raw = self._scores(outputs)
        if np.issubdtype(raw.dtype, np.integer):
            scores = quantised_probabilities(raw)
        else:
            scores = raw.astype(np.float32)
            if scores.min() < 0.0 or scores.max() > 1.0 or abs(float(scores.sum()) - 1.0) > 0.01:
                scores = _softmax(scores)
        k = min(self.top_k, scores.size)
        # argpartition keeps this O(C) for 1000-class models; only the k winners are sorted.
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [
            Classification(label_for(self.labels, int(i)), int(i), float(scores[i]))
            for i in top
            if scores[i] >= self.score_threshold
        ]

    def _scores(self, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        candidates = {
            name: value
            for name, value in outputs.items()
            if value.size > 1 and value.shape[0] == 1 and value.size == max(value.shape)
        }
        if len(candidates) != 1:
            raise InferenceError(
                f"adapter 'classification' cannot read the outputs{_of_model(self.model)} "
                f"{_shapes(outputs)}: expected exactly one tensor of class scores shaped [1,C] "
                f"(or [1,C,1,1])"
            )
        return next(iter(candidates.values())).reshape(-1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; boxes are (x0, y0, x1, y1). Indices kept, best first."""
    order = np.argsort(-scores, kind="stable")
    widths = np.clip(boxes[:, 2] - boxes[:, 0], 0, None)
    heights = np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    areas = widths * heights
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        x0 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y0 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x1 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y1 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        union = areas[best] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


# Candidates above the score threshold that go into NMS at most (as Ultralytics does): a
# cluttered frame must not make NMS quadratic in 8400 boxes.
YOLO_MAX_CANDIDATES = 3000
YOLO_MAX_DETECTIONS = 300


class YoloAdapter:
    """YOLO heads exported without NMS; NMS runs here, per class.

    - v5 style: [1, N, 5+C] rows of (cx, cy, w, h, objectness, C class scores); the score of
      a box is objectness x class score.
    - v8 style (also v9/v11): [1, 4+C, N], columns of (cx, cy, w, h, C class scores), no
      objectness.

    `variant` auto tells them apart by which axis is longer (there are far more boxes than
    classes). Box coordinates are in pixels of the model input (what Ultralytics exports give);
    an export that gives normalised coordinates (centres and sizes all within 0..1) is read as
    such. Frames are resized to the input without letterboxing, so x and y scale separately
    back to the frame.
    """

    kind = "detections"

    def __init__(
        self,
        score_threshold: float,
        labels: dict[int, str],
        iou_threshold: float,
        input_width: int,
        input_height: int,
        variant: str = "auto",
        model: str = "",
    ) -> None:
        self.score_threshold = score_threshold
        self.labels = labels
        self.iou_threshold = iou_threshold
        self.input_width = input_width
        self.input_height = input_height
        self.variant = variant
        self.model = model

    def __call__(
        self, outputs: Mapping[str, np.ndarray], frame_width: int, frame_height: int
    ) -> list[Detection]:
        tensor = self._tensor(outputs)
        variant = self.variant
        if variant == "auto":
            variant = "v8" if tensor.shape[0] < tensor.shape[1] else "v5"
        rows = tensor.T if variant == "v8" else tensor
        offset = 4 if variant == "v8" else 5
        if rows.shape[1] <= offset:
            raise InferenceError(
                f"adapter 'yolo' ({variant}) cannot read the outputs{_of_model(self.model)} "
                f"{_shapes(outputs)}: got output shape {list(tensor.shape)} per image, expected "
                f"{'[4+C, N]' if variant == 'v8' else '[N, 5+C]'} with at least one class "
                f"(a YOLO model exported without NMS)"
            )
        class_scores = rows[:, offset:]
        if variant == "v5":
            class_scores = class_scores * rows[:, 4:5]
        class_ids = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(rows)), class_ids]
        keep = np.flatnonzero(scores >= self.score_threshold)
        if keep.size > YOLO_MAX_CANDIDATES:
            keep = keep[np.argsort(-scores[keep], kind="stable")[:YOLO_MAX_CANDIDATES]]
        if not keep.size:
            return []
        cx, cy, w, h = (rows[keep, i] for i in range(4))
        boxes = np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        scores, class_ids = scores[keep], class_ids[keep]
        # Per-class NMS in one pass: shifting each class's boxes far apart keeps boxes of
        # different classes from suppressing each other.
        span = float(np.abs(boxes).max()) + 1.0
        kept = nms(boxes + (class_ids * span)[:, None], scores, self.iou_threshold)
        kept = kept[:YOLO_MAX_DETECTIONS]
        # Centre and size, not corners: a normalised box at the edge may reach past 1.0.
        normalised = float(np.abs(rows[keep, :4]).max()) <= 1.0
        scale_x = frame_width / (1.0 if normalised else self.input_width)
        scale_y = frame_height / (1.0 if normalised else self.input_height)
        result = []
        for index in kept:
            x0, y0, x1, y1 = boxes[index]
            class_id = int(class_ids[index])
            result.append(
                Detection(
                    label=label_for(self.labels, class_id),
                    class_id=class_id,
                    score=float(scores[index]),
                    xmin=float(np.clip(x0 * scale_x, 0, frame_width)),
                    ymin=float(np.clip(y0 * scale_y, 0, frame_height)),
                    xmax=float(np.clip(x1 * scale_x, 0, frame_width)),
                    ymax=float(np.clip(y1 * scale_y, 0, frame_height)),
                )
            )
        return result

    def _tensor(self, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        candidates = [v for v in outputs.values() if v.ndim == 3 and v.shape[0] == 1]
        if len(candidates) != 1:
            raise InferenceError(
                f"adapter 'yolo' cannot read the outputs{_of_model(self.model)} "
                f"{_shapes(outputs)}: expected exactly one "
                f"3-D tensor, [1,N,5+C] (YOLOv5) or [1,4+C,N] (YOLOv8), exported without NMS"
            )
        return candidates[0][0].astype(np.float32, copy=False)


@dataclass(frozen=True)
class AdapterOptions:
    name: str
    score_threshold: float
    labels: dict[int, str]
    iou_threshold: float = 0.45
    top_k: int = 5
    yolo_variant: str = "auto"
    # The served model's name, for error messages.
    model: str = ""


def make_adapter(options: AdapterOptions, input_width: int, input_height: int) -> Adapter:
    """The adapter for the model; detectors that give boxes in input pixels need its size."""
    if options.name == "ssd":
        return SsdAdapter(options.score_threshold, options.labels, options.model)
    if options.name == "yolo":
        return YoloAdapter(
            options.score_threshold,
            options.labels,
            options.iou_threshold,
            input_width,
            input_height,
            options.yolo_variant,
            options.model,
        )
    if options.name == "classification":
        return ClassificationAdapter(
            options.score_threshold, options.labels, options.top_k, options.model
        )
    raise ValueError(f"unknown adapter {options.name!r}")
