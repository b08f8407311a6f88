"""A new model version rolls out without a failed request.

Runs the real ovms_models and ovms_server roles against this machine's Docker Engine (local
connection), first with the catalog's version 1, then with the same model published as version
2, while the packaged client sends a looping video to the server the whole time. OVMS loads the
new version beside the old one and only retires the old one once the new one is AVAILABLE, so
the client must see no failed request. The counts come from the client's own Prometheus
counters; the test prints them.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from faults import catalog_v2, v2_vars
from test_server_upgrade_rollback import CACHE, ROOT, free_port, run_play, server_vars

PROFILE = ROOT / "client" / "src" / "ovms_client" / "profiles" / "person-detection-ssd.yaml"


def counters(port: int) -> dict[str, float]:
    """The client's frames and errors totals, summed over streams, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    totals = {"ovms_client_frames_total": 0.0, "ovms_client_errors_total": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


def wait_for_frames(port: int, at_least: float, client: subprocess.Popen[str], log: Path,
                    timeout: float = 300) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    last: dict[str, float] = {}
    while time.monotonic() < deadline:
        # A client that exited will never get there: say why now instead of at the deadline.
        assert client.poll() is None, f"the client exited with {client.returncode}: {log.read_text()[-3000:]}"
        try:
            last = counters(port)
        except OSError:
            pass
        if last.get("ovms_client_frames_total", 0) >= at_least:
            return last
        time.sleep(0.5)
    raise AssertionError(f"the client did not reach {at_least} frames in {timeout} s: {last}")


def test_new_model_version_rolls_out_with_no_failed_request(
        tmp_path: Path, docker_client, built_images: dict[str, str]) -> None:
    name = f"ovms-version-{uuid.uuid4().hex[:6]}"
    grpc_port = free_port()
    metrics_port = free_port()
    base = server_vars(tmp_path, name, grpc_port, wait_timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVMS_CLIENT_")}
    env.update({
        "OVMS_CLIENT_SERVER_ADDRESS": f"127.0.0.1:{grpc_port}",
        "OVMS_CLIENT_INPUTS": str(CACHE / "media/store-walk.mp4"),
        "OVMS_CLIENT_LOOP": "true",
        "OVMS_CLIENT_INPUT_FPS": "10",
        "OVMS_CLIENT_OUTPUT": str(tmp_path / "results.jsonl"),
        "OVMS_CLIENT_PROMETHEUS_PORT": str(metrics_port),
        "OVMS_CLIENT_PROMETHEUS_ADDRESS": "127.0.0.1",
        "OVMS_CLIENT_METRICS_INTERVAL": "1",
    })
    client: subprocess.Popen[str] | None = None
    try:
        first = run_play(tmp_path, base)
        assert first.returncode == 0, first.stdout[-4000:]

        client = subprocess.Popen(
            [sys.executable, "-m", "ovms_client", "--profile", str(PROFILE)],
            env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "client.log").open("w"),
            text=True)
        before = wait_for_frames(metrics_port, 20, client, tmp_path / "client.log")

        update = run_play(tmp_path, {
            **base,
            "ovms_models_catalog": str(catalog_v2(tmp_path)),
            "ovms_models_controller_repo_dir": str(tmp_path / "repo-v2"),
        })
        assert update.returncode == 0, update.stdout[-4000:]
        # The role waited for version 2 itself; the client keeps going on it for a while.
        after_update = counters(metrics_port)
        final = wait_for_frames(metrics_port, after_update["ovms_client_frames_total"] + 20, client,
                                tmp_path / "client.log")

        versions = sorted(p.name for p in (tmp_path / "models" / "person-detection").iterdir())
        import tritonclient.grpc as grpcclient

        triton = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        try:
            assert triton.is_model_ready("person-detection", "2")
            assert not triton.is_model_ready("person-detection", "1")
        finally:
            triton.close()

        print(f"\nmodel update 1 -> 2 under load: {final['ovms_client_frames_total']:.0f} requests "
              f"({before['ovms_client_frames_total']:.0f} before the update, "
              f"{final['ovms_client_frames_total'] - after_update['ovms_client_frames_total']:.0f} "
              f"after it), {final['ovms_client_errors_total']:.0f} failed; version dirs {versions}")
        assert final["ovms_client_errors_total"] == 0, (tmp_path / "client.log").read_text()[-3000:]
        assert versions == ["1", "2"], "the previous version is kept for a rollback"
        assert client.poll() is None, "the client stopped during the update"
    finally:
        if client is not None and client.poll() is None:
            client.send_signal(signal.SIGTERM)
            client.wait(timeout=60)
        for container in docker_client.containers.list(all=True, filters={"name": name}):
            container.remove(force=True)


