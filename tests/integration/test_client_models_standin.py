"""Real models end to end: the client CLI against the OVMS stand-in (real gRPC, real OpenVINO)
serving the catalog's SSD, YOLOv4-tiny and EfficientNet-Lite3 side by side.

Covers: YOLO on the walk scene finds the people the SSD finds; detector then classifier (two
models on one server, both results in each record, the classifier's quantised scores as the
probabilities in-process OpenVINO gives); a RealSense recording made here from the walk
scene's frames (software device + recorder, no camera) played through the client; and the
bad inputs of these: a YOLO profile against the SSD model, a classifier without labels (or
with labels for another model), a RealSense serial that is not connected.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from media import Box, make_walk_video, walk_frames

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "client/src/ovms_client/profiles"
SSD = PROFILES / "person-detection-ssd.yaml"
YOLO = PROFILES / "yolov4-tiny-coco.yaml"
PIPELINE = PROFILES / "yolov4-tiny-efficientnet.yaml"
MODELS = ("person-detection", "yolov4-tiny", "efficientnet-lite3")
# A YOLO person box is "the same person" as an SSD one when they overlap by at least this.
SAME_PERSON_IOU = 0.5
WALK_FRAMES = 30


def free_port() -> int:
    rng = random.Random()
    for _attempt in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("no free port found in 20000-31999")


@pytest.fixture(scope="module")
def standin(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stand-in serving the three models; yields its gRPC address."""
    import tritonclient.grpc as triton

    work = tmp_path_factory.mktemp("standin-models")
    config = work / "config.json"
    config.write_text(
        json.dumps(
            {
                "model_config_list": [
                    {"config": {"name": name, "base_path": str(model_repo / name)}}
                    for name in MODELS
                ]
            }
        )
    )
    port, rest_port = free_port(), free_port()
    log = work / "standin.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ovms_standin", "--config_path", str(config),
             "--port", str(port), "--rest_port", str(rest_port),
             "--grpc_bind_address", "127.0.0.1", "--rest_bind_address", "127.0.0.1"],
            env={**os.environ, "PYTHONPATH": str(ROOT / "tests/ovms_standin")},
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # bounds a hung start only
        while True:
            if process.poll() is not None:
                pytest.fail(f"stand-in exited: {log.read_text()[-2000:]}")
            client = triton.InferenceServerClient(address)
            try:
                if all(client.is_model_ready(m, client_timeout=2) for m in MODELS):
                    break
            except triton.InferenceServerException:
                pass
            finally:
                client.close()
            if time.monotonic() > deadline:
                pytest.fail(f"stand-in did not serve {MODELS}: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield address
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def run_client(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVMS_CLIENT_")}
    env["PYTHONPATH"] = str(ROOT / "client/src")
    return subprocess.run(
        [sys.executable, "-m", "ovms_client", "--profile", str(profile),
         "--metrics-interval", "0", "--output", "-", *args],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def frames_of(done: subprocess.CompletedProcess[str]) -> list[dict]:
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return sorted((r for r in records if r["type"] == "detections"), key=lambda r: r["frame"])


def people(record: dict) -> list[Box]:
    w, h = record["width"], record["height"]
    return [
        Box(d["box"]["xmin"] / w, d["box"]["ymin"] / h, d["box"]["xmax"] / w, d["box"]["ymax"] / h)
        for d in record["detections"]
        if d["label"] == "person"
    ]


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Box]]:
    path = tmp_path_factory.mktemp("walk") / "walk.mp4"
    return path, make_walk_video(path, frames=WALK_FRAMES)


def test_yolo_finds_the_people_the_ssd_finds(standin: str, walk: tuple[Path, list[Box]]) -> None:
    video, truth = walk
    ssd = frames_of(run_client(SSD, "--input", str(video), "--server-address", standin))
    yolo = frames_of(run_client(YOLO, "--input", str(video), "--server-address", standin))
    assert [r["frame"] for r in yolo] == [r["frame"] for r in ssd] == list(range(WALK_FRAMES))

    overlaps = []
    ssd_missed = 0
    for ssd_frame, yolo_frame, person in zip(ssd, yolo, truth, strict=True):
        ssd_people, yolo_people = people(ssd_frame), people(yolo_frame)
        # Every person the SSD finds, YOLO finds too.
        for box in ssd_people:
            best = max((box.iou(other) for other in yolo_people), default=0.0)
            assert best >= SAME_PERSON_IOU, (ssd_frame["frame"], box, yolo_people)
            overlaps.append(best)
        # YOLO finds the walker where the scene put it, in every frame, and no one else (the
        # SSD misses the walker in a few frames; YOLO may be better, never worse).
        assert len(yolo_people) == 1, (yolo_frame["frame"], yolo_people)
        assert person.iou(yolo_people[0]) >= SAME_PERSON_IOU, (yolo_frame["frame"], person)
        ssd_missed += not ssd_people
    assert len(overlaps) >= WALK_FRAMES * 2 // 3, "the SSD finds the walker in most frames"
    print(
        f"YOLO vs SSD: {len(overlaps)} SSD person boxes, all matched by YOLO at IoU >= "
        f"{SAME_PERSON_IOU} (mean IoU {np.mean(overlaps):.3f}); walker found by YOLO in "
        f"{WALK_FRAMES} of {WALK_FRAMES} frames, by the SSD in {WALK_FRAMES - ssd_missed}"
    )


def test_detector_then_classifier_gives_both_results_in_each_record(
    standin: str, walk: tuple[Path, list[Box]], model_repo: Path
) -> None:
    import openvino as ov

    video, _truth = walk
    records = frames_of(
        run_client(
            PIPELINE, "--input", str(video), "--server-address", standin, "--max-frames", "6"
        )
    )
    assert len(records) == 6
    labels = (PROFILES / "imagenet.labels").read_text().splitlines()[2:]
    classifier = ov.Core().compile_model(
        str(model_repo / "efficientnet-lite3/1/model.tflite"), "CPU"
    )
    capture = cv2.VideoCapture(str(video))
    checked = 0
    for record in records:
        ok, image = capture.read()
        assert ok
        assert record["classify_ms"] > 0
        assert any(d["label"] == "person" for d in record["detections"])
        for detection in record["detections"]:
            classes = detection["classes"]
            assert len(classes) == 3  # classifier_top_k
            scores = [c["score"] for c in classes]
            assert scores == sorted(scores, reverse=True)
            assert 0.0 <= sum(scores) <= 1.0 + 1e-3, "probabilities, not raw quantised values"
            assert all(c["label"] == labels[c["class_id"]] for c in classes)
            # The same crop in this process: the same best class and probability. The record
            # rounds the box to 0.1 px; where an edge rounds to a whole pixel, the client's
            # floor/ceil of the exact edge may be one pixel off ours, which can move a weak
            # class's probability well past the tolerance: those boxes are not compared.
            box = detection["box"]
            edges = [box[key] for key in ("xmin", "ymin", "xmax", "ymax")]
            if any(abs(edge - round(edge)) < 0.06 for edge in edges):
                continue
            height, width = image.shape[:2]
            crop = image[
                max(0, int(np.floor(box["ymin"]))) : min(height, int(np.ceil(box["ymax"]))),
                max(0, int(np.floor(box["xmin"]))) : min(width, int(np.ceil(box["xmax"]))),
            ]
            tensor = cv2.cvtColor(cv2.resize(crop, (280, 280)), cv2.COLOR_BGR2RGB)[None]
            raw = classifier(tensor)[0][0]
            assert raw.dtype == np.uint8
            probabilities = raw / raw.sum()
            best = int(np.argmax(probabilities))
            if probabilities[best] - np.sort(probabilities)[-2] > 0.02:
                assert classes[0]["class_id"] == best
                assert classes[0]["score"] == pytest.approx(probabilities[best], abs=0.02)
                checked += 1
    assert checked >= 3, "enough crops with a clear best class to compare"


def test_realsense_recording_plays_through_the_client(standin: str, tmp_path: Path) -> None:
    from realsense_recording import record

    bag = tmp_path / "walk.bag"
    scene = list(walk_frames(20, (640, 360)))
    assert record(bag, (frame.image for frame in scene)) == 20
    frames = frames_of(run_client(YOLO, "--input", str(bag), "--server-address", standin))
    assert [r["frame"] for r in frames] == list(range(20))
    for record_, frame in zip(frames, scene, strict=True):
        assert (record_["width"], record_["height"]) == (640, 360)
        found = people(record_)
        assert found, f"no person in frame {record_['frame']}"
        assert max(frame.person.iou(box) for box in found) >= SAME_PERSON_IOU
    # The recording's own clock: 15 fps, so frame N is at N x 66.7 ms.
    assert frames[-1]["position_ms"] == pytest.approx(19 * 1000 / 15, abs=1)


# --- bad inputs ---------------------------------------------------------------------------


def test_yolo_profile_against_the_ssd_model_names_model_and_shapes(
    standin: str, walk: tuple[Path, list[Box]]
) -> None:
    video, _truth = walk
    done = run_client(
        YOLO, "--input", str(video), "--server-address", standin,
        "--model-name", "person-detection", "--input-name", "image_tensor",
        "--input-size", "300x300",
    )  # fmt: skip
    assert done.returncode == 5, done.stderr
    assert "adapter 'yolo' (v5) cannot read the outputs of model 'person-detection'" in (
        done.stderr
    )
    assert "'detection_boxes': [1, 100, 4]" in done.stderr
    assert "got output shape [100, 4] per image, expected [N, 5+C]" in done.stderr
    # As the profile stands, the model's input gives it away first.
    plain = run_client(YOLO, "--input", str(video), "--server-address", standin,
                       "--model-name", "person-detection")  # fmt: skip
    assert plain.returncode == 2, plain.stderr
    assert "model 'person-detection' has inputs ['image_tensor']" in plain.stderr


def test_classifier_without_labels_or_with_another_models_labels(
    standin: str, walk: tuple[Path, list[Box]]
) -> None:
    video, _truth = walk
    args = ("--input", str(video), "--server-address", standin)
    unlabelled = run_client(PIPELINE, *args, "--classifier-labels", "")
    assert unlabelled.returncode == 2, unlabelled.stderr
    assert "setting 'classifier_model' is 'efficientnet-lite3' but 'classifier_labels' is unset" in (
        unlabelled.stderr
    )
    coco = run_client(PIPELINE, *args, "--classifier-labels", str(PROFILES / "yolo-coco.labels"))
    assert coco.returncode == 2, coco.stderr
    assert "yolo-coco.labels names 80 classes, but model 'efficientnet-lite3' scores 1000" in (
        coco.stderr
    )


def test_realsense_serial_that_is_not_connected(standin: str) -> None:
    done = run_client(YOLO, "--input", "realsense://817612070123", "--server-address", standin)
    assert done.returncode == 4, done.stderr
    assert "RealSense camera with serial 817612070123" in done.stderr
    assert "is not connected; cameras found: none" in done.stderr
