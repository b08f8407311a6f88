"""The generated test media open with OpenCV and really show a person to the person model."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import openvino as ov
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from media import Box, make_image_folder, make_walk_video

FRAMES = 30
SIZE = (1280, 720)


@pytest.fixture(scope="module")
def person_model(model_repo: Path) -> ov.CompiledModel:
    """The person model from the repository the models tool builds."""
    return ov.Core().compile_model(
        str(model_repo / "person-detection" / "1" / "model.xml"),
        "CPU",
        {"INFERENCE_PRECISION_HINT": "f32"},
    )


def best_person(model: ov.CompiledModel, bgr: np.ndarray) -> tuple[float, Box]:
    rgb = cv2.cvtColor(cv2.resize(bgr, (300, 300)), cv2.COLOR_BGR2RGB)
    out = model(rgb[np.newaxis])
    scores = out[model.output("detection_scores")][0]
    classes = out[model.output("detection_classes")][0]
    scores = np.where(classes == 1, scores, 0.0)
    best = int(np.argmax(scores))
    ymin, xmin, ymax, xmax = out[model.output("detection_boxes")][0][best]
    return float(scores[best]), Box(float(xmin), float(ymin), float(xmax), float(ymax))


@pytest.fixture(scope="module")
def walk_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Box]]:
    path = tmp_path_factory.mktemp("media") / "walk.mp4"
    return path, make_walk_video(path, frames=FRAMES, size=SIZE, fps=15)


def read_all(path: Path) -> tuple[cv2.VideoCapture, list[np.ndarray]]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    return capture, frames


def test_walk_video_opens_with_the_requested_frames_size_and_rate(
    walk_video: tuple[Path, list[Box]],
) -> None:
    path, boxes = walk_video
    capture, frames = read_all(path)
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == SIZE
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(15)
    capture.release()
    assert len(frames) == FRAMES == len(boxes)
    assert all(f.shape == (SIZE[1], SIZE[0], 3) for f in frames)
    # The scene moves: the view pans and the walker crosses from left to right.
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 20
    centres = [(b.xmin + b.xmax) / 2 for b in boxes]
    assert centres == sorted(centres) and centres[-1] - centres[0] > 0.5


def test_person_model_finds_the_walker_in_most_frames(
    walk_video: tuple[Path, list[Box]], person_model: ov.CompiledModel
) -> None:
    path, boxes = walk_video
    _capture, frames = read_all(path)
    found = 0
    for frame, truth in zip(frames, boxes, strict=True):
        score, box = best_person(person_model, frame)
        if score > 0.5 and box.iou(truth) > 0.5:
            found += 1
    assert found >= 0.8 * len(frames), f"person found in {found} of {len(frames)} frames"


def test_image_folder_holds_readable_frames_with_the_person(
    tmp_path: Path, person_model: ov.CompiledModel
) -> None:
    written = make_image_folder(tmp_path / "images", 4, size=(640, 360))
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [
        f"frame_{i:04d}.jpg" for i in range(4)
    ]
    found = 0
    for path, truth in written:
        image = cv2.imread(str(path))
        assert image is not None and image.shape == (360, 640, 3)
        score, box = best_person(person_model, image)
        found += score > 0.5 and box.iou(truth) > 0.5
    assert found >= 3, f"person found in {found} of 4 images"


def test_box_iou() -> None:
    a = Box(0.0, 0.0, 0.5, 0.5)
    assert a.iou(a) == 1.0
    assert a.iou(Box(0.5, 0.5, 1.0, 1.0)) == 0.0
    assert a.iou(Box(0.25, 0.0, 0.75, 0.5)) == pytest.approx(1 / 3)
