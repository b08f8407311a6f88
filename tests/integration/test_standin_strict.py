"""The stand-in image is as strict as OVMS 2026.3+: flags and config keys it removed stop the
server at start-up, and a plugin_config key the target device does not support stops reading
the model list at that model (it and every model after it are not served). Driven in the
container over real gRPC and REST.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

DEADLINE_S = 90.0
PRECISION = {"INFERENCE_PRECISION_HINT": "f32"}
AUTO_PRECISION_ERROR = (
    "Plugin config key: INFERENCE_PRECISION_HINT not found in supported config keys for "
    "device: AUTO."
)
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


def save_tiny(directory: Path) -> None:
    """y = relu(x + 1) for x of shape [1, 4], published as a whole version directory."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, 4], ov.Type.f32, name="x")
    x.output(0).get_tensor().set_names({"x"})
    y = ops.relu(ops.add(x, ops.constant(np.ones([1, 4], np.float32))))
    y.output(0).get_tensor().set_names({"y"})
    staging = directory.with_name(f".{directory.name}.staging")
    staging.mkdir(parents=True)
    ov.save_model(ov.Model([y], [x], "tiny"), str(staging / "model.xml"))
    for path in (staging, *staging.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    staging.rename(directory)


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("strict-models")
    root.chmod(0o755)
    save_tiny(root / "tiny" / "1")
    (root / "tiny").chmod(0o755)
    return root


def entry(name: str, **extra: Any) -> dict[str, Any]:
    return {"config": {"name": name, "base_path": "/models/tiny", **extra}}


def write_config(config_dir: Path, *entries: dict[str, Any]) -> None:
    staging = config_dir / ".config.json.new"
    staging.write_text(json.dumps({"model_config_list": list(entries)}, indent=2))
    staging.chmod(0o644)
    os.replace(staging, config_dir / "config.json")


def published(container: Any, port: str) -> int:
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"].get(port) or []
    return int(bindings[0]["HostPort"]) if bindings else 0


def run_to_exit(docker_client, image: str, command: list[str], **kwargs: Any) -> tuple[int, str]:
    container = docker_client.containers.run(image, command=command, detach=True, **kwargs)
    try:
        result = container.wait(timeout=DEADLINE_S)
        return int(result["StatusCode"]), container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def x_input() -> triton.InferInput:
    tensor = triton.InferInput("x", [1, 4], "FP32")
    tensor.set_data_from_numpy(np.array([[-3.0, -1.0, 0.0, 2.0]], np.float32))
    return tensor


def not_found(kserve: triton.InferenceServerClient, name: str) -> str:
    with pytest.raises(InferenceServerException) as missing:
        kserve.infer(name, [x_input()])
    assert missing.value.status() == "StatusCode.NOT_FOUND"
    return missing.value.message()


# ---- start-up exits ----


@pytest.mark.parametrize(
    ("flags", "unmatched"),
    [
        (["--stateful"], "--stateful, "),
        (["--idle_sequence_cleanup=true"], "--idle_sequence_cleanup=true, "),
        (["--low_latency_transformation", "true"], "--low_latency_transformation, true, "),
        (["--max_sequence_number", "100"], "--max_sequence_number, 100, "),
        (
            ["--sequence_cleaner_poll_wait_minutes", "5"],
            "--sequence_cleaner_poll_wait_minutes, 5, ",
        ),
    ],
)
def test_removed_flag_stops_the_server_with_ovms_text(
    docker_client, built_images, flags, unmatched
):
    code, logs = run_to_exit(
        docker_client,
        built_images["standin"],
        ["--config_path", "/config/config.json", "--port", "9000", *flags],
    )
    assert code == 64, logs
    assert logs == f"error parsing options - unmatched arguments: {unmatched}\n"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("stateful", True),
        ("idle_sequence_cleanup", True),
        ("low_latency_transformation", True),
        ("max_sequence_number", 100),
    ],
)
def test_removed_config_key_stops_the_server(
    docker_client, built_images, tmp_path, tiny_repo, key, value
):
    tmp_path.chmod(0o755)
    write_config(tmp_path, entry("tiny", **{key: value}))
    code, logs = run_to_exit(
        docker_client,
        built_images["standin"],
        ["--config_path", "/config/config.json", "--port", "9000"],
        volumes={
            str(tmp_path): {"bind": "/config", "mode": "ro"},
            str(tiny_repo): {"bind": "/models", "mode": "ro"},
        },
    )
    assert code == 1, logs
    assert (
        "JSON schema parse error:#/definitions/model_config/properties/config. "
        f"Keyword:additionalProperties Key: #/model_config_list/0/config/{key}"
    ) in logs
    assert "Couldn't start model manager" in logs


