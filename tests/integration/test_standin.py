"""Conformance of the OVMS stand-in image, driven in its container with the real clients.

One container serves the whole module; the reload tests run in file order against it and
change its mounted config directory and a second model repository on the host side.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import grpc
import numpy as np
import ovmsclient
import pytest
import requests
import tritonclient.grpc as triton
from media import PERSON_BODY, Box
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

MODEL = "person-detection"
TINY = "tiny"
BAD_DEVICE = "tiny-bad-device"
DEADLINE_S = 60.0
PERSON_CLASS = 1
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str, logs: Callable[[], str]) -> T:
    """Poll until check() returns something truthy; fail with the container's log tail."""
    deadline = time.monotonic() + DEADLINE_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (requests.RequestException, grpc.RpcError, InferenceServerException) as exc:
            last = exc
        time.sleep(0.25)
    tail = "\n".join(logs().splitlines()[-40:])
    raise AssertionError(f"timed out after {DEADLINE_S:.0f} s waiting for {what} ({last})\n{tail}")


def save_tiny_model(directory: Path, add: float) -> None:
    """y = relu(x + add) for x of shape [1, 4]: small, and tells its version by its output."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, 4], ov.Type.f32, name="x")
    x.output(0).get_tensor().set_names({"x"})
    y = ops.relu(ops.add(x, ops.constant(np.full([1, 4], add, np.float32))))
    y.output(0).get_tensor().set_names({"y"})
    staging = directory.with_name(f".{directory.name}.staging")
    staging.mkdir(parents=True)
    ov.save_model(ov.Model([y], [x], "tiny"), str(staging / "model.xml"))
    for path in (staging, *staging.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    # The version directory appears whole, the way a deployment should publish it.
    staging.rename(directory)


def model_entry(name: str, base_path: str, **extra: Any) -> dict[str, Any]:
    return {"config": {"name": name, "base_path": base_path, **extra}}


PERSON_ENTRY = model_entry(
    MODEL, f"/models/{MODEL}", plugin_config={"INFERENCE_PRECISION_HINT": "f32"}, nireq=2
)


@dataclass
class Standin:
    container: Any
    config_dir: Path
    extra_repo: Path
    grpc_url: str
    rest_url: str

    def logs(self) -> str:
        return self.container.logs().decode(errors="replace")

    def write_config(self, document: dict[str, Any] | str) -> None:
        text = document if isinstance(document, str) else json.dumps(document, indent=2)
        staging = self.config_dir / ".config.json.new"
        staging.write_text(text)
        staging.chmod(0o644)
        os.replace(staging, self.config_dir / "config.json")

    def rest(self, path: str) -> requests.Response:
        return requests.get(f"{self.rest_url}{path}", timeout=10)

    def states(self, name: str) -> dict[int, str]:
        response = self.rest(f"/v1/models/{name}")
        if response.status_code != 200:
            return {}
        entries = response.json()["model_version_status"]
        return {int(e["version"]): e["state"] for e in entries}

    def wait_states(self, name: str, wanted: dict[int, str]) -> None:
        wait_for(lambda: self.states(name) == wanted, f"{name} versions {wanted}", self.logs)

    def metrics(self) -> str:
        response = self.rest("/metrics")
        response.raise_for_status()
        return response.text


def published(container: Any, port: str) -> int:
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"].get(port) or []
    return int(bindings[0]["HostPort"]) if bindings else 0


@pytest.fixture(scope="module")
def standin(docker_client, built_images, model_repo, tmp_path_factory) -> Iterator[Standin]:
    config_dir = tmp_path_factory.mktemp("standin-config")
    extra_repo = tmp_path_factory.mktemp("standin-extra-repo")
    config_dir.chmod(0o755)
    extra_repo.chmod(0o755)
    save_tiny_model(extra_repo / TINY / "1", 1.0)
    (extra_repo / TINY).chmod(0o755)
    (config_dir / "config.json").write_text(json.dumps({"model_config_list": [PERSON_ENTRY]}))
    (config_dir / "config.json").chmod(0o644)
    container = docker_client.containers.run(
        built_images["standin"],
        command=[
            "--config_path",
            "/config/config.json",
            "--port",
            "9000",
            "--rest_port",
            "8000",
            "--metrics_enable",
            "--file_system_poll_wait_seconds",
            "1",
        ],
        detach=True,
        read_only=True,
        tmpfs={"/tmp": ""},
        ports={"9000/tcp": ("127.0.0.1", None), "8000/tcp": ("127.0.0.1", None)},
        volumes={
            str(model_repo): {"bind": "/models", "mode": "ro"},
            str(extra_repo): {"bind": "/extra", "mode": "ro"},
            str(config_dir): {"bind": "/config", "mode": "ro"},
        },
    )
    try:
        grpc_port = wait_for(lambda: published(container, "9000/tcp"), "gRPC port", lambda: "")
        rest_port = wait_for(lambda: published(container, "8000/tcp"), "REST port", lambda: "")
        server = Standin(
            container,
            config_dir,
            extra_repo,
            f"127.0.0.1:{grpc_port}",
            f"http://127.0.0.1:{rest_port}",
        )
        wait_for(
            lambda: server.rest("/v2/health/ready").status_code == 200, "readiness", server.logs
        )
        yield server
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def frame(person_jpg: Path) -> np.ndarray:
    image = cv2.imread(str(person_jpg))
    assert image is not None, f"OpenCV cannot read {person_jpg}"
    rgb = cv2.cvtColor(cv2.resize(image, (300, 300)), cv2.COLOR_BGR2RGB)
    return rgb[np.newaxis]


@pytest.fixture(scope="module")
def person_box(person_jpg: Path) -> Box:
    height, width = cv2.imread(str(person_jpg)).shape[:2]
    x0, y0, x1, y1 = PERSON_BODY
    return Box(x0 / width, y0 / height, x1 / width, y1 / height)


@pytest.fixture(scope="module")
def tfs(standin: Standin):
    return ovmsclient.make_grpc_client(standin.grpc_url)


@pytest.fixture(scope="module")
def kserve(standin: Standin) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(standin.grpc_url)


def people(outputs: dict[str, np.ndarray]) -> list[tuple[float, Box]]:
    """(score, box) of person detections over 0.5; boxes come as ymin, xmin, ymax, xmax."""
    found = []
    for score, cls, (ymin, xmin, ymax, xmax) in zip(
        outputs["detection_scores"][0],
        outputs["detection_classes"][0],
        outputs["detection_boxes"][0],
        strict=True,
    ):
        if score > 0.5 and int(cls) == PERSON_CLASS:
            found.append((float(score), Box(float(xmin), float(ymin), float(xmax), float(ymax))))
    return found


def kserve_outputs(result: Any) -> dict[str, np.ndarray]:
    names = ("detection_scores", "detection_classes", "detection_boxes", "num_detections")
    return {name: result.as_numpy(name) for name in names}


def image_input(frame: np.ndarray, datatype: str = "UINT8") -> triton.InferInput:
    tensor = triton.InferInput("image_tensor", list(frame.shape), datatype)
    tensor.set_data_from_numpy(frame)
    return tensor


def metric(text: str, family: str, labels: dict[str, str]) -> float:
    """Value of the one series of `family` whose labels are exactly `labels`."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)\{(.*)\} (\S+)", line)
        if not match or match.group(1) != family:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        if found == labels:
            return float(match.group(3))
    raise AssertionError(f"no series {family}{labels} in /metrics")


