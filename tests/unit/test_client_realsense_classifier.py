"""The client's RealSense inputs (with the real pyrealsense2: a recording made here by its
software device, no camera) and the settings and crops of detector-then-classifier."""

from __future__ import annotations

import builtins
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from ovms_client.adapters import ClassificationAdapter, Detection
from ovms_client.api import ModelInfo, TensorInfo
from ovms_client.crops import CropClassifier, check_labels_cover, classifier_input
from ovms_client.errors import ConfigError, InputError
from ovms_client.preprocess import Preprocess
from ovms_client.settings import InputSpec, SourceKind, load
from ovms_client.sources import RealSenseRecordingSource, make_source

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from realsense_recording import record


def frames(count: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """Distinct BGR frames: frame N has blue N*10, and a red square at x = 2N."""
    out = []
    for n in range(count):
        image = np.zeros((size[1], size[0], 3), np.uint8)
        image[..., 0] = n * 10
        image[10:20, 2 * n : 2 * n + 10, 2] = 255
        out.append(image)
    return out


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rs") / "clip.bag"
    assert record(path, frames(12), fps=30) == 12
    return path


def drain(source: Any, limit: int = 100) -> list:
    out = []
    while len(out) < limit and (frame := source.read()) is not None:
        out.append(frame)
    return out


def test_recording_plays_back_every_frame_as_bgr_with_its_clock(bag: Path) -> None:
    spec = InputSpec("s", str(bag), SourceKind.RECORDING)
    source = make_source(spec, False, threading.Event())
    assert source.live is False
    played = drain(source)
    source.close()
    assert [f.index for f in played] == list(range(12))
    for got, want in zip(played, frames(12), strict=True):
        np.testing.assert_array_equal(got.image, want)
    assert [round(f.position_ms) for f in played[:3]] == [0, 33, 67]


def test_recording_loops_when_asked(bag: Path) -> None:
    source = RealSenseRecordingSource(InputSpec("s", str(bag), SourceKind.RECORDING), True)
    played = drain(source, limit=30)
    source.close()
    assert [f.index for f in played] == list(range(30))
    np.testing.assert_array_equal(played[12].image, played[0].image)


def test_recording_and_camera_sources_are_classified(tmp_path: Path) -> None:
    (tmp_path / "walk.bag").write_bytes(b"x")
    (tmp_path / "walk.db3").write_bytes(b"x")
    profile = tmp_path / "p.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "model_name": "m",
                "server_address": "h:1",
                "inputs": ["walk.bag", "walk.db3", "realsense://817612070123", "realsense://"],
            }
        )
    )
    settings = load({}, {}, tmp_path, str(profile))
    kinds = [(i.kind, i.source) for i in settings.inputs]
    assert kinds == [
        (SourceKind.RECORDING, str(tmp_path / "walk.bag")),
        (SourceKind.RECORDING, str(tmp_path / "walk.db3")),
        (SourceKind.REALSENSE, "realsense://817612070123"),
        (SourceKind.REALSENSE, "realsense://"),
    ]
    assert SourceKind.REALSENSE.live and not SourceKind.RECORDING.live
    with pytest.raises(ConfigError, match=r"expected realsense://SERIAL .*got 'realsense://a b'"):
        load({"inputs": "realsense://a b"}, {}, tmp_path, str(profile))


