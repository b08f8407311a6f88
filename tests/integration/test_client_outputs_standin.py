"""The client's other model family and outputs against the stand-in (a local process):
a classification model built here with OpenVINO over both APIs, MQTT to a real mosquitto on
loopback, the Prometheus endpoint scraped while the client runs, and stream density mode."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_client_standin import (
    MODEL,
    ROOT,
    StandIn,
    client_command,
    client_env,
    detections_of,
    free_port,
    records,
    run_client,
    wait_for,
)

CLASSIFIER = "classification"
CLASSIFICATION_PROFILE = ROOT / "client/src/ovms_client/profiles/classification.yaml"
COLOURS = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}  # BGR


def build_colour_classifier(xml: Path) -> None:
    """A real (tiny) classifier: per-channel mean of a [1,3,32,32] BGR float input, a linear
    layer and a softmax over three classes, red / green / blue (class ids 0, 1, 2)."""
    import openvino as ov
    import openvino.opset13 as ops

    image = ops.parameter([1, 3, 32, 32], ov.Type.f32, name="data")
    means = ops.reduce_mean(image, ops.constant(np.array([2, 3], np.int64)), keep_dims=False)
    # Rows are input channels B, G, R; columns classes red, green, blue.
    weights = np.array([[-1, -1, 2], [-1, 2, -1], [2, -1, -1]], np.float32) / 40.0
    logits = ops.matmul(means, ops.constant(weights), False, False)
    probs = ops.softmax(logits, 1)
    probs.output(0).get_tensor().set_names({"prob"})
    model = ov.Model([probs], [image], "colour-classifier")
    xml.parent.mkdir(parents=True)
    ov.save_model(model, str(xml), compress_to_fp16=False)


def colour_images(folder: Path) -> Path:
    folder.mkdir()
    for index, (name, bgr) in enumerate(COLOURS.items()):
        image = np.zeros((90, 120, 3), np.uint8)
        image[:] = bgr
        image[:20] = 40  # not a flat colour: the mean differs from the pure one
        cv2.imwrite(str(folder / f"{index}-{name}.png"), image)
    return folder


@pytest.fixture(scope="module")
def two_model_standin(
    model_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StandIn]:
    workdir = tmp_path_factory.mktemp("standin2")
    build_colour_classifier(workdir / "repo" / CLASSIFIER / "1" / "model.xml")
    server = StandIn(model_repo, workdir)
    server.config.write_text(
        json.dumps(
            {
                "model_config_list": [
                    {"config": {"name": MODEL, "base_path": str(model_repo / MODEL)}},
                    {
                        "config": {
                            "name": CLASSIFIER,
                            "base_path": str(workdir / "repo" / CLASSIFIER),
                            "plugin_config": {"INFERENCE_PRECISION_HINT": "f32"},
                        }
                    },
                ]
            }
        )
    )
    server.start()
    yield server
    server.stop()


def in_process_probs(xml: Path, image_path: Path) -> np.ndarray:
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    image = cv2.resize(cv2.imread(str(image_path)), (32, 32), interpolation=cv2.INTER_LINEAR)
    tensor = image.transpose(2, 0, 1)[np.newaxis].astype(np.float32)
    return compiled([tensor])[0].reshape(-1)


@pytest.mark.parametrize("api", ["kserve", "tfs"])
def test_classification_profile_top_classes_match_in_process_openvino(
    two_model_standin: StandIn, tmp_path: Path, api: str
) -> None:
    folder = colour_images(tmp_path / "colours")
    labels = tmp_path / "colours.labels"
    labels.write_text("red\ngreen\nblue\n")
    command = [
        *client_command()[:-1],
        str(CLASSIFICATION_PROFILE),
        "--server-address",
        two_model_standin.address,
        "--api",
        api,
        "--input",
        str(folder),
        "--output",
        "-",
        "--labels",
        str(labels),
        "--top-k",
        "2",
    ]
    result = subprocess.run(
        command, env=client_env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    frames = [r for r in records(result.stdout) if r["type"] == "detections"]
    assert len(frames) == 3
    xml = two_model_standin.config.parent / "repo" / CLASSIFIER / "1" / "model.xml"
    for record, (name, path) in zip(frames, zip(COLOURS, sorted(folder.iterdir())), strict=True):
        assert len(record["classes"]) == 2
        assert record["classes"][0]["label"] == name
        want = in_process_probs(xml, path)
        for entry in record["classes"]:
            assert entry["score"] == pytest.approx(want[entry["class_id"]], abs=1e-4)


@pytest.fixture()
def mosquitto(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).is_file():
        pytest.fail("mosquitto is missing: install Debian's mosquitto (make engine does)")
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
    )
    process = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield port
    finally:
        process.terminate()
        process.wait(10)


def test_mqtt_subscriber_receives_each_frames_detections(
    two_model_standin: StandIn, mosquitto: int, person_jpg: Path
) -> None:
    import paho.mqtt.client as mqtt

    received: list[tuple[str, dict]] = []
    subscribed = threading.Event()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    subscriber.on_connect = lambda c, *_: c.subscribe("shop/#", qos=1)
    subscriber.on_subscribe = lambda *_: subscribed.set()
    subscriber.on_message = lambda _c, _u, msg: received.append(
        (msg.topic, json.loads(msg.payload))
    )

    def connect() -> bool:
        try:
            subscriber.connect("127.0.0.1", mosquitto)
            return True
        except OSError:
            return False

    wait_for(connect, "mosquitto to accept connections")
    subscriber.loop_start()
    try:
        assert subscribed.wait(20)
        result = run_client(
            "--server-address",
            two_model_standin.address,
            "--input",
            str(person_jpg),
            "--input",
            str(person_jpg),
            "--output",
            "-",
            "--mqtt-broker",
            f"127.0.0.1:{mosquitto}",
            "--mqtt-topic",
            "shop/{stream}/people",
            "--mqtt-qos",
            "1",
        )
        assert result.returncode == 0, result.stderr
        wait_for(lambda: len(received) >= 2, "two MQTT messages", timeout=20)
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    topics = sorted(topic for topic, _message in received)
    assert topics == ["shop/stream0/people", "shop/stream1/people"]
    written = {r["stream"]: r for r in detections_of(result.stdout)}
    for topic, message in received:
        assert message == written[topic.split("/")[1]]
        assert [d["label"] for d in message["detections"]] == ["person"]


def test_prometheus_metrics_scraped_while_the_client_runs(
    two_model_standin: StandIn, tmp_path: Path, person_jpg: Path
) -> None:
    port = free_port()
    process = subprocess.Popen(
        client_command(
            "--server-address",
            two_model_standin.address,
            "--input",
            str(person_jpg),
            "--loop",
            "--output",
            str(tmp_path / "out.jsonl"),
            "--prometheus-port",
            str(port),
            "--prometheus-address",
            "127.0.0.1",
        ),
        env=client_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def scrape() -> str | None:
        if process.poll() is not None:
            pytest.fail(f"client exited with {process.returncode}: {process.stderr.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        frames = [
            line
            for line in text.splitlines()
            if line.startswith('ovms_client_frames_total{stream="stream0"}')
        ]
        return text if frames and float(frames[0].split()[-1]) >= 5 else None

    try:
        text = wait_for(scrape, "/metrics to count 5 frames")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    stream0 = (("stream", "stream0"),)
    assert values[("ovms_client_server_up", ())] == 1
    assert values[("ovms_client_request_latency_seconds_count", stream0)] >= 5
    assert values[("ovms_client_errors_total", stream0)] == 0


def test_stream_density_mode_prints_the_count(two_model_standin: StandIn, person_jpg: Path) -> None:
    # A target every stream reaches, and one none does: the answer is then the cap and 0,
    # whatever this machine's speed.
    easy = run_client(
        "--server-address",
        two_model_standin.address,
        "--input",
        str(person_jpg),
        "--output",
        "-",
        "--stream-density",
        "--density-target-fps",
        "0.5",
        "--density-max-streams",
        "2",
        "--density-trial-s",
        "1",
    )
    assert easy.returncode == 0, easy.stderr
    [line] = records(easy.stdout)
    assert (line["type"], line["streams"], line["capped"]) == ("stream_density", 2, True)
    assert [t["streams"] for t in line["trials"]] == [1, 2]
    assert all(f > 0.5 for t in line["trials"] for f in t["fps"])
    hard = run_client(
        "--server-address",
        two_model_standin.address,
        "--input",
        str(person_jpg),
        "--output",
        "-",
        "--stream-density",
        "--density-target-fps",
        "100000",
        "--density-trial-s",
        "1",
    )
    assert hard.returncode == 0, hard.stderr
    [line] = records(hard.stdout)
    assert (line["streams"], len(line["trials"])) == (0, 1)
