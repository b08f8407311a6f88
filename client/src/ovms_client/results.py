"""JSON-lines output: one line per frame, periodic metrics lines, one summary line."""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from ovms_client.errors import ConfigError

log = logging.getLogger(__name__)

# Percentiles in the summary cover at most this many recent frames per stream.
SUMMARY_SAMPLES = 100_000
# Upper bounds (seconds) of the Prometheus request-latency histogram buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
# The fps gauge counts the frames finished within this many recent seconds.
FPS_WINDOW_S = 5.0


def drop_unfinished_line(path: Path, chunk: int = 1 << 16) -> int:
    """Truncate ``path`` after its last newline, so a line a killed writer left unfinished is
    gone; the bytes dropped (0 when the file ends with a newline or does not exist)."""
    try:
        handle = path.open("r+b")
    except FileNotFoundError:
        return 0
    with handle:
        size = handle.seek(0, 2)
        end = size
        while end > 0:
            start = max(0, end - chunk)
            handle.seek(start)
            block = handle.read(end - start)
            if end == size and block.endswith(b"\n"):
                return 0
            newline = block.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        handle.truncate(end)
    dropped = size - end
    log.warning(
        "results file %s ended with an unfinished line of %d bytes (the client was stopped "
        "while writing it); dropped it so every line is whole JSON",
        path, dropped,
    )
    return dropped


class JsonLinesWriter:
    """Thread-safe; each line is flushed so a reader (or a killed container) sees it whole.

    A client at a store runs for months on a looped camera: with ``max_bytes`` the file is
    rotated like logrotate does (FILE -> FILE.1 -> ... -> FILE.N, the oldest deleted), so the
    disk holds at most (backups + 1) x max_bytes of results. Rotation happens between lines,
    so no line is split across files.

    A client killed in the middle of a line (SIGKILL, power loss) leaves an unfinished last
    line; opening the file again drops it (and logs that), so every line stays valid JSON and
    the next line does not start glued to a fragment.
    """

    def __init__(self, output: str, max_bytes: int = 0, backups: int = 4) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._max_bytes = max_bytes
        self._backups = backups
        self._size = 0
        self.rotations = 0
        self.dropped_bytes = 0
        if output == "-":
            self._file: IO[str] = sys.stdout
            self._owned = False
            self._path: Path | None = None
            return
        path = Path(output)
        self._path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.dropped_bytes = drop_unfinished_line(path)
            # Append: a restarted container must not erase what the previous run wrote.
            self._file = path.open("a", encoding="utf-8")
            self._size = path.stat().st_size
        except OSError as exc:
            raise ConfigError(
                f"cannot open output file {path} (setting 'output'): {exc.strerror}"
            ) from None
        self._owned = True

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            # A request that outlived the stop grace period may finish after the summary.
            if self._closed:
                return
            if (
                self._path is not None
                and self._max_bytes
                and self._size
                and self._size + len(line) > self._max_bytes
            ):
                self._rotate(self._path)
            self._file.write(line)
            self._file.flush()
            self._size += len(line.encode("utf-8"))

    def _rotate(self, path: Path) -> None:
        self._file.close()
        try:
            for index in range(self._backups, 0, -1):
                older = path.with_name(f"{path.name}.{index}")
                if index == self._backups:
                    older.unlink(missing_ok=True)
                    continue
                if older.exists():
                    older.rename(path.with_name(f"{path.name}.{index + 1}"))
            path.rename(path.with_name(f"{path.name}.1"))
        except OSError as exc:
            # Losing rotation must not lose results: keep appending to the current file, and
            # try again only after another max_bytes, not on every line.
            log.warning("cannot rotate %s (%s); appending to it", path, exc.strerror)
            self._file = path.open("a", encoding="utf-8")
            self._size = 0
            return
        self._file = path.open("a", encoding="utf-8")
        self._size = 0
        self.rotations += 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._file.flush()
            if self._owned:
                self._file.close()


def _percentiles(samples: list[float] | deque[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p95": None}
    values = np.asarray(samples, dtype=np.float64) * 1000.0
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": round(float(p50), 2), "p95": round(float(p95), 2)}


@dataclass
class StreamStats:
    frames: int = 0
    dropped: int = 0
    window_frames: int = 0
    window_latency: list[float] = field(default_factory=list)
    window_e2e: list[float] = field(default_factory=list)
    latency: deque[float] = field(default_factory=lambda: deque(maxlen=SUMMARY_SAMPLES))
    errors: int = 0
    latency_sum: float = 0.0
    # Cumulative counts per LATENCY_BUCKETS bound, the last one for +Inf.
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    recent_done: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))