# ---- the image itself ----


def test_image_runs_as_uid_5000_with_ovms_entrypoint(docker_client, built_images):
    config = docker_client.images.get(built_images["standin"]).attrs["Config"]
    assert config["User"] == "5000"
    assert config["Entrypoint"] == ["/ovms/bin/ovms"]
    assert {"9000/tcp", "8000/tcp"} <= set(config["ExposedPorts"])


# ---- TensorFlow Serving API through ovmsclient ----


def test_tfs_model_status_is_available(tfs):
    assert tfs.get_model_status(MODEL) == {
        1: {"state": "AVAILABLE", "error_code": 0, "error_message": "OK"}
    }


def test_tfs_metadata_describes_the_model(tfs):
    metadata = tfs.get_model_metadata(MODEL)
    assert metadata["model_version"] == 1
    assert metadata["inputs"] == {"image_tensor": {"shape": [1, 300, 300, 3], "dtype": "DT_UINT8"}}
    assert metadata["outputs"]["detection_boxes"] == {"shape": [1, 100, 4], "dtype": "DT_FLOAT"}
    assert set(metadata["outputs"]) == {
        "detection_boxes",
        "detection_scores",
        "detection_classes",
        "num_detections",
    }


def test_tfs_predict_finds_the_person(tfs, frame, person_box):
    detections = people(tfs.predict({"image_tensor": frame}, MODEL))
    assert len(detections) == 1, detections
    score, box = detections[0]
    assert score > 0.5
    assert box.iou(person_box) > 0.7, (box, person_box)


