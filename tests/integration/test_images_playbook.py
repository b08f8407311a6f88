"""playbooks/images.yml builds the images a Galaxy user cannot pull, from the sources the
collection ships, and saves the archives the roles push.

No registry is reachable here, so the public base images (debian:bookworm-slim,
python:3.11-slim) are replaced by the Debian image tests/images/build.py makes with debootstrap
(`base`). The proxy is built for real, under a tag of this test's own so that the images and
archives other tests use stay untouched; with the build cache that build.py filled it takes
seconds. The client is built only with OVMS_TEST_CLIENT_IMAGE_BUILD=1: its image installs a
venv of some 100 MB of wheels, minutes on two CPUs whenever the client's sources changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from typing import Any

import docker.errors
import pytest

# Playbooks here read the image archives and the model repository: wait for the session builds.
pytestmark = pytest.mark.usefixtures("built_images")

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()
VENV_BIN = Path(sys.executable).parent
BASE_IMAGE = "edge-retail/debian-base:bookworm"


def run_images(extra_vars: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(ROOT / "playbooks/images.yml"),
         "-e", json.dumps(extra_vars), *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600, check=False,
    )


def recap(proc: subprocess.CompletedProcess[str]) -> dict[str, int]:
    try:
        return json.loads(proc.stdout)["stats"]["localhost"]
    except (json.JSONDecodeError, KeyError):
        pytest.fail(f"no result (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def archive_tags(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        return [tag for entry in json.load(member) for tag in entry.get("RepoTags") or []]


@pytest.fixture
def base_image(docker_client) -> str:
    """The debootstrap image `make images` (tests/images/build.py) builds."""
    try:
        docker_client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{BASE_IMAGE} is missing; run `make images`")
    return BASE_IMAGE


@pytest.fixture
def test_tag(docker_client):
    """A tag no other test uses; removed afterwards (the image layers stay in the cache)."""
    tag = f"images-test-{uuid.uuid4().hex[:8]}"
    yield tag
    for repo in ("edge-retail/ovms-proxy", "edge-retail/ovms-client"):
        # Only the tag goes; the layers are build.py's cache.
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(f"{repo}:{tag}", noprune=True)


def test_images_playbook_builds_and_saves_the_proxy(
        base_image, docker_client, test_tag, tmp_path: Path):
    archive = tmp_path / "archives/proxy.tar"
    extra = {
        "ovms_images_build": ["proxy"],
        "ovms_images_dir": str(tmp_path / "images"),
        "ovms_images_proxy_base_image": base_image,
        "ovms_proxy_image_tag": test_tag,
        # Where an inventory's setting points, the archive goes.
        "ovms_proxy_image_archive": str(archive),
    }
    proc = run_images(extra)
    stats = recap(proc)
    assert stats["failures"] == 0 and proc.returncode == 0, proc.stdout[-3000:]
    assert archive.is_file()
    assert archive_tags(archive) == [f"edge-retail/ovms-proxy:{test_tag}"]

    image = docker_client.images.get(f"edge-retail/ovms-proxy:{test_tag}")
    config = image.attrs["Config"]
    assert config["User"] == "8443:8443"
    assert config["Entrypoint"][:1] == ["nginx"]

    loaded = subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True,
                            text=True, check=True, timeout=600)
    assert f"Loaded image: edge-retail/ovms-proxy:{test_tag}" in loaded.stdout, loaded.stdout

    # Again: the build comes from the cache, the image is the same, the archive is kept.
    mtime = archive.stat().st_mtime_ns
    again = run_images(extra)
    stats = recap(again)
    assert stats["failures"] == 0 and stats["changed"] == 0, again.stdout[-3000:]
    assert archive.stat().st_mtime_ns == mtime
    assert docker_client.images.get(f"edge-retail/ovms-proxy:{test_tag}").id == image.id


@pytest.mark.skipif(os.environ.get("OVMS_TEST_CLIENT_IMAGE_BUILD") != "1",
                    reason="the client image build takes minutes; OVMS_TEST_CLIENT_IMAGE_BUILD=1")
def test_images_playbook_builds_the_client_from_a_wheelhouse(base_image, docker_client,
                                                             test_tag, tmp_path: Path):
    extra = {
        "ovms_images_build": ["client"],
        "ovms_images_dir": str(tmp_path / "images"),
        "ovms_images_client_base_image": base_image,
        "ovms_client_image_tag": test_tag,
        # The wheels build.py made for the client image: no package index is needed.
        "ovms_images_client_wheel_dir": str(CACHE / "wheels/client"),
    }
    proc = run_images(extra)
    assert recap(proc)["failures"] == 0 and proc.returncode == 0, proc.stdout[-3000:]
    archive = tmp_path / "images/client.tar"
    assert archive_tags(archive) == [f"edge-retail/ovms-client:{test_tag}"]
    out = docker_client.containers.run(f"edge-retail/ovms-client:{test_tag}", ["--help"],
                                       remove=True)
    assert b"usage: ovms-client" in out


def test_images_playbook_refuses_an_unknown_image(tmp_path: Path):
    proc = run_images({"ovms_images_build": ["server"], "ovms_images_dir": str(tmp_path)})
    assert proc.returncode != 0
    result = json.loads(proc.stdout)
    messages = [host["msg"] for play in result["plays"] for task in play["tasks"]
                for host in task["hosts"].values() if host.get("failed")]
    assert messages == ['ovms_images_build is ["server"]; expected a list of client, proxy']
    assert not (tmp_path / "build").exists()


PREFLIGHT = """\
- name: The image checks of container_image
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Check the image settings.
      ansible.builtin.include_role:
        name: edge_retail.ovms.container_image
        tasks_from: preflight.yml
"""


@pytest.mark.parametrize("variable,name,names_playbook", [
    ("ovms_client_image", "edge-retail/ovms-client", True),
    ("ovms_proxy_image", "edge-retail/ovms-proxy", True),
    ("ovms_server_image", "openvino/model_server", False),
])
def test_missing_archive_message_names_the_images_playbook(tmp_path: Path, variable: str,
                                                           name: str, names_playbook: bool):
    """The archives of the client and the proxy come from playbooks/images.yml; OVMS's from
    `docker save` of the registry's image."""
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(PREFLIGHT)
    extra = {"container_image_name": name, "container_image_tag": "1.0",
             "container_image_source": "archive", "container_image_variable": variable,
             "container_image_archive": "/nonexistent/image.tar"}
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_COLLECTIONS_PATH": str(CACHE / "collections"),
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(playbook), "-e", json.dumps(extra)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False,
    )
    assert proc.returncode != 0
    result = json.loads(proc.stdout)
    messages = [host["msg"] for play in result["plays"] for task in play["tasks"]
                for host in task["hosts"].values() if host.get("failed")]
    assert len(messages) == 1, messages
    message = messages[0]
    assert message.startswith(
        f'{variable}_archive "/nonexistent/image.tar" is not a file on the controller; ')
    assert f"`docker save {name}:1.0`" in message
    assert ("ansible-playbook edge_retail.ovms.images" in message) is names_playbook, message
