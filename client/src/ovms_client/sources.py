"""Frame sources: video files, image folders, USB cameras and network streams (RTSP/HTTP)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ovms_client.errors import InputError
from ovms_client.settings import InputSpec, SourceKind

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
# Network streams must not hang a reader forever when the camera goes away.
STREAM_TIMEOUT_MS = 5000
RECONNECT_INITIAL_S = 0.5
RECONNECT_MAX_S = 10.0


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
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
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
            raise InputError(f"cannot open video file {self.spec.source} (stream "
                             f"{self.spec.stream_id}): not a video OpenCV can decode")
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
            self._files = sorted(p for p in path.iterdir()
                                 if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            self._files = [path]
        if not self._files:
            raise InputError(f"image folder {spec.source} (stream {spec.stream_id}) holds no "
                             f"images ({', '.join(sorted(IMAGE_SUFFIXES))})")
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
                    log.info("input %s (stream %s) is back after %.1f s", self.spec.source,
                             self.spec.stream_id, time.monotonic() - since)
                return capture
            capture.release()
            if not reported:
                log.warning("cannot open input %s (stream %s); retrying with backoff up to %g s",
                            self.spec.source, self.spec.stream_id, self.max_backoff)
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
            log.warning("lost input %s (stream %s): no frame; reconnecting with backoff up to "
                        "%g s", self.spec.source, self.spec.stream_id, self.max_backoff)
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


def make_source(
    spec: InputSpec, loop: bool, stop: threading.Event, input_fps: float = 0.0
) -> FrameSource:
    source: FrameSource
    if spec.kind is SourceKind.VIDEO:
        source = VideoFileSource(spec, loop)
    elif spec.kind is SourceKind.IMAGES:
        source = ImageFolderSource(spec, loop)
    else:
        source = LiveSource(spec, stop)
    if input_fps > 0:
        # stop.wait rather than time.sleep: a stop request (SIGTERM) ends the wait at once
        # instead of after up to one frame interval.
        source = PacedSource(source, Pacer(input_fps, stop.wait), stop)
    return source
