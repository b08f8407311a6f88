"""The docker_engine role's preflight checks and daemon.json merge, run by ansible-playbook.

Only preflight.yml runs (on localhost, connection local), so nothing on this machine changes.
One playbook run covers every case: each case is an inventory host with its own variables.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEBIAN = {"distribution": "Debian", "service_mgr": "systemd"}
DOCKER_CE_DEBS = [
    "containerd.io_1.7.0-1_amd64.deb",
    "docker-ce-cli_27.0.0-1~debian.12~bookworm_amd64.deb",
    "docker-ce_27.0.0-1~debian.12~bookworm_amd64.deb",
    "docker-buildx-plugin_0.15.0-1~debian.12~bookworm_amd64.deb",
    "docker-compose-plugin_2.28.0-1~debian.12~bookworm_amd64.deb",
]

PLAYBOOK = """\
- name: Run the docker_engine preflight checks
  hosts: all
  gather_facts: false
  tasks:
    # Facts the way the setup module would leave them, without asking this machine.
    - name: Set the facts of the case.
      ansible.builtin.set_fact:
        distribution: "{{ fake_facts.distribution }}"
        service_mgr: "{{ fake_facts.service_mgr }}"
        cacheable: true

    - name: Run the preflight checks of the role.
      ansible.builtin.include_role:
        name: edge_retail.ovms.docker_engine
        tasks_from: preflight
        # Lets the next task see the role's variables.
        public: true

    - name: Show the merged daemon options.
      ansible.builtin.debug:
        var: _docker_engine_daemon_options
"""


def _cases(debs_dir: Path, ambiguous_dir: Path) -> dict[str, dict[str, Any]]:
    return {
        "distro_defaults": {"fake_facts": DEBIAN},
        "unknown_source": {"fake_facts": DEBIAN, "docker_engine_source": "snap"},
        "fedora": {"fake_facts": {"distribution": "Fedora", "service_mgr": "systemd"}},
        "no_systemd": {"fake_facts": {"distribution": "Debian", "service_mgr": "sysvinit"}},
        "upstream_without_key": {
            "fake_facts": DEBIAN,
            "docker_engine_source": "upstream",
            "docker_engine_upstream_signed_by": "",
        },
        "offline_missing_dir": {
            "fake_facts": DEBIAN,
            "docker_engine_source": "offline",
            "docker_engine_offline_debs_dir": str(debs_dir / "absent"),
        },
        "offline_two_versions": {
            "fake_facts": DEBIAN,
            "docker_engine_source": "offline",
            "docker_engine_offline_debs_dir": str(ambiguous_dir),
        },
        "offline_complete": {
            "fake_facts": DEBIAN,
            "docker_engine_source": "offline",
            "docker_engine_offline_debs_dir": str(debs_dir),
        },
        "daemon_overrides": {
            "fake_facts": DEBIAN,
            "docker_engine_daemon_options": {"live-restore": True, "log-opts": {"max-size": "50m"}},
        },
    }


def _collections_path(tmp: Path) -> Path:
    if REPO.parent.name == "edge_retail" and REPO.parent.parent.name == "ansible_collections":
        return REPO.parents[2]
    link = tmp / "ansible_collections" / "edge_retail" / "ovms"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO, target_is_directory=True)
    return tmp


@pytest.fixture(scope="module")
def preflight(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Task results per case: {case: {"failed": msg or None, "daemon": merged options}}."""
    playbook_bin = shutil.which("ansible-playbook")
    if playbook_bin is None:
        pytest.fail("ansible-playbook is not on PATH; run through `make test` (it uses the venv)")
    tmp = tmp_path_factory.mktemp("docker-engine-preflight")
    debs_dir = tmp / "debs"
    ambiguous_dir = tmp / "debs-two-versions"
    for directory in (debs_dir, ambiguous_dir):
        directory.mkdir()
        for name in DOCKER_CE_DEBS:
            (directory / name).write_bytes(b"")
    (ambiguous_dir / "docker-ce_26.1.0-1~debian.12~bookworm_amd64.deb").write_bytes(b"")

    hosts = {
        name: {"ansible_connection": "local", **case}
        for name, case in _cases(debs_dir, ambiguous_dir).items()
    }
    (tmp / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    (tmp / "playbook.yml").write_text(PLAYBOOK)
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(_collections_path(tmp / "collections")),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
    }
    run = subprocess.run(
        [playbook_bin, "-i", str(tmp / "inventory.yml"), str(tmp / "playbook.yml")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    try:
        output = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook printed no JSON (rc {run.returncode}): {run.stderr}")

    results: dict[str, dict[str, Any]] = {name: {"failed": None} for name in hosts}
    for task in (t for play in output["plays"] for t in play["tasks"]):
        for host, result in task["hosts"].items():
            failed_items = [r for r in result.get("results", []) if r.get("failed")]
            if failed_items:
                results[host]["failed"] = " ".join(r["msg"] for r in failed_items)
            elif result.get("failed"):
                results[host]["failed"] = result["msg"]
            if "_docker_engine_daemon_options" in result:
                results[host]["daemon"] = result["_docker_engine_daemon_options"]
    return results


@pytest.mark.parametrize("case", ["distro_defaults", "offline_complete", "daemon_overrides"])
def test_valid_settings_pass(preflight: dict[str, dict[str, Any]], case: str) -> None:
    assert preflight[case]["failed"] is None


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown_source", ["docker_engine_source must be one of: distro, upstream, offline, got: snap"]),
        ("fedora", ["runs Fedora", "supports Debian, Ubuntu"]),
        ("no_systemd", ["with sysvinit", "with systemd"]),
        ("upstream_without_key", ["docker_engine_upstream_signed_by must not be empty"]),
        ("offline_missing_dir", ["docker_engine_offline_debs_dir is", "/absent'"]),
        (
            "offline_two_versions",
            ["docker_engine_offline_deb_patterns entry 'docker-ce_*.deb' matches 2 files"],
        ),
    ],
)
def test_invalid_settings_fail_naming_the_variable(
    preflight: dict[str, dict[str, Any]], case: str, expected: list[str]
) -> None:
    message = preflight[case]["failed"]
    assert message is not None, f"preflight accepted case {case}"
    for part in expected:
        assert part in message


def test_daemon_options_merge_recursively_over_log_rotation(
    preflight: dict[str, dict[str, Any]],
) -> None:
    assert preflight["distro_defaults"]["daemon"] == {
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3"},
    }
    assert preflight["daemon_overrides"]["daemon"] == {
        "live-restore": True,
        "log-driver": "json-file",
        "log-opts": {"max-size": "50m", "max-file": "3"},
    }
