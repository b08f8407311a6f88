"""A client killed while writing a result line leaves a results file whose every line is valid
JSON once it restarts (issue 11, fault 4): the restart drops the one unfinished line and logs it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from ovms_client import results
from ovms_client.results import JsonLinesWriter, drop_unfinished_line

# A client process that writes 4 MiB result lines as fast as it can, so a SIGKILL most likely
# lands inside a write (Linux stops a regular-file write short on a fatal signal).
ROUNDS = 6
WRITER = textwrap.dedent(
    """
    import sys
    from ovms_client.results import JsonLinesWriter

    writer = JsonLinesWriter(sys.argv[1])
    n = 0
    while True:
        writer.write({"n": n, "detections": "d" * (4 << 20)})
        n += 1
    """
)


def ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        if handle.seek(0, 2) == 0:
            return True
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().decode().splitlines()]


def test_restart_drops_the_unfinished_line_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output = tmp_path / "detections.jsonl"
    output.write_bytes(b'{"n":0}\n{"n":1}\n{"n":2,"detect')
    with caplog.at_level(logging.WARNING, logger="ovms_client.results"):
        writer = JsonLinesWriter(str(output))
    writer.write({"n": 3})
    writer.close()
    assert writer.dropped_bytes == len(b'{"n":2,"detect')
    assert [r["n"] for r in lines_of(output)] == [0, 1, 3]
    assert "ended with an unfinished line of 14 bytes" in caplog.text


def test_a_whole_file_is_left_as_it_is(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    output = tmp_path / "detections.jsonl"
    output.write_bytes(b'{"n":0}\n{"n":1}\n')
    with caplog.at_level(logging.WARNING, logger="ovms_client.results"):
        assert drop_unfinished_line(output) == 0
        assert drop_unfinished_line(tmp_path / "missing.jsonl") == 0
    assert output.read_bytes() == b'{"n":0}\n{"n":1}\n'
    assert caplog.text == ""


def test_an_unfinished_line_longer_than_a_read_block_is_dropped_whole(tmp_path: Path) -> None:
    output = tmp_path / "detections.jsonl"
    output.write_bytes(b'{"n":0}\n' + b"x" * 300_000)
    assert drop_unfinished_line(output, chunk=4096) == 300_000
    assert output.read_bytes() == b'{"n":0}\n'
    output.write_bytes(b"x" * 10_000)  # one unfinished line and nothing before it
    assert drop_unfinished_line(output, chunk=4096) == 10_000
    assert output.read_bytes() == b""


def test_sigkill_while_writing_leaves_only_valid_json_lines_after_restart(
    tmp_path: Path,
) -> None:
    output = tmp_path / "detections.jsonl"
    # The child runs the same ovms_client as this test, wherever it was imported from.
    source = str(Path(results.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    unfinished = 0
    for round_ in range(ROUNDS):
        size_before = output.stat().st_size if output.exists() else 0
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(output)], env=env)
        deadline = time.monotonic() + 120
        # Kill once the child has written lines of its own and, if the poll catches it, while
        # a line is half on disk; whatever the machine's speed, the kill comes.
        while time.monotonic() < deadline:
            if output.exists() and output.stat().st_size > size_before + (8 << 20) \
                    and not ends_with_newline(output):
                break
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        if not output.read_bytes().endswith(b"\n"):
            unfinished += 1
        # The restart: what the client does when its container comes back.
        writer = JsonLinesWriter(str(output))
        writer.write({"restart": round_})
        writer.close()
        records = lines_of(output)  # raises on any line that is not JSON
        assert writer.dropped_bytes < (4 << 20) + 100, "more than one line was dropped"
        assert records[-1] == {"restart": round_}
    print(f"\n{ROUNDS} SIGKILLs mid-write: {unfinished} left an unfinished line, "
          f"{len(lines_of(output))} lines, all valid JSON")
