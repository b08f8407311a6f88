"""The client as users get it: the wheel, installed into a fresh venv, run from elsewhere.

Builds the wheel from a copy of client/ (so no build/ or egg-info lands in the tree),
installs it with --no-deps --no-index into a new venv that sees this environment's packages
for the dependencies, and runs the README's example from a directory outside the repository.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ovms_client import __version__

CLIENT = Path(__file__).resolve().parents[2] / "client"
PROFILE_FILES = {
    "classification.yaml",
    "person-detection-ssd.yaml",
    "yolov8-coco.yaml",
    "person-detection-ssd.labels",
    "yolo-coco.labels",
    "yolov4-tiny-coco.yaml",
    "yolov4-tiny-efficientnet.yaml",
    "efficientnet-lite3.yaml",
    "imagenet.labels",
}


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args],
        check=True,
        timeout=600,
    )


def _setuptools_supports_spdx_license() -> bool:
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return False
    return major >= 77


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("client-wheel")
    source = work / "client"
    shutil.copytree(
        CLIENT,
        source,
        ignore=shutil.ignore_patterns(
            "build", "*.egg-info", "__pycache__", ".ruff_cache", ".pytest_cache"
        ),
    )
    # With setuptools >= 77 here the build needs nothing from an index; otherwise pip's
    # isolated build environment fetches it (pyproject's build-system.requires).
    isolation = ["--no-build-isolation"] if _setuptools_supports_spdx_license() else []
    _pip("wheel", "--no-deps", *isolation, "--wheel-dir", str(work / "dist"), str(source))
    [built] = (work / "dist").glob("edge_retail_ovms_client-*.whl")
    return built


def test_wheel_carries_profiles_labels_license_and_one_version(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = f"edge_retail_ovms_client-{__version__}.dist-info"
        metadata = archive.read(f"{dist_info}/METADATA").decode()
    assert wheel.name == f"edge_retail_ovms_client-{__version__}-py3-none-any.whl"
    assert {f"ovms_client/profiles/{name}" for name in PROFILE_FILES} <= names
    assert "ovms_client/py.typed" in names
    assert f"{dist_info}/licenses/LICENSE" in names
    assert f"\nVersion: {__version__}\n" in metadata
    assert "\nLicense-Expression: Apache-2.0\n" in metadata
    assert "\nLicense-File: LICENSE\n" in metadata
    requires = re.findall(r"^Requires-Dist: (.*)$", metadata, re.MULTILINE)
    # ovmsclient only with the [tfs] extra; what the package itself imports always.
    assert [r for r in requires if r.startswith("ovmsclient")] == [
        'ovmsclient>=2023.1; extra == "tfs"'
    ]
    for needed in ("pydantic", "prometheus-client", "tritonclient[grpc]", "grpcio"):
        assert any(r.startswith(needed) and "extra ==" not in r for r in requires), needed


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new venv with the wheel installed (no index, no dependencies): its bin directory.

    The dependencies come from this environment's site-packages, added by a .pth file: a
    plain path line there does not run this environment's own .pth files, so the editable
    install of the client is not seen, only the wheel's copy.
    """
    root = tmp_path_factory.mktemp("client-venv") / "venv"
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    site_packages = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site_packages / "zz-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    _pip("--python", str(python), "install", "--no-deps", "--no-index", str(wheel))
    yield root / "bin"


def _outside_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OVMS_CLIENT_") and k not in ("PYTHONPATH", "PYTHONHOME")
    }


def _readme_example() -> list[str]:
    """The first README code block that runs ovms-client, as an argument list."""
    readme = (CLIENT / "README.md").read_text(encoding="utf-8")
    for block in re.findall(r"^```\n(.*?)^```", readme, re.MULTILINE | re.DOTALL):
        command = block.replace("\\\n", " ").strip()
        if command.startswith("ovms-client "):
            return shlex.split(command)
    pytest.fail("client/README.md has no ovms-client example")


def test_readme_example_runs_from_the_installed_wheel_outside_the_repo(
    installed: Path, tmp_path: Path
) -> None:
    argv = _readme_example()
    done = subprocess.run(
        [str(installed / "ovms-client"), *argv[1:]],
        cwd=tmp_path,
        env=_outside_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    settings = json.loads(done.stdout)
    assert settings["model_name"] == "person-detection"
    assert settings["server_address"] == "127.0.0.1:9000"
    assert settings["inputs"][0]["kind"] == "stream"
    # The profile and its labels were found inside the installed package, not in the repo.
    labels = Path(settings["labels"])
    assert labels.name == "person-detection-ssd.labels" and labels.is_file()
    assert installed.parent in labels.parents


def test_installed_console_script_has_version_help_and_exit_codes(
    installed: Path, tmp_path: Path
) -> None:
    script = str(installed / "ovms-client")
    version = subprocess.run(
        [script, "--version"],
        cwd=tmp_path,
        env=_outside_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert version.stdout.strip() == f"ovms-client {__version__}"
    helped = subprocess.run(
        [script, "--help"],
        cwd=tmp_path,
        env=_outside_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--api {kserve,tfs}" in helped.stdout
    bad = subprocess.run(
        [
            script,
            "--profile",
            "person-detection-ssd",
            "--input",
            "0",
            "--score-threshold",
            "2",
            "--check",
        ],
        cwd=tmp_path,
        env=_outside_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "setting 'score_threshold' (from flag --score-threshold)" in bad.stderr