def test_concurrent_predicts_all_get_the_same_answer(tfs, frame):
    expected = tfs.predict({"image_tensor": frame}, MODEL)["detection_scores"]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(
                lambda _: tfs.predict({"image_tensor": frame}, MODEL)["detection_scores"], range(12)
            )
        )
    for scores in results:
        np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_tfs_unknown_model_is_not_found(tfs, frame):
    with pytest.raises(
        ovmsclient.ModelNotFoundError, match="Model with requested name is not found"
    ):
        tfs.predict({"image_tensor": frame}, "no-such-model")
    with pytest.raises(ovmsclient.ModelNotFoundError):
        tfs.get_model_status("no-such-model")


def test_tfs_wrong_shape_and_dtype_are_invalid_input(tfs, frame):
    with pytest.raises(ovmsclient.InvalidInputError) as shape_error:
        tfs.predict({"image_tensor": frame[:, :, :, :2]}, MODEL)
    assert "Invalid input shape - Expected: (1,300,300,3); Actual: (1,300,300,2)" in str(
        shape_error.value
    )
    with pytest.raises(ovmsclient.InvalidInputError) as rank_error:
        tfs.predict({"image_tensor": frame[0]}, MODEL)
    assert "Invalid number of shape dimensions" in str(rank_error.value)
    with pytest.raises(ovmsclient.InvalidInputError) as dtype_error:
        tfs.predict({"image_tensor": frame.astype(np.float32)}, MODEL)
    assert "Invalid input precision - Expected: U8; Actual: FP32" in str(dtype_error.value)
    with pytest.raises(ovmsclient.InvalidInputError, match="Missing input with specific name"):
        tfs.predict({"image": frame}, MODEL)


# ---- KServe API through tritonclient ----


def test_kserve_health_and_model_readiness(kserve):
    assert kserve.is_server_live()
    assert kserve.is_server_ready()
    assert kserve.is_model_ready(MODEL)
    assert kserve.is_model_ready(MODEL, "1")
    metadata = kserve.get_server_metadata()
    assert metadata.name == "OpenVINO Model Server"


def test_kserve_metadata_describes_the_model(kserve):
    metadata = kserve.get_model_metadata(MODEL)
    assert metadata.name == MODEL
    assert list(metadata.versions) == ["1"]
    assert metadata.platform == "OpenVINO"
    inputs = [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs]
    assert inputs == [("image_tensor", "UINT8", [1, 300, 300, 3])]
    assert {t.name: t.datatype for t in metadata.outputs}["detection_scores"] == "FP32"


def test_kserve_infer_matches_tfs_predict(kserve, tfs, frame, person_box):
    result = kserve.infer(MODEL, [image_input(frame)])
    assert result.get_response().model_version == "1"
    outputs = kserve_outputs(result)
    via_tfs = tfs.predict({"image_tensor": frame}, MODEL)
    for name, array in outputs.items():
        np.testing.assert_allclose(array, via_tfs[name], rtol=1e-5, atol=1e-6)
    detections = people(outputs)
    assert len(detections) == 1
    assert detections[0][1].iou(person_box) > 0.7


