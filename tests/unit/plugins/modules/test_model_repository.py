"""model_repository on directories of this machine: verify, clear, place, prune, check mode."""
from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.edge_retail.ovms.plugins.modules import model_repository

FILES = {"model.xml": b"<net/>", "model.bin": b"\x00weights\x01"}


def entry(version: int = 2, files: dict[str, bytes] | None = None) -> dict[str, Any]:
    files = FILES if files is None else files
    return {"name": "person-detection", "version": version,
            "files": {f"person-detection/{version}/{name}": hashlib.sha256(data).hexdigest()
                      for name, data in files.items()}}


def write_version(root: Path, files: dict[str, bytes] | None = None) -> None:
    files = FILES if files is None else files
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)


def run(repo: Path, capsys: pytest.CaptureFixture[str], staged: str = "clear",
        versions: list[dict[str, Any]] | None = None, check: bool = False,
        keep: int = 2) -> dict[str, Any]:
    args = {"path": str(repo), "staging_dir": str(repo / ".staging"), "staged": staged,
            "versions": versions if versions is not None else [entry()], "keep_versions": keep,
            "_ansible_check_mode": check}
    with patch_module_args(args), pytest.raises(SystemExit):
        model_repository.main()
    return json.loads(capsys.readouterr().out)


def versions_in(repo: Path) -> list[str]:
    return sorted(p.name for p in (repo / "person-detection").iterdir())


def test_a_fresh_host_gets_its_directories_and_the_version_to_copy(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "models"
    result = run(repo, capsys)
    assert result["changed"] is True
    assert result["missing"] == ["person-detection"]
    assert result["stage_dirs"] == {"person-detection": str(repo / ".staging/person-detection-2")}
    assert result["same_filesystem"] is True
    assert stat.S_IMODE(repo.stat().st_mode) == 0o755
    assert stat.S_IMODE((repo / ".staging").stat().st_mode) == 0o555
    assert stat.S_IMODE((repo / "person-detection").stat().st_mode) == 0o555
    assert versions_in(repo) == []


def test_a_staged_version_is_verified_moved_into_place_and_then_nothing_changes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "models"
    run(repo, capsys)
    write_version(repo / ".staging/person-detection-2")
    placed = run(repo, capsys, staged="place")
    assert placed["changed"] is True
    assert placed["placed"] == {"person-detection": 2}
    assert placed["missing"] == [] and placed["mismatched"] == []
    assert placed["verified"] == 2
    assert versions_in(repo) == ["2"]
    assert (repo / "person-detection/2/model.bin").read_bytes() == FILES["model.bin"]
    assert list((repo / ".staging").iterdir()) == []

    again = run(repo, capsys)
    assert again["changed"] is False, again
    assert again["missing"] == [] and again["removed"] == [] and again["verified"] == 2


def test_a_changed_file_in_place_is_reported_and_nothing_is_pruned(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "models"
    run(repo, capsys)
    write_version(repo / "person-detection/1")
    write_version(repo / "person-detection/2", {**FILES, "model.bin": b"tampered"})
    write_version(repo / "person-detection/3")
    result = run(repo, capsys)
    bad = result["mismatched"]
    assert [(b["file"], b["expected"], b["actual"]) for b in bad] == [
        (str(repo / "person-detection/2/model.bin"),
         hashlib.sha256(FILES["model.bin"]).hexdigest(), hashlib.sha256(b"tampered").hexdigest())]
    assert "failed" not in result
    assert versions_in(repo) == ["1", "2", "3"]


def test_a_missing_file_is_reported_as_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "models"
    run(repo, capsys)
    write_version(repo / "person-detection/2", {"model.xml": FILES["model.xml"]})
    result = run(repo, capsys)
    assert [(b["file"], b["actual"]) for b in result["mismatched"]] == [
        (str(repo / "person-detection/2/model.bin"), None)]


def test_a_bad_staged_copy_is_not_moved_into_place(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "models"
    run(repo, capsys)
    write_version(repo / ".staging/person-detection-2", {"model.xml": FILES["model.xml"]})
    result = run(repo, capsys, staged="place")
    assert result["placed"] == {}
    assert result["missing"] == ["person-detection"]
    assert [b["actual"] for b in result["mismatched"]] == [None]
    assert versions_in(repo) == []


def test_clear_removes_what_an_interrupted_run_left_in_staging(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "models"
    run(repo, capsys)
    write_version(repo / ".staging/person-detection-2", {"model.xml": FILES["model.xml"]})
    (repo / ".staging/.ansible_tmpabc").write_bytes(b"partial")
    result = run(repo, capsys)
    assert result["changed"] is True
    assert sorted(result["removed"]) == [str(repo / ".staging/.ansible_tmpabc"),
                                         str(repo / ".staging/person-detection-2")]
    assert list((repo / ".staging").iterdir()) == []
    assert result["missing"] == ["person-detection"]


def test_versions_above_the_served_one_and_beyond_the_kept_number_are_removed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "models"
    run(repo, capsys)
    for version in (1, 2, 3, 5):
        write_version(repo / f"person-detection/{version}")
    (repo / "person-detection/notes").mkdir()
    result = run(repo, capsys, versions=[entry(3)], keep=2)
    assert result["changed"] is True
    assert sorted(result["removed"]) == [str(repo / "person-detection/1"),
                                         str(repo / "person-detection/5")]
    assert versions_in(repo) == ["2", "3", "notes"]


def test_check_mode_reports_and_changes_nothing(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "models"
    fresh = run(repo, capsys, check=True)
    assert fresh["changed"] is True and fresh["missing"] == ["person-detection"]
    assert fresh["same_filesystem"] is None
    assert not repo.exists()
    placed = run(repo, capsys, staged="place", check=True)
    assert placed["changed"] is True and placed["placed"] == {"person-detection": 2}
    assert not repo.exists()

    run(repo, capsys)
    write_version(repo / "person-detection/2")
    write_version(repo / "person-detection/4")
    (repo / ".staging/left").write_bytes(b"x")
    pruned = run(repo, capsys, check=True)
    assert pruned["changed"] is True
    assert sorted(pruned["removed"]) == [str(repo / ".staging/left"),
                                         str(repo / "person-detection/4")]
    assert versions_in(repo) == ["2", "4"] and (repo / ".staging/left").exists()


def test_modes_are_put_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "models"
    run(repo, capsys)
    os.chmod(repo / "person-detection", 0o777)
    result = run(repo, capsys)
    assert result["changed"] is True
    assert stat.S_IMODE((repo / "person-detection").stat().st_mode) == 0o555


@pytest.mark.parametrize(("versions", "keep", "message"), [
    ([entry()], 0, "keep_versions is 0; expected 1 or more"),
    ([{**entry(), "name": ".."}], 2, "'..' version 2 is not a model directory name"),
    ([entry(0)], 2, "'person-detection' version 0 is not a model directory name"),
])
def test_bad_arguments_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   versions: list[dict[str, Any]], keep: int,
                                   message: str) -> None:
    result = run(tmp_path / "models", capsys, versions=versions, keep=keep)
    assert result["failed"] is True
    assert message in result["msg"]
    assert not (tmp_path / "models").exists()
