"""How the staged rollout (playbooks/rollout.yml) scales with the number of stores.

Not a test: one run on this machine, nothing asserted about time. Store hosts are containers
made exactly like the molecule fleet scenario's (molecule/fleet/molecule.yml: the store-host
image booted by systemd, Docker installed inside by the roles), one single-system store each,
rolled out in one batch (ovms_rollout_batches ["100%"]) with --forks >= the number of stores.
Sequence: 1 fresh store -> converge (T1) -> unchanged re-run (R1) -> removed; then N fresh
stores (--stores, default 4) -> converge (TN) -> unchanged re-run (RN) -> removed. Prints TN/T1
(the goal is <= 1.5 for N = 4), the re-run time per store, the tasks per host of the re-runs
from the PLAY RECAP (ok + skipped: Ansible's ok already counts the changed ones), and projects
1,000 stores at forks 50 with the default batches [1, "10%", "50%", "100%"]: batches of 1, 100,
500 and 399 stores, each ceil(n/50) rounds of a parallel group, a round estimated by the
measured N-store time. That assumes the controller holds 50 forks as well as N and that store
hosts are independent (their own CPUs, disks and network); here all stores share this machine,
so the measured N-store time is pessimistic for separate hosts but the projection ignores the
controller's load at 50 forks. With --stores 1 there is one phase and the ratios are 1.
Systemd's boot and a syntax check that warms the controller up come before the timed runs.
Writes benchmarks/results/fleet_scale.json (raw numbers, command lines, log paths). Each
ansible-playbook log stays in the printed temp dir. The store hosts (bench-fleet-<n>-<random>)
and their anonymous volumes are removed after each phase, also on failure or Ctrl-C; --keep
leaves those of the last phase (or of the one that failed) running for debugging.

    PATH=.cache/venv/bin:$PATH CACHE_DIR=$PWD/.cache python benchmarks/fleet_scale.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml
from docker.models.containers import Container

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()
RESULTS = ROOT / "benchmarks/results"
SCENARIO = ROOT / "molecule/fleet/molecule.yml"
PLAYBOOK = "playbooks/rollout.yml"
PREFIX = "bench-fleet"
LABEL = "org.edge-retail.benchmark"
BOOT_TIMEOUT_S = 180.0
# The projection: a fleet at the playbook's default batches and a controller with 50 forks.
PROJECT_STORES = 1000
PROJECT_FORKS = 50
DEFAULT_BATCHES: list[int | str] = [1, "10%", "50%", "100%"]
# What the inputs of the scenario's group vars are made by, when they are missing.
INPUTS = {"images/standin.tar": "make images", "images/client.tar": "make images",
          "media/store-walk.mp4": "make media", "models/repo/person-detection": "make models"}
RECAP = re.compile(r"^(\S+)\s*:\s*((?:\w+=\d+\s*)+)$")


class Interrupted(Exception):
    """SIGTERM, turned into an exception so that the hosts are removed on the way out."""


def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
    """The fleet scenario's store platform (anchor merged) and its group_vars all."""
    config = yaml.safe_load(SCENARIO.read_text())
    return config["platforms"][0], config["provisioner"]["inventory"]["group_vars"]["all"]


def group_vars(scenario_vars: dict[str, Any], reports: Path) -> dict[str, Any]:
    """The scenario's group vars with molecule's variables replaced by this run's paths."""
    values = {key: value for key, value in scenario_vars.items() if key != "fleet_scenario_dir"}
    text = json.dumps(values)
    text = text.replace("${MOLECULE_PROJECT_DIRECTORY}/.cache", str(CACHE))
    text = text.replace("${MOLECULE_EPHEMERAL_DIRECTORY}/reports", str(reports))
    if "${" in text:
        raise SystemExit(f"{SCENARIO.relative_to(ROOT)} group_vars use a molecule variable this "
                         f"benchmark does not translate: {text[text.index('${'):][:60]}")
    values = json.loads(text)
    values["ovms_rollout_batches"] = ["100%"]
    return values


def ensure_prerequisites(client: docker.DockerClient, image: str, env: dict[str, str]) -> None:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        print(f"{image} is missing: building the test images (tests/images/build.py)", flush=True)
        subprocess.run([sys.executable, str(ROOT / "tests/images/build.py")], check=True,
                       cwd=ROOT, env=env)
    if not (CACHE / "collections").is_dir():
        subprocess.run(["make", "collection"], check=True, cwd=ROOT, env=env)
    missing = sorted({target for path, target in INPUTS.items() if not (CACHE / path).exists()})
    if missing:
        raise SystemExit(f"inputs missing under {CACHE}: run {', '.join(missing)} first")


