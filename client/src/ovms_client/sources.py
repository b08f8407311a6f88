"""Frame sources: video files, image folders, USB cameras, network streams (RTSP/HTTP) and
Intel RealSense cameras and recordings."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import cv2
import numpy as np

from ovms_client.errors import InputError
from ovms_client.settings import REALSENSE_SCHEME, InputSpec, SourceKind

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
# Network streams must not hang a reader forever when the camera goes away.
STREAM_TIMEOUT_MS = 5000
RECONNECT_INITIAL_S = 0.5
RECONNECT_MAX_S = 10.0
# How often a RealSense recording's playback is asked whether it has reached its end.
RECORDING_POLL_MS = 100


@dataclass
class Frame:
    index: int
    timestamp: float
    image: np.ndarray
    position_ms: float | None = None


class Capture(Protocol):
    def isOpened(self) -> bool: ...
    def read(self) -> tuple[bool, Any]: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


class FrameSource(Protocol):
    live: bool

    def read(self) -> Frame | None:
        """The next frame, or None when the source has ended (or stop was requested)."""

    def close(self) -> None: ...


def open_capture(spec: InputSpec) -> Capture:
    if spec.kind is SourceKind.CAMERA:
        if spec.source.isdigit():
            return cv2.VideoCapture(int(spec.source))
        return cv2.VideoCapture(spec.source)
    if spec.kind is SourceKind.STREAM:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            STREAM_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            STREAM_TIMEOUT_MS,
        ]
        return cv2.VideoCapture(spec.source, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(spec.source)


class VideoFileSource:
    live = False

    def __init__(self, spec: InputSpec, loop: bool) -> None:
        self.spec = spec
        self.loop = loop
        self._index = 0
        self._frames_this_pass = 0
        self._capture = self._open()

    def _open(self) -> Capture:
        capture = open_capture(self.spec)
        if not capture.isOpened():
            raise InputError(
                f"cannot open video file {self.spec.source} (stream "
                f"{self.spec.stream_id}): not a video OpenCV can decode"
            )
        return capture

    def read(self) -> Frame | None:
        ok, image = self._capture.read()
        if not ok:
            if not self.loop:
                return None
            if self._frames_this_pass == 0:
                raise InputError(f"video file {self.spec.source} has no decodable frames")
            # Reopening is more reliable than seeking to 0 for every container format.
            self._capture.release()
            self._capture = self._open()
            self._frames_this_pass = 0
            ok, image = self._capture.read()
            if not ok:
                raise InputError(f"video file {self.spec.source} has no decodable frames")
        position = self._capture.get(cv2.CAP_PROP_POS_MSEC)
        frame = Frame(self._index, time.time(), image, position)
        self._index += 1
        self._frames_this_pass += 1
        return frame

    def close(self) -> None:
        self._capture.release()


class ImageFolderSource:
    live = False

    def __init__(self, spec: InputSpec, loop: bool) -> None:
        self.spec = spec
        self.loop = loop
        path = Path(spec.source)
        if path.is_dir():
            self._files = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            self._files = [path]
        if not self._files:
            raise InputError(
                f"image folder {spec.source} (stream {spec.stream_id}) holds no "
                f"images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        self._position = 0
        self._index = 0
        self._read_this_pass = 0

    def read(self) -> Frame | None:
        while True:
            if self._position >= len(self._files):
                if not self.loop:
                    return None
                if self._read_this_pass == 0:
                    raise InputError(f"no image in {self.spec.source} could be decoded")
                self._position = 0
                self._read_this_pass = 0
            path = self._files[self._position]
            self._position += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("skipping %s: not an image OpenCV can decode", path)
                continue
            self._read_this_pass += 1
            frame = Frame(self._index, time.time(), image)
            self._index += 1
            return frame

    def close(self) -> None:
        self._files = []


class LiveSource:
    """Camera or network stream: a lost source is reopened with backoff, never fatal."""

    live = True

    def __init__(
        self,
        spec: InputSpec,
        stop: threading.Event,
        opener: Callable[[InputSpec], Capture] = open_capture,
        initial_backoff: float = RECONNECT_INITIAL_S,
        max_backoff: float = RECONNECT_MAX_S,
    ) -> None:
        self.spec = spec
        self.stop = stop
        self.opener = opener
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._capture: Capture | None = None
        self._index = 0
        self._connected_once = False
        self.reconnects = 0

    def _connect(self) -> Capture | None:
        """Open the source, retrying with backoff; None only when stop is requested."""
        delay = self.initial_backoff
        # After a loss the caller has already logged it; a first open logs on its first failure.
        reported = self._connected_once
        since = time.monotonic()
        while not self.stop.is_set():
            capture = self.opener(self.spec)
            if capture.isOpened():
                if reported:
                    log.info(
                        "input %s (stream %s) is back after %.1f s",
                        self.spec.source,
                        self.spec.stream_id,
                        time.monotonic() - since,
                    )
                return capture
            capture.release()
            if not reported:
                log.warning(
                    "cannot open input %s (stream %s); retrying with backoff up to %g s",
                    self.spec.source,
                    self.spec.stream_id,
                    self.max_backoff,
                )
                reported = True
            self.stop.wait(delay)
            delay = min(delay * 2, self.max_backoff)
        return None

    def read(self) -> Frame | None:
        while not self.stop.is_set():
            if self._capture is None:
                self._capture = self._connect()
                if self._capture is None:
                    return None
                if self._connected_once:
                    self.reconnects += 1
                self._connected_once = True
            ok, image = self._capture.read()
            if ok and image is not None:
                frame = Frame(self._index, time.time(), image)
                self._index += 1
                return frame
            log.warning(
                "lost input %s (stream %s): no frame; reconnecting with backoff up to %g s",
                self.spec.source,
                self.spec.stream_id,
                self.max_backoff,
            )
            self._capture.release()
            self._capture = None
        return None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class Pacer:
    """Spaces calls to `wait` at least 1/fps apart, measured on a monotonic clock.

    Without it a video file or image folder is read as fast as the server answers, which keeps
    a core busy; pacing makes a file behave like a camera (or slower). A late caller (slow
    server, slow decode) is rescheduled from now rather than let to catch up in a burst.
    """

    def __init__(
        self,
        fps: float,
        sleep: Callable[[float], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = 1.0 / fps if fps > 0 else 0.0
        self._sleep = sleep
        self._clock = clock
        self._due: float | None = None  # when the next frame may be read; None: at once

    def wait(self) -> None:
        if self.interval <= 0:
            return
        now = self._clock()
        if self._due is not None and now < self._due:
            self._sleep(self._due - now)
            # Schedule from the due time, not from when the sleep returned, so that sleep
            # overshoot does not add up to a lower rate than asked for.
            start = self._due
        else:
            start = now
        self._due = start + self.interval


class PacedSource:
    """A source read at most `fps` frames per second; see Pacer."""

    def __init__(self, source: FrameSource, pacer: Pacer, stop: threading.Event) -> None:
        self.source = source
        self.pacer = pacer
        self.stop = stop
        self.live = source.live

    def read(self) -> Frame | None:
        self.pacer.wait()
        if self.stop.is_set():
            return None
        return self.source.read()

    def close(self) -> None:
        self.source.close()


def file_frame_rate(spec: InputSpec) -> float:
    """The frame rate a video file declares (its container's), or 0 when it names none."""
    capture = open_capture(spec)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS)) if capture.isOpened() else 0.0
    finally:
        capture.release()
    # Some containers report nonsense (0, NaN, 90000 for a timebase); treat it as unknown.
    return fps if 0.0 < fps <= 240.0 else 0.0


