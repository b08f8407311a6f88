"""A full disk on a store host loses nothing that served before (issue 11, fault 3).

The model repository or the image archive directory is a small tmpfs the test mounts. When the
new model version or archive does not fit, the run fails before copying anything, naming the
host, the path, the bytes needed and the bytes free. When the disk fills during the copy (the
test fills it the moment the copy task starts, as another writer would), the run fails saying
so, nothing of the partial copy stays behind and OVMS still serves the previous version.
"""
from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults import (
    ServingProbe,
    WatchedRun,
    fill,
    run_playbook,
    small_filesystem,
    standin_image,
    used_bytes,
    v2_vars,
)
from test_server_upgrade_rollback import free_port, server_vars

# Playbooks here read the image archives and the model repository: wait for the session builds.
pytestmark = pytest.mark.usefixtures("built_images", "model_repo")

MODELS_PLAY = """
- name: Push the models to this machine.
  hosts: localhost
  gather_facts: false
  roles:
    - edge_retail.ovms.ovms_models
"""

SERVER_PLAY = """
- name: Deploy a model server on this machine.
  hosts: localhost
  gather_facts: false
  roles:
    - edge_retail.ovms.ovms_models
    - edge_retail.ovms.ovms_server
"""

IMAGE_PLAY = """
- name: Load an image archive on this machine.
  hosts: localhost
  gather_facts: false
  roles:
    - edge_retail.ovms.container_image
"""

MODEL_BYTES = 12110484 + 526453  # person-detection version 1: model.bin + model.xml


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def filler_image(docker_client, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A 16 MiB image made with `docker import` (no build), saved as an archive under a tag the
    engine then forgets, so the role must copy and load it: (name, tag, archive)."""
    name, tag = "edge-retail/fault-filler", f"t{uuid.uuid4().hex[:6]}"
    rootfs = io.BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as tar:
        payload = bytes(range(256)) * (16 * 4096)
        info = tarfile.TarInfo("payload.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    docker_client.api.import_image_from_data(rootfs.getvalue(), repository=name, tag=tag)
    image = docker_client.images.get(f"{name}:{tag}")
    archive = tmp_path / "filler.tar"
    with archive.open("wb") as out:
        for chunk in image.save(named=True):
            out.write(chunk)
    docker_client.images.remove(image.id, force=True)
    yield name, tag, archive
    for leftover in docker_client.images.list(name=name):
        docker_client.images.remove(leftover.id, force=True)


def image_vars(tmp_path: Path, name: str, tag: str, archive: Path) -> dict[str, object]:
    import sys

    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "container_image_name": name, "container_image_tag": tag,
            "container_image_source": "archive", "container_image_archive": str(archive),
            "container_image_archive_dir": str(tmp_path / "images"),
            "container_image_variable": "fault_image",
            "container_image_free_space_margin_mb": 0}


def test_model_version_that_does_not_fit_fails_before_copying(tmp_path: Path) -> None:
    models = tmp_path / "models"
    with small_filesystem(models, "8m"):
        extra = {**server_vars(tmp_path, "unused", free_port(), 20),
                 "ovms_models_free_space_margin_mb": 0}
        del extra["ovms_models_staging_dir"]
        run = run_playbook(tmp_path, MODELS_PLAY, extra)
        out = flat(run.stdout)
        print(out[out.find("not enough space"):][:700])
        assert run.returncode != 0, run.stdout[-3000:]
        assert f"localhost: not enough space in {models}/.staging ({models})" in out, out[-3000:]
        assert f"it needs {MODEL_BYTES} bytes" in out
        assert "bytes (8.00 MB) are free" in out or "bytes (" in out
        assert "Nothing was copied" in out
        assert "Copy the version to the staging directory" not in out
        assert used_bytes(models) == 0


def test_image_archive_that_does_not_fit_fails_before_copying(
        tmp_path: Path, filler_image: tuple[str, str, Path]) -> None:
    name, tag, archive = filler_image
    with small_filesystem(tmp_path / "images", "8m"):
        run = run_playbook(tmp_path, IMAGE_PLAY, image_vars(tmp_path, name, tag, archive))
        out = flat(run.stdout)
        print(out[out.find("not enough space"):][:700])
        assert run.returncode != 0, run.stdout[-3000:]
        assert f"localhost: not enough space in {tmp_path / 'images'}" in out, out[-3000:]
        assert f"for fault_image_archive {archive}: it needs {archive.stat().st_size} bytes" in out
        assert "Nothing was copied" in out
        assert "Copy the image archive from the controller" not in out
        assert used_bytes(tmp_path / "images") == 0


def test_disk_filling_during_a_model_copy_leaves_the_served_version(
        tmp_path: Path, docker_client) -> None:
    standin_image(docker_client)
    name = f"ovms-fault-disk-{uuid.uuid4().hex[:6]}"
    grpc_port = free_port()
    models = tmp_path / "models"
    base = {**server_vars(tmp_path, name, grpc_port, wait_timeout=300),
            "ovms_models_free_space_margin_mb": 0}
    del base["ovms_models_staging_dir"]
    probe: ServingProbe | None = None
    try:
        with small_filesystem(models, "40m"):
            first = run_playbook(tmp_path, SERVER_PLAY, base)
            assert first.returncode == 0, first.stdout[-4000:]
            probe = ServingProbe(grpc_port, "person-detection", "1")

            fillers: list[Path] = []

            def fill_at_copy(line: str) -> None:
                if "Copy the version to the staging directory" in line and not fillers:
                    fillers.append(fill(models))

            update = WatchedRun(tmp_path, SERVER_PLAY, {**base, **v2_vars(tmp_path)}, fill_at_copy)
            code = update.wait()
            out = flat(update.output)
            print(out[out.find("failed: the disk filled"):][:900] if "the disk filled" in out
                  else out[-2000:])
            assert fillers, "the copy task never started: " + out[-3000:]
            assert code != 0, out[-3000:]
            assert "to " + str(models / ".staging/person-detection-2") + " failed: the disk filled during the copy" in out
            assert "No space left on device" in out
            assert "The partial copy was removed" in out
            left = used_bytes(models / ".staging")
            print(f"bytes left in the staging directory: {left}")
            assert left == 0
            assert sorted(p.name for p in (models / "person-detection").iterdir()) == ["1"]
            probe.stop()
            assert probe.asked > 0 and not probe.failures, probe.failures
            fillers[0].unlink()
    finally:
        if probe is not None:
            probe.stop()
        for container in docker_client.containers.list(all=True, filters={"name": name}):
            container.remove(force=True)


def test_disk_filling_during_an_archive_copy_removes_the_partial_archive(
        tmp_path: Path, filler_image: tuple[str, str, Path]) -> None:
    name, tag, archive = filler_image
    images = tmp_path / "images"
    with small_filesystem(images, "24m"):
        fillers: list[Path] = []

        def fill_at_copy(line: str) -> None:
            if "Copy the image archive from the controller" in line and not fillers:
                fillers.append(fill(images))

        run = WatchedRun(tmp_path, IMAGE_PLAY, image_vars(tmp_path, name, tag, archive),
                         fill_at_copy)
        code = run.wait()
        out = flat(run.output)
        print(out[out.find("failed: the disk filled"):][:900] if "the disk filled" in out
              else out[-2000:])
        assert fillers, "the copy task never started: " + out[-3000:]
        assert code != 0, out[-3000:]
        assert "failed: the disk filled during the copy" in out, out[-3000:]
        assert "The partial archive was removed" in out
        fillers[0].unlink()
        left = used_bytes(images)
        print(f"bytes left in the archive directory: {left}")
        assert left == 0
