"""How long an unchanged re-run of site.yml takes on one store, and where the time goes.

Not a test: one run on this machine, nothing asserted about time. Operators re-run
playbooks/site.yml to prove a store is as declared; at 1,000 stores its cost is controller time
per check. Sequence: one converge of the store (not timed: it may change things), then --runs
unchanged re-runs, each timed from outside (wall clock of ansible-playbook) and read through
the JSON callback (task count per host, changed count, each task's duration). Prints the wall
time of each re-run and their median, the task count, and the ten slowest tasks of the median
run with their share of it. A re-run that reports changed > 0 is flagged: it is not an
unchanged re-run and its time says nothing about the check.

Each run's time is split into what the re-run is made of: module runs (a module started on the
host, or on the controller for delegated checks), tasks that run no module (assert, set_fact,
includes, argument-spec validation; the controller alone) and the rest (ansible-playbook's
start-up, inventory and play loading).

--also-core BIN_DIR alternates the runs between this venv's ansible-playbook and the one in
BIN_DIR (another ansible-core, e.g. the ansible-core floor venv the tests build in
.cache/venv-ansible-core-floor), so that both are measured on the same machine at the same time.

Default: the single-system demo store of this machine (inventories/local, local connection),
as `make demo` deploys it. Writes benchmarks/results/rerun.json (raw numbers and command).

    PATH=.cache/venv/bin:$PATH CACHE_DIR=$PWD/.cache python benchmarks/rerun.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


# Actions that run no module: the controller handles them in its worker process.
CONTROLLER_ONLY = {
    f"ansible.builtin.{name}" for name in (
        "assert", "set_fact", "include_tasks", "include_role", "import_role", "import_tasks",
        "validate_argument_spec", "debug", "meta", "fail", "include_vars", "set_stats")
}


@dataclass
class Run:
    wall_s: float
    tasks_per_host: dict[str, int]
    changed: int
    failed: int
    slowest: list[tuple[str, float]] = field(default_factory=list)
    core: str = ""
    module_runs: int = 0
    module_s: float = 0.0
    controller_tasks: int = 0
    controller_s: float = 0.0
    skipped_tasks: int = 0
    skipped_s: float = 0.0
    # (task, module runs, seconds) of each task that started a module: what holds the floor.
    module_tasks: list[tuple[str, int, float]] = field(default_factory=list)


def _seconds(duration: dict[str, str]) -> float:
    start = datetime.fromisoformat(duration["start"])
    end = datetime.fromisoformat(duration["end"])
    return (end - start).total_seconds()


def parse(result: dict[str, Any], wall_s: float) -> Run:
    """One re-run's figures from the ansible.posix.json callback's output."""
    per_task: list[tuple[str, float]] = []
    kinds = {"module": [0, 0.0], "controller": [0, 0.0], "skipped": [0, 0.0]}
    module_runs = 0
    module_tasks: list[tuple[str, int, float]] = []
    for play in result["plays"]:
        for task in play["tasks"]:
            name = f"{play['play']['name']} | {task['task']['name']}"
            seconds = _seconds(task["task"]["duration"])
            per_task.append((name, seconds))
            # One host per run here (a single store); a task's time goes to its first host's kind.
            for index, host_result in enumerate(task["hosts"].values()):
                items = host_result.get("results")
                if host_result.get("skipped"):
                    kind = "skipped"
                elif host_result.get("action") in CONTROLLER_ONLY:
                    kind = "controller"
                else:
                    kind = "module"
                    started = len([i for i in items if not i.get("skipped")]) if items else 1
                    module_runs += started
                    module_tasks.append((name, started, seconds))
                kinds[kind][0] += 1
                if index == 0:
                    kinds[kind][1] += seconds
    stats = result["stats"]
    tasks_per_host = {host: s["ok"] + s["skipped"] + s["failures"] for host, s in stats.items()}
    return Run(
        wall_s=wall_s,
        tasks_per_host=tasks_per_host,
        changed=sum(s["changed"] for s in stats.values()),
        failed=sum(s["failures"] + s["unreachable"] for s in stats.values()),
        slowest=sorted(per_task, key=lambda item: item[1], reverse=True)[:10],
        module_runs=module_runs,
        module_s=kinds["module"][1],
        controller_tasks=kinds["controller"][0],
        controller_s=kinds["controller"][1],
        skipped_tasks=kinds["skipped"][0],
        skipped_s=kinds["skipped"][1],
        module_tasks=module_tasks,
    )


def dependency_collections() -> str:
    """Where this venv's `ansible` package keeps community.docker and the others: another
    ansible-core's venv gets them from here."""
    for entry in map(Path, sys.path):
        if (entry / "ansible_collections/community/docker").is_dir():
            return str(entry)
    return ""


def core_version(bin_dir: Path) -> str:
    proc = subprocess.run([str(bin_dir / "ansible"), "--version"], capture_output=True, text=True,
                          check=False)
    found = re.search(r"\[core ([^\]]+)\]", proc.stdout)
    return found.group(1) if found else "?"


