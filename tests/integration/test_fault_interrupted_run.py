"""A controller cut off mid-run loses nothing that served before (issue 11, fault 2).

ansible-playbook (its whole process group: workers and the module processes on this "host")
is SIGKILLed while it copies a new model version, and separately while it loads a new OVMS image
archive. Throughout, OVMS keeps answering that the previous version is ready, and no partial
version is ever in the model repository. The next run completes, removing what the killed run
left behind; a third run changes nothing.
"""
from __future__ import annotations

import contextlib
import threading
import time
import uuid
from pathlib import Path

import pytest
from faults import (
    ServingProbe,
    WatchedRun,
    command_line,
    descendants,
    recap_changed,
    run_playbook,
    standin_image,
    used_bytes,
    v2_vars,
    wait_until,
)
from test_server_upgrade_rollback import free_port, server_vars

# Playbooks here read the image archives and the model repository: wait for the session builds.
pytestmark = pytest.mark.usefixtures("built_images", "model_repo")

SERVER_PLAY = """
- name: Deploy a model server on this machine.
  hosts: localhost
  gather_facts: false
  roles:
    - edge_retail.ovms.ovms_models
    - edge_retail.ovms.ovms_server
"""


def ansible_tmp_bytes(since: float) -> int:
    """Bytes in the connection's temporary directories created after `since` (what the
    killed run left in ~/.ansible/tmp; ansible removes them only when a task ends)."""
    base = Path.home() / ".ansible" / "tmp"
    if not base.is_dir():
        return 0
    total = 0
    for entry in base.iterdir():
        # Another test's ansible run removes its own directories meanwhile.
        with contextlib.suppress(FileNotFoundError):
            if entry.name.startswith("ansible-tmp-") and entry.stat().st_mtime >= since:
                total += used_bytes(entry)
    return total


def module_processes(root: int) -> int:
    """Processes under ansible-playbook that run a module: the `sh -c` the connection starts
    for it (pipelining sends the module on stdin, so its name shows in no command line)."""
    return sum(1 for pid in descendants(root)
               if command_line(pid).startswith((b"/bin/sh\0-c", b"sh\0-c")))


def changed_tasks(output: str) -> list[str]:
    """The TASK headers of the tasks that reported changed."""
    changed, header = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            header = line
        elif line.startswith("changed:"):
            changed.append(header)
    return changed


def last_task(output: str) -> str:
    headers = [line for line in output.splitlines() if line.startswith("TASK [")]
    return headers[-1] if headers else ""


def partial_version(stage: Path, files: int) -> bool:
    """Some, not all, of the version's files are in the staging directory."""
    if not stage.is_dir():
        return False
    done = [p for p in stage.iterdir() if not p.name.startswith(".ansible_tmp")]
    return 0 < len(done) < files


