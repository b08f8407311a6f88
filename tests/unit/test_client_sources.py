"""Client frame sources: video files, image folders, and live sources that reconnect."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from ovms_client.errors import InputError
from ovms_client.settings import InputSpec, SourceKind
from ovms_client.sources import (
    Frame,
    ImageFolderSource,
    LiveSource,
    PacedSource,
    Pacer,
    VideoFileSource,
    make_source,
    pace_for,
)


def write_video(
    path: Path, frames: int, size: tuple[int, int] = (64, 48), fps: float = 10.0
) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for index in range(frames):
        writer.write(np.full((size[1], size[0], 3), index * 10 % 256, np.uint8))
    writer.release()
    return path


def drain(source, limit: int = 1000) -> list:
    frames = []
    while len(frames) < limit:
        frame = source.read()
        if frame is None:
            break
        frames.append(frame)
    return frames


def test_video_file_reads_every_frame_then_ends(tmp_path: Path) -> None:
    spec = InputSpec("s", str(write_video(tmp_path / "v.mp4", 12)), SourceKind.VIDEO)
    frames = drain(VideoFileSource(spec, loop=False))
    assert [f.index for f in frames] == list(range(12))
    assert frames[0].image.shape == (48, 64, 3)
    positions = [f.position_ms for f in frames]
    assert positions == sorted(positions) and positions[-1] > positions[0]


def test_video_file_loops_with_continuing_indices(tmp_path: Path) -> None:
    spec = InputSpec("s", str(write_video(tmp_path / "v.mp4", 5)), SourceKind.VIDEO)
    frames = drain(VideoFileSource(spec, loop=True), limit=13)
    assert [f.index for f in frames] == list(range(13))
    # Frame 5 is the first frame again.
    np.testing.assert_array_equal(frames[5].image, frames[0].image)


def test_undecodable_video_is_an_input_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"\x00" * 1000)
    with pytest.raises(InputError, match=r"cannot open video file .*bogus.mp4"):
        VideoFileSource(InputSpec("s", str(bogus), SourceKind.VIDEO), loop=False)


def test_image_folder_in_name_order_skipping_undecodable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for index in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"{index:03}.png"), np.full((4, 6, 3), index, np.uint8))
    (tmp_path / "003.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    source = ImageFolderSource(InputSpec("s", str(tmp_path), SourceKind.IMAGES), loop=False)
    frames = drain(source)
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 1, 2]
    assert "skipping" in caplog.text and "003.jpg" in caplog.text


def test_image_folder_loop_and_empty_folder(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    looped = ImageFolderSource(InputSpec("s", str(tmp_path), SourceKind.IMAGES), loop=True)
    assert [f.index for f in drain(looped, limit=4)] == [0, 1, 2, 3]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no images"):
        ImageFolderSource(InputSpec("s", str(empty), SourceKind.IMAGES), loop=False)


def test_single_image_file_is_one_frame(tmp_path: Path) -> None:
    path = tmp_path / "one.jpg"
    cv2.imwrite(str(path), np.zeros((4, 4, 3), np.uint8))
    stop = threading.Event()
    source = make_source(InputSpec("s", str(path), SourceKind.IMAGES), False, stop)
    assert len(drain(source)) == 1


class FakeCapture:
    """Delivers `frames` frames and then fails, as a camera that was unplugged does."""

    def __init__(self, opened: bool, frames: int, first_value: int) -> None:
        self.opened = opened
        self.remaining = frames
        self.value = first_value
        self.released = False

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.remaining <= 0:
            return False, None
        self.remaining -= 1
        self.value += 1
        return True, np.full((2, 2, 3), self.value, np.uint8)

    def get(self, _prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


def test_live_source_reconnects_after_loss_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    # Open: 3 frames; then 4 failed reopen attempts; then a capture with 2 more frames.
    plan = [(True, 3), (False, 0), (False, 0), (False, 0), (False, 0), (True, 2)]
    captures: list[FakeCapture] = []
    stop = threading.Event()

    def opener(_spec: InputSpec) -> FakeCapture:
        if not plan:
            stop.set()  # nothing more to deliver: end the test's stream
            return FakeCapture(False, 0, 0)
        opened, frames = plan.pop(0)
        capture = FakeCapture(opened, frames, 10 * len(captures))
        captures.append(capture)
        return capture

    spec = InputSpec("cam", "rtsp://127.0.0.1:1/x", SourceKind.STREAM)
    source = LiveSource(spec, stop, opener, initial_backoff=0.001, max_backoff=0.002)
    with caplog.at_level(logging.INFO):
        frames = drain(source)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 3, 51, 52]
    assert source.reconnects == 1
    assert all(c.released for c in captures[:-1])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # Two losses (after frame 3 and at the end), one line each: the 4 failed reopen attempts
    # in between add nothing.
    assert len(warnings) == 2 and all("lost input" in w for w in warnings)
    assert any("is back after" in r.getMessage() for r in caplog.records)


def test_live_source_returns_none_when_stopped_while_reconnecting() -> None:
    stop = threading.Event()
    attempts = []

    def opener(_spec: InputSpec) -> FakeCapture:
        attempts.append(1)
        if len(attempts) == 3:
            stop.set()
        return FakeCapture(False, 0, 0)

    spec = InputSpec("cam", "/dev/video9", SourceKind.CAMERA)
    source = LiveSource(spec, stop, opener, initial_backoff=0.001, max_backoff=0.001)
    assert source.read() is None
    assert len(attempts) == 3


class FakeClock:
    """A monotonic clock that only moves when told to or when slept on: no real time passes."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_pacer_spaces_frames_one_interval_apart() -> None:
    clock = FakeClock()
    pacer = Pacer(5.0, clock.sleep, clock)
    pacer.wait()  # the first frame is due at once
    assert clock.sleeps == []
    for _frame in range(3):
        clock.advance(0.05)  # decode, preprocess, enqueue: time that counts towards the 0.2 s
        pacer.wait()
    assert clock.sleeps == pytest.approx([0.15, 0.15, 0.15])
    assert clock.now == pytest.approx(100.0 + 3 * 0.2)


