"""edge_retail.ovms.model_status against the OVMS stand-in.

The module runs the way Ansible runs it (a separate Python process reading its arguments
from a file, and once through the real ``ansible`` command) against the stand-in serving
TFS and KServe gRPC on loopback, with OpenVINO loading the models tool's person detector.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests" / "ovms_standin"
MODULE = "ansible_collections.edge_retail.ovms.plugins.modules.model_status"
NAME_MISSING = "Model with requested name is not found"
FIRST_LOAD_TIMEOUT = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclasses.dataclass
class Standin:
    process: subprocess.Popen
    port: int
    rest_port: int
    log: Path

    def rest(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.rest_port}{path}", timeout=10) as r:
            return json.load(r)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_standin(config: Path, log: Path, port: int = 0,
                  env: dict[str, str] | None = None) -> Standin:
    port, rest_port = port or free_port(), free_port()
    command = [sys.executable, "-m", "ovms_standin", "--config_path", str(config),
               "--port", str(port), "--rest_port", str(rest_port),
               "--grpc_bind_address", "127.0.0.1", "--rest_bind_address", "127.0.0.1"]
    full_env = dict(os.environ, PYTHONPATH=str(STANDIN), **(env or {}))
    with log.open("w") as out:
        process = subprocess.Popen(command, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    return Standin(process, port, rest_port, log)


def write_config(path: Path, models: dict[str, Path]) -> Path:
    config = {"model_config_list": [
        {"config": {"name": name, "base_path": str(base)}} for name, base in models.items()]}
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def collections_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ansible_collections/edge_retail/ovms`` linking to this repository."""
    base = tmp_path_factory.mktemp("collections")
    link = base / "ansible_collections" / "edge_retail" / "ovms"
    link.parent.mkdir(parents=True)
    link.symlink_to(ROOT, target_is_directory=True)
    return base


def run_module(collections_dir: Path, tmp_path: Path, **args: Any) -> tuple[int, dict[str, Any]]:
    args_file = tmp_path / f"args-{time.monotonic_ns()}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    done = subprocess.run([sys.executable, "-m", MODULE, str(args_file)],
                          env=dict(os.environ, PYTHONPATH=str(collections_dir)),
                          capture_output=True, text=True, timeout=FIRST_LOAD_TIMEOUT + 60,
                          check=False)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def broken_model(directory: Path) -> Path:
    """A model whose only version directory holds an IR that OpenVINO cannot read."""
    version = directory / "1"
    version.mkdir(parents=True)
    (version / "model.xml").write_text("<?xml version=\"1.0\"?>\n<net name=\"cut\" version=\"11\">")
    (version / "model.bin").write_bytes(b"")
    return directory


def wait_for_failed_load(server: Standin, name: str) -> None:
    """Until the REST API shows the load error, so that later answers do not change."""
    deadline = time.monotonic() + FIRST_LOAD_TIMEOUT
    while time.monotonic() < deadline:
        statuses = server.rest("/v1/config")[name]["model_version_status"]
        if all(s["status"]["error_code"] != "OK" for s in statuses):
            return
        time.sleep(0.2)
    pytest.fail(f"{name} never reported a load error:\n{server.log.read_text()}")


@pytest.fixture(scope="module")
def standin(model_repo: Path, collections_dir: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standin]:
    """One stand-in serving the person detector and a model that fails to load."""
    tmp = tmp_path_factory.mktemp("standin")
    config = write_config(tmp / "config.json", {
        "person-detection": model_repo / "person-detection",
        "broken": broken_model(tmp / "broken"),
    })
    server = start_standin(config, tmp / "standin.log")
    try:
        # The module's own wait is what proves the first load; it is asserted in the tests.
        rc, result = run_module(collections_dir, tmp, host="127.0.0.1", port=server.port,
                                models=["person-detection"], timeout=FIRST_LOAD_TIMEOUT)
        assert rc == 0, f"{result['msg']}\nstand-in log:\n{server.log.read_text()}"
        wait_for_failed_load(server, "broken")
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("api", ["kserve", "tfs"])
def test_every_model_available(standin: Standin, collections_dir: Path, tmp_path: Path,
                               api: str) -> None:
    rc, result = run_module(collections_dir, tmp_path, host="127.0.0.1", port=standin.port,
                            api=api, models=["person-detection", {"name": "person-detection",
                                                                  "version": 1}], timeout=0)
    assert rc == 0, result["msg"]
    assert result["changed"] is False
    assert result["address"] == f"127.0.0.1:{standin.port}"
    whole, pinned = result["models"]
    assert whole["available"] and pinned["available"]
    assert [(v["version"], v["state"]) for v in whole["versions"]] == [(1, "AVAILABLE")]
    assert pinned["versions"][0]["version"] == 1


@pytest.mark.parametrize("api", ["kserve", "tfs"])
def test_missing_model_is_named(standin: Standin, collections_dir: Path, tmp_path: Path,
                                api: str) -> None:
    rc, result = run_module(collections_dir, tmp_path, host="127.0.0.1", port=standin.port,
                            api=api, models=["person-detection", "shelf-detection"], timeout=0)
    assert rc == 1
    assert result["msg"].startswith(f"1 of 2 models on OVMS at 127.0.0.1:{standin.port} ({api} "
                                    "API) were not AVAILABLE after ")
    assert f"'shelf-detection': NOT_FOUND: {NAME_MISSING}" in result["msg"]
    assert [m["available"] for m in result["models"]] == [True, False]


