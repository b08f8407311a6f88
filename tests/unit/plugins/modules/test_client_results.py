"""client_results on real files: a writer thread appends (and rotates) while the module waits.

The writer is tied to the module's polls, not to the clock: the module's sleep between two
polls hands over to the writer's next step and waits until it is done, so every step lands
between two known polls however fast the machine is. Time bounds are only there to end a
broken test; nothing asserts that something happened within a time.
"""
from __future__ import annotations

import errno
import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.edge_retail.ovms.plugins.modules import client_results
from ansible_collections.edge_retail.ovms.plugins.modules.client_results import (
    Progress,
    ResultsTail,
    wait_for_results,
)
from ovms_client.results import JsonLinesWriter

# Ends a broken test; a working one never waits this long.
BOUND = 60.0
# A past time for lines written "before" the module started.
LONG_AGO = 1_700_000_000.0


def frame_line(timestamp: float, index: int = 0, stream: str = "stream0") -> str:
    record = {"type": "detections", "stream": stream, "frame": index, "timestamp": timestamp,
              "width": 640, "height": 480, "latency_ms": 9.4, "detections": []}
    return json.dumps(record, separators=(",", ":")) + "\n"


def metrics_line(timestamp: float, fps: float) -> str:
    record = {"type": "metrics", "timestamp": timestamp, "interval_s": 5.0, "fps": fps,
              "server": "up", "streams": {}}
    return json.dumps(record, separators=(",", ":")) + "\n"


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def rotate(path: Path) -> None:
    """As the client rotates: FILE -> FILE.1, then a new FILE."""
    path.rename(path.with_name(path.name + ".1"))
    path.touch()


class StepWriter(threading.Thread):
    """Runs ``steps[i]`` while the module sleeps for the (i+1)-th time.

    It also keeps the module's clock, which advances by the seconds the module asked to
    sleep, so a timeout means "this many polls" and not a time the machine has to keep.
    """

    def __init__(self, steps: list[Callable[[], None]]) -> None:
        super().__init__(daemon=True)
        self.steps = steps
        self.polled = [threading.Event() for _step in steps]
        self.written = [threading.Event() for _step in steps]
        self.sleeps = 0
        self.now = 0.0
        self.error: Exception | None = None

    def run(self) -> None:
        for index, step in enumerate(self.steps):
            if not self.polled[index].wait(BOUND):
                return
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - handed to the test, which fails with it
                self.error = exc
            finally:
                self.written[index].set()

    def module_clock(self) -> float:
        return self.now

    def module_sleep(self, seconds: float) -> None:
        index = self.sleeps
        self.sleeps += 1
        if index < len(self.steps):
            self.polled[index].set()
            self.written[index].wait(BOUND)
        else:
            time.sleep(seconds)
        self.now += seconds


@pytest.fixture
def results(tmp_path: Path) -> Path:
    path = tmp_path / "detections.jsonl"
    # Lines from before the module starts, some with timestamps that look new: neither counts.
    path.write_text("".join(frame_line(LONG_AGO, i) for i in range(5))
                    + metrics_line(LONG_AGO, 30.0) + frame_line(time.time() + 3600, 9))
    return path


def run(capsys: pytest.CaptureFixture[str], **args: Any) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        client_results.main()
    result = json.loads(capsys.readouterr().out)
    assert (exited.value.code != 0) == bool(result.get("failed"))
    return result


@pytest.fixture
def writer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., StepWriter]]:
    """Start a StepWriter whose steps run between the module's polls."""
    started: list[StepWriter] = []

    def start(*steps: Callable[[], None]) -> StepWriter:
        thread = StepWriter(list(steps))
        monkeypatch.setattr(client_results, "wait_for_results",
                            functools.partial(wait_for_results, sleep=thread.module_sleep,
                                              clock=thread.module_clock))
        thread.start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        for event in thread.polled:
            event.set()
        thread.join(BOUND)
        assert thread.error is None, thread.error


