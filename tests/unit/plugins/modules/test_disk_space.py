"""disk_space on this machine's filesystems: free bytes, the mount point, a path not made yet."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.edge_retail.ovms.plugins.modules import disk_space


def run(args: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        disk_space.main()
    return json.loads(capsys.readouterr().out)


def test_free_space_of_an_existing_directory(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    result = run({"path": str(tmp_path), "needed": 1}, capsys)
    stats = os.statvfs(tmp_path)
    assert result["measured"] == str(tmp_path)
    assert result["changed"] is False
    assert 0 < result["free"] <= result["total"]
    assert abs(result["free"] - stats.f_bavail * stats.f_frsize) < 64 << 20  # other writers
    assert result["enough"] is True
    assert Path(result["mount"]) in [Path(result["measured"]), *Path(result["measured"]).parents]


def test_a_path_not_made_yet_is_measured_at_its_nearest_parent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run({"path": str(tmp_path / "a" / "b"), "needed": 1 << 62}, capsys)
    assert result["measured"] == str(tmp_path)
    assert result["needed"] == 1 << 62
    assert result["enough"] is False
    assert "failed" not in result


def test_a_negative_need_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run({"path": str(tmp_path), "needed": -1}, capsys)
    assert result["failed"] is True
    assert "needed is -1; expected 0 or more bytes" in result["msg"]