def test_failed_load_over_tfs_reports_the_server_state_and_error(
        standin: Standin, collections_dir: Path, tmp_path: Path) -> None:
    rc, result = run_module(collections_dir, tmp_path, host="127.0.0.1", port=standin.port,
                            api="tfs", models=["person-detection", "broken"], timeout=0)
    assert rc == 1
    # What the server says about the model on its REST API, to compare with.
    (server_view,) = standin.rest("/v1/config")["broken"]["model_version_status"]
    assert server_view["state"] != "AVAILABLE"
    (version,) = result["models"][1]["versions"]
    assert (version["version"], version["state"], version["error_message"]) == (
        int(server_view["version"]), server_view["state"], server_view["status"]["error_message"])
    assert result["msg"].endswith(
        f"'broken': version 1 is {version['state']} (error {version['error_code']}: "
        f"{version['error_message']}). The server log names the cause of a failed load.")


def test_failed_load_over_kserve_reports_the_server_text(
        standin: Standin, collections_dir: Path, tmp_path: Path) -> None:
    rc, result = run_module(collections_dir, tmp_path, host="127.0.0.1", port=standin.port,
                            models=["broken", {"name": "broken", "version": 1}], timeout=0)
    assert rc == 1
    assert result["msg"].startswith("2 of 2 models")
    # No version is AVAILABLE, so OVMS has no default version to report on.
    assert "'broken': NOT_FOUND: Model with requested version is not found" in result["msg"]
    assert ("'broken' version 1: version 1 is NOT_READY (error 14: Model with requested "
            "version is not loaded yet)") in result["msg"]


def test_waits_for_a_server_that_starts_later(model_repo: Path, collections_dir: Path,
                                              tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        args = tmp_path / "args.json"
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
            "host": "127.0.0.1", "port": port, "models": ["person-detection"],
            "timeout": FIRST_LOAD_TIMEOUT, "interval": 0.5}}))
        module = subprocess.Popen([sys.executable, "-m", MODULE, str(args)],
                                  env=dict(os.environ, PYTHONPATH=str(collections_dir)),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Hang up on the module's first attempt, so it has met no server before one starts.
        listener.settimeout(60)
        connection, _peer = listener.accept()
        connection.close()
    server = None
    try:
        config = write_config(tmp_path / "config.json",
                              {"person-detection": model_repo / "person-detection"})
        server = start_standin(config, tmp_path / "standin.log", port=port)
        out, err = module.communicate(timeout=FIRST_LOAD_TIMEOUT + 60)
    finally:
        module.kill()
        if server:
            server.stop()
    result = json.loads(out)
    assert module.returncode == 0, f"{result.get('msg')}\n{err}"
    assert result["models"][0]["available"]
    assert result["elapsed"] > 0


def test_tfs_against_a_server_without_that_api_says_to_use_kserve(
        model_repo: Path, collections_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json",
                          {"person-detection": model_repo / "person-detection"})
    server = start_standin(config, tmp_path / "standin.log", env={"OVMS_STANDIN_TFS_API": "off"})
    try:
        rc, result = run_module(collections_dir, tmp_path, host="127.0.0.1", port=server.port,
                                models=["person-detection"], timeout=FIRST_LOAD_TIMEOUT)
        assert rc == 0, result["msg"]
        rc, result = run_module(collections_dir, tmp_path, host="127.0.0.1", port=server.port,
                                api="tfs", models=["person-detection"], timeout=0)
    finally:
        server.stop()
    assert rc == 1
    assert result["msg"].startswith(f"Could not query OVMS at 127.0.0.1:{server.port} over the "
                                    "tfs gRPC API within 0 s: UNIMPLEMENTED: ")
    assert "serve only KServe (api: kserve)" in result["msg"]


def ansible_adhoc(collections_dir: Path, tmp_path: Path, args: dict[str, Any]) -> tuple[int, dict]:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_dir),
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
               ANSIBLE_HOME=str(tmp_path / "ansible-home"))
    done = subprocess.run(
        [sys.executable, "-m", "ansible.cli.adhoc", "localhost", "-m",
         "edge_retail.ovms.model_status", "-a", json.dumps(args),
         "-e", f"ansible_python_interpreter={sys.executable}"],
        env=env, capture_output=True, text=True, timeout=FIRST_LOAD_TIMEOUT, check=False)
    assert done.stdout, done.stderr
    (task,) = json.loads(done.stdout)["plays"][0]["tasks"]
    return done.returncode, task["hosts"]["localhost"]


def test_through_ansible(standin: Standin, collections_dir: Path, tmp_path: Path) -> None:
    rc, ok = ansible_adhoc(collections_dir, tmp_path, {
        "host": "127.0.0.1", "port": standin.port, "models": ["person-detection"]})
    assert rc == 0, ok.get("msg")
    assert ok["changed"] is False
    assert ok["models"][0]["available"]

    rc, failed = ansible_adhoc(collections_dir, tmp_path, {
        "host": "127.0.0.1", "port": standin.port, "api": "tfs", "timeout": 0,
        "models": ["person-detection", "shelf-detection"]})
    assert rc == 2
    assert failed["failed"]
    assert f"'shelf-detection': NOT_FOUND: {NAME_MISSING}" in failed["msg"]