def test_single_model_with_unsupported_plugin_key_stops_the_server(
    docker_client, built_images, tiny_repo
):
    code, logs = run_to_exit(
        docker_client,
        built_images["standin"],
        [
            "--model_name",
            "tiny",
            "--model_path",
            "/models/tiny",
            "--target_device",
            "AUTO",
            "--plugin_config",
            json.dumps(PRECISION),
            "--port",
            "9000",
        ],
        volumes={str(tiny_repo): {"bind": "/models", "mode": "ro"}},
    )
    assert code == 1, logs
    lines = [line.split("] ", 1)[-1] for line in logs.splitlines()]
    start = lines.index(AUTO_PRECISION_ERROR)
    assert lines[start + 1] == "List of supported keys for this device:"
    assert "Plugin config contains unsupported keys" in lines[start:]
    assert "Couldn't start model manager" in lines[start:]
    assert "ovms::ModelManager::Start() Error: Model config is invalid" in lines[start:]


# ---- the model list stops at an unsupported plugin_config key (run in this order) ----


@dataclass
class Server:
    container: Any
    config_dir: Path
    kserve: triton.InferenceServerClient
    rest_url: str

    def logs(self) -> str:
        return self.container.logs().decode(errors="replace")

    def states(self, name: str) -> dict[int, str]:
        response = requests.get(f"{self.rest_url}/v1/models/{name}", timeout=10)
        if response.status_code != 200:
            return {}
        return {int(e["version"]): e["state"] for e in response.json()["model_version_status"]}

    def wait_states(self, wanted: dict[str, dict[int, str]]) -> None:
        wait_for(
            lambda: all(self.states(name) == states for name, states in wanted.items()),
            f"model states {wanted}",
            self.logs,
        )


@pytest.fixture(scope="module")
def server(docker_client, built_images, tiny_repo, tmp_path_factory) -> Iterator[Server]:
    config_dir = tmp_path_factory.mktemp("strict-config")
    config_dir.chmod(0o755)
    write_config(
        config_dir,
        entry("first", plugin_config=PRECISION),
        entry("auto-precision", target_device="AUTO", plugin_config=PRECISION),
        entry("after"),
    )
    container = docker_client.containers.run(
        built_images["standin"],
        command=[
            "--config_path",
            "/config/config.json",
            "--port",
            "9000",
            "--rest_port",
            "8000",
            "--file_system_poll_wait_seconds",
            "1",
        ],
        detach=True,
        read_only=True,
        tmpfs={"/tmp": ""},
        ports={"9000/tcp": ("127.0.0.1", None), "8000/tcp": ("127.0.0.1", None)},
        volumes={
            str(tiny_repo): {"bind": "/models", "mode": "ro"},
            str(config_dir): {"bind": "/config", "mode": "ro"},
        },
    )
    try:

        def logs() -> str:
            return container.logs().decode(errors="replace")

        grpc_port = wait_for(lambda: published(container, "9000/tcp"), "gRPC port", logs)
        rest_port = wait_for(lambda: published(container, "8000/tcp"), "REST port", logs)
        kserve = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        wait_for(kserve.is_server_ready, "readiness", logs)
        yield Server(container, config_dir, kserve, f"http://127.0.0.1:{rest_port}")
    finally:
        container.remove(force=True)


def test_at_start_the_model_and_every_later_one_are_not_served(server):
    server.wait_states({"first": {1: "AVAILABLE"}})
    result = server.kserve.infer("first", [x_input()])
    np.testing.assert_allclose(result.as_numpy("y"), [[0, 0, 1, 3]])
    for name in ("auto-precision", "after"):
        assert not_found(server.kserve, name) == "Model with requested name is not found"
    logs = server.logs()
    assert AUTO_PRECISION_ERROR in logs
    assert "Plugin config contains unsupported keys" in logs
    assert "Loading main OVMS config models failed." in logs


def test_fixed_config_serves_them_and_batch_cpu_works(server):
    write_config(
        server.config_dir,
        entry("first", plugin_config=PRECISION),
        entry(
            "auto-precision", target_device="AUTO", plugin_config={"PERFORMANCE_HINT": "LATENCY"}
        ),
        entry("after", target_device="BATCH:CPU(16)", plugin_config=PRECISION),
    )
    server.wait_states({name: {1: "AVAILABLE"} for name in ("first", "auto-precision", "after")})
    for name in ("auto-precision", "after"):
        result = server.kserve.infer(name, [x_input()])
        np.testing.assert_allclose(result.as_numpy("y"), [[0, 0, 1, 3]])


def test_unsupported_key_on_reload_unloads_that_model_and_the_later_ones(server):
    write_config(
        server.config_dir,
        entry("first", plugin_config=PRECISION),
        entry("auto-precision", target_device="AUTO", plugin_config=PRECISION),
        entry("after", target_device="BATCH:CPU(16)", plugin_config=PRECISION),
    )
    server.wait_states(
        {"first": {1: "AVAILABLE"}, "auto-precision": {1: "END"}, "after": {1: "END"}}
    )
    result = server.kserve.infer("first", [x_input()])
    np.testing.assert_allclose(result.as_numpy("y"), [[0, 0, 1, 3]])
    for name in ("auto-precision", "after"):
        assert not_found(server.kserve, name) == "Model with requested version is not found"
    reload = requests.post(f"{server.rest_url}/v1/config/reload", timeout=30)
    assert reload.status_code == 500
    assert reload.json() == {
        "error": "Reloading config file failed. Check server logs for more info."
    }
    assert server.states("after") == {1: "END"}