def test_run_killed_while_copying_a_model_version(tmp_path: Path, docker_client) -> None:
    standin_image(docker_client)
    name = f"ovms-fault-kill-{uuid.uuid4().hex[:6]}"
    grpc_port = free_port()
    models = tmp_path / "models"
    base = server_vars(tmp_path, name, grpc_port, wait_timeout=300)
    del base["ovms_models_staging_dir"]
    release = {**base, **v2_vars(tmp_path)}
    probe: ServingProbe | None = None
    try:
        first = run_playbook(tmp_path, SERVER_PLAY, base)
        assert first.returncode == 0, first.stdout[-4000:]
        probe = ServingProbe(grpc_port, "person-detection", "1")

        # What OVMS could see: the version directories of the repository, watched all along.
        seen: set[str] = set()
        watching = threading.Event()

        def watch() -> None:
            while not watching.is_set():
                seen.update(p.name for p in (models / "person-detection").iterdir())
                watching.wait(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        started = time.time()
        killed = WatchedRun(tmp_path, SERVER_PLAY, release)
        stage = models / ".staging" / "person-detection-2"
        wait_until(lambda: partial_version(stage, 2) or killed.process.poll() is not None,
                   timeout=600, what="the first file of version 2 in the staging directory")
        assert killed.process.poll() is None, killed.output[-3000:]
        killed.kill()
        left_staging = used_bytes(models / ".staging")
        left_tmp = ansible_tmp_bytes(started)
        print(f"\nkilled during the copy: {left_staging} bytes left in the staging directory "
              f"({sorted(p.name for p in stage.iterdir())}), {left_tmp} bytes in ~/.ansible/tmp")
        assert left_staging > 0, "the kill came after the copy"
        assert sorted(p.name for p in (models / "person-detection").iterdir()) == ["1"]
        probe.stop()
        assert probe.asked > 0 and not probe.failures, probe.failures
        # The next run moves OVMS to version 2: from now on any version must answer.
        probe = ServingProbe(grpc_port, "person-detection", "")

        second = run_playbook(tmp_path, SERVER_PLAY, release)
        assert second.returncode == 0, second.stdout[-4000:]
        assert any("remove what an interrupted run left in the staging directory" in task
                   for task in changed_tasks(second.stdout)), changed_tasks(second.stdout)
        watching.set()
        watcher.join(timeout=30)
        probe.stop()
        assert probe.asked > 0 and not probe.failures, probe.failures
        assert seen == {"1", "2"}, seen
        assert sorted(p.name for p in (models / "person-detection").iterdir()) == ["1", "2"]
        assert used_bytes(models / ".staging") == 0
        print(f"bytes left in the staging directory after the next run: "
              f"{used_bytes(models / '.staging')}")
        import tritonclient.grpc as grpcclient

        triton = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        try:
            assert triton.is_model_ready("person-detection", "2")
        finally:
            triton.close()

        third = run_playbook(tmp_path, SERVER_PLAY, release)
        assert third.returncode == 0, third.stdout[-4000:]
        assert recap_changed(third.stdout) == 0, changed_tasks(third.stdout)
    finally:
        if probe is not None:
            probe.stop()
        for container in docker_client.containers.list(all=True, filters={"name": name}):
            container.remove(force=True)


def test_run_killed_while_loading_an_image_archive(tmp_path: Path, docker_client) -> None:
    standin = standin_image(docker_client)
    name = f"ovms-fault-load-{uuid.uuid4().hex[:6]}"
    grpc_port = free_port()
    base = server_vars(tmp_path, name, grpc_port, wait_timeout=300)
    # The same server under a tag the engine does not have: the role must copy and load it.
    tag = f"fault-{uuid.uuid4().hex[:6]}"
    image = docker_client.images.get(standin)
    image.tag("edge-retail/ovms-standin", tag)
    archive = tmp_path / "standin-next.tar"
    try:
        with archive.open("wb") as out:
            for chunk in docker_client.images.get(f"edge-retail/ovms-standin:{tag}").save(named=True):
                out.write(chunk)
    finally:
        docker_client.images.remove(f"edge-retail/ovms-standin:{tag}")
    release = {**base, "ovms_server_image_tag": tag, "ovms_server_image_archive": str(archive)}
    images = Path(base["ovms_server_image_archive_dir"])
    probe: ServingProbe | None = None
    try:
        first = run_playbook(tmp_path, SERVER_PLAY, base)
        assert first.returncode == 0, first.stdout[-4000:]
        served_image = docker_client.containers.get(name).attrs["Image"]
        probe = ServingProbe(grpc_port, "person-detection", "1")

        killed = WatchedRun(tmp_path, SERVER_PLAY, release)
        copied = images / archive.name
        wait_until(lambda: (copied.is_file() and copied.stat().st_size == archive.stat().st_size
                            and "Load the image from the archive" in last_task(killed.output)
                            and module_processes(killed.process.pid) > 0)
                   or killed.process.poll() is not None,
                   timeout=600, what="the image load")
        # The module imports the Docker SDK before it streams the archive to the engine.
        time.sleep(1.0)
        assert killed.process.poll() is None, killed.output[-3000:]
        killed.kill()
        print(f"\nkilled in: {last_task(killed.output)}")
        assert "Load the image from the archive" in last_task(killed.output), killed.output[-3000:]
        left = used_bytes(images)
        print(f"killed during the load: {left} bytes left in the archive directory")
        assert docker_client.containers.get(name).attrs["Image"] == served_image
        # The next run recreates the container on the new tag, as an uninterrupted run does.
        probe.stop()
        assert probe.asked > 0 and not probe.failures, probe.failures

        second = run_playbook(tmp_path, SERVER_PLAY, release)
        assert second.returncode == 0, second.stdout[-4000:]
        print(f"bytes left in the archive directory after the next run: {used_bytes(images)}")
        assert used_bytes(images) == 0

        third = run_playbook(tmp_path, SERVER_PLAY, release)
        assert third.returncode == 0, third.stdout[-4000:]
        assert recap_changed(third.stdout) == 0, changed_tasks(third.stdout)
    finally:
        if probe is not None:
            probe.stop()
        for container in docker_client.containers.list(all=True, filters={"name": name}):
            container.remove(force=True)
        for leftover in docker_client.images.list(name="edge-retail/ovms-standin"):
            if f"edge-retail/ovms-standin:{tag}" in leftover.tags:
                docker_client.images.remove(f"edge-retail/ovms-standin:{tag}")
