"""Client through the OVMS stand-in over gRPC vs the same pipeline with OpenVINO in process.

Not a test: one run on this machine, same model (the person-detection IR), same video, same
client pipeline (decode -> resize/convert -> inference -> SSD postprocessing, several requests
in flight per stream). The in-process side swaps the gRPC API for a compiled model in the
client's own process with the same compile config and number of infer requests as the stand-in.
Prints frames/s for 1, 2 and 4 streams, the ratio gRPC / in-process, the stream density at
the target fps, and draws benchmarks/results/client_vs_inprocess.png.

On a shared machine frames/s mostly measures the CPU share the scheduler leaves each run: a bare
OpenVINO loop in this process got 0.25-0.45 cores while the same loop behind the stand-in got
about 1 core in alternating runs, at the same ~50 frames per CPU-second. So the benchmark also
prints frames per CPU-second (this process + the stand-in), the cost of a frame, which such
load does not move.

    PATH=.cache/venv/bin:$PATH python benchmarks/client_vs_inprocess.py
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "client/src"), str(ROOT / "tests")]

from media import make_walk_video
from ovms_client.api import ModelInfo, TensorInfo
from ovms_client.app import App
from ovms_client.settings import load

MODEL = "person-detection"
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()
MODEL_DIR = CACHE / "models/repo" / MODEL
RESULTS = ROOT / "benchmarks/results"


class InProcessApi:
    """The client's ServingApi answered by OpenVINO in this process (no gRPC)."""

    address = "in-process"

    def __init__(self, xml: Path, plugin_config: dict[str, str], nireq: int) -> None:
        import openvino as ov

        core = ov.Core()
        self._model = core.read_model(str(xml))
        self._compiled = core.compile_model(self._model, "CPU", plugin_config)
        nireq = nireq or int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._pool: queue.Queue = queue.Queue()
        for _request in range(nireq):
            self._pool.put(self._compiled.create_infer_request())
        self._names = [port.get_any_name() for port in self._model.outputs]

    def model_ready(self) -> bool:
        return True

    def model_info(self) -> ModelInfo:
        def info(ports) -> tuple[TensorInfo, ...]:
            return tuple(TensorInfo(p.get_any_name(), tuple(p.get_partial_shape().to_shape()),
                                    p.get_element_type().to_dtype().name) for p in ports)

        return ModelInfo(info(self._model.inputs), info(self._model.outputs))

    def infer(self, input_name: str, tensor: np.ndarray) -> dict[str, np.ndarray]:
        request = self._pool.get()
        try:
            request.infer({input_name: tensor})
            # Copies: the request's buffers are reused by the next frame.
            return {name: request.get_output_tensor(i).data.copy()
                    for i, name in enumerate(self._names)}
        finally:
            self._pool.put(request)

    def close(self) -> None:
        return


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StandIn:
    def __init__(self, workdir: Path, plugin_config: dict[str, str], nireq: int) -> None:
        config = workdir / "config.json"
        entry = {"name": MODEL, "base_path": str(MODEL_DIR), "plugin_config": plugin_config}
        if nireq:
            entry["nireq"] = nireq
        config.write_text(json.dumps({"model_config_list": [{"config": entry}]}))
        self.port = free_port()
        self.log = (workdir / "standin.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ovms_standin", "--config_path", str(config), "--port",
             str(self.port), "--rest_port", str(free_port()), "--grpc_bind_address",
             "127.0.0.1", "--rest_bind_address", "127.0.0.1"],
            env={**os.environ, "PYTHONPATH": str(ROOT / "tests/ovms_standin")},
            stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU the stand-in process has used so far (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def run_app(flags: dict[str, object], api: object | None, seconds: float | None,
            workdir: Path) -> list[dict]:
    output = workdir / f"out-{time.monotonic_ns()}.jsonl"
    settings = load({"model_name": MODEL, "output": str(output), "metrics_interval": "0",
                     "score_threshold": "0.5", "ready_timeout": "60", **flags}, {}, workdir)
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set) if seconds else None
    app = App(settings, stop, api)  # type: ignore[arg-type]
    if timer:
        timer.start()
    try:
        app.run()
    finally:
        if timer:
            timer.cancel()
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    output.unlink()
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per throughput run")
    parser.add_argument("--in-flight", type=int, default=3, help="requests in flight per stream")
    parser.add_argument("--nireq", type=int, default=4, help="infer requests (both sides)")
    parser.add_argument("--target-fps", type=float, default=14.9)
    parser.add_argument("--trial-s", type=float, default=3.0, help="per stream density trial")
    parser.add_argument("--max-streams", type=int, default=16)
    parser.add_argument("--streams", default="1,2,4")
    parser.add_argument("--skip-density", action="store_true")
    parser.add_argument("--rounds", type=int, default=2,
                        help="throughput runs per mode and stream count, interleaved")
    args = parser.parse_args()
    plugin_config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT"}
    streams = [int(n) for n in args.streams.split(",")]
    started = time.monotonic()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="client-bench-") as tmp:
        workdir = Path(tmp)
        video = workdir / "walk.mp4"
        make_walk_video(video, frames=60)
        standin = StandIn(workdir, plugin_config, args.nireq)
        inproc = InProcessApi(MODEL_DIR / "1/model.xml", plugin_config, args.nireq)
        modes: dict[str, dict[str, object]] = {
            "in-process": {"api_obj": inproc, "server_address": "127.0.0.1:1"},
            "grpc kserve": {"api": "kserve", "server_address": standin.address},
            "grpc tfs": {"api": "tfs", "server_address": standin.address},
        }
        fps: dict[str, dict[int, float]] = {mode: {} for mode in modes}
        # Frames per CPU-second of this process plus the stand-in: what a frame costs whatever
        # share of the CPUs the other work on a shared machine leaves to each run.
        per_cpu_s: dict[str, dict[int, float]] = {mode: {} for mode in modes}
        runs: dict[str, dict[int, list[dict[str, float]]]] = {
            m: {n: [] for n in streams} for m in modes}
        density: dict[str, dict] = {}

        def flags(mode: str) -> tuple[dict[str, object], object | None]:
            options = modes[mode]
            base = {k: v for k, v in options.items() if k != "api_obj"}
            base["in_flight"] = str(args.in_flight)
            return base, options.get("api_obj")

        try:
            for mode in modes:
                # Warm-up: connections, first inferences, page cache of the video.
                base, api = flags(mode)
                run_app({**base, "inputs": [str(video)], "max_frames": "20"}, api, None, workdir)
            # Modes interleave per stream count, and rounds per mode, so that a change in the
            # machine's load (other work on a shared machine) hits every mode alike; each cell
            # keeps its best round, the one the other work disturbed least.
            for n in streams:
                for _round in range(args.rounds):
                    for mode in modes:
                        base, api = flags(mode)
                        cpu_before = own_cpu_seconds() + standin.cpu_seconds()
                        lines = run_app({**base, "inputs": [str(video)] * n, "loop": "true"},
                                        api, args.seconds, workdir)
                        cpu = own_cpu_seconds() + standin.cpu_seconds() - cpu_before
                        summary = lines[-1]
                        run = {"fps": summary["fps"], "frames": summary["frames"],
                               "cpu_s": round(cpu, 2),
                               "frames_per_cpu_s": round(summary["frames"] / max(cpu, 1e-3), 2),
                               "cores": round(cpu / summary["elapsed_s"], 2)}
                        runs[mode][n].append(run)
                        print(f"{mode:12s} {n} stream(s): {run['fps']:7.1f} frames/s, "
                              f"{run['frames_per_cpu_s']:5.1f} frames/CPU-s on "
                              f"{run['cores']:.2f} cores (latency p50 "
                              f"{summary['streams']['stream0']['latency_ms']['p50']} ms)",
                              flush=True)
                for mode in modes:
                    fps[mode][n] = max(r["fps"] for r in runs[mode][n])
                    per_cpu_s[mode][n] = max(r["frames_per_cpu_s"] for r in runs[mode][n])
            for mode in [] if args.skip_density else modes:
                base, api = flags(mode)
                [line] = run_app({**base, "inputs": [str(video)], "stream_density": "true",
                                  "density_target_fps": str(args.target_fps),
                                  "density_trial_s": str(args.trial_s),
                                  "density_max_streams": str(args.max_streams)},
                                 api, None, workdir)
                density[mode] = line
                print(f"{mode:12s} stream density at {args.target_fps} fps: "
                      f"{line['streams']}{'+' if line['capped'] else ''} "
                      f"({len(line['trials'])} trials)", flush=True)
        finally:
            standin.stop()
    report(fps, per_cpu_s, runs, density, streams, args, time.monotonic() - started)
    return 0


