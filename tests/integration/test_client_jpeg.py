"""JPEG frames (OVMS binary inputs) against the stand-in image: real gRPC, real OpenVINO.

The client runs as a local process (its code from this checkout) and the stand-in in its
container. Covers: detections with `encoding: jpeg` agree with `raw` on the store walk video;
a jpeg client writes detections again after the server container restarts under it; the
stand-in answers binary inputs as OVMS does (resize only for an NHWC layout, its errors and
gRPC codes); the client's own refusals of bad jpeg settings.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from media import Box
from test_client_standin import free_port
from tritonclient.grpc import service_pb2, service_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()
PROFILE = ROOT / "client/src/ovms_client/profiles/person-detection-ssd.yaml"
MODEL = "person-detection"
# The same model served with a layout: "NHWC" lets OVMS resize images; "NCHW:NHWC" makes the
# served input NCHW, which binary inputs refuse.
MODEL_NHWC = "person-detection-nhwc"
MODEL_NCHW = "person-detection-nchw"
INPUT = "image_tensor"
DEADLINE_S = 120.0
# Agreement of jpeg with raw: every person found with a score of at least CONFIDENT by one is
# found by the other (score >= FLOOR) with a box of IoU >= MIN_IOU; the mean IoU over all such
# pairs is at least MEAN_IOU. Measured at the defaults (quality 85, 4:4:4): worst 0.91, mean
# 0.96.
CONFIDENT = 0.6
FLOOR = 0.3
MIN_IOU = 0.85
MEAN_IOU = 0.9


def wait_for(check: Any, what: str, logs: Any = lambda: "") -> Any:
    """Poll until check() is truthy; the deadline only bounds a hung test."""
    deadline = time.monotonic() + DEADLINE_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (grpc.RpcError, triton.InferenceServerException) as exc:
            last = exc
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what} ({last})\n{logs()[-3000:]}")


def start_standin(docker_client: Any, built_images: dict[str, str], model_repo: Path,
                  config_dir: Path, entries: list[dict[str, Any]], host_port: int | None) -> Any:
    """The stand-in container serving `entries` (config.json model entries) from `model_repo`,
    its gRPC port published on loopback at `host_port` (None: a port Docker picks)."""
    config = config_dir / "config.json"
    config.write_text(json.dumps({"model_config_list": [{"config": e} for e in entries]}))
    config.chmod(0o644)
    return docker_client.containers.run(
        built_images["standin"],
        command=["--config_path", "/config/config.json", "--port", "9000"],
        detach=True,
        read_only=True,
        tmpfs={"/tmp": ""},
        ports={"9000/tcp": ("127.0.0.1", host_port)},
        volumes={
            str(model_repo): {"bind": "/models", "mode": "ro"},
            str(config_dir): {"bind": "/config", "mode": "ro"},
        },
    )


@dataclass
class Server:
    container: Any
    address: str

    def logs(self) -> str:
        return self.container.logs().decode(errors="replace")


@pytest.fixture(scope="module")
def standin(
    docker_client: Any, built_images: dict[str, str], model_repo: Path, tmp_path_factory: Any
) -> Iterator[Server]:
    config_dir = tmp_path_factory.mktemp("jpeg-standin-config")
    config_dir.chmod(0o755)
    base = f"/models/{MODEL}"
    plugin = {"INFERENCE_PRECISION_HINT": "f32"}
    entries = [
        {"name": MODEL, "base_path": base, "plugin_config": plugin},
        {"name": MODEL_NHWC, "base_path": base, "plugin_config": plugin, "layout": "NHWC"},
        {"name": MODEL_NCHW, "base_path": base, "plugin_config": plugin, "layout": "NCHW:NHWC"},
    ]
    # A port Docker picks on loopback: no clash with a demo store or other tests.
    container = start_standin(docker_client, built_images, model_repo, config_dir, entries, None)
    try:

        def published() -> int:
            container.reload()
            bindings = container.attrs["NetworkSettings"]["Ports"].get("9000/tcp") or []
            return int(bindings[0]["HostPort"]) if bindings else 0

        server = Server(container, f"127.0.0.1:{wait_for(published, 'the gRPC port')}")
        client = triton.InferenceServerClient(server.address)
        for name in (MODEL, MODEL_NHWC, MODEL_NCHW):
            wait_for(lambda n=name: client.is_model_ready(n), f"{name} AVAILABLE", server.logs)
        client.close()
        yield server
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def store_walk() -> Path:
    """The demo's video (make media); written here when missing."""
    video = CACHE / "media/store-walk.mp4"
    if not video.is_file():
        subprocess.run(
            [sys.executable, str(ROOT / "scripts/make-media.py"), str(video)], check=True
        )
    return video