def test_kserve_infer_accepts_typed_contents(standin, kserve, frame):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(standin.grpc_url))
    request = service_pb2.ModelInferRequest(model_name=MODEL, id="typed-1")
    tensor = request.inputs.add(name="image_tensor", datatype="UINT8", shape=frame.shape)
    tensor.contents.uint_contents.extend(frame.ravel().tolist())
    response = stub.ModelInfer(request, timeout=30)
    assert response.id == "typed-1"
    assert len(response.raw_output_contents) == len(response.outputs)
    by_name = {
        out.name: np.frombuffer(raw, np.float32).reshape(list(out.shape))
        for out, raw in zip(response.outputs, response.raw_output_contents, strict=True)
    }
    raw_result = kserve_outputs(kserve.infer(MODEL, [image_input(frame)]))
    np.testing.assert_allclose(
        by_name["detection_scores"], raw_result["detection_scores"], rtol=1e-5
    )


def test_kserve_errors_carry_ovms_codes(kserve, frame):
    with pytest.raises(InferenceServerException) as missing:
        kserve.infer("no-such-model", [image_input(frame)])
    assert missing.value.status() == "StatusCode.NOT_FOUND"
    assert "Model with requested name is not found" in missing.value.message()
    with pytest.raises(InferenceServerException) as shape:
        kserve.infer(MODEL, [image_input(frame[:, :150])])
    assert shape.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "Invalid input shape" in shape.value.message()
    with pytest.raises(InferenceServerException) as dtype:
        kserve.infer(MODEL, [image_input(frame.astype(np.float32), "FP32")])
    assert dtype.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "Invalid input precision - Expected: U8; Actual: FP32" in dtype.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        kserve.is_model_ready("no-such-model")
    assert unknown.value.status() == "StatusCode.NOT_FOUND"


# ---- REST ----


def test_rest_status_health_and_metadata(standin):
    config = standin.rest("/v1/config")
    assert config.status_code == 200
    assert config.json() == {
        MODEL: {
            "model_version_status": [
                {
                    "version": "1",
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": "OK"},
                }
            ]
        }
    }
    assert standin.rest(f"/v1/models/{MODEL}").json() == config.json()[MODEL]
    assert standin.rest(f"/v1/models/{MODEL}/versions/1").json() == config.json()[MODEL]
    missing_version = standin.rest(f"/v1/models/{MODEL}/versions/7")
    assert missing_version.status_code == 404
    assert missing_version.json() == {"error": "Model with requested version is not found"}
    signature = standin.rest(f"/v1/models/{MODEL}/metadata").json()["metadata"]["signature_def"]
    inputs = signature["signatureDef"]["serving_default"]["inputs"]
    assert inputs["image_tensor"]["dtype"] == "DT_UINT8"
    assert standin.rest("/v2/health/live").status_code == 200
    assert standin.rest("/v2/health/ready").status_code == 200
    assert standin.rest(f"/v2/models/{MODEL}/ready").status_code == 200
    assert standin.rest(f"/v2/models/{MODEL}/versions/1/ready").status_code == 200
    unknown = standin.rest("/v2/models/no-such-model/ready")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "Model with requested name is not found"}
    kserve_metadata = standin.rest(f"/v2/models/{MODEL}").json()
    assert kserve_metadata["inputs"] == [
        {"name": "image_tensor", "datatype": "UINT8", "shape": [1, 300, 300, 3]}
    ]


