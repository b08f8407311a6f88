"""Soak: one single-system store at the camera rate for a long run; memory and result rate.

Not a test (not part of `make test`): one run on this machine. A store of its own is deployed
the way the product does it, `ansible-playbook -i <inventory> playbooks/site.yml`, with an
inventory generated from inventories/local (local connection, the stand-in and client images
from their archives, the looping store video) but with its own container names
(<--name>-ovms-server, <--name>-ovms-client), its own free host ports (the server's gRPC and
REST ports; the client has no Prometheus port) and its own data directories (models, config,
client data, image archive copies) under a temporary directory, so that it runs beside the demo
store (`make demo`: ovms-server, ovms-client, /opt/ovms-client) and beside test runs. The
shared check venv (/opt/edge-retail/check-venv) is used as it is. The client reads the video
at --fps (the client setting input_fps, 15 like the demo: a camera).

--minutes counts from the client's first frame record and includes the warm-up. Every
--interval seconds it samples, for each container:
- RSS: the sum of VmRSS over the container's processes (`docker top` gives their host PIDs,
  /proc/<pid>/status their VmRSS; the anonymous part, RssAnon, is recorded too). This is the
  pass/fail figure: it is the processes' own memory. The container's cgroup memory
  (memory.usage_in_bytes or memory.current) is recorded beside it but not judged: it includes
  page cache charged to the cgroup (the results file it writes, the model files it read), which
  grows with I/O and is given back under pressure without being a leak.
- the results file (<client data dir>/<client container>/results/detections.jsonl), read as it
  grows: each frame record ("type": "detections") counts in the minute of its timestamp (the
  time the client read the frame), and the time between consecutive frame records is a gap.

Printed: each container's RSS at the start (median of the samples in the first --window-s
after the warm-up) and at the end (median of the last --window-s), the growth in % and the
peak; frame records and all result lines per minute after the warm-up (min / median / max,
target --fps x 60); the largest gap between consecutive frame records over the whole run (the
end of the run counts as a record, so a client that stopped writing shows as a gap); restarts
of either container. Expected (the requirement): RSS growth <= --max-growth-pct (10) after the
warm-up and no gap longer than --max-gap-s (5 s, i.e. 75 frames at 15 fps: nothing a paced
camera stream does; a restarted client or a stalled server makes one); a container restart
fails the run too (it resets memory and the frame sequence). Exit status 0 when it passes, 2
when not, 1 when the store could not be deployed.

Writes benchmarks/results/soak.json (every sample, the per-minute counts, the verdict, the
command and the load average). The containers and the temporary directory are removed at the
end, on failure and on Ctrl-C/SIGTERM; --keep leaves them running (the path is printed).

    PATH=.cache/venv/bin:$PATH CACHE_DIR=$PWD/.cache python benchmarks/soak.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()
RESULTS = ROOT / "benchmarks/results"
INVENTORY = ROOT / "inventories/local"
PLAYBOOK = "playbooks/site.yml"
VIDEO = CACHE / "media/store-walk.mp4"
FIRST_RECORD_TIMEOUT_S = 300.0
CGROUP = Path("/sys/fs/cgroup")


class Interrupted(Exception):
    """SIGTERM, turned into an exception so that the store is removed on the way out."""


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise Interrupted()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Store:
    """The soak store: its names, ports and directories."""

    name: str
    workdir: Path
    grpc_port: int
    rest_port: int
    fps: float

    @property
    def server(self) -> str:
        return f"{self.name}-ovms-server"

    @property
    def client(self) -> str:
        return f"{self.name}-ovms-client"

    @property
    def inventory(self) -> Path:
        return self.workdir / "inventory"

    @property
    def results(self) -> Path:
        return self.workdir / "client" / self.client / "results/detections.jsonl"

    def variables(self) -> dict[str, Any]:
        """inventories/local's group vars with this store's names, ports and directories."""
        values: dict[str, Any] = yaml.safe_load((INVENTORY / "group_vars/all.yml").read_text())
        values.update({
            "ovms_server_container_name": self.server,
            "ovms_client_container_name": self.client,
            "ovms_server_grpc_port": self.grpc_port,
            "ovms_server_rest_port": self.rest_port,
            "ovms_models_dir": str(self.workdir / "models"),
            "ovms_models_config_dir": str(self.workdir / "config"),
            "ovms_client_data_dir": str(self.workdir / "client"),
            # The role removes whatever it finds of an archive's name in this directory before
            # copying: a directory shared with another run would lose that run's copy.
            "ovms_server_image_archive_dir": str(self.workdir / "images"),
            "ovms_client_image_archive_dir": str(self.workdir / "images"),
            "ovms_client_input_files": [str(VIDEO)],
            "ovms_client_env": {"input_fps": self.fps},
        })
        return values

    def write_inventory(self) -> None:
        (self.inventory / "group_vars").mkdir(parents=True)
        shutil.copy(INVENTORY / "hosts.yml", self.inventory / "hosts.yml")
        (self.inventory / "group_vars/all.yml").write_text(
            "---\n# Written by benchmarks/soak.py from inventories/local.\n"
            + yaml.safe_dump(self.variables(), sort_keys=False))

    def deploy(self, log: Path) -> bool:
        env = {**os.environ, "CACHE_DIR": str(CACHE),
               "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH",
                                                          str(CACHE / "collections"))}
        cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i",
               str(self.inventory), PLAYBOOK]
        with log.open("w") as out:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  check=False)
        return proc.returncode == 0

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.client, self.server], capture_output=True,
                       check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class Memory:
    """One container's memory at one moment, in bytes; None where it could not be read."""

    rss: int | None
    anon: int | None
    cgroup: int | None
    processes: int
    restarts: int | None
    running: bool