def create_hosts(client: docker.DockerClient, platform: dict[str, Any], count: int,
                 token: str, hosts: list[Container]) -> dict[str, float]:
    """Start count store hosts like molecule's docker driver does; append each to hosts.

    hosts is the caller's list so that a host started before a failure is removed too.
    Returns the seconds each host took until systemd finished booting.
    """
    binds = [v for v in platform.get("volumes", []) if ":" in v]
    anonymous = [v for v in platform.get("volumes", []) if ":" not in v]
    for number in range(1, count + 1):
        name = f"{PREFIX}-{number}-{token}"
        host_config = client.api.create_host_config(
            binds=binds, cap_add=platform.get("capabilities"),
            security_opt=platform.get("security_opts"), cgroupns=platform.get("cgroupns_mode"),
            tmpfs={path: "" for path in platform.get("tmpfs", [])})
        # The low-level API, as docker run -v: a bare path is an anonymous volume, which
        # removing the container with v=True removes too.
        created = client.api.create_container(
            platform["image"], command=platform.get("command"), name=name, hostname=name,
            volumes=[_container_path(v) for v in binds] + anonymous, host_config=host_config,
            labels={LABEL: "fleet_scale"}, detach=True)
        container = client.containers.get(created["Id"])
        hosts.append(container)
        container.start()
    return wait_booted(hosts[-count:])


def _container_path(bind: str) -> str:
    return bind.split(":")[1]


def wait_booted(hosts: list[Container]) -> dict[str, float]:
    """Wait until systemd in every host has booted (running or degraded): not part of a run."""
    started = time.monotonic()
    booted: dict[str, float] = {}
    while len(booted) < len(hosts):
        for host in hosts:
            if host.name in booted:
                continue
            result = host.exec_run(["systemctl", "is-system-running"])
            if result.output.decode().strip() in {"running", "degraded"}:
                booted[host.name] = round(time.monotonic() - started, 2)
        if time.monotonic() - started > BOOT_TIMEOUT_S:
            raise SystemExit(f"systemd did not finish booting in {BOOT_TIMEOUT_S:.0f} s on "
                             f"{', '.join(h.name for h in hosts if h.name not in booted)}")
        if len(booted) < len(hosts):
            time.sleep(0.5)
    return booted


def remove_hosts(client: docker.DockerClient, hosts: list[Container]) -> None:
    """Remove the hosts and their anonymous volumes; never raises, reports what it could not."""
    for host in hosts:
        volumes = [m["Name"] for m in host.attrs.get("Mounts", []) if m.get("Type") == "volume"]
        try:
            host.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            print(f"could not remove {host.name}: {error}", file=sys.stderr)
        for volume in volumes:
            try:
                client.volumes.get(volume).remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as error:
                print(f"could not remove volume {volume} of {host.name}: {error}",
                      file=sys.stderr)
    hosts.clear()


def write_inventory(path: Path, hosts: list[Container], variables: dict[str, Any]) -> None:
    """Single-system stores: each host in ovms_servers and ovms_clients, its own store."""
    servers = {host.name: {"ovms_store": f"store-{number}",
                           "ansible_connection": "community.docker.docker",
                           "ansible_python_interpreter": "/usr/bin/python3"}
               for number, host in enumerate(hosts, start=1)}
    inventory = {"all": {"vars": variables, "children": {
        "ovms_servers": {"hosts": servers},
        "ovms_clients": {"hosts": dict.fromkeys(servers)}}}}
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))


def ansible_playbook(env: dict[str, str]) -> str:
    playbook = shutil.which("ansible-playbook", path=env["PATH"])
    if playbook is None:
        raise SystemExit("ansible-playbook is not on PATH (PATH=.cache/venv/bin:$PATH)")
    return playbook


def warm_up(env: dict[str, str]) -> float:
    """A syntax check loads Ansible and the collection once, so T1 (first) pays no cold start."""
    started = time.monotonic()
    result = subprocess.run([ansible_playbook(env), "-i", "localhost,", "--syntax-check",
                             PLAYBOOK], check=False, cwd=ROOT, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr)
        raise SystemExit(f"ansible-playbook --syntax-check {PLAYBOOK} failed")
    return round(time.monotonic() - started, 2)