def test_metrics_count_the_requests_made(standin, tfs, kserve, frame):
    predict = {
        "api": "TensorFlowServing",
        "interface": "gRPC",
        "method": "Predict",
        "name": MODEL,
        "version": "1",
    }
    infer = {
        "api": "KServe",
        "interface": "gRPC",
        "method": "ModelInfer",
        "name": MODEL,
        "version": "1",
    }
    status = {
        "api": "TensorFlowServing",
        "interface": "REST",
        "method": "GetModelStatus",
        "name": MODEL,
    }
    timing = {"interface": "gRPC", "name": MODEL, "version": "1"}
    before = standin.metrics()
    for _attempt in range(3):
        tfs.predict({"image_tensor": frame}, MODEL)
    kserve.infer(MODEL, [image_input(frame)])
    kserve.infer(MODEL, [image_input(frame)])
    with pytest.raises(ovmsclient.InvalidInputError):
        tfs.predict({"image_tensor": frame[:, :10]}, MODEL)
    standin.rest(f"/v1/models/{MODEL}")
    after = standin.metrics()

    def delta(name: str, labels: dict[str, str]) -> float:
        return metric(after, name, labels) - metric(before, name, labels)

    assert delta("ovms_requests_success", predict) == 3
    assert delta("ovms_requests_fail", predict) == 1
    assert delta("ovms_requests_success", infer) == 2
    assert delta("ovms_requests_fail", infer) == 0
    assert delta("ovms_requests_success", status) == 1
    assert delta("ovms_request_time_us_count", timing) == 5
    assert delta("ovms_inference_time_us_count", {"name": MODEL, "version": "1"}) == 5
    per_version = {"name": MODEL, "version": "1"}
    assert metric(after, "ovms_current_requests", per_version) == 0
    assert metric(after, "ovms_streams", per_version) >= 1
    assert "# TYPE ovms_inference_time_us histogram" in after
    assert "# TYPE ovms_requests_success counter" in after


# ---- online config changes (run in this order) ----


def test_reload_adds_a_model(standin, kserve):
    standin.write_config(
        {
            "model_config_list": [
                PERSON_ENTRY,
                model_entry(TINY, f"/extra/{TINY}"),
                model_entry(BAD_DEVICE, f"/extra/{TINY}", target_device="NO_SUCH_DEVICE"),
            ]
        }
    )
    standin.wait_states(TINY, {1: "AVAILABLE"})
    x = np.array([[-3.0, -1.0, 0.0, 2.0]], np.float32)
    tensor = triton.InferInput("x", [1, 4], "FP32")
    tensor.set_data_from_numpy(x)
    result = kserve.infer(TINY, [tensor])
    np.testing.assert_allclose(result.as_numpy("y"), np.maximum(x + 1.0, 0))
    assert standin.states(MODEL) == {1: "AVAILABLE"}


def test_unknown_target_device_leaves_the_version_loading(standin, tfs, kserve):
    standin.wait_states(BAD_DEVICE, {1: "LOADING"})
    assert tfs.get_model_status(BAD_DEVICE) == {
        1: {"state": "LOADING", "error_code": 2, "error_message": "UNKNOWN"}
    }
    assert kserve.is_server_ready()


def test_new_version_directory_takes_over(standin, kserve, tfs):
    save_tiny_model(standin.extra_repo / TINY / "2", 5.0)
    standin.wait_states(TINY, {1: "END", 2: "AVAILABLE"})
    x = np.array([[-3.0, -1.0, 0.0, 2.0]], np.float32)
    tensor = triton.InferInput("x", [1, 4], "FP32")
    tensor.set_data_from_numpy(x)
    result = kserve.infer(TINY, [tensor])
    assert result.get_response().model_version == "2"
    np.testing.assert_allclose(result.as_numpy("y"), np.maximum(x + 5.0, 0))
    with pytest.raises(InferenceServerException) as retired:
        kserve.infer(TINY, [tensor], model_version="1")
    assert retired.value.status() == "StatusCode.NOT_FOUND"
    assert "Model with requested version is retired" in retired.value.message()


def test_broken_config_on_reload_keeps_the_old_models(standin, tfs, frame):
    standin.write_config(
        {
            "model_config_list": [
                {"config": {"name": MODEL, "base_path": f"/models/{MODEL}", "nireqs": 1}}
            ]
        }
    )
    wait_for(
        lambda: "Keyword:additionalProperties" in standin.logs(),
        "the schema error in the log",
        standin.logs,
    )
    assert standin.states(TINY) == {1: "END", 2: "AVAILABLE"}
    assert len(people(tfs.predict({"image_tensor": frame}, MODEL))) == 1


