"""The ovms_models role on this machine's filesystem: what an unchanged re-run proves.

A served file changed on the host after it was verified fails the run, naming the file, both
sums and the manifest, and nothing is removed; a staging directory on another filesystem than
the repository is refused before anything is copied. Both checks run in one model_repository
module run on every re-run.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from faults import recap_changed, run_playbook, small_filesystem
from test_fault_full_disk import MODELS_PLAY, flat
from test_server_upgrade_rollback import CACHE, free_port, server_vars

# Playbooks here read the model repository: wait for the session build.
pytestmark = pytest.mark.usefixtures("model_repo")


def version_files(models: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (models / "person-detection/1").iterdir()}


def test_a_served_file_changed_on_the_host_fails_the_run_and_stays(tmp_path: Path) -> None:
    models = tmp_path / "models"
    extra = server_vars(tmp_path, "unused", free_port(), 20)
    first = run_playbook(tmp_path, MODELS_PLAY, extra)
    assert first.returncode == 0, first.stdout[-3000:]
    again = run_playbook(tmp_path, MODELS_PLAY, extra)
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap_changed(again.stdout) == 0, again.stdout[-3000:]

    weights = models / "person-detection/1/model.bin"
    weights.chmod(0o644)
    with weights.open("ab") as stream:
        stream.write(b"\0")
    before = version_files(models)
    manifest = CACHE / "models/repo/manifest.json"
    expected = json.loads(manifest.read_text())["models"]["person-detection"]["files"][
        "person-detection/1/model.bin"]

    run = run_playbook(tmp_path, MODELS_PLAY, extra)
    out = flat(run.stdout)
    print(out[out.find("person-detection version 1 on"):][:600])
    assert run.returncode != 0, run.stdout[-3000:]
    actual = hashlib.sha256(before["model.bin"]).hexdigest()
    assert (f"person-detection version 1 on localhost: {weights} has sha256 {actual}, the "
            f"manifest {manifest} says {expected}.") in out, out[-3000:]
    assert "The version being served is untouched" in out
    assert version_files(models) == before
    assert sorted(p.name for p in (models / "person-detection").iterdir()) == ["1"]


def test_a_staging_directory_on_another_filesystem_is_refused_before_copying(
        tmp_path: Path) -> None:
    models = tmp_path / "models"
    extra = server_vars(tmp_path, "unused", free_port(), 20)
    with small_filesystem(tmp_path / "staging", "8m"):
        run = run_playbook(tmp_path, MODELS_PLAY, extra)
        out = flat(run.stdout)
        print(out[out.find("ovms_models_staging_dir"):][:500])
        assert run.returncode != 0, run.stdout[-3000:]
        assert (f"ovms_models_staging_dir {tmp_path / 'staging'} is on another filesystem than "
                f"ovms_models_dir {models} on localhost") in out, out[-3000:]
        assert "Copy the version to the staging directory" not in out
        assert list((tmp_path / "staging").iterdir()) == []
        assert list((models / "person-detection").iterdir()) == []