def test_missing_camera_and_missing_package_are_input_errors(
    monkeypatch: pytest.MonkeyPatch, bag: Path
) -> None:
    stop = threading.Event()
    with pytest.raises(InputError) as caught:
        make_source(InputSpec("door", "realsense://0123", SourceKind.REALSENSE), False, stop)
    assert str(caught.value).startswith(
        "RealSense camera with serial 0123 (input realsense://0123, stream door) is not "
        "connected; cameras found: none"
    )
    with pytest.raises(InputError, match=r"^no RealSense camera is connected \(input realsense://"):
        make_source(InputSpec("door", "realsense://", SourceKind.REALSENSE), False, stop)

    real_import = builtins.__import__

    def no_realsense(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pyrealsense2":
            raise ImportError("No module named 'pyrealsense2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_realsense)
    with pytest.raises(InputError, match=r"needs the pyrealsense2 package .*\[realsense\]"):
        make_source(InputSpec("s", str(bag), SourceKind.RECORDING), False, stop)


def test_recording_without_colour_frames_is_an_input_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.bag"
    broken.write_bytes(b"not a rosbag")
    with pytest.raises(InputError, match=r"cannot play RealSense recording .*broken.bag"):
        make_source(InputSpec("s", str(broken), SourceKind.RECORDING), False, threading.Event())


# --- detector then classifier --------------------------------------------------------------


def write_profile(directory: Path, **values: object) -> Path:
    (directory / "walk.mp4").write_bytes(b"x")
    (directory / "imagenet.labels").write_text("tench\ngoldfish\nshark\n")
    base: dict[str, object] = {
        "model_name": "det",
        "server_address": "h:1",
        "inputs": ["walk.mp4"],
        "adapter": "yolo",
    }
    base.update(values)
    path = directory / "p.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def test_classifier_settings_and_their_bad_combinations(tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path,
        classifier_model="cls",
        classifier_labels="imagenet.labels",
        classify_labels=["person", "bottle", "person"],
    )
    settings = load({}, {}, tmp_path, str(profile))
    assert settings.classifier_labels == tmp_path / "imagenet.labels"
    assert settings.classify_labels == ("person", "bottle")
    assert settings.classifier_top_k == 1
    assert settings.to_dict()["classify_labels"] == ["person", "bottle"]
    assert load({"classify_labels": "a, b"}, {}, tmp_path, str(profile)).classify_labels == (
        "a",
        "b",
    )

    unlabelled = write_profile(tmp_path, classifier_model="cls")
    with pytest.raises(ConfigError) as caught:
        load({}, {}, tmp_path, str(unlabelled))
    assert str(caught.value).startswith(
        "setting 'classifier_model' is 'cls' but 'classifier_labels' is unset: a classifier "
        "without labels gives bare class numbers"
    )
    whole_frame = write_profile(
        tmp_path, adapter="classification", classifier_model="cls", classifier_labels="imagenet.labels"
    )
    with pytest.raises(ConfigError, match="adapter is classification \\(no boxes\\)"):
        load({}, {}, tmp_path, str(whole_frame))


def test_classifier_input_read_from_metadata() -> None:
    def info(shape: tuple[int, ...], dtype: str = "uint8") -> ModelInfo:
        return ModelInfo((TensorInfo("images", shape, dtype),), (TensorInfo("p", (1, 3), "uint8"),))

    name, pre = classifier_input("cls", info((1, 280, 280, 3)), "RGB")
    assert (name, pre.width, pre.height, pre.layout, pre.dtype) == ("images", 280, 280, "NHWC", "uint8")
    _name, pre = classifier_input("cls", info((1, 3, 224, 200), "float32"), "BGR")
    assert (pre.width, pre.height, pre.layout, pre.color_order) == (200, 224, "NCHW", "BGR")
    with pytest.raises(ConfigError, match="dynamic size"):
        classifier_input("cls", info((1, -1, -1, 3)), "RGB")
    with pytest.raises(ConfigError, match=r"shape \[1, 1000\]; expected a 4-D image input"):
        classifier_input("cls", info((1, 1000)), "RGB")
    with pytest.raises(ConfigError, match="takes int32"):
        classifier_input("cls", info((1, 8, 8, 3), "int32"), "RGB")


def test_labels_must_cover_every_class_the_classifier_scores() -> None:
    outputs = (TensorInfo("Softmax", (1, 1000), "uint8"),)
    check_labels_cover("cls", outputs, {i: str(i) for i in range(1000)}, "imagenet.labels")
    with pytest.raises(ConfigError) as caught:
        check_labels_cover("cls", outputs, {i: str(i) for i in range(80)}, "coco.labels")
    assert str(caught.value) == (
        "setting 'classifier_labels': coco.labels names 80 classes, but model 'cls' scores 1000 "
        "(no label for class 80 and 919 more); use the labels file made for this model"
    )


class FakeLink:
    """Answers each crop with scores that say which crop it was (its mean blue level)."""

    def __init__(self) -> None:
        self.crops: list[np.ndarray] = []

    def infer(self, input_name: str, tensor: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
        self.crops.append(tensor)
        scores = np.zeros((1, 3), np.uint8)
        scores[0, int(tensor[..., 2].mean() > 100)] = 200
        scores[0, 2] = 56
        return {"Softmax": scores}, 0.001


def test_crops_are_cut_from_the_box_and_classes_attached() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[10:50, 20:60] = (255, 0, 0)  # blue in BGR
    link = FakeLink()
    classifier = CropClassifier(
        link,  # type: ignore[arg-type]
        "images",
        Preprocess(8, 8, "NHWC", "RGB", "uint8"),
        ClassificationAdapter(0.0, {0: "dark", 1: "blue", 2: "other"}, 2),
        frozenset({"person"}),
    )
    detections = [
        Detection("person", 0, 0.9, 20.0, 10.0, 60.0, 50.0),
        Detection("person", 0, 0.8, 100.0, 60.0, 140.0, 90.0),
        Detection("car", 2, 0.7, 0.0, 0.0, 50.0, 50.0),  # not in classify_labels
        Detection("person", 0, 0.6, 5.0, 5.0, 7.0, 7.0),  # too small to classify
    ]
    result, seconds = classifier(image, detections)
    assert seconds >= 0
    assert len(link.crops) == 2
    assert all(crop.shape == (1, 8, 8, 3) for crop in link.crops)
    first, second, car, tiny = result
    assert first.classes is not None and [c.label for c in first.classes] == ["blue", "other"]
    assert first.classes[0].score == pytest.approx(200 / 256)
    assert second.classes is not None and second.classes[0].label == "dark"
    assert car.classes is None and tiny.classes is None
    record = first.to_json()
    assert record["classes"] == [
        {"label": "blue", "class_id": 1, "score": round(200 / 256, 4)},
        {"label": "other", "class_id": 2, "score": round(56 / 256, 4)},
    ]
    assert "classes" not in car.to_json()