def report(fps: dict[str, dict[int, float]], per_cpu_s: dict[str, dict[int, float]],
           runs: dict[str, dict[int, list[dict[str, float]]]], density: dict[str, dict],
           streams: list[int], args: argparse.Namespace, elapsed: float) -> None:
    print()
    print(f"frames/s, best of {args.rounds} (in_flight {args.in_flight}, nireq {args.nireq}, "
          f"{os.cpu_count()} CPUs; {elapsed:.0f} s)")
    table(fps, streams, density, args.target_fps)
    print()
    print("frames per CPU-second (client + stand-in processes), best of "
          f"{args.rounds}: the cost of a frame, whatever CPU share the machine's load left")
    table(per_cpu_s, streams, {}, None)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "client_vs_inprocess.json").write_text(json.dumps(
        {"fps": fps, "frames_per_cpu_s": per_cpu_s, "runs": runs, "density": density,
         "in_flight": args.in_flight, "nireq": args.nireq, "rounds": args.rounds,
         "seconds": args.seconds, "target_fps": args.target_fps, "cpus": os.cpu_count(),
         "load_avg_1m": os.getloadavg()[0]}, indent=2))
    plot(fps, per_cpu_s, density, streams, args.target_fps)


def table(values_by_mode: dict[str, dict[int, float]], streams: list[int],
          density: dict[str, dict], target: float | None) -> None:
    base = values_by_mode["in-process"]
    columns = " | ".join(f"{n} stream{'s' if n > 1 else ''}" for n in streams)
    header = f"| {'mode':12s} | {columns}"
    if target is not None:
        header += f" | density @{target} |"
    else:
        header += " |"
    print(header)
    print("|" + "---|" * (len(streams) + 1 + (target is not None)))
    for mode, values in values_by_mode.items():
        cells = []
        for n in streams:
            ratio = values[n] / base[n] if base.get(n) else float("nan")
            cells.append(f"{values[n]:.1f}" + ("" if mode == "in-process" else f" ({ratio:.2f}x)"))
        if target is None:
            print(f"| {mode:12s} | " + " | ".join(cells) + " |")
            continue
        dens = density.get(mode)
        if dens is None:
            dens_cell = "-"
        else:
            dens_cell = f"{dens['streams']}{'+' if dens['capped'] else ''}"
            ref = density.get("in-process")
            if mode != "in-process" and ref and ref["streams"]:
                dens_cell += f" ({dens['streams'] / ref['streams']:.2f}x)"
        print(f"| {mode:12s} | " + " | ".join(cells) + f" | {dens_cell} |")