def run_client(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVMS_CLIENT_")}
    env["PYTHONPATH"] = str(ROOT / "client/src")
    return subprocess.run(
        [sys.executable, "-m", "ovms_client", "--profile", str(PROFILE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def people_per_frame(text: str) -> dict[int, list[tuple[float, Box]]]:
    frames: dict[int, list[tuple[float, Box]]] = {}
    for line in text.splitlines():
        record = json.loads(line)
        if record["type"] != "detections":
            continue
        width, height = record["width"], record["height"]
        frames[record["frame"]] = [
            (
                d["score"],
                Box(
                    d["box"]["xmin"] / width,
                    d["box"]["ymin"] / height,
                    d["box"]["xmax"] / width,
                    d["box"]["ymax"] / height,
                ),
            )
            for d in record["detections"]
            if d["label"] == "person"
        ]
    return frames


def detect(server: Server, video: Path, encoding: str) -> dict[int, list[tuple[float, Box]]]:
    done = run_client(
        "--server-address",
        server.address,
        "--input",
        str(video),
        "--no-loop",
        "--input-fps",
        "0",
        "--encoding",
        encoding,
        "--score-threshold",
        str(FLOOR),
        "--output",
        "-",
        "--metrics-interval",
        "0",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return people_per_frame(done.stdout)


def matches(
    these: dict[int, list[tuple[float, Box]]], those: dict[int, list[tuple[float, Box]]]
) -> list[tuple[int, float, float]]:
    """For each confident person in `these`: (frame, its score, best IoU in `those`)."""
    found = []
    for frame, people in these.items():
        for score, box in people:
            if score >= CONFIDENT:
                best = max((box.iou(other) for _s, other in those.get(frame, [])), default=0.0)
                found.append((frame, score, best))
    return found


def test_jpeg_detections_agree_with_raw_on_the_store_walk_video(
    standin: Server, store_walk: Path
) -> None:
    raw = detect(standin, store_walk, "raw")
    jpeg = detect(standin, store_walk, "jpeg")
    total = int(cv2.VideoCapture(str(store_walk)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert sorted(raw) == sorted(jpeg) == list(range(total))
    pairs = matches(raw, jpeg) + matches(jpeg, raw)
    # The walk shows one person in (nearly) every frame: the comparison is not vacuous.
    assert len(pairs) >= total
    worst = min(pairs, key=lambda pair: pair[2])
    assert worst[2] >= MIN_IOU, f"frame {worst[0]}: score {worst[1]}, best IoU {worst[2]:.3f}"
    mean = sum(iou for _f, _s, iou in pairs) / len(pairs)
    assert mean >= MEAN_IOU, f"mean IoU {mean:.3f}"


# --- a server restart under a running jpeg client

# Restarts in a row: each one is a fresh server whose first requests are the client's two
# parked ones arriving together, which is what hung the stand-in (see ovms_standin.tensors).
RESTARTS = 3
# Bounds only a hung test: the client normally resumes seconds after the server is back.
RESUME_BOUND_S = 240.0


def detections_after(path: Path, since: float) -> int:
    """Detection lines of frames read after `since` (the client's wall clock)."""
    if not path.is_file():
        return 0
    found = 0
    for line in path.read_text().splitlines():
        if '"type":"detections"' in line and json.loads(line)["timestamp"] > since:
            found += 1
    return found


def test_jpeg_client_resumes_after_each_server_container_restart(
    docker_client: Any,
    built_images: dict[str, str],
    model_repo: Path,
    store_walk: Path,
    tmp_path: Path,
) -> None:
    """OVMS restarted under a jpeg client (the remote store's default): each time, the client
    writes detections of frames read after the restart. The server runs the store's settings
    (nireq 2), so it serves the client's two requests in flight at once."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    config_dir.chmod(0o755)
    entry = {
        "name": MODEL,
        "base_path": f"/models/{MODEL}",
        "nireq": 2,
        "plugin_config": {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"},
    }
    # A fixed host port: Docker gives an ephemeral published port a new number on restart.
    port = free_port()
    container = start_standin(docker_client, built_images, model_repo, config_dir, [entry], port)
    output = tmp_path / "detections.jsonl"
    stderr = tmp_path / "client.stderr"
    client: subprocess.Popen[bytes] | None = None

    def logs() -> str:
        server = container.logs().decode(errors="replace")
        return f"client:\n{stderr.read_text()[-3000:]}\nserver:\n{server[-3000:]}"

    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OVMS_CLIENT_")}
        env["PYTHONPATH"] = str(ROOT / "client/src")
        with stderr.open("w") as err:
            client = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ovms_client",
                    "--profile",
                    str(PROFILE),
                    "--server-address",
                    f"127.0.0.1:{port}",
                    "--input",
                    str(store_walk),
                    "--loop",
                    "--encoding",
                    "jpeg",
                    "--in-flight",
                    "2",
                    "--ready-timeout",
                    str(RESUME_BOUND_S),
                    "--output",
                    str(output),
                    "--metrics-interval",
                    "5",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        wait_for(lambda: detections_after(output, 0.0), "detections before the restarts", logs)
        for restart in range(1, RESTARTS + 1):
            container.restart(timeout=10)
            restarted = time.time()
            deadline = time.monotonic() + RESUME_BOUND_S
            while not detections_after(output, restarted):
                assert client.poll() is None, f"client exited with {client.returncode}\n{logs()}"
                if time.monotonic() > deadline:
                    pytest.fail(f"no detection of a frame read after restart {restart}\n{logs()}")
                time.sleep(0.5)
        client.send_signal(signal.SIGTERM)
        assert client.wait(60) == 0, logs()
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        container.remove(force=True)


# --- the stand-in's binary inputs, as OVMS answers them


def jpeg_of(image_bgr: np.ndarray, size: tuple[int, int] | None = None) -> bytes:
    image = cv2.resize(image_bgr, size) if size else image_bgr
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def triton_infer(server: Server, model: str, images: list[bytes]) -> dict[str, np.ndarray]:
    client = triton.InferenceServerClient(server.address)
    try:
        data = np.empty(len(images), dtype=np.object_)
        data[:] = images
        request_input = triton.InferInput(INPUT, [len(images)], "BYTES")
        request_input.set_data_from_numpy(data)
        result = client.infer(model, [request_input])
        return {o.name: result.as_numpy(o.name) for o in result.get_response().outputs}
    finally:
        client.close()


def raw_request(
    server: Server,
    model: str,
    shape: list[int],
    contents: list[bytes] | None = None,
    raw: bytes | None = None,
) -> tuple[str, str]:
    """(gRPC code name, details) of a hand-made ModelInfer request; ("OK", "") on success."""
    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=INPUT, datatype="BYTES", shape=shape)
    if contents is not None:
        tensor.contents.bytes_contents.extend(contents)
    if raw is not None:
        request.raw_input_contents.append(raw)
    with grpc.insecure_channel(server.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            stub.ModelInfer(request, timeout=60)
        except grpc.RpcError as exc:
            return exc.code().name, exc.details()
    return "OK", ""


def top_person(outputs: dict[str, np.ndarray]) -> tuple[float, Box]:
    score = float(outputs["detection_scores"][0, 0])
    assert int(outputs["detection_classes"][0, 0]) == 1
    ymin, xmin, ymax, xmax = (float(v) for v in outputs["detection_boxes"][0, 0])
    return score, Box(xmin, ymin, xmax, ymax)


def test_an_image_at_the_models_size_is_served_like_the_raw_tensor(
    standin: Server, person_jpg: Path
) -> None:
    image = cv2.imread(str(person_jpg))
    rgb = cv2.cvtColor(cv2.resize(image, (300, 300)), cv2.COLOR_BGR2RGB)
    client = triton.InferenceServerClient(standin.address)
    request_input = triton.InferInput(INPUT, [1, 300, 300, 3], "UINT8")
    request_input.set_data_from_numpy(rgb[np.newaxis])
    raw = client.infer(MODEL, [request_input])
    client.close()
    raw_score, raw_box = top_person(
        {n: raw.as_numpy(n) for n in ("detection_scores", "detection_classes", "detection_boxes")}
    )
    # The model takes RGB; OVMS hands over the channels as the JPEG decodes (BGR order), so
    # the client encodes the RGB array as if it were BGR, as ovms_client does.
    ok, data = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    score, box = top_person(triton_infer(standin, MODEL, [data.tobytes()]))
    assert score == pytest.approx(raw_score, abs=0.05)
    assert box.iou(raw_box) > 0.9


def test_another_resolution_is_resized_only_for_an_nhwc_layout(
    standin: Server, person_jpg: Path
) -> None:
    image = cv2.cvtColor(cv2.imread(str(person_jpg)), cv2.COLOR_BGR2RGB)  # 640x424
    full = jpeg_of(image)
    # Default layout N...: OVMS does not resize and refuses the shape.
    assert raw_request(standin, MODEL, [1], [full]) == ("INVALID_ARGUMENT", "Invalid input shape")
    # Layout NHWC: resized to 300x300 on the server; the person is found.
    score, box = top_person(triton_infer(standin, MODEL_NHWC, [full]))
    assert score > 0.9
    assert box.iou(Box(183 / 640, 100 / 424, 275 / 640, 385 / 424)) > 0.6


@pytest.mark.parametrize(
    ("model", "shape", "contents", "raw", "expected"),
    [
        (
            MODEL_NCHW,
            [1],
            "person",
            None,
            (
                "INVALID_ARGUMENT",
                "Received binary image input but resource not configured to accept NHWC layout",
            ),
        ),
        (
            MODEL,
            [1, 300, 300, 3],
            "person",
            None,
            (
                "INVALID_ARGUMENT",
                (
                    "Invalid number of shape dimensions - Expected number of input shape "
                    f"dimensions: 1; Actual: 4; input name: {INPUT}"
                ),
            ),
        ),
        (
            MODEL,
            [2],
            "person2",
            None,
            (
                "INVALID_ARGUMENT",
                f"Invalid input batch size - Expected: 1; Actual: 2; input name: {INPUT}",
            ),
        ),
        # In raw_input_contents OVMS's message counts bytes_contents, hence "Actual: 0".
        (
            MODEL,
            [2],
            None,
            "person2",
            (
                "INVALID_ARGUMENT",
                f"Invalid input batch size - Expected: 1; Actual: 0; input name: {INPUT}",
            ),
        ),
        (MODEL, [2], "person", None, ("INVALID_ARGUMENT", "Invalid input batch size")),
        (
            MODEL,
            [1],
            None,
            "truncated",
            ("INVALID_ARGUMENT", "Inputs inside buffer does not match expected format."),
        ),
        (MODEL, [1], "empty", None, ("INVALID_ARGUMENT", "Bytes contents is empty")),
        (
            MODEL,
            [1],
            "gray",
            None,
            ("INVALID_ARGUMENT", "Invalid number of channels in binary input"),
        ),
        # OVMS maps IMAGE_PARSING_FAILED to no gRPC code: UNKNOWN "Unknown error".
        (MODEL, [1], "text", None, ("UNKNOWN", "Unknown error")),
    ],
    ids=[
        "nchw-layout",
        "tensor-shape",
        "two-images",
        "two-images-raw",
        "count-mismatch",
        "truncated-raw",
        "empty",
        "grayscale",
        "not-an-image",
    ],
)
def test_bad_binary_inputs_get_ovms_errors(
    standin: Server,
    person_jpg: Path,
    model: str,
    shape: list[int],
    contents: str | None,
    raw: str | None,
    expected: tuple[str, str],
) -> None:
    person = jpeg_of(cv2.imread(str(person_jpg)), (300, 300))
    gray = jpeg_of(cv2.cvtColor(cv2.imread(str(person_jpg)), cv2.COLOR_BGR2GRAY), (300, 300))
    payloads: dict[str, list[bytes]] = {
        "person": [person],
        "person2": [person, person],
        "empty": [b""],
        "gray": [gray],
        "text": [b"not an image"],
    }

    def framed(images: list[bytes]) -> bytes:
        return b"".join(struct.pack("<I", len(image)) + image for image in images)

    raw_bytes = None
    if raw == "truncated":
        raw_bytes = struct.pack("<I", len(person) + 10) + person
    elif raw is not None:
        raw_bytes = framed(payloads[raw])
    got = raw_request(standin, model, shape, payloads[contents] if contents else None, raw_bytes)
    assert got == expected
