"""The client image as a store host runs it: profile and env file in the /data volume, the
server in another container on a private network, `docker stop` for a clean shutdown."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from media import make_walk_video

ROOT = Path(__file__).resolve().parents[2]
MODEL = "person-detection"


def wait_for(predicate, what: str, timeout: float = 120.0, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def network(docker_client) -> Iterator[str]:
    # internal: the containers reach each other and nothing else.
    net = docker_client.networks.create(f"client-test-{uuid.uuid4().hex[:8]}", internal=True)
    yield net.name
    net.remove()


@pytest.fixture(scope="module")
def standin(
    docker_client,
    built_images,
    model_repo: Path,
    network: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The stand-in container serving the person detector; yields its name on `network`."""
    config_dir = tmp_path_factory.mktemp("standin-config")
    (config_dir / "config.json").write_text(
        json.dumps(
            {"model_config_list": [{"config": {"name": MODEL, "base_path": f"/models/{MODEL}"}}]}
        )
    )
    config_dir.chmod(0o755)
    name = f"standin-{uuid.uuid4().hex[:8]}"
    container = docker_client.containers.run(
        built_images["standin"],
        ["--config_path", "/config/config.json", "--port", "9000", "--rest_port", "8000"],
        name=name,
        network=network,
        detach=True,
        volumes={
            str(model_repo): {"bind": "/models", "mode": "ro"},
            str(config_dir): {"bind": "/config", "mode": "ro"},
        },
    )
    try:
        wait_for(
            lambda: _logs(container).count("Server is ready") or _exited(container),
            "the stand-in container to load the model",
        )
        assert not _exited(container), _logs(container)
        yield name
    finally:
        container.remove(force=True)


def _logs(container) -> str:
    return container.logs().decode(errors="replace")


def _exited(container) -> bool:
    container.reload()
    return container.status == "exited"


@pytest.fixture
def data_dir(tmp_path: Path, standin: str) -> Path:
    """/data for the client: the shipped profile pointed at the stand-in, an env file, a video."""
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # the client runs as UID 1000
    make_walk_video(data / "input.mp4", frames=15, size=(640, 360))
    profile = yaml.safe_load(
        (ROOT / "client/src/ovms_client/profiles/person-detection-ssd.yaml").read_text()
    )
    profile.update(
        server_address=f"{standin}:9000",
        inputs=["input.mp4"],
        labels="/opt/ovms-client/profiles/person-detection-ssd.labels",
    )
    (data / "profile.yaml").write_text(yaml.safe_dump(profile))
    (data / "client.env").write_text("OVMS_CLIENT_API=tfs\nOVMS_CLIENT_METRICS_INTERVAL=0.5\n")
    return data


def run_client(docker_client, built_images, network: str, data: Path, command=None):
    return docker_client.containers.run(
        built_images["client"],
        command,
        network=network,
        detach=True,
        environment={"OVMS_CLIENT_ENV_FILE": "/data/client.env"},
        volumes={str(data): {"bind": "/data", "mode": "rw"}},
    )


def results(data: Path) -> list[dict]:
    path = data / "results" / "detections.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def frames(data: Path) -> list[dict]:
    return [record for record in results(data) if record.get("type") == "detections"]


def test_client_container_detects_people_with_profile_and_env_file_from_data(
    docker_client, built_images, network: str, data_dir: Path
) -> None:
    container = run_client(docker_client, built_images, network, data_dir)
    try:
        status = container.wait(timeout=180)
        logs = _logs(container)
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, logs
    assert "(tfs)" in logs  # the env file's api reached the client
    lines = results(data_dir)
    frames = [r for r in lines if r["type"] == "detections"]
    assert [r["frame"] for r in frames] == list(range(15))
    assert sum(1 for r in frames if any(d["label"] == "person" for d in r["detections"])) >= 10
    assert lines[-1]["type"] == "summary" and lines[-1]["frames"] == 15
    owner = (data_dir / "results" / "detections.jsonl").stat().st_uid
    assert owner == 1000


def test_docker_stop_ends_the_client_cleanly_with_a_summary(
    docker_client, built_images, network: str, data_dir: Path
) -> None:
    container = run_client(
        docker_client,
        built_images,
        network,
        data_dir,
        ["--profile", "/data/profile.yaml", "--loop"],
    )
    try:
        # Count frame records only: metrics lines share the file, and how many of them come
        # per frame depends on the machine's speed.
        wait_for(
            lambda: len(frames(data_dir)) >= 20 or _exited(container),
            "frames from the looping client",
        )
        assert not _exited(container), _logs(container)
        seen = len(frames(data_dir))
        container.stop(timeout=30)
        status = container.wait(timeout=60)
        logs = _logs(container)
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, logs
    assert "received SIGTERM" in logs
    summary = results(data_dir)[-1]
    assert summary["type"] == "summary" and summary["stopped_by"] == "signal"
    # Every frame written before the stop is in the summary's count (more may follow the stop).
    assert summary["frames"] >= seen >= 20


def test_shipped_profile_is_found_by_name_inside_the_image(docker_client, built_images) -> None:
    output = docker_client.containers.run(
        built_images["client"],
        ["--profile", "person-detection-ssd", "--input", "0", "--check"],
        network_disabled=True,
        remove=True,
    )
    settings = json.loads(output)
    assert settings["model_name"] == MODEL
    assert settings["labels"] == "/opt/ovms-client/profiles/person-detection-ssd.labels"
    assert settings["inputs"] == [{"id": "stream0", "source": "0", "kind": "camera"}]