def _docker(*args: str) -> str | None:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    return proc.stdout if proc.returncode == 0 else None


def _status_kb(pid: str, keys: tuple[str, ...]) -> dict[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None  # gone between docker top and now
    values = {}
    for line in text.splitlines():
        key, _colon, rest = line.partition(":")
        if key in keys:
            values[key] = int(rest.split()[0]) * 1024
    return values


def _cgroup_bytes(pid: str) -> int | None:
    """The memory use of the cgroup of `pid` (cgroup v1 memory controller or v2)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _hierarchy, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            candidate = CGROUP / "memory" / path.lstrip("/") / "memory.usage_in_bytes"
        elif controllers == "":
            candidate = CGROUP / path.lstrip("/") / "memory.current"
        else:
            continue
        try:
            return int(candidate.read_text())
        except (OSError, ValueError):
            continue
    return None


def memory(container: str) -> Memory:
    state = _docker("inspect", "-f", "{{.RestartCount}} {{.State.Running}}", container)
    restarts, running = (None, False)
    if state:
        count, flag = state.split()
        restarts, running = int(count), flag == "true"
    top = _docker("top", container, "-eo", "pid") if running else None
    pids = [line.strip() for line in (top or "").splitlines()[1:] if line.strip().isdigit()]
    rss = anon = 0
    seen = 0
    for pid in pids:
        values = _status_kb(pid, ("VmRSS", "RssAnon"))
        if values is None:
            continue
        seen += 1
        rss += values.get("VmRSS", 0)
        anon += values.get("RssAnon", 0)
    return Memory(rss=rss if seen else None, anon=anon if seen else None,
                  cgroup=_cgroup_bytes(pids[0]) if pids else None, processes=seen,
                  restarts=restarts, running=running)


@dataclass
class ResultsTail:
    """Reads the client's results file as it grows, across a rotation (FILE -> FILE.1)."""

    path: Path
    frames: list[float] = field(default_factory=list)  # frame record timestamps, in file order
    others: list[float] = field(default_factory=list)  # metrics and other lines' timestamps
    bad_lines: int = 0
    _handle: Any = None
    _inode: int | None = None
    _partial: str = ""

    def poll(self) -> None:
        if self._handle is not None:
            self._consume(self._handle.read())
        try:
            inode = self.path.stat().st_ino
        except FileNotFoundError:
            return
        if inode != self._inode:  # first open, or the client rotated the file
            if self._handle is not None:
                self._handle.close()
            self._handle = self.path.open(encoding="utf-8")
            self._inode = inode
            self._partial = ""
            self._consume(self._handle.read())

    def _consume(self, text: str) -> None:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                stamp = float(record["timestamp"])
            except (ValueError, KeyError, TypeError):
                self.bad_lines += 1
                continue
            (self.frames if record.get("type") == "detections" else self.others).append(stamp)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def per_minute(stamps: list[float], start: float, end: float) -> list[int]:
    """Counts of `stamps` in each whole minute from `start` up to `end`."""
    minutes = int((end - start) // 60)
    counts = [0] * minutes
    for stamp in stamps:
        index = int((stamp - start) // 60)
        if 0 <= index < minutes:
            counts[index] += 1
    return counts


def largest_gap(stamps: list[float], end: float) -> tuple[float, float | None]:
    """The longest time between consecutive frame records (the end counts as one) and when
    it started."""
    best, at = 0.0, None
    for before, after in zip(stamps, [*stamps[1:], end], strict=True):
        if after - before > best:
            best, at = after - before, before
    return best, at


def _median(values: list[int]) -> float | None:
    return statistics.median(values) if values else None


def growth(samples: list[dict[str, Any]], container: str, key: str, warm: float, end: float,
           window: float) -> dict[str, Any]:
    """Median of `key` over the first `window` s after the warm-up and over the last one."""
    after = [s for s in samples if s["t"] >= warm and s[container][key] is not None]
    first = [s[container][key] for s in after if s["t"] < warm + window]
    last = [s[container][key] for s in after if s["t"] > end - window]
    start_v, end_v = _median(first), _median(last)
    pct = None if not start_v or end_v is None else 100 * (end_v - start_v) / start_v
    slope = None
    if len(after) >= 2 and len({s["t"] for s in after}) >= 2:
        # Least-squares trend over every sample after the warm-up, in bytes per hour: a leak
        # too slow for the end-vs-start figure of one run shows here first.
        slope = 3600 * statistics.linear_regression(
            [s["t"] for s in after], [s[container][key] for s in after]).slope
    return {"start": start_v, "end": end_v, "growth_pct": None if pct is None else round(pct, 2),
            "peak": max((s[container][key] for s in after), default=None),
            "trend_per_hour": None if slope is None else round(slope)}


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def signed_mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:+.1f} MiB"


def soak(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    tail = ResultsTail(store.results)
    waited = time.monotonic()
    while not tail.frames:
        if time.monotonic() - waited > FIRST_RECORD_TIMEOUT_S:
            raise RuntimeError(f"no frame record in {store.results} after "
                               f"{FIRST_RECORD_TIMEOUT_S:.0f} s")
        time.sleep(1)
        tail.poll()
    start = tail.frames[0]
    warm = start + 60 * args.warmup_minutes
    end = start + 60 * args.minutes
    print(f"soak: first frame record at {time.strftime('%H:%M:%S', time.localtime(start))}; "
          f"warm-up until {time.strftime('%H:%M:%S', time.localtime(warm))}, end at "
          f"{time.strftime('%H:%M:%S', time.localtime(end))}", flush=True)
    samples: list[dict[str, Any]] = []
    next_report = start + 60
    while True:
        now = time.time()
        tail.poll()
        sample: dict[str, Any] = {"t": round(now, 3), "load_1m": os.getloadavg()[0],
                                  "frames": len(tail.frames)}
        for role, container in (("client", store.client), ("server", store.server)):
            sample[role] = vars(memory(container))
        samples.append(sample)
        if now >= next_report:
            minute = int((now - start) // 60)
            recent = sum(1 for stamp in tail.frames if now - 60 <= stamp < now)
            print(f"soak: minute {minute:3d}{' (warm-up)' if now < warm else ''}: "
                  f"{recent} frame records in the last 60 s, client RSS "
                  f"{mib(sample['client']['rss'])}, server RSS {mib(sample['server']['rss'])}, "
                  f"load {sample['load_1m']:.2f}", flush=True)
            next_report += 60
        if now >= end:
            break
        time.sleep(max(0.0, min(args.interval, end - time.time())))
    tail.poll()
    tail.close()
    return analyse(store, args, tail, samples, start, warm, end)


def analyse(store: Store, args: argparse.Namespace, tail: ResultsTail,
            samples: list[dict[str, Any]], start: float, warm: float,
            end: float) -> dict[str, Any]:
    frames = per_minute(tail.frames, warm, end)
    lines = per_minute(tail.frames + tail.others, warm, end)
    gap, gap_at = largest_gap(tail.frames, end)
    gap_after_warmup, _at = largest_gap([t for t in tail.frames if t >= warm], end)
    memory_figures = {
        role: {key: growth(samples, role, key, warm, end, args.window_s)
               for key in ("rss", "anon", "cgroup")}
        for role in ("client", "server")}
    restarts = {role: sorted({s[role]["restarts"] for s in samples} - {None})
                for role in ("client", "server")}
    not_running = {role: sum(1 for s in samples if not s[role]["running"])
                   for role in ("client", "server")}
    checks = {
        f"{role} RSS growth <= {args.max_growth_pct} %": (
            memory_figures[role]["rss"]["growth_pct"] is not None
            and memory_figures[role]["rss"]["growth_pct"] <= args.max_growth_pct)
        for role in ("client", "server")}
    checks[f"no gap > {args.max_gap_s} s between frame records"] = gap <= args.max_gap_s
    checks["no container restart or stop"] = (
        all(len(values) == 1 for values in restarts.values())
        and not any(not_running.values()))
    loads = [s["load_1m"] for s in samples]
    return {
        "command": " ".join(sys.argv),
        "minutes": args.minutes, "warmup_minutes": args.warmup_minutes,
        "interval_s": args.interval, "window_s": args.window_s, "fps": args.fps,
        "max_growth_pct": args.max_growth_pct, "max_gap_s": args.max_gap_s,
        "containers": {"client": store.client, "server": store.server},
        "ports": {"grpc": store.grpc_port, "rest": store.rest_port},
        "cpus": os.cpu_count(),
        "load_1m": {"min": min(loads), "median": statistics.median(loads), "max": max(loads)},
        "first_record": start, "warmup_end": warm, "end": end,
        "memory": memory_figures, "restarts": restarts, "samples_not_running": not_running,
        "frame_records_per_minute": frames, "result_lines_per_minute": lines,
        "frame_records_total": len(tail.frames), "other_lines_total": len(tail.others),
        "unparsed_lines": tail.bad_lines,
        "largest_gap_s": round(gap, 3),
        "largest_gap_at": None if gap_at is None else round(gap_at - start, 1),
        "largest_gap_after_warmup_s": round(gap_after_warmup, 3),
        "checks": checks, "passed": all(checks.values()),
        "samples": samples,
    }


def report(result: dict[str, Any]) -> None:
    target = result["fps"] * 60
    print()
    print(f"soak: {result['minutes']} min at {result['fps']} frames/s, warm-up "
          f"{result['warmup_minutes']} min; start/end = median of the samples in the first/last "
          f"{result['window_s']} s after the warm-up; {result['cpus']} CPUs, load average (1 min) "
          f"{result['load_1m']['min']:.1f}-{result['load_1m']['max']:.1f} "
          f"(median {result['load_1m']['median']:.1f})")
    print("| container | memory | start | end | growth | peak | trend per hour |")
    print("|---|---|---|---|---|---|---|")
    labels = {"rss": "RSS (sum of VmRSS)", "anon": "RssAnon", "cgroup": "cgroup (with cache)"}
    for role in ("client", "server"):
        for key, label in labels.items():
            fig = result["memory"][role][key]
            pct = "-" if fig["growth_pct"] is None else f"{fig['growth_pct']:+.1f} %"
            print(f"| {result['containers'][role]} | {label} | {mib(fig['start'])} | "
                  f"{mib(fig['end'])} | {pct} | {mib(fig['peak'])} | "
                  f"{signed_mib(fig['trend_per_hour'])} |")
    print()
    for name, counts in (("frame records", result["frame_records_per_minute"]),
                         ("all result lines", result["result_lines_per_minute"])):
        if counts:
            print(f"{name} per minute after the warm-up ({len(counts)} min, target "
                  f"{target:.0f} frames): min {min(counts)}, median "
                  f"{statistics.median(counts):g}, max {max(counts)}: "
                  + " ".join(str(count) for count in counts))
        else:
            print(f"{name} per minute: no whole minute after the warm-up")
    print(f"largest gap between frame records: {result['largest_gap_s']:.2f} s "
          f"(at {result['largest_gap_at']} s into the run; threshold {result['max_gap_s']} s); "
          f"after the warm-up {result['largest_gap_after_warmup_s']:.2f} s")
    print(f"container restart counts seen: {result['restarts']}, samples with a container not "
          f"running: {result['samples_not_running']}")
    for check, passed in result["checks"].items():
        print(f"  {'PASS' if passed else 'FAIL'}  {check}")
    print(f"soak: {'PASS' if result['passed'] else 'FAIL'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30,
                        help="length of the run from the first frame record, warm-up included")
    parser.add_argument("--warmup-minutes", type=float, default=2,
                        help="left out of the growth and per-minute figures")
    parser.add_argument("--fps", type=float, default=15, help="the client's input_fps")
    parser.add_argument("--interval", type=float, default=10, help="seconds between samples")
    parser.add_argument("--window-s", type=float, default=60,
                        help="start and end memory: median of the samples in this many seconds")
    parser.add_argument("--max-growth-pct", type=float, default=10)
    parser.add_argument("--max-gap-s", type=float, default=5,
                        help="longest time allowed between consecutive frame records")
    parser.add_argument("--name", default="soak", help="container name prefix")
    parser.add_argument("--keep", action="store_true", help="leave the store running")
    parser.add_argument("--output", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args()
    if args.minutes <= args.warmup_minutes:
        parser.error("--minutes must be longer than --warmup-minutes")

    signal.signal(signal.SIGTERM, _on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix=f"{args.name}-store-"))
    # The server (5000) and the client (1000) users go through it to their directories.
    workdir.chmod(0o755)
    store = Store(args.name, workdir, free_port(), free_port(), args.fps)
    store.write_inventory()
    log = workdir / "site.log"
    status = 1
    try:
        print(f"soak: deploying {store.server} (gRPC {store.grpc_port}, REST {store.rest_port}) "
              f"and {store.client} from {store.inventory}", flush=True)
        deployed = time.monotonic()
        if not store.deploy(log):
            print(f"soak: {PLAYBOOK} failed; the end of its log ({log}):")
            print("".join(log.read_text().splitlines(keepends=True)[-40:]))
            return 1
        print(f"soak: deployed in {time.monotonic() - deployed:.0f} s; results in "
              f"{store.results}", flush=True)
        result = soak(store, args)
        report(result)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2))
        print(f"soak: raw figures in {args.output}")
        status = 0 if result["passed"] else 2
    except (KeyboardInterrupt, Interrupted):
        print("soak: interrupted", flush=True)
        status = 130
    except RuntimeError as exc:
        print(f"soak: {exc}", flush=True)
        status = 1
    finally:
        if args.keep:
            print(f"soak: left running: {store.server}, {store.client}; data and inventory in "
                  f"{workdir} (remove: docker rm -f {store.client} {store.server}; "
                  f"rm -rf {workdir})")
        else:
            store.remove()
            print(f"soak: removed {store.client}, {store.server} and {workdir}")
    return status


if __name__ == "__main__":
    sys.exit(main())
