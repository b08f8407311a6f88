"""Stream density search, the Prometheus endpoint, annotated frames and the settings behind
them, without a server (the integration tests run them against the stand-in)."""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from ovms_client.adapters import Classification, Detection
from ovms_client.app import App
from ovms_client.density import MAX_TRIALS, find_density
from ovms_client.errors import ConfigError
from ovms_client.exporters import Annotator, PrometheusServer, render_prometheus
from ovms_client.results import JsonLinesWriter, Metrics
from ovms_client.settings import load
from prometheus_client.parser import text_string_to_metric_families
from test_client_pipeline import ScriptedApi, gray_frames, settings_for


def saturating(capacity: float, per_stream_cap: float):
    """Streams share `capacity` frames/s; one stream alone reaches at most `per_stream_cap`."""
    calls: list[int] = []

    def trial(n: int) -> list[float]:
        calls.append(n)
        return [min(per_stream_cap, capacity / n)] * n

    return trial, calls


def test_density_finds_the_largest_count_that_keeps_the_target() -> None:
    trial, calls = saturating(capacity=100.0, per_stream_cap=40.0)
    result = find_density(trial, 14.9, max_streams=32)
    assert result.streams == 6  # 100/6 = 16.7 passes, 100/7 = 14.3 does not
    assert 7 in calls and len(calls) <= MAX_TRIALS
    assert not result.capped
    assert result.to_json()["trials"][0] == {
        "streams": 1,
        "min_fps": 40.0,
        "total_fps": 40.0,
        "fps": [40.0],
    }


def test_density_gallops_past_a_low_estimate() -> None:
    # One stream alone is slow (2 requests in flight), but the server scales with streams.
    trial, _calls = saturating(capacity=150.0, per_stream_cap=20.0)
    assert find_density(trial, 14.9, max_streams=32).streams == 10


def test_density_is_bounded_by_max_streams_and_zero_when_one_stream_fails() -> None:
    trial, calls = saturating(capacity=1000.0, per_stream_cap=100.0)
    result = find_density(trial, 14.9, max_streams=4)
    assert (result.streams, result.capped) == (4, True)
    assert max(calls) == 4
    slow, _slow_calls = saturating(capacity=10.0, per_stream_cap=10.0)
    assert find_density(slow, 14.9, max_streams=8).streams == 0


def test_density_uses_the_slowest_stream() -> None:
    def unfair(n: int) -> list[float]:
        return [30.0] * (n - 1) + [14.0] if n > 3 else [30.0] * n

    assert find_density(unfair, 14.9, max_streams=16).streams == 3


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode()