def pace_for(spec: InputSpec, loop: bool, input_fps: float | None) -> float:
    """Frames/s a stream is read at; 0 = as fast as the server answers.

    Unset (`None`): a looping video file plays at its own frame rate, like the camera it stands
    in for, instead of keeping a core busy forever; a one-pass file (a benchmark, a batch job),
    an image folder and a live source are not paced.
    """
    if input_fps is not None:
        return input_fps
    if loop and spec.kind is SourceKind.VIDEO:
        return file_frame_rate(spec)
    return 0.0


# --- Intel RealSense: pyrealsense2 (the optional [realsense] extra), imported only when a
# realsense:// input or a recording is opened.


def _pyrealsense2(spec: InputSpec) -> ModuleType:
    try:
        import pyrealsense2 as rs  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise InputError(
            f"input {spec.source} (stream {spec.stream_id}) needs the pyrealsense2 package "
            f"({exc}): install edge-retail-ovms-client[realsense] (the client image has it)"
        ) from None
    return rs


def _to_bgr(rs: ModuleType, frame: Any) -> np.ndarray:
    """A colour frame as a BGR HxWx3 array of its own (the frame's memory goes back to
    librealsense's pool)."""
    data = np.asanyarray(frame.get_data())
    fmt = frame.get_profile().format()
    if fmt == rs.format.bgr8:
        return np.array(data, copy=True)
    conversions = {
        rs.format.rgb8: cv2.COLOR_RGB2BGR,
        rs.format.rgba8: cv2.COLOR_RGBA2BGR,
        rs.format.bgra8: cv2.COLOR_BGRA2BGR,
        rs.format.yuyv: cv2.COLOR_YUV2BGR_YUYV,
        rs.format.uyvy: cv2.COLOR_YUV2BGR_UYVY,
    }
    if fmt not in conversions:
        raise InputError(f"RealSense colour format {fmt} is not supported (rgb8, bgr8, yuyv, ...)")
    return cv2.cvtColor(data, conversions[fmt])