def plot(fps: dict[str, dict[int, float]], per_cpu_s: dict[str, dict[int, float]],
         density: dict[str, dict], streams: list[int], target: float) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (requirements/python.txt): no plot drawn")
        return
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.2))
    width = 0.8 / len(fps)
    for axes, data, ylabel, title in (
            (left, fps, "frames/s (all streams)", "throughput (best round)"),
            (middle, per_cpu_s, "frames per CPU-second", "cost: client + stand-in CPU")):
        for i, (mode, values) in enumerate(data.items()):
            xs = [j + i * width for j in range(len(streams))]
            axes.bar(xs, [values[n] for n in streams], width, label=mode)
        axes.set_xticks([j + width * (len(data) - 1) / 2 for j in range(len(streams))])
        axes.set_xticklabels([f"{n} stream{'s' if n > 1 else ''}" for n in streams])
        axes.set_ylabel(ylabel)
        axes.set_title(title)
        axes.legend()
    if density:
        names = list(density)
        right.bar(names, [density[m]["streams"] for m in names],
                  color=["C0", "C1", "C2"][: len(names)])
        right.set_ylabel(f"streams each >= {target} fps")
        right.set_title("stream density")
    fig.tight_layout()
    path = RESULTS / "client_vs_inprocess.png"
    fig.savefig(path, dpi=110)
    print(f"plot: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
