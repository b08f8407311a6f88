"""A GPU server: ovms_server_accelerator gpu runs the -gpu image with the host's /dev/dri and the
group that owns its render node, and config.json names the device.

This machine has no GPU. The test gives it a /dev/dri/renderD128 character device (the render
node's real major/minor numbers, owned by a group made up for the test, so that a hard-coded
render GID would show) and runs the real ovms_models and ovms_server roles against this
machine's Docker Engine. The stand-in, tagged as the -gpu variant, serves the model on
AUTO:GPU,CPU, which OpenVINO places on the CPU when no GPU answers. What a real GPU adds (the
GPU plugin compiling the model) cannot be tested here; the README says so.
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from test_server_upgrade_rollback import free_port, run_play, server_vars

RENDER_NODE = Path("/dev/dri/renderD128")
# A group no distribution gives the render group, so the test sees the GID was read, not assumed.
TEST_RENDER_GID = 4810


@pytest.fixture
def render_node() -> Iterator[int]:
    """The GID owning /dev/dri/renderD128: the real one where a GPU is, else one made here."""
    if RENDER_NODE.exists():
        yield RENDER_NODE.stat().st_gid
        return
    if os.geteuid() != 0:
        pytest.fail("creating /dev/dri/renderD128 for the GPU test needs root (make test runs as root)")
    made_dir = not RENDER_NODE.parent.exists()
    RENDER_NODE.parent.mkdir(exist_ok=True)
    os.mknod(RENDER_NODE, 0o660 | stat.S_IFCHR, os.makedev(226, 128))
    os.chown(RENDER_NODE, 0, TEST_RENDER_GID)
    try:
        yield TEST_RENDER_GID
    finally:
        RENDER_NODE.unlink()
        if made_dir:
            RENDER_NODE.parent.rmdir()


@pytest.fixture
def gpu_image(docker_client, built_images: dict[str, str]) -> Iterator[str]:
    """The stand-in under the tag the role picks for gpu: <ovms_server_image_tag>-gpu."""
    tag = f"gpu{uuid.uuid4().hex[:6]}"
    image = docker_client.images.get(built_images["standin"])
    image.tag("edge-retail/ovms-standin", tag=f"{tag}-gpu")
    yield tag
    docker_client.images.remove(f"edge-retail/ovms-standin:{tag}-gpu")


def test_gpu_server_gets_the_device_the_group_and_the_gpu_image(
        tmp_path: Path, docker_client, render_node: int, gpu_image: str) -> None:
    name = f"ovms-gpu-{uuid.uuid4().hex[:6]}"
    config = {
        **server_vars(tmp_path, name, free_port(), wait_timeout=120),
        "ovms_server_accelerator": "gpu",
        "ovms_server_image_source": "pull",  # the -gpu tag is on the engine already
        "ovms_server_image_tag": gpu_image,
        "ovms_models_list": [{"name": "person-detection", "target_device": "AUTO:GPU,CPU",
                              "plugin_config": {"INFERENCE_PRECISION_HINT": "f32"}}],
    }
    try:
        first = run_play(tmp_path, config)
        assert first.returncode == 0, first.stdout[-4000:]

        attrs = docker_client.containers.get(name).attrs
        assert attrs["Config"]["Image"] == f"edge-retail/ovms-standin:{gpu_image}-gpu"
        devices = [d["PathOnHost"] for d in attrs["HostConfig"]["Devices"] or []]
        assert devices == ["/dev/dri"], attrs["HostConfig"]["Devices"]
        assert attrs["HostConfig"]["GroupAdd"] == [str(render_node)]

        written = json.loads((tmp_path / "config/config.json").read_text())
        assert [m["config"]["target_device"] for m in written["model_config_list"]] == ["AUTO:GPU,CPU"]

        # Inside the container the render node is there, and its user is in the node's group.
        probe = docker_client.containers.get(name).exec_run(
            ["/bin/sh", "-c", "stat -c '%t:%T %g' /dev/dri/renderD128; id -G"])
        assert probe.exit_code == 0, probe.output
        node, groups = probe.output.decode().split("\n")[:2]
        assert node == f"e2:80 {render_node}"
        assert str(render_node) in groups.split()

        again = run_play(tmp_path, config)
        assert again.returncode == 0, again.stdout[-4000:]
        assert "changed=0" in again.stdout.split("PLAY RECAP")[-1], again.stdout[-3000:]
    finally:
        # Nothing to remove when the first run failed early.
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get(name).remove(force=True)