def broken_v2_repo(tmp_path: Path) -> Path:
    """A controller repository whose version 2 of the person detector has truncated weights,
    recorded in its manifest as they are: it passes the checksums and fails in OVMS."""
    import hashlib
    import json
    import shutil

    good = CACHE / "models" / "repo"
    repo = tmp_path / "repo-broken"
    target = repo / "person-detection" / "2"
    shutil.copytree(good / "person-detection" / "1", target)
    weights = target / "model.bin"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    manifest = json.loads((good / "manifest.json").read_text())
    entry = manifest["models"]["person-detection"]
    entry["version"] = 2
    entry["files"] = {
        f"person-detection/2/{f.name}": hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(target.iterdir())
    }
    (repo / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return repo


def test_model_version_that_does_not_load_is_withdrawn_and_the_old_one_serves(
        tmp_path: Path, docker_client, built_images: dict[str, str]) -> None:
    name = f"ovms-badversion-{uuid.uuid4().hex[:6]}"
    grpc_port = free_port()
    base = server_vars(tmp_path, name, grpc_port, wait_timeout=20)
    try:
        first = run_play(tmp_path, base)
        assert first.returncode == 0, first.stdout[-4000:]

        update = run_play(tmp_path, {
            **base,
            "ovms_models_catalog": str(catalog_v2(tmp_path)),
            "ovms_models_controller_repo_dir": str(broken_v2_repo(tmp_path)),
        })
        out = " ".join(update.stdout.split())
        assert update.returncode != 0, update.stdout[-4000:]
        assert "person-detection version 2 did not become AVAILABLE" in out, update.stdout[-4000:]
        assert "the previous version serves again" in out, update.stdout[-4000:]
        versions = sorted(p.name for p in (tmp_path / "models" / "person-detection").iterdir())
        assert versions == ["1"]

        import numpy as np
        import tritonclient.grpc as grpcclient

        triton = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        try:
            assert triton.is_model_ready("person-detection", "1")
            frame = grpcclient.InferInput("image_tensor", [1, 300, 300, 3], "UINT8")
            frame.set_data_from_numpy(np.full((1, 300, 300, 3), 128, dtype=np.uint8))
            reply = triton.infer("person-detection", [frame])
            assert reply.get_response().model_version == "1"
        finally:
            triton.close()
    finally:
        for container in docker_client.containers.list(all=True, filters={"name": name}):
            container.remove(force=True)


def test_setting_that_breaks_every_version_leaves_the_served_version_in_place(
        tmp_path: Path, docker_client, built_images: dict[str, str]) -> None:
    """A config.json setting the device refuses breaks version 2, which served before this run:
    the role must not withdraw it (the cause is the setting, and a rollback needs the version),
    and the good setting serves version 2 again."""
    name = f"ovms-badsetting-{uuid.uuid4().hex[:6]}"
    grpc_port = free_port()
    base = server_vars(tmp_path, name, grpc_port, wait_timeout=120)
    release_b = {**base, **v2_vars(tmp_path)}
    bad = {**release_b, "ovms_server_wait_timeout": 30,
           "ovms_models_list": [{"name": "person-detection",
                                 "plugin_config": {"INFERENCE_PRECISION_HINT": "f32",
                                                   "NUM_STREAMS": "many"}}]}
    versions_dir = tmp_path / "models" / "person-detection"
    try:
        for settings in (base, release_b):
            run = run_play(tmp_path, settings)
            assert run.returncode == 0, run.stdout[-4000:]
        assert sorted(p.name for p in versions_dir.iterdir()) == ["1", "2"]

        broken = run_play(tmp_path, bad)
        out = " ".join(broken.stdout.split())
        assert broken.returncode != 0, broken.stdout[-4000:]
        assert "did not serve every model" in out, broken.stdout[-4000:]
        # OVMS's status API names no cause (its log does); nothing was withdrawn, so nothing is said.
        assert "withdrawn" not in out and "removed from" not in out, broken.stdout[-4000:]
        assert sorted(p.name for p in versions_dir.iterdir()) == ["1", "2"], (
            "version 2 served before this run; a setting broke it, so it must stay: "
            + broken.stdout[-4000:])

        fixed = run_play(tmp_path, release_b)
        assert fixed.returncode == 0, fixed.stdout[-4000:]
        import tritonclient.grpc as grpcclient

        triton = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        try:
            assert triton.is_model_ready("person-detection", "2")
        finally:
            triton.close()
    finally:
        for container in docker_client.containers.list(all=True, filters={"name": name}):
            container.remove(force=True)