def realsense_cameras(rs: ModuleType) -> dict[str, str]:
    """Serial number -> name of every RealSense camera librealsense sees."""
    cameras = {}
    for device in rs.context().query_devices():
        cameras[device.get_info(rs.camera_info.serial_number)] = device.get_info(
            rs.camera_info.name
        )
    return cameras


def check_realsense_camera(spec: InputSpec, rs: ModuleType) -> str:
    """The serial to open; a camera that is not connected is an error naming it."""
    serial = spec.source[len(REALSENSE_SCHEME) :]
    cameras = realsense_cameras(rs)
    present = ", ".join(f"{s} ({name})" for s, name in sorted(cameras.items())) or "none"
    hint = (
        "check the cable and that the container has USB access (the ovms_client role's "
        "ovms_client_usb_access)"
    )
    if serial and serial not in cameras:
        raise InputError(
            f"RealSense camera with serial {serial} (input {spec.source}, stream "
            f"{spec.stream_id}) is not connected; cameras found: {present}; {hint}"
        )
    if not cameras:
        raise InputError(
            f"no RealSense camera is connected (input {spec.source}, stream {spec.stream_id}); "
            f"{hint}"
        )
    return serial or sorted(cameras)[0]


class RealSenseCapture:
    """A RealSense camera's colour stream behind the Capture interface LiveSource reopens."""

    def __init__(self, rs: ModuleType, serial: str) -> None:
        self._rs = rs
        self._pipeline = rs.pipeline()
        config = rs.config()
        config.enable_device(serial)
        config.enable_stream(rs.stream.color)
        try:
            self._pipeline.start(config)
            self._open = True
        except RuntimeError as exc:
            log.debug("RealSense camera %s: %s", serial, exc)
            self._open = False

    def isOpened(self) -> bool:
        return self._open

    def read(self) -> tuple[bool, Any]:
        try:
            frames = self._pipeline.wait_for_frames(STREAM_TIMEOUT_MS)
        except RuntimeError:
            return False, None
        color = frames.get_color_frame()
        if not color:
            return False, None
        return True, _to_bgr(self._rs, color)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        if self._open:
            self._open = False
            with contextlib.suppress(RuntimeError):
                self._pipeline.stop()


def realsense_camera_source(spec: InputSpec, stop: threading.Event) -> LiveSource:
    """A RealSense camera as a live source: reopened with backoff when it goes away."""
    rs = _pyrealsense2(spec)
    serial = check_realsense_camera(spec, rs)
    return LiveSource(spec, stop, opener=lambda _spec: RealSenseCapture(rs, serial))


