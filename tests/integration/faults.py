"""Helpers of the fault tests: small filesystems, a disk filler, ansible-playbook runs that can
be watched line by line and killed, and the stand-in image without rebuilding it."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()
PLAYBOOK_BIN = str(Path(sys.executable).with_name("ansible-playbook"))


def standin_image(docker_client) -> str:
    """The stand-in image `make images` built; the fault tests never rebuild it."""
    index = json.loads((CACHE / "images" / "index.json").read_text())
    name = index["standin"]["name"]
    try:
        docker_client.images.get(name)
    except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound or an engine error
        pytest.skip(f"{name} is not in the engine; run `make images` first")
    return name


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (mount's size= syntax) mounted at `path` for the block."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write one file in `directory` until its filesystem has no byte left; the file's path."""
    filler = directory / f"filler-{uuid.uuid4().hex[:6]}"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    out.write(chunk[:size])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


def used_bytes(directory: Path) -> int:
    """Bytes of the regular files under `directory` (0 when it does not exist)."""
    if not directory.exists():
        return 0
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def playbook_env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(CACHE / "collections"),
            "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}


def playbook_args(tmp_path: Path, playbook: str, extra: dict[str, Any], *options: str) -> list[str]:
    path = tmp_path / f"play-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(playbook)
    vars_file = tmp_path / f"vars-{uuid.uuid4().hex[:6]}.json"
    vars_file.write_text(json.dumps(extra))
    return [PLAYBOOK_BIN, "-i", "localhost,", "-e", f"@{vars_file}", str(path), *options]


def run_playbook(tmp_path: Path, playbook: str, extra: dict[str, Any],
                 *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(playbook_args(tmp_path, playbook, extra, *options), capture_output=True,
                          text=True, env=playbook_env(), timeout=1200, check=False)


class WatchedRun:
    """ansible-playbook in its own process group, its output read line by line, so that a test
    can act when a task starts (fill a disk, kill the controller)."""

    def __init__(self, tmp_path: Path, playbook: str, extra: dict[str, Any],
                 on_line: Callable[[str], None] | None = None) -> None:
        self.lines: list[str] = []
        self._on_line = on_line
        self.process = subprocess.Popen(
            playbook_args(tmp_path, playbook, extra), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
            # Each line as it is printed, not when a pipe's buffer fills.
            env={**playbook_env(), "PYTHONUNBUFFERED": "1"})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if self._on_line is not None:
                self._on_line(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout: float = 1200) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=60)
        return code

    def kill(self) -> None:
        """SIGKILL to ansible-playbook and every process under it (its workers detach into
        sessions of their own, and the module processes they started), as when the
        controller's machine goes away."""
        victims = [self.process.pid, *descendants(self.process.pid)]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.wait(timeout=120)


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, children first."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def recap_changed(output: str) -> int:
    """changed= of localhost in the play recap."""
    for line in output.splitlines():
        if line.startswith("localhost") and "changed=" in line:
            return int(line.split("changed=", 1)[1].split()[0])
    raise AssertionError(f"no play recap in the output:\n{output[-3000:]}")


def catalog_v2(tmp_path: Path) -> Path:
    """models/catalog.yml with the person detector published again as version 2."""
    catalog = yaml.safe_load((ROOT / "models" / "catalog.yml").read_text())
    for entry in catalog["models"]:
        entry["version"] = 2
        if "labels" in entry:
            entry["labels"] = str(ROOT / "models" / entry["labels"])
    path = tmp_path / "catalog-v2.yml"
    path.write_text(yaml.safe_dump(catalog))
    return path


def repo_v2(tmp_path: Path) -> Path:
    """A controller repository with the person detector's files published as version 2."""
    good = CACHE / "models" / "repo"
    repo = tmp_path / "repo-v2"
    target = repo / "person-detection" / "2"
    shutil.copytree(good / "person-detection" / "1", target)
    manifest = json.loads((good / "manifest.json").read_text())
    entry = manifest["models"]["person-detection"]
    entry["version"] = 2
    entry["files"] = {
        f"person-detection/2/{f.name}": hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(target.iterdir())
    }
    (repo / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return repo


def v2_vars(tmp_path: Path) -> dict[str, Any]:
    return {"ovms_models_catalog": str(catalog_v2(tmp_path)),
            "ovms_models_controller_repo_dir": str(repo_v2(tmp_path))}


class ServingProbe:
    """Asks OVMS every half second whether `model` `version` is ready, in a thread, and counts
    the answers that were not yes."""

    def __init__(self, grpc_port: int, model: str, version: str) -> None:
        import tritonclient.grpc as grpcclient

        self._client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        self._model, self._version = model, version
        self.asked = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.asked += 1
            try:
                if not self._client.is_model_ready(self._model, self._version):
                    self.failures.append(f"{time.strftime('%X')} not ready")
            except Exception as exc:  # noqa: BLE001 - any error is a gap in serving
                self.failures.append(f"{time.strftime('%X')} {exc}")
            self._stop.wait(0.5)

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=30)
        self._client.close()
