#!/usr/bin/python
# Copyright: (c) 2025, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: client_results
short_description: Wait until an inference client's results file shows it working now
description:
  - Watches the JSON-lines results file of an edge_retail inference client (its C(output)
    setting) and waits until the client has written, since the module started, at least
    O(min_frames) frame records and at least one metrics record whose C(fps) is at least
    O(min_fps). Fails after O(timeout) seconds saying what it saw.
  - A health gate for after a store was changed. A running container or an AVAILABLE model does
    not show that frames flow from the cameras through the server into results; new lines in
    the results file do.
  - New means written after the module started. Frame records (lines with a C(frame) field,
    C(type=detections)) and metrics records (C(type=metrics)) count only when their
    C(timestamp) is at or after the module's start time on this host; the client stamps them
    with the same clock. Lines that are not JSON objects, and a last line that is still being
    written, are ignored.
  - Reads only what the client appends. At the start it reads at most the last MiB of the file
    (for the time of the last line, which failure messages show) and remembers where the file
    ended; each poll reads from there. A file of tens of MB costs no more than a small one.
  - Follows rotation as the client does it (C(FILE) renamed to C(FILE.1), a new C(FILE)
    started). When the file's inode changes or it shrinks, the rest of the old file is read
    from C(FILE.1) (or C(FILE.2) ... if it was rotated again meanwhile) and the new file from
    its start.
  - Stops waiting at once when the client writes a summary line with C(stopped_by=error) after
    the module started. That client run has ended with an error (a port it cannot bind, a model
    the server does not have), so waiting out O(timeout) would only delay the failure. A summary
    that says the client stopped for a signal or at the end of its input is waited past, as a
    restart or a looping input writes again.
  - Runs on the client host with its system Python and only the standard library.
version_added: 0.1.0
author:
  - edge_retail platform team (!UNKNOWN)
attributes:
  check_mode:
    description: Can run in check mode and return the same result as without it.
    support: full
    details:
      - The module only reads the results file, so check mode does not change what it does.
  diff_mode:
    description: Will return details on what has changed.
    support: none
  idempotent:
    description:
      - It changes nothing; a second run waits for newer lines again.
    support: full
options:
  path:
    description:
      - Path on this host of the client's results file, as the host sees it (the host side of
        the container's bind mount).
      - A file that does not exist yet is waited for, and read from its start once it appears.
    type: path
    required: true
  timeout:
    description:
      - Seconds to wait for the new records before failing.
      - V(0) reads once and does not wait, so it sees only what the client writes while the
        module starts.
    type: float
    default: 120
  min_frames:
    description:
      - How many new frame records (over all streams) to wait for.
      - V(0) does not wait for frame records.
    type: int
    default: 1
  min_fps:
    description:
      - The lowest C(fps) (frames per second over all streams) that a new metrics record must
        report. One new metrics record at or above it is enough.
      - A new metrics record is always needed, so the client must write them (its
        C(metrics_interval) above 0, every 5 seconds by default); V(0) accepts any.
    type: float
    default: 0.1
  interval:
    description:
      - Seconds between two reads of the file while waiting.
    type: float
    default: 1
notes:
  - The module never changes anything, so it always reports C(changed=false).
  - Frame records count toward O(min_frames) whichever stream they come from.
seealso:
  - module: edge_retail.ovms.model_infer
  - module: edge_retail.ovms.model_status
"""

EXAMPLES = r"""
- name: Wait until the store's client writes results again, at 5 fps or more
  edge_retail.ovms.client_results:
    path: /opt/ovms-client/ovms-client/results/detections.jsonl
    min_fps: 5
    min_frames: 10
  register: results

- name: The same after the ovms_client role, which publishes where the client writes
  edge_retail.ovms.client_results:
    path: "{{ ovms_client_endpoint.results }}"
    timeout: 60

- name: Show the frame rate the client reported
  ansible.builtin.debug:
    msg: "{{ results.frames }} frames, {{ results.last_fps }} fps after {{ results.waited_s }} s"
"""

RETURN = r"""
frames:
  description: New frame records seen (timestamp at or after the start).
  returned: always
  type: int
  sample: 42
metrics:
  description: New metrics records seen.
  returned: always
  type: int
  sample: 1
last_fps:
  description: The C(fps) of the newest metrics record seen; V(null) when none was new.
  returned: always
  type: float
  sample: 29.8
