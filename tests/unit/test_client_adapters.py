"""SSD adapter on synthetic outputs in both layouts, and the preprocessing in front of it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from ovms_client.adapters import (
    AdapterOptions,
    ClassificationAdapter,
    SsdAdapter,
    YoloAdapter,
    make_adapter,
    nms,
)
from ovms_client.errors import InferenceError
from ovms_client.preprocess import Preprocess

LABELS = {1: "person", 3: "car"}


def tf_outputs(
    rows: list[tuple[int, float, float, float, float, float]],
    slots: int = 100,
    num: int | None = None,
    suffix: str = "",
) -> dict[str, np.ndarray]:
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
    out = detection_output(
        [
            (0, 1, 0.99, 0.25, 0.5, 0.75, 1.0),
            (0, 7, 0.6, 0.0, 0.0, 0.5, 0.5),
            (0, 1, 0.3, 0.0, 0.0, 1.0, 1.0),
            (-1, 0, 0, 0, 0, 0, 0),
            (0, 1, 0.9, 0.0, 0.0, 1.0, 1.0),  # after the end marker: ignored
        ]
    )
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
    assert record == {
        "label": "person",
        "class_id": 1,
        "score": 0.9123,
        "box": {"xmin": 200.0, "ymin": 100.0, "xmax": 600.0, "ymax": 500.0},
    }


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
    expected = cv2.cvtColor(
        cv2.resize(frame(), (10, 6), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB
    )
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


# --- YOLO ------------------------------------------------------------------------------------


def yolo_v8(
    boxes: list[tuple[float, float, float, float, int, float]], classes: int = 3, slots: int = 50
) -> dict[str, np.ndarray]:
    """[1, 4+C, N]; boxes are (cx, cy, w, h, class, score) in input pixels."""
    tensor = np.zeros((1, 4 + classes, slots), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(boxes):
        tensor[0, :4, i] = (cx, cy, w, h)
        tensor[0, 4 + cls, i] = score
    return {"output0": tensor}


def yolo_v5(
    boxes: list[tuple[float, float, float, float, float, int, float]],
    classes: int = 3,
    slots: int = 50,
) -> dict[str, np.ndarray]:
    """[1, N, 5+C]; boxes are (cx, cy, w, h, objectness, class, class score)."""
    tensor = np.zeros((1, slots, 5 + classes), np.float32)
    for i, (cx, cy, w, h, obj, cls, score) in enumerate(boxes):
        tensor[0, i, :5] = (cx, cy, w, h, obj)
        tensor[0, i, 5 + cls] = score
    return {"output": tensor}


def yolo(**kwargs: object) -> YoloAdapter:
    options = {
        "score_threshold": 0.25,
        "labels": {0: "person", 2: "car"},
        "iou_threshold": 0.45,
        "input_width": 640,
        "input_height": 640,
        **kwargs,
    }
    return YoloAdapter(**options)  # type: ignore[arg-type]


def test_yolo_v8_boxes_scale_from_input_pixels_to_the_frame() -> None:
    outputs = yolo_v8([(320, 160, 64, 128, 0, 0.9), (100, 100, 20, 20, 2, 0.1)])
    [det] = yolo()(outputs, 1280, 720)
    assert (det.label, det.class_id) == ("person", 0)
    assert det.score == pytest.approx(0.9)
    # x scales by 1280/640 = 2, y by 720/640 = 1.125 (no letterbox).
    assert (det.xmin, det.ymin, det.xmax, det.ymax) == pytest.approx((576, 108, 704, 252))


def test_yolo_nms_merges_overlaps_of_one_class_but_not_across_classes() -> None:
    outputs = yolo_v8(
        [
            (100, 100, 50, 50, 0, 0.80),
            (104, 102, 50, 50, 0, 0.95),  # same person, better score: kept
            (104, 102, 50, 50, 2, 0.60),  # same place, other class: kept
            (400, 400, 50, 50, 0, 0.50),  # elsewhere: kept
        ]
    )
    dets = yolo()(outputs, 640, 640)
    assert [(d.class_id, round(d.score, 2)) for d in dets] == [(0, 0.95), (2, 0.6), (0, 0.5)]


def test_yolo_iou_threshold_decides_what_is_an_overlap() -> None:
    # Two boxes with IoU 1/3.
    outputs = yolo_v8([(100, 100, 100, 100, 0, 0.9), (150, 100, 100, 100, 0, 0.8)])
    assert len(yolo(iou_threshold=0.45)(outputs, 640, 640)) == 2
    assert len(yolo(iou_threshold=0.3)(outputs, 640, 640)) == 1


def test_yolo_v5_multiplies_objectness_and_class_score() -> None:
    outputs = yolo_v5([(320, 320, 100, 100, 0.5, 2, 0.8), (50, 50, 10, 10, 0.2, 0, 0.9)])
    [det] = yolo()(outputs, 640, 640)
    assert det.label == "car"
    assert det.score == pytest.approx(0.4)
    assert (det.xmin, det.ymin, det.xmax, det.ymax) == pytest.approx((270, 270, 370, 370))


def test_yolo_auto_variant_follows_the_shape_and_can_be_forced() -> None:
    v8 = yolo_v8([(320, 320, 64, 64, 1, 0.7)], slots=30)  # [1,7,30]
    v5 = yolo_v5([(320, 320, 64, 64, 0.9, 1, 0.9)], slots=30)  # [1,30,8]
    assert [d.class_id for d in yolo()(v8, 640, 640)] == [1]
    assert [d.class_id for d in yolo()(v5, 640, 640)] == [1]
    # With fewer boxes than rows the shape misleads auto; the setting decides then.
    tiny_v8 = yolo_v8([(320, 320, 64, 64, 1, 0.7)], slots=3)  # [1,7,3]
    with pytest.raises(InferenceError, match=r"\(v5\) cannot read .*got output shape \[7, 3\]"):
        yolo()(tiny_v8, 640, 640)
    assert [d.class_id for d in yolo(variant="v8")(tiny_v8, 640, 640)] == [1]


def test_yolo_normalised_coordinates_and_clipping() -> None:
    outputs = yolo_v8([(0.5, 0.5, 0.5, 0.25, 0, 0.9), (0.95, 0.1, 0.2, 0.4, 2, 0.9)])
    dets = yolo()(outputs, 200, 100)
    assert (dets[0].xmin, dets[0].ymin, dets[0].xmax, dets[0].ymax) == pytest.approx(
        (50, 37.5, 150, 62.5)
    )
    assert (dets[1].xmax, dets[1].ymin) == pytest.approx((200, 0))


def test_yolo_rejects_outputs_it_cannot_read() -> None:
    with pytest.raises(InferenceError, match="adapter 'yolo'.*exactly one 3-D tensor"):
        yolo()(
            {"a": np.zeros((1, 84, 10), np.float32), "b": np.zeros((1, 84, 10), np.float32)},
            640,
            640,
        )


def test_nms_keeps_the_best_of_each_cluster() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.7], np.float32), 0.5).tolist() == [1, 2]


# --- classification --------------------------------------------------------------------------


def test_classification_top_k_of_probabilities_best_first() -> None:
    probs = np.array([[0.05, 0.6, 0.1, 0.25]], np.float32)
    adapter = ClassificationAdapter(0.0, {1: "cat", 3: "dog"}, top_k=3)
    classes = adapter({"prob": probs}, 10, 10)
    assert [(c.label, c.class_id) for c in classes] == [("cat", 1), ("dog", 3), ("2", 2)]
    assert classes[0].score == pytest.approx(0.6)


def test_classification_softmax_for_logits_and_threshold() -> None:
    logits = np.array([[2.0, -1.0, 0.5]], np.float32).reshape(1, 3, 1, 1)  # OMZ [1,C,1,1]
    want = np.exp([2.0, -1.0, 0.5]) / np.exp([2.0, -1.0, 0.5]).sum()
    classes = ClassificationAdapter(0.2, {}, top_k=5)({"logits": logits}, 10, 10)
    assert [c.class_id for c in classes] == [0]  # class 2 has 0.18 < 0.2
    assert classes[0].score == pytest.approx(want[0], rel=1e-5)


def test_classification_needs_one_score_tensor() -> None:
    with pytest.raises(InferenceError, match="adapter 'classification'.*one tensor"):
        ClassificationAdapter(0.0, {}, 5)({"a": np.zeros((1, 4, 4, 3), np.float32)}, 1, 1)


def test_classification_quantised_softmax_reads_as_probabilities() -> None:
    """int8 TensorFlow Lite classifiers give a uint8 softmax (scale 1/256, zero point 0) or an
    int8 one (zero point -128); the raw values must not go through another softmax."""
    raw = np.zeros((1, 1000), np.uint8)
    raw[0, [7, 42, 99]] = [128, 64, 62]  # 0.5, 0.25, ~0.24 of 256
    classes = ClassificationAdapter(0.1, {}, top_k=5)({"Softmax": raw}, 10, 10)
    assert [c.class_id for c in classes] == [7, 42, 99]
    assert [c.score for c in classes] == pytest.approx([128 / 254, 64 / 254, 62 / 254])

    signed = (raw.astype(np.int16) - 128).astype(np.int8)
    again = ClassificationAdapter(0.1, {}, top_k=5)({"Softmax": signed}, 10, 10)
    assert [(c.class_id, c.score) for c in again] == [(c.class_id, c.score) for c in classes]
    nothing = ClassificationAdapter(0.0, {}, top_k=2)({"s": np.zeros((1, 4), np.uint8)}, 1, 1)
    assert [c.score for c in nothing] == [0.0, 0.0]


def test_adapter_errors_name_the_model_and_its_output_shapes() -> None:
    ssd_outputs = {
        "detection_boxes": np.zeros((1, 100, 4), np.float32),
        "detection_scores": np.zeros((1, 100), np.float32),
        "detection_classes": np.zeros((1, 100), np.float32),
        "num_detections": np.zeros((1,), np.float32),
    }
    yolo_adapter = make_adapter(AdapterOptions("yolo", 0.3, {}, model="person-detection"), 416, 416)
    with pytest.raises(InferenceError) as caught:
        yolo_adapter(ssd_outputs, 640, 480)
    message = str(caught.value)
    assert "adapter 'yolo' (v5) cannot read the outputs of model 'person-detection'" in message
    assert "'detection_boxes': [1, 100, 4], 'detection_scores': [1, 100]" in message
    assert "got output shape [100, 4] per image, expected [N, 5+C]" in message
    classifier = make_adapter(AdapterOptions("classification", 0, {}, model="ssd"), 1, 1)
    with pytest.raises(InferenceError, match="outputs of model 'ssd' .*'detection_boxes'"):
        classifier(ssd_outputs, 1, 1)


def test_make_adapter_picks_by_name() -> None:
    options = AdapterOptions("yolo", 0.3, {}, iou_threshold=0.5)
    adapter = make_adapter(options, 416, 320)
    assert isinstance(adapter, YoloAdapter)
    assert (adapter.input_width, adapter.input_height, adapter.iou_threshold) == (416, 320, 0.5)
    assert make_adapter(AdapterOptions("classification", 0, {}), 1, 1).kind == "classes"


def test_preprocess_mean_and_scale_per_channel_in_either_layout() -> None:
    frame = np.zeros((2, 2, 3), np.uint8)
    frame[..., 0], frame[..., 2] = 10, 250  # B, R
    nchw = Preprocess(2, 2, "NCHW", "RGB", "float32", mean=(0.0, 0.0, 10.0), scale=(2.0,))
    tensor = nchw(frame)
    assert tensor.dtype == np.float32
    assert tensor[0, :, 0, 0].tolist() == [125.0, 0.0, 0.0]  # R/2, G, (B-10)/2
    nhwc = Preprocess(2, 2, "NHWC", "BGR", "float32", scale=(255.0,))
    assert nhwc(frame)[0, 0, 0].tolist() == pytest.approx([10 / 255, 0.0, 250 / 255])


def test_jpeg_preprocess_sends_one_encoded_image_that_decodes_to_the_raw_tensor() -> None:
    rng = np.random.default_rng(0)
    # Smooth content (JPEG's case): a gradient with a little noise, 640x360 BGR.
    ys, xs = np.mgrid[0:360, 0:640]
    frame_bgr = np.stack([xs % 256, ys % 256, (xs + ys) % 256], axis=-1).astype(np.uint8)
    frame_bgr = cv2.add(frame_bgr, rng.integers(0, 4, frame_bgr.shape, dtype=np.uint8))
    raw = Preprocess(300, 200, "NHWC", "RGB", "uint8")(frame_bgr)
    sent = Preprocess(300, 200, "NHWC", "RGB", "uint8", encoding="jpeg", jpeg_quality=95)(
        frame_bgr
    )
    assert sent.shape == (1,) and sent.dtype == object and isinstance(sent[0], bytes)
    assert sent[0][:2] == b"\xff\xd8"  # a JPEG
    # Decoded the way OVMS does (OpenCV, channels as stored): the model's RGB tensor again.
    decoded = cv2.imdecode(np.frombuffer(sent[0], np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == raw.shape[1:]
    error = np.abs(decoded.astype(np.int16) - raw[0].astype(np.int16))
    assert error.mean() < 2.0
    assert len(sent[0]) < raw.nbytes / 8


def test_jpeg_quality_trades_bytes_for_fidelity() -> None:
    frame_bgr = cv2.GaussianBlur(
        np.random.default_rng(1).integers(0, 256, (300, 300, 3), dtype=np.uint8), (9, 9), 3
    )
    sizes = [
        len(Preprocess(300, 300, encoding="jpeg", jpeg_quality=q)(frame_bgr)[0])
        for q in (30, 85, 100)
    ]
    assert sizes == sorted(sizes) and sizes[0] < sizes[2]
