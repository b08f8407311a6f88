"""Two stores that serve different models, in one run of the ovms_models role: the models tool
runs once on the controller (run_once) and must build the models of every host of the batch,
not only the first host's; a re-run, of both stores or of one, changes nothing (the controller
stamp does not depend on which models one inventory wants).

Runs the real role against this machine through the local connection, with a fresh controller
repository so that the models tool really builds, and each store's model repository under
tmp_path.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

# Playbooks here read the image archives and the model repository: wait for the session builds.
pytestmark = pytest.mark.usefixtures("built_images", "model_repo")

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()

PLAYBOOK = """
- name: Push the models of each store.
  hosts: all
  gather_facts: false
  roles:
    - edge_retail.ovms.ovms_models
"""

WANTED = {"store1": "person-detection", "store2": "efficientnet-lite3"}


def inventory(tmp_path: Path) -> dict[str, Any]:
    hosts = {
        host: {
            "ovms_models_list": [{"name": model}],
            "ovms_models_dir": str(tmp_path / host / "models"),
            "ovms_models_config_dir": str(tmp_path / host / "config"),
            "ovms_models_staging_dir": str(tmp_path / host / "models/.staging"),
        }
        for host, model in WANTED.items()
    }
    return {"all": {
        "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "ovms_models_controller_cache_dir": str(CACHE / "models/cache"),
            "ovms_models_controller_repo_dir": str(tmp_path / "controller-repo"),
        },
        "children": {"ovms_servers": {"hosts": hosts}},
    }}


def run(tmp_path: Path, *args: str) -> dict[str, Any]:
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory(tmp_path)))
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(CACHE / "collections"),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_LOCALHOST_WARNING": "false"}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(tmp_path / "hosts.yml"),
         str(tmp_path / "play.yml"), *args],
        capture_output=True, text=True, env=env, timeout=1800, check=False)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


def changed(result: dict[str, Any]) -> list[str]:
    return [f"{host}: {task['task']['name']}" for play in result["plays"] for task in play["tasks"]
            for host, res in task["hosts"].items() if res.get("changed")]


def test_each_store_gets_its_own_model_from_one_models_tool_run(tmp_path: Path) -> None:
    run(tmp_path)
    manifest = json.loads((tmp_path / "controller-repo/manifest.json").read_text())
    assert sorted(manifest["models"]) == sorted(WANTED.values())
    for host, model in WANTED.items():
        version = manifest["models"][model]["version"]
        served = tmp_path / host / "models" / model / str(version)
        assert served.is_dir(), f"{host} lacks {served}"
        other = next(m for m in WANTED.values() if m != model)
        assert not (tmp_path / host / "models" / other).exists(), f"{host} got {other} too"

    assert changed(run(tmp_path)) == []
    # One store alone wants fewer models: still nothing to do, on the controller as on the host.
    assert changed(run(tmp_path, "--limit", "store1")) == []
    assert changed(run(tmp_path)) == []
