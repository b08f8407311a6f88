"""The AWX path: the site playbook through ansible-runner, with a private data directory laid
out as AWX lays out a job's.

    <job>/project/                   the project (SCM checkout): a playbook importing
                                     edge_retail.ovms.site, collections/requirements.yml
    <job>/requirements_collections/  the collections the project update installed from it
    <job>/inventory/                 the job's inventory
    <job>/env/envvars, extravars, cmdline, settings
    <job>/artifacts/<ident>/         what ansible-runner writes: job events, rc, status

The collection is the tarball built from this checkout, installed offline (Galaxy is not
reachable here; AWX's project update would fetch it). The job runs the local store
(this machine, local connection) in check mode, as a job template of job type "check" does,
and the result is read from its job events, as AWX reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from test_collection_install import (
    CACHE,
    SITE_PLAYS,
    VENV_BIN,
    build_and_install,
    local_store_inventory,
    needs_demo_cache,
)

# The site check-mode run reads the image archives and the model repository: wait for the
# session builds (tests/conftest.py keeps this file on one worker with the other site runs).
pytestmark = pytest.mark.usefixtures("built_images", "model_repo")


def lay_out_job(job: Path) -> Path:
    """The private data directory of one job; returns its collections directory."""
    project = job / "project"
    (project / "collections").mkdir(parents=True)
    (project / "site.yml").write_text(
        "---\n"
        "- name: Deploy the stores of the inventory\n"
        "  ansible.builtin.import_playbook: edge_retail.ovms.site\n"
    )
    (project / "collections/requirements.yml").write_text(yaml.safe_dump(
        {"collections": [{"name": "edge_retail.ovms"}]}, sort_keys=False))
    collections = job / "requirements_collections"
    _collections, env = build_and_install(job / "build", collections)
    local_store_inventory(job)  # -> job/inventory/

    (job / "env").mkdir()
    envvars = {
        # AWX points Ansible at the project's collections first; the EE's own follow (here the
        # venv's `ansible` package, found on sys.path).
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_CONFIG": env["ANSIBLE_CONFIG"],
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        # The local store's inventory reads the demo's build products from here.
        "CACHE_DIR": str(CACHE),
    }
    (job / "env/envvars").write_text(yaml.safe_dump(envvars))
    (job / "env/extravars").write_text(yaml.safe_dump({}))
    # Job type "check".
    (job / "env/cmdline").write_text("--check")
    (job / "env/settings").write_text(yaml.safe_dump({"suppress_ansible_output": True}))
    return collections


def test_site_through_ansible_runner_in_check_mode(tmp_path: Path):
    needs_demo_cache()
    job = tmp_path / "job"
    collections = lay_out_job(job)
    # ansible-runner's own command, in a process of its own, as an execution node starts a job.
    # Not ansible_runner.run() in this process: it forks ansible-playbook through pexpect from
    # here, and in a pytest-xdist worker that had run other test files first the child twice
    # died before it started (status failed, rc None, no event). A fresh process inherits
    # nothing those tests left behind (threads, fork handlers).
    runner = subprocess.run(
        [str(VENV_BIN / "ansible-runner"), "run", str(job), "-p", "site.yml",
         "--ident", "check-local-store"],
        capture_output=True, text=True, timeout=1800, check=False,
    )
    artifacts = job / "artifacts" / "check-local-store"
    events = sorted((json.loads(p.read_text()) for p in (artifacts / "job_events").glob("*.json")),
                    key=lambda e: e["counter"])
    failed = [e for e in events if e["event"] == "runner_on_failed"
              and not e["event_data"].get("ignore_errors")]
    unreachable = [e for e in events if e["event"] == "runner_on_unreachable"]
    messages = [(e["event_data"].get("task"), e["event_data"].get("res", {}).get("msg"))
                for e in failed + unreachable]
    assert not messages, messages
    # AWX reads the outcome from the artifacts directory.
    assert (artifacts / "status").read_text().strip() == "successful", (
        runner.returncode, runner.stderr[-2000:], (artifacts / "stdout").read_text()[-3000:])
    assert (artifacts / "rc").read_text().strip() == "0"
    assert runner.returncode == 0

    stats = [e for e in events if e["event"] == "playbook_on_stats"]
    assert len(stats) == 1
    data = stats[0]["event_data"]
    assert data["failures"] == {} and data["dark"] == {}, data
    assert data["ok"].get("localhost", 0) > 0, data

    plays = [e["event_data"]["play"] for e in events if e["event"] == "playbook_on_play_start"]
    assert plays == SITE_PLAYS
    # The role tasks came from the collection the project update installed.
    installed = str(collections / "ansible_collections/edge_retail/ovms") + "/"
    role_tasks = {e["event_data"]["task_path"].rsplit(":", 1)[0]
                  for e in events if e["event"] == "playbook_on_task_start"
                  and "/roles/" in e["event_data"].get("task_path", "")}
    assert role_tasks and all(p.startswith(installed) for p in role_tasks), sorted(role_tasks)