def run_playbook(label: str, inventory: Path, forks: int, workdir: Path,
                 env: dict[str, str]) -> dict[str, Any]:
    """One timed ansible-playbook run; stops the benchmark with the log's tail if it fails."""
    command = [ansible_playbook(env), "-i", str(inventory), "-f", str(forks), PLAYBOOK]
    log = workdir / f"{label}.log"
    reports = workdir / "reports"
    before = set(reports.glob("rollout-*.json"))
    print(f"{label}: {shlex.join(command)}", flush=True)
    with log.open("wb") as out:
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
        try:
            code = process.wait()
        except BaseException:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise
        elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    if code != 0:
        print("\n".join(text.splitlines()[-60:]), file=sys.stderr)
        raise SystemExit(f"{label}: ansible-playbook exited {code} after {elapsed:.0f} s; "
                         f"log {log}")
    recap = parse_recap(text)
    new_reports = sorted(set(reports.glob("rollout-*.json")) - before)
    report = json.loads(new_reports[-1].read_text()) if new_reports else {}
    # Per store from the fleet report: its outcome and the seconds its own rollout steps took.
    stores = [{key: s.get(key) for key in ("store", "hosts", "outcome", "duration_s")}
              for s in report.get("stores", [])]
    result = {"label": label, "seconds": round(elapsed, 2), "command": shlex.join(command),
              "log": str(log), "recap": recap, "counts": report.get("counts"),
              "stores": stores}
    print(f"{label}: {elapsed:.1f} s, outcomes {report.get('counts')}", flush=True)
    return result