# What the hand-written endpoint served before prometheus_client did (sample names and kinds):
# dashboards and tests/integration read these names.
SAMPLE_NAMES = {
    "ovms_client_server_up",
    "ovms_client_frames_total",
    "ovms_client_errors_total",
    "ovms_client_dropped_frames_total",
    "ovms_client_fps",
    "ovms_client_request_latency_seconds_bucket",
    "ovms_client_request_latency_seconds_sum",
    "ovms_client_request_latency_seconds_count",
}
KINDS = {
    "ovms_client_server_up": "gauge",
    "ovms_client_frames": "counter",
    "ovms_client_errors": "counter",
    "ovms_client_dropped_frames": "counter",
    "ovms_client_fps": "gauge",
    "ovms_client_request_latency_seconds": "histogram",
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, parsed the way Prometheus parses a scrape."""
    families = list(text_string_to_metric_families(text))
    assert {f.name: f.type for f in families} == KINDS
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families
        for s in family.samples
    }


def test_prometheus_endpoint_serves_the_same_metrics_over_http() -> None:
    metrics = Metrics(["door", 'odd"id'])
    for latency in (0.004, 0.012, 0.2):
        metrics.frame_done("door", latency, latency)
    metrics.request_failed("door")
    metrics.frame_dropped('odd"id')
    up = [True]
    server = PrometheusServer("127.0.0.1", 0, metrics, lambda: up[0])
    server.start()
    try:
        first = samples(scrape(server.port))
        metrics.frame_done("door", 0.03, 0.03)
        up[0] = False
        second = samples(scrape(server.port))
    finally:
        server.close()
    assert {name for name, _labels in first} == SAMPLE_NAMES
    door, odd = (("stream", "door"),), (("stream", 'odd"id'),)
    assert first[("ovms_client_server_up", ())] == 1
    assert first[("ovms_client_frames_total", door)] == 3
    assert first[("ovms_client_frames_total", odd)] == 0
    assert first[("ovms_client_errors_total", door)] == 1
    assert first[("ovms_client_dropped_frames_total", odd)] == 1
    assert first[("ovms_client_fps", door)] > 0
    bucket = "ovms_client_request_latency_seconds_bucket"
    assert first[(bucket, (("le", "0.005"), *door))] == 1
    assert first[(bucket, (("le", "0.02"), *door))] == 2
    assert first[(bucket, (("le", "+Inf"), *door))] == 3
    assert first[("ovms_client_request_latency_seconds_count", door)] == 3
    assert first[("ovms_client_request_latency_seconds_sum", door)] == pytest.approx(0.216)
    # Each scrape reads the counters afresh.
    assert second[("ovms_client_server_up", ())] == 0
    assert second[("ovms_client_frames_total", door)] == 4
    assert second[(bucket, (("le", "0.05"), *door))] == 3  # 0.004, 0.012, 0.03
    assert second[(bucket, (("le", "0.25"), *door))] == 4
    # The text render is the endpoint's.
    assert render_prometheus(metrics, False).startswith("# HELP ovms_client_server_up")


def test_prometheus_endpoint_that_cannot_listen_names_the_settings() -> None:
    metrics = Metrics(["s"])
    first = PrometheusServer("127.0.0.1", 0, metrics, lambda: True)
    first.start()
    try:
        taken = PrometheusServer("127.0.0.1", first.port, metrics, lambda: True)
        with pytest.raises(
            ConfigError,
            match=rf"cannot listen on 127.0.0.1:{first.port} for "
            r"/metrics \(settings 'prometheus_address', "
            r"'prometheus_port'\)",
        ):
            taken.start()
        taken.close()
    finally:
        first.close()


def test_annotator_draws_boxes_and_classes(tmp_path: Path) -> None:
    annotator = Annotator(tmp_path / "out", ["s0"])
    frame = np.zeros((120, 160, 3), np.uint8)
    annotator.write("s0", 7, frame, [Detection("person", 1, 0.9, 40, 30, 100, 90)])
    annotator.write("s0", 8, frame, [Classification("red", 0, 0.8)])
    boxed = cv2.imread(str(tmp_path / "out/s0/00000007.jpg"))
    assert boxed is not None and boxed.shape == frame.shape
    assert boxed[60, 40].max() > 100  # on the box's left edge
    assert boxed[60, 70].max() < 30  # inside the box: untouched
    assert cv2.imread(str(tmp_path / "out/s0/00000008.jpg")).max() > 100
    assert frame.max() == 0  # the original frame is not drawn on


def test_app_writes_annotated_frames_and_serves_metrics_while_running(tmp_path: Path) -> None:
    folder = gray_frames(tmp_path / "frames", 6)
    settings = settings_for(tmp_path, [str(folder)], annotate_dir=str(tmp_path / "ann"))
    assert App(settings, threading.Event(), ScriptedApi()).run() == 0
    assert sorted(p.name for p in (tmp_path / "ann/stream0").iterdir()) == [
        f"{i:08d}.jpg" for i in range(6)
    ]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"mqtt_topic": "shop/#"}, "setting 'mqtt_topic'.*without wildcards"),
        ({"mqtt_topic": "shop/{camera}"}, "only placeholder is \\{stream\\}"),
        ({"mqtt_broker": "localhost"}, "setting 'mqtt_broker'.*HOST:PORT"),
        ({"prometheus_port": "70000"}, "setting 'prometheus_port'.*between 0 and 65535"),
        ({"adapter": "detr"}, "setting 'adapter'.*ssd, yolo, classification"),
        ({"top_k": "0"}, "setting 'top_k'"),
        ({"mean": "1,2"}, "setting 'mean'.*one number or three"),
        ({"scale": "255"}, "'mean' and 'scale' need dtype float32"),
        ({"scale": "0", "dtype": "float32"}, "'scale'.*cannot be 0"),
        ({"density_trial_s": "0.5"}, "setting 'density_trial_s'"),
        ({"output_max_mb": "-1"}, "setting 'output_max_mb'"),
        ({"output_backups": "0"}, "setting 'output_backups'"),
    ],
)
def test_bad_output_and_adapter_settings_name_the_setting(
    tmp_path: Path, flags: dict, message: str
) -> None:
    values = {
        "model_name": "m",
        "server_address": "127.0.0.1:1",
        "inputs": [str(tmp_path)],
        **flags,
    }
    with pytest.raises(ConfigError, match=message):
        load(values, {}, tmp_path)


def test_density_refuses_a_live_first_input(tmp_path: Path) -> None:
    settings = load(
        {
            "model_name": "m",
            "server_address": "127.0.0.1:1",
            "inputs": ["rtsp://127.0.0.1:1/cam"],
            "stream_density": "true",
        },
        {},
        tmp_path,
    )
    with pytest.raises(ConfigError, match="'stream_density' needs a video file or image"):
        App(settings, threading.Event(), ScriptedApi()).run()


def test_results_file_rotates_keeping_the_newest_backups_and_every_line_whole(
    tmp_path: Path,
) -> None:
    output = tmp_path / "results" / "detections.jsonl"
    output.parent.mkdir()
    output.write_text('{"n":-1}\n')  # a previous run's line: appended to, not erased
    writer = JsonLinesWriter(str(output), max_bytes=200, backups=2)
    for n in range(60):
        writer.write({"n": n, "pad": "x" * 20})
    writer.close()
    files = sorted(p.name for p in output.parent.iterdir())
    assert files == ["detections.jsonl", "detections.jsonl.1", "detections.jsonl.2"]
    assert writer.rotations > 2  # older backups were deleted, not kept
    for path in output.parent.iterdir():
        assert path.stat().st_size <= 200
    newest_first = [
        output,
        output.with_name("detections.jsonl.1"),
        output.with_name("detections.jsonl.2"),
    ]
    numbers = [
        json.loads(line)["n"]
        for path in reversed(newest_first)
        for line in path.read_text().splitlines()
    ]
    # The kept lines are the last ones written, in order, none split or lost between files.
    assert numbers == list(range(60 - len(numbers), 60))


def test_results_file_grows_without_limit_when_rotation_is_off(tmp_path: Path) -> None:
    output = tmp_path / "detections.jsonl"
    writer = JsonLinesWriter(str(output), max_bytes=0)
    for n in range(50):
        writer.write({"n": n, "pad": "x" * 20})
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["detections.jsonl"]
    assert len(output.read_text().splitlines()) == 50


def test_results_on_stdout_are_never_rotated(capsys: pytest.CaptureFixture[str]) -> None:
    writer = JsonLinesWriter("-", max_bytes=100, backups=2)
    for n in range(20):
        writer.write({"n": n, "pad": "x" * 20})
    writer.close()
    assert [json.loads(line)["n"] for line in capsys.readouterr().out.splitlines()] == list(
        range(20)
    )
    assert writer.rotations == 0


def test_rotation_that_cannot_rename_keeps_appending_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    output = folder / "detections.jsonl"
    # The oldest backup's name is taken by a directory that cannot be removed (even as root).
    (folder / "detections.jsonl.2" / "keep").mkdir(parents=True)
    writer = JsonLinesWriter(str(output), max_bytes=200, backups=2)
    for n in range(8):
        writer.write({"n": n, "pad": "x" * 20})
    writer.close()
    assert [json.loads(line)["n"] for line in output.read_text().splitlines()] == list(range(8))
    assert writer.rotations == 0
    assert len([r for r in caplog.records if "cannot rotate" in r.getMessage()]) == 1
