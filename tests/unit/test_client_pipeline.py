"""The client's pipeline against a scripted server: ordering with requests in flight, several
streams, outages ridden out with one log line, fatal errors and their exit codes."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from ovms_client.api import ModelInfo, TensorInfo
from ovms_client.app import App, resolve_input
from ovms_client.errors import (
    ConfigError,
    ExitCode,
    InferenceError,
    InputError,
    ServerUnavailable,
)
from ovms_client.results import JsonLinesWriter, OrderedEmitter
from ovms_client.settings import load


class ScriptedApi:
    """Answers like an SSD model whose one detection's class id is the frame's gray level,
    so each output line can be matched to the frame it came from."""

    address = "scripted:0"

    def __init__(
        self,
        outage_at: int | None = None,
        probes_while_down: int = 3,
        delay: float = 0.004,
        stop_after: tuple[int, threading.Event] | None = None,
        outputs: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.outage_at = outage_at
        self.probes_while_down = probes_while_down
        self.delay = delay
        self.stop_after = stop_after
        self.outputs = outputs
        self.down = False
        self.calls = 0
        self.failed_calls = 0
        self.lock = threading.Lock()
        self.random = random.Random(7)
        self.closed = False

    def model_ready(self) -> bool:
        with self.lock:
            if self.down:
                self.probes_while_down -= 1
                if self.probes_while_down <= 0:
                    self.down = False
                return False
            return True

    def model_info(self) -> ModelInfo:
        return ModelInfo((TensorInfo("image_tensor", (1, 8, 8, 3), "uint8"),), ())

    def infer(self, input_name: str, tensor: np.ndarray) -> dict[str, np.ndarray]:
        assert input_name == "image_tensor"
        with self.lock:
            self.calls += 1
            if self.outage_at is not None and self.calls == self.outage_at:
                self.down = True
            if self.down:
                self.failed_calls += 1
                raise ServerUnavailable("scripted outage")
            pause = self.random.uniform(0, self.delay)
            if self.stop_after and self.calls == self.stop_after[0]:
                self.stop_after[1].set()
        time.sleep(pause)  # random service time: requests finish out of order
        if self.outputs is not None:
            return self.outputs
        level = float(tensor.mean())
        return {
            "detection_boxes": np.array([[[0.0, 0.0, 0.5, 0.5]]], np.float32),
            "detection_scores": np.array([[0.9]], np.float32),
            "detection_classes": np.array([[level]], np.float32),
            "num_detections": np.array([1.0], np.float32),
        }

    def close(self) -> None:
        self.closed = True


def gray_frames(folder: Path, count: int) -> Path:
    folder.mkdir()
    for index in range(count):
        cv2.imwrite(str(folder / f"{index:04}.png"), np.full((16, 24, 3), index, np.uint8))
    return folder


def settings_for(tmp_path: Path, inputs: list[str], **flags: object):
    values = {
        "model_name": "m",
        "server_address": "127.0.0.1:1",
        "inputs": inputs,
        "output": str(tmp_path / "out.jsonl"),
        "in_flight": "4",
        "metrics_interval": "0",
        "score_threshold": "0.5",
        "ready_timeout": "5",
        **flags,
    }
    return load(values, {}, tmp_path)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_frames_come_out_in_order_with_requests_in_flight(tmp_path: Path) -> None:
    folder = gray_frames(tmp_path / "frames", 40)
    api = ScriptedApi()
    assert App(settings_for(tmp_path, [str(folder)]), threading.Event(), api).run() == 0
    lines = read_lines(tmp_path / "out.jsonl")
    frames = [r for r in lines if r["type"] == "detections"]
    assert [r["frame"] for r in frames] == list(range(40))
    assert [r["detections"][0]["class_id"] for r in frames] == list(range(40))
    assert frames[0]["width"] == 24 and frames[0]["height"] == 16
    # The box is in the original 24x16 frame's pixels, not the model's 8x8.
    assert frames[0]["detections"][0]["box"] == {
        "xmin": 0.0,
        "ymin": 0.0,
        "xmax": 12.0,
        "ymax": 8.0,
    }
    summary = lines[-1]
    assert summary["type"] == "summary"
    assert summary["frames"] == 40
    assert summary["exit_code"] == 0 and summary["stopped_by"] == "end of input"
    assert summary["fps"] > 0
    assert (
        summary["streams"]["stream0"]["latency_ms"]["p95"]
        >= summary["streams"]["stream0"]["latency_ms"]["p50"]
        > 0
    )
    assert api.closed


class SlowApi(ScriptedApi):
    """Every request takes longer than the reader waits to queue its end-of-input marker."""

    def infer(self, input_name: str, tensor: np.ndarray) -> dict[str, np.ndarray]:
        time.sleep(0.5)
        return super().infer(input_name, tensor)


def test_end_of_input_with_busy_workers_loses_no_frame(tmp_path: Path) -> None:
    folder = gray_frames(tmp_path / "frames", 10)
    settings = settings_for(tmp_path, [str(folder)], in_flight="2")
    assert App(settings, threading.Event(), SlowApi(delay=0.0)).run() == 0
    frames = [r for r in read_lines(tmp_path / "out.jsonl") if r["type"] == "detections"]
    assert [r["frame"] for r in frames] == list(range(10))


def test_several_streams_in_one_process(tmp_path: Path) -> None:
    first = gray_frames(tmp_path / "a", 12)
    second = gray_frames(tmp_path / "b", 7)
    settings = settings_for(tmp_path, [str(first), str(second)], in_flight="2")
    assert App(settings, threading.Event(), ScriptedApi()).run() == 0
    lines = read_lines(tmp_path / "out.jsonl")
    by_stream: dict[str, list[int]] = {}
    for record in lines:
        if record["type"] == "detections":
            by_stream.setdefault(record["stream"], []).append(record["frame"])
    assert by_stream == {"stream0": list(range(12)), "stream1": list(range(7))}
    assert lines[-1]["streams"]["stream0"]["frames"] == 12
    assert lines[-1]["streams"]["stream1"]["frames"] == 7
    assert lines[-1]["frames"] == 19


def test_outage_is_ridden_out_logged_once_and_no_frame_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = gray_frames(tmp_path / "frames", 30)
    api = ScriptedApi(outage_at=10, probes_while_down=2)
    with caplog.at_level(logging.INFO):
        code = App(settings_for(tmp_path, [str(folder)]), threading.Event(), api).run()
    assert code == 0
    frames = [r for r in read_lines(tmp_path / "out.jsonl") if r["type"] == "detections"]
    assert [r["frame"] for r in frames] == list(range(30))
    assert [r["detections"][0]["class_id"] for r in frames] == list(range(30))
    assert api.failed_calls >= 1
    down = [r for r in caplog.records if "server unavailable" in r.getMessage()]
    back = [r for r in caplog.records if "server back" in r.getMessage()]
    assert len(down) == 1 and len(back) == 1
    assert read_lines(tmp_path / "out.jsonl")[-1]["server_outages"] == 1


def test_stop_ends_an_endless_input_cleanly_with_a_summary(tmp_path: Path) -> None:
    folder = gray_frames(tmp_path / "frames", 5)
    stop = threading.Event()
    app = App(
        settings_for(tmp_path, [str(folder)], loop="true"), stop, ScriptedApi(stop_after=(25, stop))
    )
    app.stopped_by_signal = True  # what the SIGTERM handler does besides setting stop
    assert app.run() == 0
    lines = read_lines(tmp_path / "out.jsonl")
    frames = [r["frame"] for r in lines if r["type"] == "detections"]
    assert frames == sorted(frames) and len(frames) >= 20
    assert lines[-1]["stopped_by"] == "signal"
    assert lines[-1]["frames"] == len(frames)


def test_max_frames_limits_each_stream(tmp_path: Path) -> None:
    folder = gray_frames(tmp_path / "frames", 3)
    settings = settings_for(tmp_path, [str(folder)], loop="true", max_frames="8")
    assert App(settings, threading.Event(), ScriptedApi()).run() == 0
    assert read_lines(tmp_path / "out.jsonl")[-1]["frames"] == 8


def test_unreadable_outputs_end_the_run_with_exit_code_5(tmp_path: Path) -> None:
    folder = gray_frames(tmp_path / "frames", 5)
    api = ScriptedApi(outputs={"logits": np.zeros((1, 10), np.float32)})
    with pytest.raises(InferenceError) as caught:
        App(settings_for(tmp_path, [str(folder)]), threading.Event(), api).run()
    assert caught.value.exit_code == ExitCode.INFERENCE
    summary = read_lines(tmp_path / "out.jsonl")[-1]
    assert summary["exit_code"] == 5 and "cannot read the outputs of model 'm'" in summary["error"]


def test_unusable_inputs_and_outputs_are_reported_before_contacting_the_server(
    tmp_path: Path,
) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"\x00" * 100)
    api = ScriptedApi()
    with pytest.raises(InputError, match="cannot open video file") as caught:
        App(settings_for(tmp_path, [str(bogus)]), threading.Event(), api).run()
    assert caught.value.exit_code == ExitCode.INPUT
    folder = gray_frames(tmp_path / "frames", 1)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the output's directory should be")
    settings = settings_for(tmp_path, [str(folder)], output=str(blocker / "out.jsonl"))
    with pytest.raises(ConfigError, match=r"cannot open output file .* \(setting 'output'\)"):
        App(settings, threading.Event(), api).run()
    assert api.calls == 0


def test_metrics_lines_appear_periodically(tmp_path: Path) -> None:
    folder = gray_frames(tmp_path / "frames", 4)
    stop = threading.Event()
    api = ScriptedApi(delay=0.02, stop_after=(60, stop))
    settings = settings_for(
        tmp_path, [str(folder)], loop="true", metrics_interval="0.2", in_flight="1"
    )
    assert App(settings, stop, api).run() == 0
    metrics = [r for r in read_lines(tmp_path / "out.jsonl") if r["type"] == "metrics"]
    assert metrics, "a run of ~0.6 s with a 0.2 s interval writes metrics lines"
    stream = metrics[0]["streams"]["stream0"]
    assert set(stream) == {"frames", "fps", "latency_ms", "e2e_ms", "dropped"}
    assert metrics[0]["server"] == "up"
    assert sum(m["streams"]["stream0"]["frames"] for m in metrics) <= 60


def model(shape: tuple[int, ...], dtype: str = "uint8", names: tuple[str, ...] = ("x",)):
    return ModelInfo(tuple(TensorInfo(n, shape, dtype) for n in names), ())


def test_resolve_input_takes_size_from_metadata_and_checks_the_profile(tmp_path: Path) -> None:
    folder = gray_frames(tmp_path / "frames", 1)
    base = settings_for(tmp_path, [str(folder)])
    name, pre = resolve_input(base, model((1, 300, 400, 3)))
    assert (name, pre.width, pre.height) == ("x", 400, 300)
    nchw = settings_for(tmp_path, [str(folder)], layout="NCHW", dtype="float32")
    assert resolve_input(nchw, model((1, 3, 256, 128), "float32"))[1].shape == (1, 3, 256, 128)
    with pytest.raises(ConfigError, match="setting 'input_size' is 320x320, but model input"):
        resolve_input(
            settings_for(tmp_path, [str(folder)], input_size="320x320"), model((1, 300, 300, 3))
        )
    with pytest.raises(
        ConfigError, match="setting 'dtype' is uint8, but model input 'x' takes float32"
    ):
        resolve_input(base, model((1, 300, 300, 3), "float32"))
    with pytest.raises(ConfigError, match="check setting 'layout'"):
        resolve_input(base, model((1, 3, 300, 300)))
    with pytest.raises(ConfigError, match="dynamic size"):
        resolve_input(base, model((1, -1, -1, 3)))
    with pytest.raises(ConfigError, match="set 'input_name'"):
        resolve_input(base, model((1, 8, 8, 3), names=("a", "b")))
    with pytest.raises(ConfigError, match="setting 'input_name' is 'c'"):
        resolve_input(
            settings_for(tmp_path, [str(folder)], input_name="c"),
            model((1, 8, 8, 3), names=("a", "b")),
        )


def test_ordered_emitter_holds_back_until_gaps_fill(tmp_path: Path) -> None:
    writer = JsonLinesWriter(str(tmp_path / "o.jsonl"))
    emitter = OrderedEmitter(writer)
    emitter.complete(2, {"n": 2})
    emitter.complete(1, None)  # given up: skipped, not waited for
    assert (tmp_path / "o.jsonl").read_text() == ""
    emitter.complete(0, {"n": 0})
    emitter.complete(4, {"n": 4})
    emitter.flush()
    writer.close()
    assert [r["n"] for r in read_lines(tmp_path / "o.jsonl")] == [0, 2, 4]