def parse_recap(text: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host (Ansible's ok already includes changed)."""
    recap: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    if "PLAY RECAP" not in text:
        return recap
    start = max(i for i, line in enumerate(lines) if line.startswith("PLAY RECAP"))
    for line in lines[start + 1:]:
        match = RECAP.match(line.strip())
        if match:
            recap[match.group(1)] = {key: int(value) for key, value in
                                     (pair.split("=") for pair in match.group(2).split())}
    return recap


def tasks_per_host(recap: dict[str, dict[str, int]]) -> dict[str, int]:
    """Tasks each store host ran: ok (which counts changed ones too) + skipped."""
    return {host: counts["ok"] + counts["skipped"] for host, counts in recap.items()
            if host != "localhost"}


def phase(client: docker.DockerClient, platform: dict[str, Any], variables: dict[str, Any],
          stores: int, forks: int, token: str, workdir: Path, env: dict[str, str],
          hosts: list[Container], keep: bool) -> dict[str, Any]:
    """Fresh stores -> converge -> unchanged re-run -> hosts removed unless keep."""
    print(f"\n{stores} fresh store(s), forks {forks}", flush=True)
    started = time.monotonic()
    boot = create_hosts(client, platform, stores, token, hosts)
    print(f"created {', '.join(boot)} in {time.monotonic() - started:.1f} s "
          f"(systemd booted after {max(boot.values()):.1f} s)", flush=True)
    inventory = workdir / f"inventory-{stores}.yml"
    write_inventory(inventory, hosts, variables)
    converge = run_playbook(f"converge-{stores}", inventory, forks, workdir, env)
    rerun = run_playbook(f"rerun-{stores}", inventory, forks, workdir, env)
    if not keep:
        remove_hosts(client, hosts)
    return {"stores": stores, "forks": forks, "inventory": str(inventory), "boot_s": boot,
            "converge": converge, "rerun": rerun,
            "rerun_tasks_per_host": tasks_per_host(rerun["recap"]),
            "rerun_changed_per_host": {h: c["changed"] for h, c in rerun["recap"].items()}}


def load_rollout_filter() -> Any:
    """The collection's own rollout_batches filter, so that the projection cuts like the play."""
    spec = importlib.util.spec_from_file_location("rollout_filter",
                                                  ROOT / "plugins/filter/rollout.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rollout_batches


def projection(converge_s: float, rerun_s: float, measured_stores: int) -> dict[str, Any]:
    stores = [f"store-{n}" for n in range(1, PROJECT_STORES + 1)]
    sizes = [len(batch) for batch in load_rollout_filter()(stores, DEFAULT_BATCHES)]
    rounds = [math.ceil(size / PROJECT_FORKS) for size in sizes]
    return {"stores": PROJECT_STORES, "forks": PROJECT_FORKS, "batches": DEFAULT_BATCHES,
            "batch_sizes": sizes, "rounds_per_batch": rounds, "rounds": sum(rounds),
            "round_estimate": f"the measured {measured_stores}-store run",
            "assumption": f"the controller holds {PROJECT_FORKS} forks as well as "
                          f"{measured_stores}, and store hosts are independent, so a round of "
                          f"up to {PROJECT_FORKS} stores takes as long as the measured "
                          f"{measured_stores}-store run (its fixed plan/validate/report part "
                          "is counted once per round, which overestimates a little)",
            "fresh_s": round(sum(rounds) * converge_s, 1),
            "rerun_s": round(sum(rounds) * rerun_s, 1)}


def report(phases: list[dict[str, Any]], project: dict[str, Any], args: argparse.Namespace,
           workdir: Path, elapsed: float, warm_up_s: float) -> None:
    small, large = phases[0], phases[-1]
    t1, tn = small["converge"]["seconds"], large["converge"]["seconds"]
    n = large["stores"]
    print()
    print(f"staged rollout, one batch, forks {args.forks}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f} ({elapsed:.0f} s in all)")
    print("| stores | fresh converge s | per store s | unchanged re-run s | per store s "
          "| tasks/host (re-run) | changed (re-run) |")
    print("|---|---|---|---|---|---|---|")
    for p in phases:
        stores, converge, rerun = p["stores"], p["converge"]["seconds"], p["rerun"]["seconds"]
        tasks = sorted(set(p["rerun_tasks_per_host"].values()))
        changed = sum(c for h, c in p["rerun_changed_per_host"].items() if h != "localhost")
        print(f"| {stores} | {converge:.1f} | {converge / stores:.1f} | {rerun:.1f} "
              f"| {rerun / stores:.1f} | {'/'.join(map(str, tasks))} | {changed} |")
    print(f"T{n}/T1 = {tn / t1:.2f} (goal <= 1.5); R{n}/R1 = "
          f"{large['rerun']['seconds'] / small['rerun']['seconds']:.2f}")
    print()
    print(f"projection: {project['stores']} stores, forks {project['forks']}, batches "
          f"{project['batches']} -> {project['batch_sizes']} stores, "
          f"{project['rounds_per_batch']} rounds = {project['rounds']} rounds")
    print(f"assumption: {project['assumption']}")
    print("| rollout | per round s | rounds | total s | total h |")
    print("|---|---|---|---|---|")
    for name, per_round, total in (
            ("fresh", tn, project["fresh_s"]),
            ("unchanged re-run", large["rerun"]["seconds"], project["rerun_s"])):
        print(f"| {name} | {per_round:.1f} | {project['rounds']} | {total:.0f} "
              f"| {total / 3600:.2f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "fleet_scale.json"
    path.write_text(json.dumps(
        {"command": shlex.join([sys.executable, *sys.argv]), "cwd": str(Path.cwd()),
         "stores": args.stores, "forks": args.forks, "cache_dir": str(CACHE),
         "workdir": str(workdir), "warm_up_syntax_check_s": warm_up_s, "phases": phases,
         f"t{n}_over_t1": round(tn / t1, 3), "projection": project, "cpus": os.cpu_count(),
         "load_avg_1m": os.getloadavg()[0], "elapsed_s": round(elapsed, 1)}, indent=2) + "\n")
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"\nresults: {shown}; logs: {workdir}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=4, help="the larger number of stores")
    parser.add_argument("--forks", type=int, help="ansible forks (default max(4, stores))")
    parser.add_argument("--keep", action="store_true",
                        help="debugging: leave the hosts of the last phase, or of the phase "
                             "that failed, running (earlier phases' hosts are still removed)")
    args = parser.parse_args()
    if args.stores < 1:
        parser.error("--stores must be at least 1")
    args.forks = args.forks or max(4, args.stores)
    if args.forks < args.stores:
        parser.error(f"--forks {args.forks} is below --stores {args.stores}: one batch would "
                     "not run in one parallel group")
    env = {**os.environ, "CACHE_DIR": str(CACHE),
           "ANSIBLE_COLLECTIONS_PATH": str(CACHE / "collections"),
           "ANSIBLE_PIPELINING": "true", "ANSIBLE_FORCE_COLOR": "0"}
    platform, scenario_vars = scenario()
    client = docker.from_env()
    ensure_prerequisites(client, platform["image"], env)
    workdir = Path(tempfile.mkdtemp(prefix="fleet-scale-"))
    (workdir / "reports").mkdir()
    variables = group_vars(scenario_vars, workdir / "reports")
    warm_up_s = warm_up(env)
    token = secrets.token_hex(3)
    hosts: list[Container] = []

    def terminated(_signum: int, _frame: object) -> None:
        raise Interrupted

    signal.signal(signal.SIGTERM, terminated)
    started = time.monotonic()
    phases: list[dict[str, Any]] = []
    try:
        # With --stores 1 the 1-store phase is the only one.
        sizes = sorted({1, args.stores})
        for stores in sizes:
            phases.append(phase(client, platform, variables, stores, args.forks, token,
                                workdir, env, hosts, args.keep and stores == sizes[-1]))
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if hosts and args.keep:
            print(f"--keep: kept {', '.join(h.name for h in hosts)}; inventory in {workdir}")
        elif hosts:
            # A second Ctrl-C must not stop the removal half-way.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print(f"removing {', '.join(h.name for h in hosts)}", file=sys.stderr)
            remove_hosts(client, hosts)
    project = projection(phases[-1]["converge"]["seconds"], phases[-1]["rerun"]["seconds"],
                         phases[-1]["stores"])
    report(phases, project, args, workdir, time.monotonic() - started, warm_up_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