class Metrics:
    """Counts frames and latencies per stream; snapshots for metrics and summary lines."""

    def __init__(self, stream_ids: list[str]) -> None:
        self._lock = threading.Lock()
        self._streams = {sid: StreamStats() for sid in stream_ids}
        self.started = time.monotonic()
        self._window_start = self.started

    def frame_done(self, stream_id: str, latency_s: float, e2e_s: float) -> None:
        with self._lock:
            stats = self._streams[stream_id]
            stats.frames += 1
            stats.window_frames += 1
            stats.window_latency.append(latency_s)
            stats.window_e2e.append(e2e_s)
            stats.latency.append(latency_s)
            stats.latency_sum += latency_s
            stats.buckets[bisect.bisect_left(LATENCY_BUCKETS, latency_s)] += 1
            stats.recent_done.append(time.monotonic())

    def request_failed(self, stream_id: str) -> None:
        with self._lock:
            self._streams[stream_id].errors += 1

    def frame_dropped(self, stream_id: str) -> None:
        with self._lock:
            self._streams[stream_id].dropped += 1

    def window(self, server_up: bool) -> dict[str, Any]:
        """A metrics line for the time since the previous one; starts a new window."""
        now = time.monotonic()
        with self._lock:
            elapsed = max(now - self._window_start, 1e-9)
            self._window_start = now
            streams = {}
            total = 0
            for sid, stats in self._streams.items():
                streams[sid] = {
                    "frames": stats.window_frames,
                    "fps": round(stats.window_frames / elapsed, 2),
                    "latency_ms": _percentiles(stats.window_latency),
                    "e2e_ms": _percentiles(stats.window_e2e),
                    "dropped": stats.dropped,
                }
                total += stats.window_frames
                stats.window_frames = 0
                stats.window_latency = []
                stats.window_e2e = []
        return {
            "type": "metrics",
            "timestamp": round(time.time(), 3),
            "interval_s": round(elapsed, 3),
            "fps": round(total / elapsed, 2),
            "server": "up" if server_up else "down",
            "streams": streams,
        }

    def summary(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            elapsed = max(now - self.started, 1e-9)
            streams = {}
            total = 0
            for sid, stats in self._streams.items():
                streams[sid] = {
                    "frames": stats.frames,
                    "fps": round(stats.frames / elapsed, 2),
                    "latency_ms": _percentiles(stats.latency),
                    "dropped": stats.dropped,
                }
                total += stats.frames
        return {
            "type": "summary",
            "timestamp": round(time.time(), 3),
            "elapsed_s": round(elapsed, 3),
            "frames": total,
            "fps": round(total / elapsed, 2),
            "streams": streams,
        }

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Cumulative per-stream counters for the Prometheus endpoint."""
        now = time.monotonic()
        with self._lock:
            window = min(FPS_WINDOW_S, max(now - self.started, 1e-9))
            out = {}
            for sid, stats in self._streams.items():
                while stats.recent_done and stats.recent_done[0] < now - FPS_WINDOW_S:
                    stats.recent_done.popleft()
                cumulative = list(itertools.accumulate(stats.buckets))
                out[sid] = {
                    "frames": stats.frames,
                    "errors": stats.errors,
                    "dropped": stats.dropped,
                    "fps": len(stats.recent_done) / window,
                    "latency_sum": stats.latency_sum,
                    "latency_buckets": list(
                        zip((*LATENCY_BUCKETS, float("inf")), cumulative, strict=True)
                    ),
                }
        return out

    def reset_clock(self) -> None:
        """Start timing now (after the model became ready), not at process start."""
        with self._lock:
            self.started = time.monotonic()
            self._window_start = self.started


class RecordSink(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...


class OrderedEmitter:
    """Writes a stream's frames in order although in-flight requests finish out of order."""

    def __init__(self, writer: RecordSink) -> None:
        self._writer = writer
        self._lock = threading.Lock()
        self._pending: dict[int, dict[str, Any] | None] = {}
        self._next = 0

    def complete(self, seq: int, record: dict[str, Any] | None) -> None:
        """Hand in frame `seq`'s record, or None when that frame was given up."""
        with self._lock:
            self._pending[seq] = record
            while self._next in self._pending:
                ready = self._pending.pop(self._next)
                self._next += 1
                if ready is not None:
                    self._writer.write(ready)

    def flush(self) -> None:
        """At the end: write whatever is left, in order, skipping frames that never finished."""
        with self._lock:
            for seq in sorted(self._pending):
                ready = self._pending.pop(seq)
                if ready is not None:
                    self._writer.write(ready)
