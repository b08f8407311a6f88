"""Bad inventories make `playbooks/site.yml` fail in its first play, before any change, with a
message that names the variable. Each case runs the real playbook (in check mode, against this
machine through the local connection) and reads the result through the JSON callback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()

BASE_VARS: dict[str, Any] = {
    "ansible_connection": "local",
    "ansible_python_interpreter": "/usr/bin/python3",
    # This machine has no systemd; the Docker Engine here is the test's own.
    "docker_engine_manage": False,
    "ovms_models_controller_cache_dir": str(CACHE / "models/cache"),
    "ovms_models_controller_repo_dir": str(CACHE / "models/repo"),
    "ovms_server_image_source": "archive",
    "ovms_server_image": "edge-retail/ovms-standin",
    "ovms_server_image_tag": "test",
    "ovms_server_image_archive": str(CACHE / "images/standin.tar"),
    "ovms_client_image_source": "archive",
    "ovms_client_image_archive": str(CACHE / "images/client.tar"),
    "ovms_client_input_files": [str(CACHE / "media/store-walk.mp4")],
}


def inventory(servers: list[str], clients: list[str], **overrides: Any) -> dict[str, Any]:
    return {
        "all": {
            "vars": {**BASE_VARS, **overrides},
            "children": {
                "ovms_servers": {"hosts": {h: None for h in servers}},
                "ovms_clients": {"hosts": {h: None for h in clients}},
            },
        }
    }


def run_site(tmp_path: Path, inv: dict[str, Any]) -> dict[str, Any]:
    return run_check(tmp_path, inv, "site.yml")


def run_check(tmp_path: Path, inv: dict[str, Any], playbook: str) -> dict[str, Any]:
    """playbooks/<playbook> in check mode against `inv`; it must fail. Its JSON result."""
    inv_file = tmp_path / "hosts.yml"
    inv_file.write_text(yaml.safe_dump(inv))
    env = {
        **os.environ,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_COLLECTIONS_PATH": str(CACHE / "collections"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "--check", "-i", str(inv_file),
         str(ROOT / "playbooks" / playbook)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert proc.returncode != 0, f"{playbook} accepted a bad inventory:\n{proc.stdout[-3000:]}"
    return json.loads(proc.stdout)


def failures(result: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(play index, task name, message) of every failed task result."""
    found = []
    for index, play in enumerate(result["plays"]):
        for task in play["tasks"]:
            for host_result in task["hosts"].values():
                items = host_result.get("results") or [host_result]
                for item in items:
                    if item.get("failed"):
                        found.append((index, task["task"]["name"], str(item.get("msg", ""))))
    return found


def changed_tasks(result: dict[str, Any]) -> list[str]:
    return [
        task["task"]["name"]
        for play in result["plays"]
        for task in play["tasks"]
        for host_result in task["hosts"].values()
        if host_result.get("changed")
    ]


CASES = {
    "empty server group": (
        inventory([], ["store1"]),
        "ovms_servers group is empty",
    ),
    "client without a server it can reach": (
        inventory(["store1"], ["store1", "till2"], ovms_client_server_host="nowhere"),
        'ovms_client_server_host is "nowhere", which is not in ovms_servers',
    ),
    "client with two servers to choose from": (
        inventory(["store1", "store2"], ["till2"]),
        ("till2 has no single OVMS server: several server hosts match (store1, store2), so the "
         "choice is ambiguous"),
    ),
    "client whose store has no server": (
        inventory(["store1"], ["till2"], ovms_store="north", ovms_client_store="south"),
        "till2 has no single OVMS server in store south: no server host matches",
    ),
    "model not in the catalog": (
        inventory(["store1"], ["store1"], ovms_models_list=[{"name": "no-such-model"}]),
        "ovms_models_list names no-such-model, not in the catalog",
    ),
    "duplicate model name": (
        inventory(["store1"], ["store1"],
                  ovms_models_list=[{"name": "person-detection"}, {"name": "person-detection"}]),
        "ovms_models_list names a model more than once: person-detection",
    ),
    "negative nireq": (
        inventory(["store1"], ["store1"],
                  ovms_models_list=[{"name": "person-detection", "nireq": -1}]),
        "nireq must be an integer >= 0, got -1",
    ),
    "unknown target_device": (
        inventory(["store1"], ["store1"],
                  ovms_models_list=[{"name": "person-detection", "target_device": "TPU"}]),
        "target_device TPU is not an OpenVINO device",
    ),
    "a port used twice": (
        inventory(["store1"], ["store1"], ovms_server_grpc_port=9000, ovms_server_rest_port=9000),
        "ovms_server_grpc_port (9000) and ovms_server_rest_port (9000) must be two different",
    ),
    "TFS client against an OVMS without that API": (
        inventory(["store1"], ["store1"], ovms_server_image="openvino/model_server",
                  ovms_server_image_source="pull", ovms_server_image_tag="2026.3",
                  ovms_client_api="tfs"),
        "ovms_client_api is tfs, but store1 runs openvino/model_server:2026.3",
    ),
    "server archive missing on the controller": (
        inventory(["store1"], ["store1"], ovms_server_image_archive="/nonexistent/ovms.tar"),
        'ovms_server_image_archive "/nonexistent/ovms.tar" is not a file on the controller',
    ),
    "server archive holding another image": (
        inventory(["store1"], ["store1"], ovms_server_image_archive=str(CACHE / "images/proxy.tar")),
        (f"ovms_server_image_archive: {CACHE / 'images/proxy.tar'} does not hold "
         "edge-retail/ovms-standin:test; it holds edge-retail/ovms-proxy:1.22-1"),
    ),
    "no model version kept": (
        inventory(["store1"], ["store1"], ovms_models_keep_versions=0),
        "ovms_models_keep_versions is 0; expected 1 or more",
    ),
    "server image ID that is not an ID": (
        inventory(["store1"], ["store1"], ovms_server_image_id="edge-retail/ovms-standin:test"),
        'ovms_server_image_id is "edge-retail/ovms-standin:test"; expected sha256: and 64 hex digits',
    ),
    "pinned model version that is not a number": (
        inventory(["store1"], ["store1"], ovms_server_model_versions={"person-detection": "two"}),
        "ovms_server_model_versions is",
    ),
    "client image ID that is not an ID": (
        inventory(["store1"], ["store1"], ovms_client_image_id="sha256:1234"),
        'ovms_client_image_id is "sha256:1234"; expected sha256: and 64 hex digits',
    ),
    "client archive missing on the controller": (
        inventory(["store1"], ["store1"], ovms_client_image_archive="/nonexistent/client.tar"),
        'ovms_client_image_archive "/nonexistent/client.tar" is not a file on the controller',
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_inventory_fails_before_any_change(case: str, tmp_path: Path) -> None:
    inv, expected = CASES[case]
    result = run_site(tmp_path, inv)
    failed = failures(result)
    assert failed, f"no task failed: {json.dumps(result['stats'])}"
    play_index, task, message = failed[0]
    assert play_index == 0, f"{case}: first failure in play {play_index} ({task}), not preflight"
    assert expected in " ".join(message.split()), f"{case}: {task}: {message}"
    assert changed_tasks(result) == [], f"{case}: tasks changed before the failure"
