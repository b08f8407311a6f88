"""The module as Ansible runs it: arguments in, one JSON result out."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.edge_retail.ovms.plugins.modules import model_status
from ansible_collections.edge_retail.ovms.tests.unit.plugins.grpc_fakes import (
    NAME_MISSING,
    ScriptedServer,
    TlsFiles,
    Version,
)


def run(capsys: pytest.CaptureFixture[str], **args: Any) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        model_status.main()
    result = json.loads(capsys.readouterr().out)
    assert (exited.value.code != 0) == bool(result.get("failed"))
    return result


@pytest.mark.parametrize(("args", "expected"), [
    ({"models": ["m"]}, "missing required arguments: host"),
    ({"host": "h", "models": ["m"], "api": "grpc"},
     "value of api must be one of: kserve, tfs, got: grpc"),
    ({"host": "h", "models": ["m"], "ca_cert": "/c", "client_cert": "/c"},
     "parameters are required together: client_cert, client_key"),
    ({"host": "h", "models": ["m"], "server_name": "ovms.test"},
     "missing parameter(s) required by 'server_name': ca_cert"),
    ({"host": "h", "models": ["m"], "client_cert": "/c", "client_key": "/k"},
     "missing parameter(s) required by 'client_cert': ca_cert"),
    ({"host": "h", "models": []}, "models is empty; expected at least one model name"),
    ({"host": "h", "models": [{"name": "m", "version": -1}]},
     "models[0] version is -1; expected a positive integer"),
    ({"host": "h", "models": ["m"], "port": 0}, "port is 0; expected 1-65535"),
    ({"host": "h", "models": ["m"], "timeout": -1}, "timeout is -1.0; expected 0 or more seconds"),
    ({"host": "h", "models": ["m"], "interval": 0},
     "interval is 0.0; expected more than 0 seconds"),
    ({"host": "h", "models": ["m"], "ca_cert": "/nonexistent/ca.crt"},
     "ca_cert is /nonexistent/ca.crt, which is not a file on this host"),
])
def test_invalid_arguments_fail_naming_the_option(
        capsys: pytest.CaptureFixture[str], args: dict[str, Any], expected: str) -> None:
    result = run(capsys, **args)
    assert result["failed"]
    assert expected in result["msg"]


def test_every_argument_problem_is_reported_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, host="h", port=70000, models=[{"name": ""}], ca_cert="/nonexistent")
    assert result["msg"] == (
        "port is 70000; expected 1-65535; models[0] has an empty name; expected the model name "
        "from the OVMS config; ca_cert is /nonexistent, which is not a file on this host; "
        "expected the path of a PEM file")


@pytest.mark.parametrize("api", ["kserve", "tfs"])
@pytest.mark.parametrize("check_mode", [False, True])
def test_available_models_succeed_without_change(
        capsys: pytest.CaptureFixture[str], scripted_server: ScriptedServer, api: str,
        check_mode: bool) -> None:
    result = run(capsys, host="127.0.0.1", port=scripted_server.port, api=api,
                 models=["person-detection", {"name": "face-detection", "version": 2}],
                 _ansible_check_mode=check_mode)
    assert not result.get("failed"), result["msg"]
    assert result["changed"] is False
    assert result["api"] == api
    assert result["address"] == f"127.0.0.1:{scripted_server.port}"
    assert [(m["name"], m["requested_version"], m["available"]) for m in result["models"]] == [
        ("person-detection", None, True), ("face-detection", 2, True)]
    assert result["models"][1]["versions"][0]["state"] == "AVAILABLE"


@pytest.mark.parametrize("api", ["kserve", "tfs"])
def test_failure_lists_every_model_that_is_not_available(
        capsys: pytest.CaptureFixture[str], scripted_server: ScriptedServer, api: str) -> None:
    scripted_server.models["face-detection"][2] = Version("LOADING", 2, "UNKNOWN")
    result = run(capsys, host="127.0.0.1", port=scripted_server.port, api=api, timeout=0,
                 models=["person-detection", "shelf-detection",
                         {"name": "face-detection", "version": 2}])
    assert result["failed"]
    assert result["msg"].startswith(f"2 of 3 models on OVMS at 127.0.0.1:{scripted_server.port} "
                                    f"({api} API) were not AVAILABLE after ")
    assert f"'shelf-detection': NOT_FOUND: {NAME_MISSING}" in result["msg"]
    state = "LOADING (error 2: UNKNOWN)" if api == "tfs" else "NOT_READY (error 14: "
    assert f"'face-detection' version 2: version 2 is {state}" in result["msg"]
    assert "person-detection" not in result["msg"]
    assert [m["available"] for m in result["models"]] == [True, False, False]


@pytest.mark.parametrize("api", ["kserve", "tfs"])
def test_unreachable_server_names_the_address(
        capsys: pytest.CaptureFixture[str], closed_port: int, api: str) -> None:
    result = run(capsys, host="127.0.0.1", port=closed_port, api=api, timeout=0, models=["m"])
    assert result["failed"]
    assert result["msg"].startswith(
        f"Could not query OVMS at 127.0.0.1:{closed_port} over the {api} gRPC API within 0 s: "
        "UNAVAILABLE: ")
    assert "Connection refused" in result["msg"]
    assert result["models"] == []


def test_mutual_tls_never_shows_the_key(
        capsys: pytest.CaptureFixture[str], tls_server: ScriptedServer,
        tls_files: TlsFiles) -> None:
    result = run(capsys, host="127.0.0.1", port=tls_server.port, models=["person-detection"],
                 ca_cert=str(tls_files.ca_cert), client_cert=str(tls_files.client_cert),
                 client_key=str(tls_files.client_key), server_name=tls_files.server_name)
    assert not result.get("failed"), result["msg"]
    key_body = tls_files.client_key.read_text().splitlines()[1]
    assert key_body not in json.dumps(result)


def _collections_dir() -> Path:
    # .../ansible_collections/edge_retail/ovms/plugins/modules/model_status.py
    return Path(model_status.__file__).parents[5]


@pytest.mark.parametrize(("api", "blocked", "package"), [
    ("kserve", "tritonclient", "tritonclient[grpc]"),
    ("tfs", "ovmsclient", "ovmsclient"),
])
def test_missing_client_library_says_what_to_install(
        tmp_path: Path, closed_port: int, api: str, blocked: str, package: str) -> None:
    # A package that fails to import, shadowing the installed one, as on a host without it.
    (tmp_path / blocked).mkdir()
    message = f"No module named {blocked!r}"
    (tmp_path / blocked / "__init__.py").write_text(f"raise ImportError({message!r})\n")
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "host": "127.0.0.1", "port": closed_port, "api": api, "models": ["m"]}}))
    # Keep the caller's PYTHONPATH: ansible-test puts ansible itself there.
    path = [str(tmp_path), str(_collections_dir()), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))
    done = subprocess.run(
        [sys.executable, "-m", "ansible_collections.edge_retail.ovms.plugins.modules.model_status",
         str(args)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and done.stdout, done.stderr
    result = json.loads(done.stdout)
    assert result["msg"].startswith(
        f"Failed to import the required Python library ({package}) on ")
    assert f"api={api}" in result["msg"]
    assert "ansible_python_interpreter" in result["msg"]
    assert result["msg"].endswith(f"Import error: ImportError: {message}")