def test_pacer_reschedules_a_late_reader_instead_of_bursting() -> None:
    clock = FakeClock()
    pacer = Pacer(5.0, clock.sleep, clock)
    pacer.wait()
    clock.advance(1.0)  # a slow server held the reader up for five intervals
    pacer.wait()
    assert clock.sleeps == []  # late: read at once...
    pacer.wait()
    pacer.wait()
    # ...but then one full interval per frame from that read, not the four missed frames.
    assert clock.sleeps == pytest.approx([0.2, 0.2])


def test_pacer_keeps_the_rate_when_sleep_overshoots() -> None:
    clock = FakeClock()

    def sleepy(seconds: float) -> None:
        clock.sleep(seconds)
        clock.advance(0.01)  # the OS wakes the thread a little late

    pacer = Pacer(5.0, sleepy, clock)
    for _frame in range(4):
        pacer.wait()
    # Each frame stays on the 0.2 s grid: the overshoot is taken off the next sleep.
    assert clock.sleeps == pytest.approx([0.2, 0.19, 0.19])


def test_pacer_with_zero_fps_never_sleeps_or_reads_the_clock() -> None:
    def clock() -> float:
        raise AssertionError("an unpaced reader must not consult the clock")

    def sleep(_seconds: float) -> None:
        raise AssertionError("an unpaced reader must not sleep")

    pacer = Pacer(0.0, sleep, clock)
    for _frame in range(100):
        pacer.wait()


class ListSource:
    def __init__(self, count: int, live: bool = False) -> None:
        self.live = live
        self.left = count
        self.index = 0
        self.closed = False

    def read(self) -> Frame | None:
        if self.left == 0:
            return None
        self.left -= 1
        frame = Frame(self.index, 0.0, np.zeros((1, 1, 3), np.uint8))
        self.index += 1
        return frame

    def close(self) -> None:
        self.closed = True


def test_paced_source_waits_before_each_read_and_ends_on_stop() -> None:
    clock = FakeClock()
    stop = threading.Event()
    inner = ListSource(10, live=True)
    source = PacedSource(inner, Pacer(2.0, clock.sleep, clock), stop)
    assert source.live is True
    assert [f.index for f in drain(source, limit=3)] == [0, 1, 2]
    assert clock.sleeps == pytest.approx([0.5, 0.5])
    stop.set()
    assert source.read() is None
    assert inner.index == 3  # stopping did not consume a frame
    source.close()
    assert inner.closed


def test_make_source_paces_only_when_input_fps_is_set(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    spec = InputSpec("s", str(tmp_path), SourceKind.IMAGES)
    stop = threading.Event()
    assert isinstance(make_source(spec, True, stop), ImageFolderSource)
    assert isinstance(make_source(spec, True, stop, 0.0), ImageFolderSource)
    paced = make_source(spec, True, stop, 4.0)
    assert isinstance(paced, PacedSource)
    assert isinstance(paced.source, ImageFolderSource)
    assert paced.pacer.interval == pytest.approx(0.25)
    assert paced.live is False
    paced.close()


def test_a_looping_video_plays_at_its_own_rate_unless_input_fps_says_otherwise(
    tmp_path: Path,
) -> None:
    spec = InputSpec("s", str(write_video(tmp_path / "v.mp4", 3, fps=15.0)), SourceKind.VIDEO)
    assert pace_for(spec, loop=True, input_fps=None) == pytest.approx(15.0)
    # A one-pass file (a benchmark, a batch job) is read as fast as the server answers.
    assert pace_for(spec, loop=False, input_fps=None) == 0.0
    assert pace_for(spec, loop=True, input_fps=0.0) == 0.0
    assert pace_for(spec, loop=True, input_fps=30.0) == 30.0
    stop = threading.Event()
    paced = make_source(spec, True, stop, None)
    assert isinstance(paced, PacedSource)
    assert paced.pacer.interval == pytest.approx(1 / 15.0)
    paced.close()
    assert isinstance(make_source(spec, False, stop, None), VideoFileSource)


def test_unset_input_fps_leaves_image_folders_and_cameras_unpaced(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    folder = InputSpec("s", str(tmp_path), SourceKind.IMAGES)
    camera = InputSpec("c", "rtsp://camera.invalid/stream", SourceKind.STREAM)
    assert pace_for(folder, loop=True, input_fps=None) == 0.0
    assert pace_for(camera, loop=True, input_fps=None) == 0.0
    assert pace_for(folder, loop=True, input_fps=5.0) == 5.0
