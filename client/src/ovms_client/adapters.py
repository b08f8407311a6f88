"""Read model outputs into detections with boxes in the original frame's pixels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ovms_client.errors import InferenceError
from ovms_client.labels import label_for


@dataclass(frozen=True)
class Detection:
    label: str
    class_id: int
    score: float
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    def to_json(self) -> dict[str, Any]:
        return {
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


class Adapter(Protocol):
    def __call__(
        self, outputs: Mapping[str, np.ndarray], frame_width: int, frame_height: int
    ) -> list[Detection]: ...


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

    def __init__(self, score_threshold: float, labels: dict[int, str]) -> None:
        self.score_threshold = score_threshold
        self.labels = labels

    def __call__(
        self, outputs: Mapping[str, np.ndarray], frame_width: int, frame_height: int
    ) -> list[Detection]:
        tf_outputs = _find_tf_outputs(outputs)
        if tf_outputs is not None:
            rows = self._tf_rows(tf_outputs)
        else:
            detection_output = _find_detection_output(outputs)
            if detection_output is None:
                shapes = {name: list(value.shape) for name, value in outputs.items()}
                raise InferenceError(
                    f"adapter 'ssd' cannot read the model outputs {shapes}: expected "
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
        rows = np.column_stack([classes, scores, boxes[:, 1], boxes[:, 0], boxes[:, 3],
                                boxes[:, 2]])
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


def make_adapter(name: str, score_threshold: float, labels: dict[int, str]) -> Adapter:
    if name == "ssd":
        return SsdAdapter(score_threshold, labels)
    raise ValueError(f"unknown adapter {name!r}")
