"""The stand-in's binary inputs on made-up model inputs: layouts, ranges, resize, errors.

The real model and container are in tests/integration/test_client_jpeg.py; here the cases that
model does not have (ranged and dynamic dimensions, float inputs, other layouts).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import openvino as ov
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ovms_standin"))

from ovms_standin import binary
from ovms_standin.status import Code, OvmsError
from ovms_standin.tensors import TensorInfo


def info(dims: str, element: ov.Type = ov.Type.u8, layout: str = "") -> TensorInfo:
    return TensorInfo("image", element, tuple(ov.PartialShape(dims)), layout)


def png(height: int, width: int, channels: int = 3, value: int = 200) -> bytes:
    image = np.full((height, width, channels), value, np.uint8)
    ok, data = cv2.imencode(".png", image if channels > 1 else image[:, :, 0])
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(
    ("layout", "fits"),
    [
        ("N...", True),
        ("NHWC", True),
        ("...", True),
        ("N?HWC", False),
        ("NCHW", False),
        ("HWCN", False),
        ("N??C", True),
    ],
)
def test_layouts_that_fit_n_hwc_at_rank_4(layout: str, fits: bool) -> None:
    assert binary.fits_binary_layout(layout, 4) is fits


def test_resize_needs_an_nhwc_like_layout_and_no_fully_dynamic_dimension() -> None:
    assert binary.resize_supported(info("[1,300,300,3]"), "NHWC")
    assert binary.resize_supported(info("[1,100..200,300,3]"), "NHWC")
    assert not binary.resize_supported(info("[1,300,300,3]"), "N...")
    assert not binary.resize_supported(info("[1,?,?,3]"), "NHWC")


def test_reported_layout_is_the_models_then_the_configs_then_ovms_default() -> None:
    config = SimpleNamespace(layouts={"": "NHWC:NCHW"})
    assert binary.reported_layout(info("[1,2,2,3]", layout="NHWC"), config, 1) == "NHWC"  # type: ignore[arg-type]
    assert binary.reported_layout(info("[1,2,2,3]"), config, 1) == "NHWC"  # type: ignore[arg-type]
    config.layouts = {}
    assert binary.reported_layout(info("[1,2,2,3]"), config, 1) == "N..."  # type: ignore[arg-type]


def test_raw_contents_are_length_prefixed_images() -> None:
    assert binary.split_raw(struct.pack("<I", 2) + b"ab" + struct.pack("<I", 1) + b"c") == [
        b"ab",
        b"c",
    ]
    assert binary.split_raw(struct.pack("<I", 5) + b"ab") is None
    assert binary.split_raw(struct.pack("<I", 2) + b"abX") is None
    with pytest.raises(OvmsError) as caught:
        binary.raw_count(b"\x01")
    assert caught.value.code is Code.INVALID_INPUT_FORMAT


def test_a_ranged_height_takes_the_image_size_clamped_to_the_range() -> None:
    tensor = binary.decode(info("[1,100..200,50,3]"), [png(250, 80)], None, "NHWC")
    assert tensor.shape == (1, 200, 50, 3)
    tensor = binary.decode(info("[1,100..200,50,3]"), [png(150, 50)], None, "NHWC")
    assert tensor.shape == (1, 150, 50, 3)


def test_fully_dynamic_sizes_take_the_first_image_and_the_rest_must_match() -> None:
    model = info("[2,?,?,3]")
    assert binary.decode(model, [png(20, 30), png(20, 30)], None, "NHWC").shape == (2, 20, 30, 3)
    with pytest.raises(OvmsError) as caught:
        binary.decode(model, [png(20, 30), png(21, 30)], None, "NHWC")
    assert caught.value.code is Code.BINARY_IMAGES_RESOLUTION_MISMATCH


def test_pixels_become_the_models_type_without_scaling() -> None:
    tensor = binary.decode(info("[1,4,4,3]", ov.Type.f32), [png(4, 4, value=200)], None, "N...")
    assert tensor.dtype == np.float32
    assert float(tensor.max()) == 200.0


def test_a_model_with_one_channel_takes_grayscale_and_refuses_colour() -> None:
    model = info("[1,4,4,1]")
    assert binary.decode(model, [png(4, 4, channels=1)], None, "N...").shape == (1, 4, 4, 1)
    with pytest.raises(OvmsError) as caught:
        binary.decode(model, [png(4, 4)], None, "N...")
    assert str(caught.value) == "Invalid number of channels in binary input"


def test_request_checks_come_in_ovms_order() -> None:
    model = info("[1,4,4,3]")
    with pytest.raises(OvmsError) as caught:
        binary.check_request(model, "image", [1, 4], [png(4, 4)], None, "...")
    assert caught.value.code is Code.INVALID_NO_OF_SHAPE_DIMENSIONS
    with pytest.raises(OvmsError) as caught:
        binary.check_request(model, "image", [1], [png(4, 4)], None, "...")
    assert str(caught.value) == "Invalid input batch size - Batch not present in input name: image"
    with pytest.raises(OvmsError) as caught:
        binary.check_request(info("[1,4]"), "image", [1], [png(4, 4)], None, "N...")
    assert caught.value.code is Code.NOT_IMPLEMENTED
    binary.check_request(model, "image", [1], [png(4, 4)], None, "N...")
