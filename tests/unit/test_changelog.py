"""The changelog: fragments lint clean, changelog.yaml is valid, CHANGELOG.rst is generated.

Each change adds a fragment to changelogs/fragments/ (see changelogs/config.yaml). When
test_changelog_rst_is_generated fails, run `antsibull-changelog generate` at the repository
root and commit CHANGELOG.rst.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHANGELOGS = ROOT / "changelogs"


def _antsibull_changelog() -> list[str]:
    exe = shutil.which("antsibull-changelog")
    if exe:
        return [exe]
    pytest.importorskip("antsibull_changelog")
    return [sys.executable, "-m", "antsibull_changelog"]


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_antsibull_changelog(), *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_config_and_changes_file_exist() -> None:
    config = yaml.safe_load((CHANGELOGS / "config.yaml").read_text(encoding="utf-8"))
    assert config["changes_file"] == "changelog.yaml"
    assert config["notesdir"] == "fragments"
    assert (CHANGELOGS / "changelog.yaml").is_file()
    assert (CHANGELOGS / "fragments").is_dir()


def test_fragments_lint_clean() -> None:
    result = _run("lint")
    assert result.returncode == 0 and not result.stdout.strip(), (
        f"antsibull-changelog lint found problems:\n{result.stdout}{result.stderr}"
    )


def test_changelog_yaml_lints_clean() -> None:
    result = _run("lint-changelog-yaml", "--strict", "changelogs/changelog.yaml")
    assert result.returncode == 0 and not result.stdout.strip(), (
        f"changelogs/changelog.yaml:\n{result.stdout}{result.stderr}"
    )


def test_every_fragment_has_an_entry() -> None:
    fragments = sorted((CHANGELOGS / "fragments").glob("*.y*ml"))
    assert fragments, "changelogs/fragments/ holds no fragment"
    for path in fragments:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert isinstance(data, dict) and data, f"{path.name} holds no section"


def test_changelog_rst_is_generated(tmp_path: Path) -> None:
    generated = tmp_path / "CHANGELOG.rst"
    result = _run("generate", "--output", str(generated))
    assert result.returncode == 0, (
        f"antsibull-changelog generate failed:\n{result.stdout}{result.stderr}"
    )
    committed = ROOT / "CHANGELOG.rst"
    assert committed.is_file(), "CHANGELOG.rst is missing; run `antsibull-changelog generate`"
    assert committed.read_text(encoding="utf-8") == generated.read_text(encoding="utf-8"), (
        "CHANGELOG.rst differs from changelogs/changelog.yaml; run `antsibull-changelog generate`"
    )