class RealSenseRecordingSource:
    """A RealSense recording (.bag, .db3) played back by librealsense, colour frames only.

    Played as fast as frames are read, not in real time (where frames nobody reads in time
    are dropped), like a video file; input_fps paces it like one. The colour sensor of the
    playback device streams into a small queue whose blocking put holds playback back.
    """

    live = False

    def __init__(self, spec: InputSpec, loop: bool) -> None:
        self.spec = spec
        self.loop = loop
        self._rs = _pyrealsense2(spec)
        self._index = 0
        self._frames_this_pass = 0
        self._first_timestamp: float | None = None
        self._queue: queue.Queue[tuple[np.ndarray, float]] = queue.Queue(maxsize=4)
        self._closing = threading.Event()
        self._playback: Any = None
        self._sensor: Any = None
        self._start()

    def _start(self) -> None:
        rs = self._rs
        try:
            device = rs.context().load_device(self.spec.source)
        except RuntimeError as exc:
            raise InputError(
                f"cannot play RealSense recording {self.spec.source} (stream "
                f"{self.spec.stream_id}): {exc}"
            ) from None
        playback = device.as_playback()
        playback.set_real_time(False)
        for sensor in device.query_sensors():
            colour = [p for p in sensor.get_stream_profiles() if p.stream_type() == rs.stream.color]
            if colour:
                break
        else:
            raise InputError(
                f"RealSense recording {self.spec.source} (stream {self.spec.stream_id}) has no "
                "colour stream"
            )
        self._closing.clear()
        sensor.open(colour[0])
        sensor.start(self._on_frame)
        self._playback, self._sensor = playback, sensor
        self._first_timestamp = None

    def _on_frame(self, frame: Any) -> None:
        """librealsense's thread: convert, then wait for room (playback waits meanwhile)."""
        item = (_to_bgr(self._rs, frame), float(frame.get_timestamp()))
        while not self._closing.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _stop(self) -> None:
        if self._sensor is None:
            return
        sensor, self._sensor = self._sensor, None
        self._closing.set()
        with contextlib.suppress(RuntimeError):
            sensor.stop()
        with contextlib.suppress(RuntimeError):
            sensor.close()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._playback = None

    def _next(self) -> tuple[np.ndarray, float] | None:
        """The next colour frame and its timestamp; None once playback has ended."""
        rs = self._rs
        deadline = time.monotonic() + STREAM_TIMEOUT_MS / 1000.0
        while True:
            try:
                return self._queue.get(timeout=RECORDING_POLL_MS / 1000.0)
            except queue.Empty:
                pass
            ended = self._playback.current_status() == rs.playback_status.stopped
            if (ended and self._queue.empty()) or time.monotonic() >= deadline:
                return None

    def read(self) -> Frame | None:
        while True:
            if self._sensor is None:
                return None
            item = self._next()
            if item is not None:
                break
            if self._frames_this_pass == 0:
                raise InputError(f"RealSense recording {self.spec.source} has no colour frames")
            self._stop()
            if not self.loop:
                return None
            self._frames_this_pass = 0
            self._start()
        image, timestamp = item
        if self._first_timestamp is None:
            self._first_timestamp = timestamp
        frame = Frame(self._index, time.time(), image, timestamp - self._first_timestamp)
        self._index += 1
        self._frames_this_pass += 1
        return frame

    def close(self) -> None:
        self._stop()


def make_source(
    spec: InputSpec, loop: bool, stop: threading.Event, input_fps: float | None = 0.0
) -> FrameSource:
    source: FrameSource
    if spec.kind is SourceKind.VIDEO:
        source = VideoFileSource(spec, loop)
    elif spec.kind is SourceKind.IMAGES:
        source = ImageFolderSource(spec, loop)
    elif spec.kind is SourceKind.REALSENSE:
        source = realsense_camera_source(spec, stop)
    elif spec.kind is SourceKind.RECORDING:
        source = RealSenseRecordingSource(spec, loop)
    else:
        source = LiveSource(spec, stop)
    fps = pace_for(spec, loop, input_fps)
    if fps > 0:
        if input_fps is None:
            log.info(
                "stream %s: looping %s at its own %.3g frames/s (set input_fps to change)",
                spec.stream_id,
                spec.source,
                fps,
            )
        # stop.wait rather than time.sleep: a stop request (SIGTERM) ends the wait at once
        # instead of after up to one frame interval.
        source = PacedSource(source, Pacer(fps, stop.wait), stop)
    return source