def playbook(inventory: str, play: str, json_out: bool, extra: list[str],
             bin_dir: Path | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    bin_dir = bin_dir or Path(sys.executable).parent
    paths = [str(CACHE / "collections"), dependency_collections()]
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": ":".join(p for p in paths if p)}
    if json_out:
        env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    cmd = [str(bin_dir / "ansible-playbook"), "-i", inventory, play, *extra]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    return proc, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventories/local")
    parser.add_argument("--playbook", default="playbooks/site.yml")
    parser.add_argument("--runs", type=int, default=3, help="unchanged re-runs to time")
    parser.add_argument("--no-converge", action="store_true", help="the store is already converged")
    parser.add_argument("--also-core", type=Path, metavar="BIN_DIR",
                        help="alternate the runs with the ansible-playbook of this bin directory")
    parser.add_argument("extra", nargs="*", help="more ansible-playbook arguments")
    args = parser.parse_args()

    if not args.no_converge:
        print(f"rerun: converging {args.inventory} once (not timed)", flush=True)
        proc, took = playbook(args.inventory, args.playbook, False, args.extra)
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-2000:])
            return 1
        print(f"rerun: converged in {took:.1f} s", flush=True)

    bins = [Path(sys.executable).parent] + ([args.also_core] if args.also_core else [])
    cores = {bin_dir: core_version(bin_dir) for bin_dir in bins}
    runs: list[Run] = []
    for index in range(1, args.runs + 1):
        for bin_dir in bins:
            proc, took = playbook(args.inventory, args.playbook, True, args.extra, bin_dir)
            try:
                run = parse(json.loads(proc.stdout), took)
            except (json.JSONDecodeError, KeyError) as exc:
                print(f"rerun: run {index} gave no JSON result ({exc}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
                return 1
            run.core = cores[bin_dir]
            runs.append(run)
            flag = "" if run.changed == 0 else f"  <- changed={run.changed}: not an unchanged re-run"
            print(f"rerun {index} (ansible-core {run.core}): {took:6.1f} s wall, tasks per host "
                  f"{run.tasks_per_host}, {run.module_runs} module runs, "
                  f"changed={run.changed} failed={run.failed}{flag}", flush=True)
            if run.failed:
                print(proc.stdout[-3000:])
                return 1

    print("\n| ansible-core | median wall | module runs | in module tasks | tasks without a module | "
          "skipped tasks | start-up and the rest |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    medians = {}
    for core in cores.values():
        mine = [run for run in runs if run.core == core]
        median = statistics.median(run.wall_s for run in mine)
        medians[core] = median
        typical = min(mine, key=lambda run: abs(run.wall_s - median))
        rest = typical.wall_s - typical.module_s - typical.controller_s - typical.skipped_s
        print(f"| {core} | {median:.1f} s | {typical.module_runs} | {typical.module_s:.1f} s "
              f"({typical.module_s / max(typical.module_runs, 1):.2f} s a run) | "
              f"{typical.controller_tasks}: {typical.controller_s:.1f} s | "
              f"{typical.skipped_tasks}: {typical.skipped_s:.1f} s | {rest:.1f} s |")
    if len(medians) == 2:
        [core_a, core_b] = list(medians)
        print(f"\nrerun: ansible-core {core_b} takes {medians[core_b] / medians[core_a]:.2f} of "
              f"{core_a}'s wall time (medians of {args.runs} runs each, alternated)")
    median = medians[cores[bins[0]]]
    mine = [run for run in runs if run.core == cores[bins[0]]]
    typical = min(mine, key=lambda run: abs(run.wall_s - median))
    print(f"\nrerun: median wall time {median:.1f} s over {len(mine)} unchanged re-runs of "
          f"{args.playbook} on {args.inventory} (ansible-core {typical.core})")
    print(f"ten slowest tasks of the median run ({typical.wall_s:.1f} s):")
    for name, seconds in typical.slowest:
        print(f"  {seconds:6.2f} s  {100 * seconds / typical.wall_s:5.1f} %  {name}")
    print(f"the {typical.module_runs} module runs of the median run, task by task:")
    for name, started, seconds in typical.module_tasks:
        print(f"  {seconds:6.2f} s  {started} run{'s' if started > 1 else ' '}  {name}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "rerun.json"
    out.write_text(json.dumps({
        "command": " ".join(sys.argv),
        "inventory": args.inventory,
        "playbook": args.playbook,
        "median_wall_s": round(median, 2),
        "median_wall_s_by_core": {core: round(value, 2) for core, value in medians.items()},
        "runs": [asdict(run) for run in runs],
    }, indent=2))
    print(f"rerun: raw figures in {out.relative_to(ROOT)}")
    return 0 if all(run.changed == 0 for run in runs) else 2


if __name__ == "__main__":
    sys.exit(main())