def test_removing_a_model_from_config_unloads_it(standin, kserve):
    standin.write_config({"model_config_list": [PERSON_ENTRY]})
    standin.wait_states(TINY, {1: "END", 2: "END"})
    with pytest.raises(InferenceServerException) as gone:
        kserve.is_model_ready(TINY)
    assert gone.value.status() == "StatusCode.NOT_FOUND"
    assert kserve.is_model_ready(MODEL)


# ---- a second server: single-model mode, every model failing, metrics and TFS API off ----


def test_single_model_server_is_ready_with_its_model_failed_and_tfs_api_off(
    docker_client, built_images, tmp_path
):
    tmp_path.chmod(0o755)
    save_tiny_model(tmp_path / TINY / "1", 1.0)
    (tmp_path / TINY).chmod(0o755)
    container = docker_client.containers.run(
        built_images["standin"],
        command=[
            "--model_name",
            TINY,
            "--model_path",
            f"/models/{TINY}",
            "--target_device",
            "NO_SUCH_DEVICE",
            "--rest_port",
            "8000",
            "--port",
            "9000",
        ],
        detach=True,
        environment={"OVMS_STANDIN_TFS_API": "off"},
        ports={"8000/tcp": ("127.0.0.1", None), "9000/tcp": ("127.0.0.1", None)},
        volumes={str(tmp_path): {"bind": "/models", "mode": "ro"}},
    )
    try:

        def logs() -> str:
            return container.logs().decode(errors="replace")

        port = wait_for(lambda: published(container, "8000/tcp"), "REST port", logs)
        url = f"http://127.0.0.1:{port}"
        wait_for(
            lambda: requests.get(f"{url}/v2/health/ready", timeout=10).status_code == 200,
            "readiness with a failed model",
            logs,
        )
        status = requests.get(f"{url}/v1/models/{TINY}", timeout=10).json()
        assert status["model_version_status"] == [
            {
                "version": "1",
                "state": "LOADING",
                "status": {"error_code": "UNKNOWN", "error_message": "UNKNOWN"},
            }
        ]
        ready = requests.get(f"{url}/v2/models/{TINY}/ready", timeout=10)
        assert ready.status_code == 404
        assert ready.json() == {"error": "Model with requested version is not found"}
        metrics = requests.get(f"{url}/metrics", timeout=10)
        assert metrics.status_code == 400
        assert metrics.json() == {"error": "Invalid request URL"}
        grpc_port = wait_for(lambda: published(container, "9000/tcp"), "gRPC port", logs)
        kserve = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        assert kserve.is_server_ready()
        with pytest.raises(ConnectionError, match="StatusCode.UNIMPLEMENTED|Method not found"):
            ovmsclient.make_grpc_client(f"127.0.0.1:{grpc_port}").get_model_status(TINY)
    finally:
        container.remove(force=True)


# ---- start-up failures ----


def run_to_exit(docker_client, image: str, command: list[str], **kwargs: Any) -> tuple[int, str]:
    container = docker_client.containers.run(image, command=command, detach=True, **kwargs)
    try:
        result = container.wait(timeout=DEADLINE_S)
        return int(result["StatusCode"]), container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def test_broken_config_at_startup_exits_non_zero(docker_client, built_images, tmp_path):
    tmp_path.chmod(0o755)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_config_list": [{"config": {"name": "m", "bogus": 1}}]}))
    config.chmod(0o644)
    code, logs = run_to_exit(
        docker_client,
        built_images["standin"],
        ["--config_path", "/config/config.json", "--port", "9000"],
        volumes={str(tmp_path): {"bind": "/config", "mode": "ro"}},
    )
    assert code != 0, logs
    assert "Couldn't start model manager" in logs


def test_unknown_flag_exits_non_zero(docker_client, built_images):
    code, logs = run_to_exit(
        docker_client, built_images["standin"], ["--config_path", "/c.json", "--no_such_flag", "1"]
    )
    assert code == 64, logs
    assert logs == "error parsing options - unmatched arguments: --no_such_flag, 1, \n"