@pytest.mark.parametrize(("args", "expected"), [
    ({}, "missing required arguments: path"),
    ({"path": "/x", "timeout": -1}, "timeout is -1.0; expected 0 or more seconds"),
    ({"path": "/x", "min_frames": -1}, "min_frames is -1; expected 0 or more"),
    ({"path": "/x", "min_fps": -0.5}, "min_fps is -0.5; expected 0 or more frames per second"),
    ({"path": "/x", "interval": 0}, "interval is 0.0; expected more than 0 seconds"),
    ({"path": "/x", "min_frames": "many"}, "argument 'min_frames' is of type str"),
])
def test_invalid_arguments_fail_naming_the_option(
        capsys: pytest.CaptureFixture[str], args: dict[str, Any], expected: str) -> None:
    result = run(capsys, **args)
    assert result["failed"]
    assert expected in result["msg"]


def test_a_directory_is_refused_at_once(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    result = run(capsys, path=str(tmp_path), timeout=BOUND)
    assert result["failed"]
    assert result["msg"] == (f"path is {tmp_path}, which is a directory; expected the path of "
                             "the client's results file (the host path of its 'output' setting)")
    assert result["waited_s"] == 0.0


def test_an_unreadable_file_is_refused_at_once(capsys: pytest.CaptureFixture[str],
                                               results: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    results.chmod(0)
    if os.geteuid() == 0:
        # root reads files whatever their mode: refuse as the kernel would for anyone else.
        def refuse(*_args: object) -> None:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

        monkeypatch.setattr(client_results, "open", refuse, raising=False)
    result = run(capsys, path=str(results), timeout=BOUND)
    assert result["failed"]
    assert result["msg"].startswith(f"cannot read {results}: Permission denied")


@pytest.mark.parametrize("check_mode", [False, True])
def test_new_lines_appended_while_waiting_succeed(
        capsys: pytest.CaptureFixture[str], results: Path, writer: Callable[..., StepWriter],
        check_mode: bool) -> None:
    # The metrics line comes last, so when the module sees it both frames are there too.
    writer(lambda: append(results, frame_line(time.time(), 1) + frame_line(time.time(), 2)
                          + metrics_line(time.time(), 24.5)))
    result = run(capsys, path=str(results), timeout=BOUND, interval=0.05, min_frames=2,
                 _ansible_check_mode=check_mode)
    assert not result.get("failed"), result["msg"]
    assert result["changed"] is False
    assert (result["frames"], result["metrics"], result["last_fps"]) == (2, 1, 24.5)
    assert result["rotations"] == 0
    # A "path" key would make Ansible add the file's owner, mode and size to the result.
    assert "path" not in result and "mode" not in result
    assert 0 < result["waited_s"] < BOUND


def test_waits_until_enough_frames_and_a_metrics_line(
        capsys: pytest.CaptureFixture[str], results: Path,
        writer: Callable[..., StepWriter]) -> None:
    writer(lambda: append(results, metrics_line(time.time(), 12.0)),
           lambda: append(results, frame_line(time.time(), 1)),
           lambda: append(results, frame_line(time.time(), 2) + frame_line(time.time(), 3)))
    result = run(capsys, path=str(results), timeout=BOUND, interval=0.05, min_frames=3)
    assert not result.get("failed"), result["msg"]
    assert (result["frames"], result["metrics"], result["last_fps"]) == (3, 1, 12.0)


def test_rotation_mid_wait_reads_the_rest_of_the_old_file_and_the_new_one(
        capsys: pytest.CaptureFixture[str], results: Path,
        writer: Callable[..., StepWriter]) -> None:
    def write_and_rotate() -> None:
        # Appended to the old file after the module's last read of it, then rotated away:
        # these two frames are only in FILE.1 by the time the module reads again.
        append(results, frame_line(time.time(), 1) + frame_line(time.time(), 2))
        rotate(results)
        append(results, frame_line(time.time(), 3) + metrics_line(time.time(), 8.0))

    writer(write_and_rotate)
    result = run(capsys, path=str(results), timeout=BOUND, interval=0.05, min_frames=3)
    assert not result.get("failed"), result["msg"]
    assert (result["frames"], result["metrics"], result["rotations"]) == (3, 1, 1)


def test_a_partial_last_line_is_read_once_it_is_complete(
        capsys: pytest.CaptureFixture[str], results: Path,
        writer: Callable[..., StepWriter]) -> None:
    line = metrics_line(time.time() + 1, 30.0)
    cut = line.index('"fps":') + len('"fps":3')
    writer(lambda: append(results, frame_line(time.time(), 1) + line[:cut]),
           lambda: append(results, line[cut:]))
    result = run(capsys, path=str(results), timeout=BOUND, interval=0.05)
    assert not result.get("failed"), result["msg"]
    # The whole line, not the "3" of its first part, and not lost to a misplaced offset.
    assert (result["frames"], result["metrics"], result["last_fps"]) == (1, 1, 30.0)


def test_a_file_that_appears_later_is_read_from_its_start(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        writer: Callable[..., StepWriter]) -> None:
    path = tmp_path / "late.jsonl"
    writer(lambda: append(path, frame_line(time.time(), 0) + metrics_line(time.time(), 5.0)))
    result = run(capsys, path=str(path), timeout=BOUND, interval=0.05)
    assert not result.get("failed"), result["msg"]
    assert (result["frames"], result["metrics"]) == (1, 1)


def test_old_timestamps_appended_after_the_start_do_not_count(
        capsys: pytest.CaptureFixture[str], results: Path,
        writer: Callable[..., StepWriter]) -> None:
    writer(lambda: append(results, frame_line(LONG_AGO, 7) + metrics_line(LONG_AGO, 30.0)))
    result = run(capsys, path=str(results), timeout=0.2, interval=0.05)
    assert result["failed"]
    assert (result["frames"], result["metrics"], result["last_fps"]) == (0, 0, None)
    assert result["msg"].startswith(
        f"{results} does not show the inference client working after 0.2 s: 0 new frame "
        "records, expected at least 1; no new metrics line")
    assert "Seen since the start: 2 new lines, 0 frame records, 0 metrics records" in result["msg"]


def test_fps_below_the_floor_fails_with_the_numbers(
        capsys: pytest.CaptureFixture[str], results: Path,
        writer: Callable[..., StepWriter]) -> None:
    writer(lambda: append(results, frame_line(time.time(), 1) + metrics_line(time.time(), 0.05)),
           lambda: append(results, frame_line(time.time(), 2) + metrics_line(time.time(), 0.02)))
    result = run(capsys, path=str(results), timeout=0.5, interval=0.05, min_fps=0.5)
    assert result["failed"]
    assert (result["frames"], result["metrics"], result["last_fps"]) == (2, 2, 0.02)
    assert (f"{results} does not show the inference client working after 0.5 s: fps 0.05 below "
            "the floor 0.5 (the best of 2 new metrics lines). Seen since the start: 4 new "
            "lines, 2 frame records, 2 metrics records (last fps 0.02)") in result["msg"]


def test_timeout_without_new_lines_names_the_last_line(
        capsys: pytest.CaptureFixture[str], results: Path) -> None:
    results.write_text(frame_line(LONG_AGO, 1) + metrics_line(LONG_AGO + 1, 3.0))
    result = run(capsys, path=str(results), timeout=0.3, interval=0.05)
    assert result["failed"]
    when = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(LONG_AGO + 1))
    assert result["msg"].startswith(
        f"no new result line in {results} in 0.3 s; the last line was written at {when} (")
    assert result["msg"].endswith(" s before the module started)")
    assert (result["frames"], result["metrics"], result["last_fps"]) == (0, 0, None)
    assert result["waited_s"] >= 0.3


def test_timeout_on_a_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    result = run(capsys, path=str(tmp_path / "none.jsonl"), timeout=0, interval=0.05)
    assert result["failed"]
    assert result["msg"] == (f"{tmp_path / 'none.jsonl'} does not exist after 0 s; expected the "
                             "results file of a running inference client (the host path of its "
                             "'output' setting)")


def test_a_client_that_stopped_says_so(capsys: pytest.CaptureFixture[str], results: Path,
                                       writer: Callable[..., StepWriter]) -> None:
    summary = {"type": "summary", "timestamp": time.time() + 1, "frames": 0, "fps": 0.0,
               "stopped_by": "error", "error": "model 'x' not found"}
    steps = writer(lambda: append(results, json.dumps(summary) + "\n"))
    # The writer's clock advances by the interval asked for, not by real time.
    result = run(capsys, path=str(results), timeout=BOUND, interval=0.5)
    assert result["failed"]
    assert result["msg"].endswith("The client wrote its summary line, so it stopped "
                                  "(stopped_by: error, error: model 'x' not found)")
    # The poll after the line was written ended the wait: the timeout was not waited out.
    assert steps.sleeps == 1
    assert f"working after 0.5 s (of {BOUND:g} s)" in result["msg"]


@pytest.mark.parametrize("stopped_by", ["signal", "end of input"])
def test_a_client_that_stopped_without_error_is_waited_for(
        capsys: pytest.CaptureFixture[str], results: Path, writer: Callable[..., StepWriter],
        stopped_by: str) -> None:
    """A restart (signal) or an input that loops writes again: the wait goes on to frames."""
    now = time.time() + 1
    summary = {"type": "summary", "timestamp": now, "frames": 0, "fps": 0.0,
               "stopped_by": stopped_by}
    steps = writer(lambda: append(results, json.dumps(summary) + "\n"),
                   lambda: append(results, frame_line(now + 1) + metrics_line(now + 2, 5.0)))
    result = run(capsys, path=str(results), timeout=BOUND, interval=0.05)
    assert not result.get("failed"), result
    assert steps.sleeps == 2
    assert (result["frames"], result["metrics"], result["last_fps"]) == (1, 1, 5.0)


def test_the_client_writer_rotating_all_the_time(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The client's own writer, free-running and rotating every few lines, as at a store."""
    path = tmp_path / "results" / "detections.jsonl"
    output = JsonLinesWriter(str(path), max_bytes=1500, backups=4)
    stop = threading.Event()

    def client() -> None:
        index = 0
        while not stop.is_set():
            index += 1
            output.write(json.loads(frame_line(time.time(), index)))
            if index % 5 == 0:
                output.write(json.loads(metrics_line(time.time(), 25.0)))
            time.sleep(0.002)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        # 40 frames fill several files: the module has to follow rotations to count them.
        result = run(capsys, path=str(path), timeout=BOUND, interval=0.02, min_frames=40)
    finally:
        stop.set()
        thread.join(BOUND)
        output.close()
    assert not result.get("failed"), result["msg"]
    assert result["frames"] >= 40 and result["metrics"] >= 1 and result["last_fps"] == 25.0
    assert result["rotations"] >= 1


# --- ResultsTail on its own -----------------------------------------------------------------


def collect(tail: ResultsTail) -> list[bytes]:
    lines: list[bytes] = []
    tail.poll(lines.append)
    return lines


def test_the_start_reads_only_a_bounded_window_of_a_big_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.jsonl"
    line = frame_line(LONG_AGO, 1)
    with path.open("w") as handle:
        for _line in range(20 * 1024 * 1024 // len(line)):
            handle.write(line)
        handle.write(metrics_line(LONG_AGO + 1, 2.0) + '{"type":"detec')
    size = path.stat().st_size
    reads: list[int] = []
    real_open = open

    class Counting:
        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def __getattr__(self, name: str) -> Any:
            return getattr(self.handle, name)

        def __enter__(self) -> Self:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def read(self, count: int = -1) -> bytes:
            data = self.handle.read(count)
            reads.append(len(data))
            return data

    monkeypatch.setattr(client_results, "open", lambda *a: Counting(real_open(*a)),
                        raising=False)
    tail = ResultsTail(str(path))
    assert sum(reads) <= client_results.TAIL_WINDOW
    # It starts after the last complete line; the partial one is read once it is complete.
    assert tail.offset == size - len('{"type":"detec')
    assert tail.last_line_at_start == metrics_line(LONG_AGO + 1, 2.0).rstrip("\n").encode()
    append(path, 'tions","frame":2,"timestamp":1}\n')
    assert collect(tail) == [b'{"type":"detections","frame":2,"timestamp":1}']
    assert sum(reads) <= client_results.TAIL_WINDOW + 1024


def test_two_rotations_between_polls_read_every_file_in_order(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("old\n")
    tail = ResultsTail(str(path))
    append(path, "a\n")
    rotate(path)
    append(path, "b\n")
    (tmp_path / "r.jsonl.1").rename(tmp_path / "r.jsonl.2")
    rotate(path)
    append(path, "c\npartial")
    assert collect(tail) == [b"a", b"b", b"c"]
    assert tail.rotations == 1
    append(path, "\n")
    assert collect(tail) == [b"partial"]


def test_a_file_truncated_in_place_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("old line that is long\n")
    tail = ResultsTail(str(path))
    append(path, "a\n")
    # copytruncate: a copy goes to FILE.1, the file itself is emptied.
    (tmp_path / "t.jsonl.1").write_bytes(path.read_bytes())
    path.write_text("b\n")
    assert collect(tail) == [b"a", b"b"]
    assert tail.rotations == 1


def test_a_file_removed_and_not_yet_recreated(tmp_path: Path) -> None:
    path = tmp_path / "gone.jsonl"
    path.write_text("")
    tail = ResultsTail(str(path))
    append(path, "a\n")
    path.rename(tmp_path / "gone.jsonl.1")
    assert collect(tail) == [b"a"]
    assert collect(tail) == []
    append(path, "b\n")
    assert collect(tail) == [b"b"]


# --- Progress and the wait with a scripted clock ----------------------------------------------


def test_progress_counts_only_new_frame_and_metrics_records() -> None:
    progress = Progress(started=100.0, min_frames=2, min_fps=1.0)
    for line in [frame_line(99.9, 1), frame_line(100.0, 2), "not json", "[1, 2]", "",
                 '{"type":"detections","frame":3}', '{"type":"metrics","timestamp":101}',
                 '{"type":"stream_density","timestamp":101,"streams":2}',
                 metrics_line(101.0, 0.5), frame_line(102.0, 3)]:
        progress.add(line.strip().encode())
    assert (progress.frames, progress.metrics, progress.last_fps) == (2, 1, 0.5)
    assert not progress.done
    progress.add(metrics_line(103.0, 1.0).encode())
    assert progress.done
    assert progress.lines == 10
    assert progress.last_line_time == 103.0


def test_every_shortfall_is_named_at_the_deadline(tmp_path: Path) -> None:
    path = tmp_path / "slow.jsonl"
    path.write_text("")
    now = [1000.0]

    def sleep(seconds: float) -> None:
        append(path, frame_line(now[0], 1) + metrics_line(now[0], 0.25))
        now[0] += seconds

    outcome = wait_for_results(str(path), timeout=3, min_frames=10, min_fps=1.0, interval=1,
                               wall=lambda: 1000.0, clock=lambda: now[0], sleep=sleep)
    assert not outcome.ok
    assert outcome.as_dict() == {"frames": 3, "metrics": 3, "last_fps": 0.25, "waited_s": 3.0,
                                 "rotations": 0}
    assert outcome.failure_message().startswith(
        f"{path} does not show the inference client working after 3 s: 3 new frame records, "
        "expected at least 10; fps 0.25 below the floor 1 (the best of 3 new metrics lines). "
        "Seen since the start: 6 new lines, 3 frame records, 3 metrics records (last fps 0.25); "
        "the last line was written at ")
