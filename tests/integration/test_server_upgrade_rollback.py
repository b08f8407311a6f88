"""An OVMS image upgrade that does not come up leaves the previous image serving.

Runs the real ovms_models and ovms_server roles against this machine's Docker Engine (local
connection): a first run deploys the stand-in; a check run of an upgrade shipped as an archive
reports it without failing or touching the container; the real run loads the archive, whose
server exits at start. The role must fail, say that it rolled back, and leave the container on
the previous image with its model AVAILABLE.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()

PLAYBOOK = """
- name: Deploy a model server on this machine.
  hosts: localhost
  gather_facts: false
  roles:
    - edge_retail.ovms.ovms_models
    - edge_retail.ovms.ovms_server
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_play(tmp_path: Path, extra: dict[str, Any],
             check: bool = False) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "server.yml"
    playbook.write_text(PLAYBOOK)
    vars_file = tmp_path / f"vars-{uuid.uuid4().hex[:6]}.json"
    vars_file.write_text(json.dumps(extra))
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(CACHE / "collections"),
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,",
         "-e", f"@{vars_file}", str(playbook), *(["--check"] if check else [])],
        capture_output=True, text=True, env=env, timeout=900, check=False)


def server_vars(tmp_path: Path, name: str, grpc_port: int, wait_timeout: int) -> dict[str, Any]:
    """ovms_models + ovms_server on this machine's engine: models and config under tmp_path,
    the stand-in from its archive, the container `name` on `grpc_port`."""
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ovms_models_controller_cache_dir": str(CACHE / "models/cache"),
        "ovms_models_controller_repo_dir": str(CACHE / "models/repo"),
        "ovms_models_dir": str(tmp_path / "models"),
        "ovms_models_config_dir": str(tmp_path / "config"),
        "ovms_models_staging_dir": str(tmp_path / "staging"),
        "ovms_models_list": [{"name": "person-detection",
                              "plugin_config": {"INFERENCE_PRECISION_HINT": "f32"}}],
        "ovms_server_container_name": name,
        "ovms_server_grpc_port": grpc_port,
        "ovms_server_rest_port": free_port(),
        "ovms_server_image": "edge-retail/ovms-standin",
        "ovms_server_image_source": "archive",
        "ovms_server_image_tag": "test",
        "ovms_server_image_archive": str(CACHE / "images/standin.tar"),
        "ovms_server_image_archive_dir": str(tmp_path / "images"),
        "ovms_server_check_python": sys.executable,
        "ovms_server_wait_timeout": wait_timeout,
    }


@pytest.fixture
def broken_release(docker_client, built_images: dict[str, str],
                   tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The stand-in with a server that exits at start, as a release that cannot serve: its tag
    and its `docker save` archive. The engine does not have it; the role loads it."""
    tag = f"broken-{uuid.uuid4().hex[:6]}"
    context = Path(__file__).parent / "broken-image"
    image, _logs = docker_client.images.build(
        path=str(context), tag=f"edge-retail/ovms-standin:{tag}",
        buildargs={"BASE_IMAGE": built_images["standin"]}, rm=True)
    archive = tmp_path / "broken.tar"
    with archive.open("wb") as out:
        for chunk in image.save(named=True):
            out.write(chunk)
    docker_client.images.remove(image.id, force=True)
    yield tag, archive
    for leftover in docker_client.images.list(name="edge-retail/ovms-standin"):
        if f"edge-retail/ovms-standin:{tag}" in leftover.tags:
            docker_client.images.remove(leftover.id, force=True)


def test_failed_upgrade_rolls_back_to_the_previous_image(
        tmp_path: Path, docker_client, built_images: dict[str, str],
        broken_release: tuple[str, Path]) -> None:
    broken_tag, broken_archive = broken_release
    name = f"ovms-rollback-{uuid.uuid4().hex[:6]}"
    grpc_port = free_port()
    base = server_vars(tmp_path, name, grpc_port, wait_timeout=20)
    try:
        first = run_play(tmp_path, base)
        assert first.returncode == 0, first.stdout[-4000:]
        good_id = docker_client.containers.get(name).attrs["Image"]
        assert good_id == docker_client.images.get(built_images["standin"]).id

        release = {**base, "ovms_server_image_tag": broken_tag,
                   "ovms_server_image_archive": str(broken_archive)}
        # A dry run of the upgrade: the image is not loaded yet, and that is no failure.
        dry = run_play(tmp_path, release, check=True)
        assert dry.returncode == 0, dry.stdout[-4000:]
        assert "changed: [localhost]" in dry.stdout
        assert docker_client.containers.get(name).attrs["Image"] == good_id
        assert not docker_client.images.list(name=f"edge-retail/ovms-standin:{broken_tag}")

        upgrade = run_play(tmp_path, release)
        assert upgrade.returncode != 0, upgrade.stdout[-4000:]
        out = " ".join(upgrade.stdout.split())
        assert f"edge-retail/ovms-standin:{broken_tag} did not serve every model" in out, \
            upgrade.stdout[-4000:]
        assert f"the previous image {good_id} serves again" in out, upgrade.stdout[-4000:]

        container = docker_client.containers.get(name)
        assert container.attrs["Image"] == good_id
        assert container.status == "running"
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        try:
            assert client.is_model_ready("person-detection")
        finally:
            client.close()
    finally:
        for container in docker_client.containers.list(all=True, filters={"name": name}):
            container.remove(force=True)
