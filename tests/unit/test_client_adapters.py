"""SSD adapter on synthetic outputs in both layouts, and the preprocessing in front of it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from ovms_client.adapters import SsdAdapter
from ovms_client.errors import InferenceError
from ovms_client.preprocess import Preprocess

LABELS = {1: "person", 3: "car"}


def tf_outputs(rows: list[tuple[int, float, float, float, float, float]], slots: int = 100,
               num: int | None = None, suffix: str = "") -> dict[str, np.ndarray]:
    """TF Object Detection API outputs; rows are (class, score, ymin, xmin, ymax, xmax)."""
    boxes = np.zeros((1, slots, 4), np.float32)
    scores = np.zeros((1, slots), np.float32)
    classes = np.zeros((1, slots), np.float32)
    for i, (cls, score, *box) in enumerate(rows):
        boxes[0, i] = box
        scores[0, i] = score
        classes[0, i] = cls
    return {
        f"detection_boxes{suffix}": boxes,
        f"detection_scores{suffix}": scores,
        f"detection_classes{suffix}": classes,
        f"num_detections{suffix}": np.array([len(rows) if num is None else num], np.float32),
    }


def detection_output(rows: list[tuple[float, ...]], slots: int = 200) -> dict[str, np.ndarray]:
    """OMZ DetectionOutput [1,1,N,7]; rows are (image_id, label, conf, x0, y0, x1, y1)."""
    tensor = np.zeros((1, 1, slots, 7), np.float32)
    for i, row in enumerate(rows):
        tensor[0, 0, i] = row
    return {"detection_out": tensor}


def boxes(detections: list) -> list[tuple[float, float, float, float]]:
    return [(d.xmin, d.ymin, d.xmax, d.ymax) for d in detections]


def test_tf_layout_scales_normalised_yx_boxes_to_frame_pixels() -> None:
    adapter = SsdAdapter(0.5, LABELS)
    out = tf_outputs([(1, 0.9, 0.1, 0.2, 0.5, 0.6), (3, 0.7, 0.0, 0.0, 1.0, 1.0)])
    detections = adapter(out, 1280, 720)
    assert [d.label for d in detections] == ["person", "car"]
    assert [d.class_id for d in detections] == [1, 3]
    assert detections[0].score == pytest.approx(0.9)
    # ymin 0.1, xmin 0.2, ymax 0.5, xmax 0.6 of a 1280x720 frame.
    assert boxes(detections)[0] == pytest.approx((256.0, 72.0, 768.0, 360.0))
    assert boxes(detections)[1] == pytest.approx((0.0, 0.0, 1280.0, 720.0))


def test_tf_layout_applies_threshold_and_num_detections() -> None:
    adapter = SsdAdapter(0.5, LABELS)
    rows = [(1, 0.95, 0, 0, 0.5, 0.5), (1, 0.4, 0, 0, 0.5, 0.5), (1, 0.8, 0, 0, 0.5, 0.5)]
    assert [d.score for d in adapter(tf_outputs(rows), 100, 100)] == pytest.approx([0.95, 0.8])
    # Rows past num_detections are padding even if their score passes the threshold.
    assert len(adapter(tf_outputs(rows, num=1), 100, 100)) == 1


def test_tf_layout_tolerates_tensorflow_style_names() -> None:
    out = tf_outputs([(1, 0.9, 0.1, 0.1, 0.2, 0.2)], suffix=":0")
    assert len(SsdAdapter(0.5, LABELS)(out, 10, 10)) == 1


def test_detection_output_layout_with_end_marker_and_unknown_label() -> None:
    adapter = SsdAdapter(0.5, LABELS)
    out = detection_output([
        (0, 1, 0.99, 0.25, 0.5, 0.75, 1.0),
        (0, 7, 0.6, 0.0, 0.0, 0.5, 0.5),
        (0, 1, 0.3, 0.0, 0.0, 1.0, 1.0),
        (-1, 0, 0, 0, 0, 0, 0),
        (0, 1, 0.9, 0.0, 0.0, 1.0, 1.0),  # after the end marker: ignored
    ])
    detections = adapter(out, 640, 480)
    assert [(d.label, d.class_id) for d in detections] == [("person", 1), ("7", 7)]
    # (x0, y0, x1, y1) order, normalised.
    assert boxes(detections)[0] == pytest.approx((160.0, 240.0, 480.0, 480.0))
    assert boxes(detections)[1] == pytest.approx((0.0, 0.0, 320.0, 240.0))


def test_boxes_are_clipped_to_the_frame() -> None:
    out = detection_output([(0, 1, 0.9, -0.1, -0.2, 1.3, 1.01)])
    assert boxes(SsdAdapter(0.5, {})(out, 200, 100)) == [(0.0, 0.0, 200.0, 100.0)]


def test_both_layouts_agree_on_the_same_detection() -> None:
    tf = tf_outputs([(1, 0.88, 0.2, 0.1, 0.9, 0.4)])
    omz = detection_output([(0, 1, 0.88, 0.1, 0.2, 0.4, 0.9)])
    adapter = SsdAdapter(0.5, LABELS)
    assert adapter(tf, 333, 777)[0].to_json() == adapter(omz, 333, 777)[0].to_json()


def test_unreadable_outputs_raise_an_error_listing_them() -> None:
    with pytest.raises(InferenceError, match=r"adapter 'ssd' cannot read.*'logits': \[1, 1000\]"):
        SsdAdapter(0.5, {})({"logits": np.zeros((1, 1000), np.float32)}, 10, 10)


def test_to_json_shape() -> None:
    out = tf_outputs([(1, 0.912345, 0.1, 0.2, 0.5, 0.6)])
    record = SsdAdapter(0.5, LABELS)(out, 1000, 1000)[0].to_json()
    assert record == {"label": "person", "class_id": 1, "score": 0.9123,
                      "box": {"xmin": 200.0, "ymin": 100.0, "xmax": 600.0, "ymax": 500.0}}


def frame() -> np.ndarray:
    """A 40x20 BGR frame whose left half is pure blue and right half pure red."""
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :20] = (255, 0, 0)
    image[:, 20:] = (0, 0, 255)
    return image


def test_preprocess_resizes_with_inter_linear_and_converts_to_rgb_nhwc() -> None:
    tensor = Preprocess(10, 6, "NHWC", "RGB", "uint8")(frame())
    assert tensor.shape == (1, 6, 10, 3)
    assert tensor.dtype == np.uint8
    expected = cv2.cvtColor(cv2.resize(frame(), (10, 6), interpolation=cv2.INTER_LINEAR),
                            cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(tensor[0], expected)
    assert tuple(tensor[0, 0, 0]) == (0, 0, 255)  # blue, now in RGB order
    assert tensor.flags["C_CONTIGUOUS"]


def test_preprocess_nchw_bgr_float32() -> None:
    pre = Preprocess(8, 4, "NCHW", "BGR", "float32")
    tensor = pre(frame())
    assert tensor.shape == (1, 3, 4, 8) == pre.shape
    assert tensor.dtype == np.float32
    assert tensor[0, :, 0, 0].tolist() == [255.0, 0.0, 0.0]  # B, G, R of the blue half
    assert tensor[0, :, 0, 7].tolist() == [0.0, 0.0, 255.0]
    assert tensor.flags["C_CONTIGUOUS"]


def test_preprocess_accepts_gray_and_bgra_frames() -> None:
    pre = Preprocess(4, 4)
    assert pre(np.full((8, 8), 7, np.uint8)).shape == (1, 4, 4, 3)
    assert pre(np.zeros((8, 8, 4), np.uint8)).shape == (1, 4, 4, 3)