waited_s:
  description: Seconds the module waited, rounded to hundredths.
  returned: always
  type: float
  sample: 5.02
rotations:
  description: How many times the file was rotated (or replaced) while the module watched.
  returned: always
  type: int
  sample: 0
"""

import errno
import json
import os
import time
import typing as t

from ansible.module_utils.basic import AnsibleModule

# At the start, how much of the end of the file is read to find its last complete line.
TAIL_WINDOW = 1024 * 1024
# Appended data is read in pieces of this size, so memory does not grow with the file.
READ_CHUNK = 1024 * 1024
# Rotated files the client keeps: FILE.1 ... FILE.N (its default is 4).
MAX_BACKUPS = 9
# Record types that are not one frame's result.
NON_FRAME_TYPES = frozenset(("metrics", "summary", "stream_density"))


class ResultsError(Exception):
    """The file cannot be watched at all (a directory, no permission)."""


def _number(value: t.Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _explain_os_error(path: str, exc: OSError) -> ResultsError:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ResultsError(f"cannot read {path}: {exc.strerror}; expected a results file "
                            "readable by the remote user (check become)")
    if exc.errno == errno.EISDIR:
        return ResultsError(f"{path} is a directory; expected the path of the client's "
                            "results file (its 'output' setting)")
    return ResultsError(f"cannot read {path}: {exc.strerror or exc}")


class ResultsTail:
    """What is appended to a file that may be rotated, as complete lines."""

    def __init__(self, path: str, window: int = TAIL_WINDOW) -> None:
        self.path = path
        # (st_dev, st_ino) of the file being read, and where its unread part starts.
        self.identity: tuple[int, int] | None = None
        self.offset = 0
        self.rotations = 0
        self.exists = False
        # The last complete line before the start, for "the last line was written at".
        self.last_line_at_start: bytes | None = None
        handle = self._open(path)
        if handle is None:
            return
        with handle:
            status = os.fstat(handle.fileno())
            self.exists = True
            self.identity = (status.st_dev, status.st_ino)
            begin = max(0, status.st_size - window)
            handle.seek(begin)
            data = handle.read(status.st_size - begin)
        end = data.rfind(b"\n")
        if end < 0:
            # No complete line in the window: an empty file (or one partial line) is read from
            # its start; the rest of a line longer than the window is a fragment, ignored.
            self.offset = 0 if begin == 0 else begin + len(data)
            return
        self.offset = begin + end + 1
        self.last_line_at_start = data[data.rfind(b"\n", 0, end) + 1:end]

    def _open(self, path: str) -> t.BinaryIO | None:
        try:
            return open(path, "rb")  # closed by the callers' with blocks
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _explain_os_error(path, exc) from None

    def _stat(self, path: str) -> os.stat_result | None:
        try:
            return os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _explain_os_error(path, exc) from None

    @staticmethod
    def _read_lines(handle: t.BinaryIO, start: int, on_line: t.Callable[[bytes], None]) -> int:
        """Hand every complete line from ``start`` on to ``on_line``; return the offset after
        the last one (a partial last line stays unread)."""
        handle.seek(start)
        consumed = start
        carry = b""
        while True:
            chunk = handle.read(READ_CHUNK)
            if not chunk:
                return consumed
            data = carry + chunk
            end = data.rfind(b"\n")
            if end < 0:
                carry = data
                continue
            for line in data[:end].split(b"\n"):
                on_line(line)
            # ``data`` starts at ``consumed``: the carry is what follows the last newline.
            consumed += end + 1
            carry = data[end + 1:]

    def _rotated_remainder(self, truncated: bool, on_line: t.Callable[[bytes], None]) -> None:
        """Read the rest of the file that was rotated away, and any file rotated after it."""
        backups = []
        for index in range(1, MAX_BACKUPS + 1):
            name = f"{self.path}.{index}"
            status = self._stat(name)
            if status is None:
                break
            backups.append((name, status))
        for position, (name, status) in enumerate(backups):
            same = (status.st_dev, status.st_ino) == self.identity
            # A file truncated in place (copytruncate) left a copy in FILE.1.
            copied = truncated and position == 0 and status.st_size >= self.offset
            if not (same or copied):
                continue
            handle = self._open(name)
            if handle is None:
                return
            with handle:
                self._read_lines(handle, self.offset, on_line)
            # Files rotated after ours (FILE.k-1 ... FILE.1) are newer: read them whole.
            for newer, _status in reversed(backups[:position]):
                handle = self._open(newer)
                if handle is not None:
                    with handle:
                        self._read_lines(handle, 0, on_line)
            return

    def poll(self, on_line: t.Callable[[bytes], None]) -> None:
        """Hand every complete line appended since the last poll to ``on_line``."""
        handle = self._open(self.path)
        status = os.fstat(handle.fileno()) if handle is not None else None
        try:
            if self.identity is not None:
                moved = status is None or (status.st_dev, status.st_ino) != self.identity
                truncated = status is not None and not moved and status.st_size < self.offset
                if moved or truncated:
                    self._rotated_remainder(truncated, on_line)
                    self.rotations += 1
                    self.identity = None
                    self.offset = 0
            if handle is None or status is None:
                return
            self.exists = True
            if self.identity is None:
                self.identity = (status.st_dev, status.st_ino)
                self.offset = 0
            self.offset = self._read_lines(handle, self.offset, on_line)
        finally:
            if handle is not None:
                handle.close()


class Progress:
    """Counts what the new lines show."""

    def __init__(self, started: float, min_frames: int, min_fps: float) -> None:
        self.started = started
        self.min_frames = min_frames
        self.min_fps = min_fps
        self.lines = 0
        self.frames = 0
        self.metrics = 0
        self.last_fps: float | None = None
        self.best_fps: float | None = None
        # Timestamp of the newest line read (new or not), for failure messages.
        self.last_line_time: float | None = None
        self.summary: dict[str, t.Any] | None = None

    def timestamp_of(self, line: bytes) -> float | None:
        record = self._record(line)
        return None if record is None else _number(record.get("timestamp"))

    @staticmethod
    def _record(line: bytes) -> dict[str, t.Any] | None:
        try:
            record = json.loads(line)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def add(self, line: bytes) -> None:
        if not line.strip():
            return
        self.lines += 1
        record = self._record(line)
        if record is None:
            return
        timestamp = _number(record.get("timestamp"))
        if timestamp is None:
            return
        self.last_line_time = timestamp
        if timestamp < self.started:
            return
        kind = record.get("type")
        if kind == "metrics":
            fps = _number(record.get("fps"))
            if fps is None:
                return
            self.metrics += 1
            self.last_fps = fps
            self.best_fps = fps if self.best_fps is None else max(self.best_fps, fps)
        elif kind == "summary":
            self.summary = record
        elif kind not in NON_FRAME_TYPES and "frame" in record:
            self.frames += 1

    @property
    def done(self) -> bool:
        return (self.frames >= self.min_frames and self.best_fps is not None
                and self.best_fps >= self.min_fps)

    @property
    def stopped_by_error(self) -> bool:
        return self.summary is not None and self.summary.get("stopped_by") == "error"


def _seconds(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _fps(value: float) -> str:
    return f"{value:g}"


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(timestamp))


class Outcome:
    def __init__(self, path: str, progress: Progress, tail: ResultsTail, waited: float,
                 timeout: float) -> None:
        self.path = path
        self.progress = progress
        self.tail = tail
        self.waited = waited
        self.timeout = timeout

    @property
    def ok(self) -> bool:
        return self.progress.done

    def as_dict(self) -> dict[str, t.Any]:
        # No "path" key: Ansible would add the file's owner, mode and size to the result.
        return {
            "frames": self.progress.frames,
            "metrics": self.progress.metrics,
            "last_fps": self.progress.last_fps,
            "waited_s": round(self.waited, 2),
            "rotations": self.tail.rotations,
        }

    def _last_line(self) -> str:
        progress = self.progress
        when = progress.last_line_time
        if when is None:
            try:
                when = os.stat(self.path).st_mtime
            except OSError:
                return f"{self.path} has no complete result line"
        ago = progress.started - when
        relative = (f"{_seconds(ago)} s before the module started" if ago >= 0
                    else f"{_seconds(-ago)} s after the module started")
        return f"the last line was written at {_when(when)} ({relative})"

    def failure_message(self) -> str:
        progress = self.progress
        timeout = _seconds(self.timeout)
        if not self.tail.exists:
            return (f"{self.path} does not exist after {timeout} s; expected the results file "
                    "of a running inference client (the host path of its 'output' setting)")
        if progress.lines == 0:
            return f"no new result line in {self.path} in {timeout} s; {self._last_line()}"
        if progress.stopped_by_error and not progress.done:
            # Cut short: say when, not the timeout that was not waited out.
            timeout = f"{_seconds(self.waited)} s (of {timeout} s)"
        problems = []
        if progress.frames < progress.min_frames:
            problems.append(f"{progress.frames} new frame records, expected at least "
                            f"{progress.min_frames}")
        if progress.best_fps is None:
            problems.append("no new metrics line (the client writes one every "
                            "metrics_interval seconds, unless that is 0)")
        elif progress.best_fps < progress.min_fps:
            problems.append(f"fps {_fps(progress.best_fps)} below the floor "
                            f"{_fps(progress.min_fps)} (the best of {progress.metrics} new "
                            "metrics lines)")
        if not problems:
            problems.append("no record with a timestamp at or after the start")
        last_fps = "none" if progress.last_fps is None else _fps(progress.last_fps)
        message = (f"{self.path} does not show the inference client working after {timeout} s: "
                   f"{'; '.join(problems)}. Seen since the start: {progress.lines} new lines, "
                   f"{progress.frames} frame records, {progress.metrics} metrics records "
                   f"(last fps {last_fps}); {self._last_line()}")
        if progress.summary is not None:
            stopped = progress.summary.get("stopped_by", "unknown")
            message += f". The client wrote its summary line, so it stopped (stopped_by: {stopped}"
            if progress.summary.get("error"):
                message += f", error: {progress.summary['error']}"
            message += ")"
        return message


def wait_for_results(
    path: str,
    timeout: float,
    min_frames: int,
    min_fps: float,
    interval: float,
    wall: t.Callable[[], float] = time.time,
    clock: t.Callable[[], float] = time.monotonic,
    sleep: t.Callable[[float], None] = time.sleep,
) -> Outcome:
    """Poll the file until the new records meet the minimums or ``timeout`` has passed.

    Raises ResultsError when the file cannot be read at all.
    """
    start = clock()
    progress = Progress(wall(), min_frames, min_fps)
    tail = ResultsTail(path)
    if tail.last_line_at_start is not None:
        progress.last_line_time = progress.timestamp_of(tail.last_line_at_start)
    while True:
        tail.poll(progress.add)
        waited = clock() - start
        if progress.done or progress.stopped_by_error or waited >= timeout:
            return Outcome(path, progress, tail, waited, timeout)
        # The last read lands on the deadline rather than after it.
        sleep(min(interval, timeout - waited))


ARGUMENT_SPEC = {
    "path": {"type": "path", "required": True},
    "timeout": {"type": "float", "default": 120},
    "min_frames": {"type": "int", "default": 1},
    "min_fps": {"type": "float", "default": 0.1},
    "interval": {"type": "float", "default": 1},
}


def _check_arguments(params: dict[str, t.Any]) -> list[str]:
    """Problems the argument spec cannot express, all at once."""
    problems = []
    if params["timeout"] < 0:
        problems.append(f"timeout is {params['timeout']}; expected 0 or more seconds")
    if params["min_frames"] < 0:
        problems.append(f"min_frames is {params['min_frames']}; expected 0 or more")
    if params["min_fps"] < 0:
        problems.append(f"min_fps is {params['min_fps']}; expected 0 or more frames per second")
    if params["interval"] <= 0:
        problems.append(f"interval is {params['interval']}; expected more than 0 seconds")
    if os.path.isdir(params["path"]):
        problems.append(f"path is {params['path']}, which is a directory; expected the path of "
                        "the client's results file (the host path of its 'output' setting)")
    return problems


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    result: dict[str, t.Any] = {
        "changed": False, "frames": 0, "metrics": 0, "last_fps": None, "waited_s": 0.0,
        "rotations": 0,
    }
    problems = _check_arguments(params)
    if problems:
        module.fail_json(msg="; ".join(problems), **result)
    try:
        outcome = wait_for_results(params["path"], params["timeout"], params["min_frames"],
                                   params["min_fps"], params["interval"])
    except ResultsError as exc:
        module.fail_json(msg=str(exc), **result)
    result.update(outcome.as_dict())
    if not outcome.ok:
        module.fail_json(msg=outcome.failure_message(), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
