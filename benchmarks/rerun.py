"""How long an unchanged re-run of site.yml takes on one store, and where the time goes.

Not a test: one run on this machine, nothing asserted about time. Operators re-run
playbooks/site.yml to prove a store is as declared; at 1,000 stores its cost is controller time
per check. Sequence: one converge of the store (not timed: it may change things), then --runs
unchanged re-runs, each timed from outside (wall clock of ansible-playbook) and read through
the JSON callback (task count per host, changed count, each task's duration). Prints the wall
time of each re-run and their median, the task count, and the ten slowest tasks of the median
run with their share of it. A re-run that reports changed > 0 is flagged: it is not an
unchanged re-run and its time says nothing about the check.

Default: the single-system demo store of this machine (inventories/local, local connection),
as `make demo` deploys it. Writes benchmarks/results/rerun.json (raw numbers and command).

    PATH=.cache/venv/bin:$PATH CACHE_DIR=$PWD/.cache python benchmarks/rerun.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()
RESULTS = ROOT / "benchmarks/results"


@dataclass
class Run:
    wall_s: float
    tasks_per_host: dict[str, int]
    changed: int
    failed: int
    slowest: list[tuple[str, float]] = field(default_factory=list)


def _seconds(duration: dict[str, str]) -> float:
    start = datetime.fromisoformat(duration["start"])
    end = datetime.fromisoformat(duration["end"])
    return (end - start).total_seconds()


def parse(result: dict[str, Any], wall_s: float) -> Run:
    """One re-run's figures from the ansible.posix.json callback's output."""
    per_task: list[tuple[str, float]] = []
    for play in result["plays"]:
        for task in play["tasks"]:
            name = f"{play['play']['name']} | {task['task']['name']}"
            per_task.append((name, _seconds(task["task"]["duration"])))
    stats = result["stats"]
    tasks_per_host = {host: s["ok"] + s["skipped"] + s["failures"] for host, s in stats.items()}
    return Run(
        wall_s=wall_s,
        tasks_per_host=tasks_per_host,
        changed=sum(s["changed"] for s in stats.values()),
        failed=sum(s["failures"] + s["unreachable"] for s in stats.values()),
        slowest=sorted(per_task, key=lambda item: item[1], reverse=True)[:10],
    )


def playbook(inventory: str, play: str, json_out: bool, extra: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(CACHE / "collections")}
    if json_out:
        env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", inventory, play, *extra]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    return proc, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventories/local")
    parser.add_argument("--playbook", default="playbooks/site.yml")
    parser.add_argument("--runs", type=int, default=3, help="unchanged re-runs to time")
    parser.add_argument("--no-converge", action="store_true", help="the store is already converged")
    parser.add_argument("extra", nargs="*", help="more ansible-playbook arguments")
    args = parser.parse_args()

    if not args.no_converge:
        print(f"rerun: converging {args.inventory} once (not timed)", flush=True)
        proc, took = playbook(args.inventory, args.playbook, False, args.extra)
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-2000:])
            return 1
        print(f"rerun: converged in {took:.1f} s", flush=True)

    runs: list[Run] = []
    for index in range(1, args.runs + 1):
        proc, took = playbook(args.inventory, args.playbook, True, args.extra)
        try:
            run = parse(json.loads(proc.stdout), took)
        except (json.JSONDecodeError, KeyError) as exc:
            print(f"rerun: run {index} gave no JSON result ({exc}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
            return 1
        runs.append(run)
        flag = "" if run.changed == 0 else f"  <- changed={run.changed}: not an unchanged re-run"
        print(f"rerun {index}: {took:6.1f} s wall, tasks per host {run.tasks_per_host}, "
              f"changed={run.changed} failed={run.failed}{flag}", flush=True)
        if run.failed:
            print(proc.stdout[-3000:])
            return 1

    median = statistics.median(run.wall_s for run in runs)
    typical = min(runs, key=lambda run: abs(run.wall_s - median))
    print(f"\nrerun: median wall time {median:.1f} s over {len(runs)} unchanged re-runs of "
          f"{args.playbook} on {args.inventory}")
    print(f"ten slowest tasks of the median run ({typical.wall_s:.1f} s):")
    for name, seconds in typical.slowest:
        print(f"  {seconds:6.2f} s  {100 * seconds / typical.wall_s:5.1f} %  {name}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "rerun.json"
    out.write_text(json.dumps({
        "command": " ".join(sys.argv),
        "inventory": args.inventory,
        "playbook": args.playbook,
        "median_wall_s": round(median, 2),
        "runs": [asdict(run) for run in runs],
    }, indent=2))
    print(f"rerun: raw figures in {out.relative_to(ROOT)}")
    return 0 if all(run.changed == 0 for run in runs) else 2


if __name__ == "__main__":
    sys.exit(main())
