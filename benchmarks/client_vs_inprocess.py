"""Client through the OVMS stand-in over gRPC vs the same pipeline with OpenVINO in process,
and raw frames vs JPEG frames (OVMS binary inputs) over loopback and over the mTLS proxy.

Not a test: one run on this machine, same model (the person-detection IR), same video, same
client pipeline (decode -> resize/convert -> inference -> SSD postprocessing, several requests
in flight per stream). The in-process side swaps the gRPC API for a compiled model in the
client's own process with the same compile config and number of infer requests as the stand-in.
The mTLS side is the remote store's path: the client with a certificate from a store CA, the
proxy image (edge-retail/ovms-proxy, nginx) configured as roles/ovms_proxy configures it,
terminating TLS and passing gRPC to the stand-in. Prints frames/s for 1, 2 and 4 streams, the
ratio gRPC / in-process, the stream density at the target fps, bytes on the wire per frame
(counted by a TCP relay in front of the server or proxy, in a separate pass so that the relay's
work does not slow the timed runs) and draws benchmarks/results/client_vs_inprocess.png.

On a shared machine frames/s mostly measures the CPU share the scheduler leaves each run: a bare
OpenVINO loop in this process got 0.25-0.45 cores while the same loop behind the stand-in got
about 1 core in alternating runs, at the same ~50 frames per CPU-second. So the benchmark also
prints frames per CPU-second (this process + the stand-in + the proxy container), the cost of a
frame, which such load does not move.

    PATH=.cache/venv/bin:$PATH python benchmarks/client_vs_inprocess.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

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
PROXY_IMAGE = "edge-retail/ovms-proxy:1.22-1"
# Request bytes per frame the client sends (gRPC, HTTP/2 and TLS framing included).
RAW_VS_JPEG_GOAL_BYTES = 1 / 8
RAW_VS_JPEG_GOAL_FPS = 0.95


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


def _relay_main(listen_port: int, target_port: int, up: Any, down: Any, ready: Any) -> None:
    """A TCP relay 127.0.0.1:listen_port -> 127.0.0.1:target_port counting the bytes each way."""

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: Any) -> None:
        try:
            while data := await reader.read(1 << 18):
                with counter.get_lock():
                    counter.value += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target_reader, target_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pump(reader, target_writer, up), pump(target_reader, writer, down))

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


class CountingRelay:
    """The relay in its own process: its CPU is not the client's, and it runs only while counting."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        context = multiprocessing.get_context("spawn")
        self.up = context.Value("q", 0)
        self.down = context.Value("q", 0)
        ready = context.Event()
        self.process = context.Process(
            target=_relay_main, args=(self.port, target_port, self.up, self.down, ready),
            daemon=True)
        self.process.start()
        if not ready.wait(30):
            raise RuntimeError("the counting relay did not start")

    def counts(self) -> tuple[int, int]:
        return int(self.up.value), int(self.down.value)

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)


def make_pki(directory: Path) -> dict[str, Path]:
    """A store CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, cwd=directory, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=bench store CA")
    for name, usage, san in (("server", "serverAuth", "IP:127.0.0.1,DNS:localhost"),
                             ("client", "clientAuth", "DNS:bench-client")):
        (directory / f"{name}.ext").write_text(
            f"subjectAltName={san}\nextendedKeyUsage={usage}\n")
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.crt",
                "-extfile", f"{name}.ext")
    for path in directory.iterdir():
        path.chmod(0o644)  # the proxy runs as UID 8443; a throwaway PKI for this run only
    return {name: directory / name for name in
            ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


class Proxy:
    """The store's mTLS proxy image in front of the stand-in, configured as roles/ovms_proxy does."""

    def __init__(self, workdir: Path, upstream_port: int) -> None:
        import docker

        config = workdir / "proxy"
        (config / "tls").mkdir(parents=True)
        self.pki = make_pki(config / "tls")
        self.port = free_port()
        config.chmod(0o755)
        (config / "tls").chmod(0o755)
        # The role's template (roles/ovms_proxy/templates/nginx.conf.j2) with its defaults.
        (config / "nginx.conf").write_text(f"""daemon off;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    server_tokens off;
    client_max_body_size 64m;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate /etc/ovms-proxy/tls/server.crt;
    ssl_certificate_key /etc/ovms-proxy/tls/server.key;
    ssl_client_certificate /etc/ovms-proxy/tls/ca.crt;
    ssl_verify_client on;
    ssl_verify_depth 1;
    ssl_session_cache shared:SSL:1m;
    server {{
        listen 127.0.0.1:{self.port} ssl http2;
        location / {{
            grpc_pass grpc://127.0.0.1:{upstream_port};
            grpc_read_timeout 300s;
            grpc_send_timeout 300s;
        }}
    }}
}}
""")
        (config / "nginx.conf").chmod(0o644)
        client = docker.from_env()
        # Host network: the proxy reaches the stand-in process on 127.0.0.1 as a store's proxy
        # reaches OVMS on its host.
        self.container = client.containers.run(
            PROXY_IMAGE, detach=True, network_mode="host", read_only=True,
            tmpfs={"/tmp": "size=32m"},
            volumes={str(config): {"bind": "/etc/ovms-proxy", "mode": "ro"}})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"proxy did not listen: {self.container.logs().decode()[-2000:]}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def tls_flags(self) -> dict[str, object]:
        return {"tls_ca": str(self.pki["ca.crt"]), "tls_cert": str(self.pki["client.crt"]),
                "tls_key": str(self.pki["client.key"])}

    def cpu_seconds(self) -> float:
        """CPU the proxy container has used (cgroup v1 or v2), 0 when neither can be read."""
        cid = self.container.id
        for path in (Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage"),
                     Path(f"/sys/fs/cgroup/cpu,cpuacct/docker/{cid}/cpuacct.usage")):
            if path.is_file():
                return int(path.read_text()) / 1e9
        for path in (Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"),
                     Path(f"/sys/fs/cgroup/docker/{cid}/cpu.stat")):
            if path.is_file():
                fields = dict(line.split() for line in path.read_text().splitlines())
                return int(fields["usage_usec"]) / 1e6
        return 0.0

    def stop(self) -> None:
        self.container.remove(force=True)


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
    parser.add_argument("--skip-tfs", action="store_true", help="leave out the TFS API")
    parser.add_argument("--rounds", type=int, default=2,
                        help="throughput runs per mode and stream count, interleaved")
    parser.add_argument("--count-frames", type=int, default=60,
                        help="frames per bytes-counting pass (two passes per mode)")
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
        proxy: Proxy | None = None
        try:
            proxy = Proxy(workdir, standin.port)
            inproc = InProcessApi(MODEL_DIR / "1/model.xml", plugin_config, args.nireq)
            mtls = {"api": "kserve", "server_address": proxy.address, **proxy.tls_flags()}
            # mode -> (client settings, the port bytes are counted in front of, the API object)
            modes: dict[str, tuple[dict[str, object], int | None, object | None]] = {
                "in-process": ({"server_address": "127.0.0.1:1"}, None, inproc),
                "grpc kserve": ({"api": "kserve", "server_address": standin.address},
                                standin.port, None),
                "grpc kserve jpeg": ({"api": "kserve", "encoding": "jpeg",
                                      "server_address": standin.address}, standin.port, None),
                "grpc tfs": ({"api": "tfs", "server_address": standin.address},
                             standin.port, None),
                "mtls kserve": (dict(mtls), proxy.port, None),
                "mtls kserve jpeg": ({**mtls, "encoding": "jpeg"}, proxy.port, None),
            }
            if args.skip_tfs:
                del modes["grpc tfs"]
            results = measure(modes, standin, proxy, video, workdir, streams, args)
        finally:
            if proxy is not None:
                proxy.stop()
            standin.stop()
    report(results, streams, args, time.monotonic() - started)
    return 0


def measure(modes: dict[str, tuple[dict[str, object], int | None, object | None]],
            standin: StandIn, proxy: Proxy, video: Path, workdir: Path, streams: list[int],
            args: argparse.Namespace) -> dict[str, Any]:
    fps: dict[str, dict[int, float]] = {mode: {} for mode in modes}
    # Frames per CPU-second of this process, the stand-in and the proxy: what a frame costs
    # whatever share of the CPUs the other work on a shared machine leaves to each run.
    per_cpu_s: dict[str, dict[int, float]] = {mode: {} for mode in modes}
    runs: dict[str, dict[int, list[dict[str, float]]]] = {m: {n: [] for n in streams} for m in modes}
    density: dict[str, dict] = {}
    wire: dict[str, dict[str, float]] = {}

    def flags(mode: str) -> tuple[dict[str, object], object | None]:
        settings, _port, api = modes[mode]
        # Not paced: a looping file would otherwise play at its own frame rate.
        return {**settings, "in_flight": str(args.in_flight), "input_fps": "0"}, api

    def cpu_now() -> float:
        return own_cpu_seconds() + standin.cpu_seconds() + proxy.cpu_seconds()

    for mode in modes:
        # Warm-up: connections, first inferences, page cache of the video.
        base, api = flags(mode)
        run_app({**base, "inputs": [str(video)], "max_frames": "20"}, api, None, workdir)
    # Bytes on the wire: each mode through a counting relay, N frames then 2N frames, so that
    # the difference is N frames' worth without the connection set-up (TLS handshake,
    # metadata). One stream, in order.
    for mode, (_settings, port, _api) in modes.items():
        if port is None:
            continue
        relay = CountingRelay(port)
        try:
            base, api = flags(mode)
            base["server_address"] = f"127.0.0.1:{relay.port}"
            counts = []
            for frames in (args.count_frames, 2 * args.count_frames):
                before = relay.counts()
                run_app({**base, "inputs": [str(video)], "loop": "true",
                         "max_frames": str(frames)}, api, None, workdir)
                after = relay.counts()
                counts.append((after[0] - before[0], after[1] - before[1]))
        finally:
            relay.stop()
        up = (counts[1][0] - counts[0][0]) / args.count_frames
        down = (counts[1][1] - counts[0][1]) / args.count_frames
        wire[mode] = {"up_bytes_per_frame": round(up), "down_bytes_per_frame": round(down)}
        print(f"{mode:16s} on the wire: {up / 1000:8.1f} kB/frame to the server, "
              f"{down / 1000:5.2f} kB/frame back", flush=True)
    # Modes interleave per stream count, and rounds per mode, so that a change in the
    # machine's load (other work on a shared machine) hits every mode alike; each cell keeps
    # its best round, the one the other work disturbed least.
    for n in streams:
        for _round in range(args.rounds):
            for mode in modes:
                base, api = flags(mode)
                cpu_before = cpu_now()
                lines = run_app({**base, "inputs": [str(video)] * n, "loop": "true"},
                                api, args.seconds, workdir)
                cpu = cpu_now() - cpu_before
                summary = lines[-1]
                run = {"fps": summary["fps"], "frames": summary["frames"],
                       "cpu_s": round(cpu, 2),
                       "frames_per_cpu_s": round(summary["frames"] / max(cpu, 1e-3), 2),
                       "cores": round(cpu / summary["elapsed_s"], 2)}
                runs[mode][n].append(run)
                print(f"{mode:16s} {n} stream(s): {run['fps']:7.1f} frames/s, "
                      f"{run['frames_per_cpu_s']:5.1f} frames/CPU-s on "
                      f"{run['cores']:.2f} cores (latency p50 "
                      f"{summary['streams']['stream0']['latency_ms']['p50']} ms)", flush=True)
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
        print(f"{mode:16s} stream density at {args.target_fps} fps: "
              f"{line['streams']}{'+' if line['capped'] else ''} "
              f"({len(line['trials'])} trials)", flush=True)
    return {"fps": fps, "frames_per_cpu_s": per_cpu_s, "runs": runs, "density": density,
            "wire": wire}


# The pairs raw vs jpeg are compared on: (path, raw mode, jpeg mode).
PAIRS = (("loopback", "grpc kserve", "grpc kserve jpeg"),
         ("mTLS proxy", "mtls kserve", "mtls kserve jpeg"))


def report(results: dict[str, Any], streams: list[int], args: argparse.Namespace,
           elapsed: float) -> None:
    fps, per_cpu_s, density = results["fps"], results["frames_per_cpu_s"], results["density"]
    print()
    print(f"frames/s, best of {args.rounds} (in_flight {args.in_flight}, nireq {args.nireq}, "
          f"{os.cpu_count()} CPUs; {elapsed:.0f} s)")
    table(fps, streams, density, args.target_fps)
    print()
    print("frames per CPU-second (client + stand-in + proxy), best of "
          f"{args.rounds}: the cost of a frame, whatever CPU share the machine's load left")
    table(per_cpu_s, streams, {}, None)
    print()
    comparison = raw_vs_jpeg(results, streams, args.target_fps)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "client_vs_inprocess.json").write_text(json.dumps(
        {**results, "raw_vs_jpeg": comparison,
         "in_flight": args.in_flight, "nireq": args.nireq, "rounds": args.rounds,
         "seconds": args.seconds, "target_fps": args.target_fps, "cpus": os.cpu_count(),
         "load_avg_1m": os.getloadavg()[0]}, indent=2))
    plot(fps, per_cpu_s, density, results["wire"], streams, args.target_fps)


def raw_vs_jpeg(results: dict[str, Any], streams: list[int], target: float) -> list[dict]:
    """The raw vs jpeg table per path, with the issue's goals, as printed."""
    fps, per_cpu_s, wire, density = (results["fps"], results["frames_per_cpu_s"],
                                     results["wire"], results["density"])
    top = max(streams)
    print(f"raw vs jpeg (fps and frames/CPU-s at {top} stream{'s' if top > 1 else ''}; goal: "
          f"jpeg bytes <= {RAW_VS_JPEG_GOAL_BYTES:.3f} of raw's, fps >= "
          f"{RAW_VS_JPEG_GOAL_FPS} of raw's)")
    print(f"| path | encoding | kB/frame sent | bytes ratio | frames/s | fps ratio | "
          f"frames/CPU-s | CPU-s ratio | density @{target} | projected density |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    cpus = os.cpu_count() or 1
    rows = []
    for path, raw, jpeg in PAIRS:
        if raw not in wire or jpeg not in wire:
            continue
        for encoding, mode in (("raw", raw), ("jpeg", jpeg)):
            sent = wire[mode]["up_bytes_per_frame"]
            bytes_ratio = sent / wire[raw]["up_bytes_per_frame"]
            fps_ratio = fps[mode][top] / fps[raw][top]
            cost_ratio = per_cpu_s[mode][top] / per_cpu_s[raw][top]
            # Streams of `target` fps this machine's CPUs would carry at the measured cost of
            # a frame if nothing else ran on them: what the density would be on an idle host.
            projected = int(per_cpu_s[mode][top] * cpus // target)
            dens = density.get(mode)
            row = {"path": path, "encoding": encoding, "mode": mode,
                   "up_bytes_per_frame": sent,
                   "down_bytes_per_frame": wire[mode]["down_bytes_per_frame"],
                   "bytes_ratio": round(bytes_ratio, 4), "fps": fps[mode][top],
                   "fps_ratio": round(fps_ratio, 3), "frames_per_cpu_s": per_cpu_s[mode][top],
                   "cpu_s_ratio": round(cost_ratio, 3),
                   "density": dens["streams"] if dens else None,
                   "projected_density": projected}
            rows.append(row)
            dens_cell = "-" if dens is None else f"{dens['streams']}{'+' if dens['capped'] else ''}"
            verdict = ""
            if encoding == "jpeg":
                met = (bytes_ratio <= RAW_VS_JPEG_GOAL_BYTES
                       and fps_ratio >= RAW_VS_JPEG_GOAL_FPS)
                verdict = " (goal met)" if met else " (goal not met)"
            print(f"| {path} | {encoding}{verdict} | {sent / 1000:.1f} | {bytes_ratio:.3f} | "
                  f"{fps[mode][top]:.1f} | {fps_ratio:.2f} | {per_cpu_s[mode][top]:.1f} | "
                  f"{cost_ratio:.2f} | {dens_cell} | {projected} |")
    return rows


def table(values_by_mode: dict[str, dict[int, float]], streams: list[int],
          density: dict[str, dict], target: float | None) -> None:
    base = values_by_mode["in-process"]
    columns = " | ".join(f"{n} stream{'s' if n > 1 else ''}" for n in streams)
    header = f"| {'mode':16s} | {columns}"
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
            print(f"| {mode:16s} | " + " | ".join(cells) + " |")
            continue
        dens = density.get(mode)
        if dens is None:
            dens_cell = "-"
        else:
            dens_cell = f"{dens['streams']}{'+' if dens['capped'] else ''}"
            ref = density.get("in-process")
            if mode != "in-process" and ref and ref["streams"]:
                dens_cell += f" ({dens['streams'] / ref['streams']:.2f}x)"
        print(f"| {mode:16s} | " + " | ".join(cells) + f" | {dens_cell} |")


def plot(fps: dict[str, dict[int, float]], per_cpu_s: dict[str, dict[int, float]],
         density: dict[str, dict], wire: dict[str, dict[str, float]], streams: list[int],
         target: float) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (requirements/python.txt): no plot drawn")
        return
    fig, axes_row = plt.subplots(1, 4, figsize=(21, 4.6))
    left, middle, right, far = axes_row
    width = 0.8 / len(fps)
    for axes, data, ylabel, title in (
            (left, fps, "frames/s (all streams)", "throughput (best round)"),
            (middle, per_cpu_s, "frames per CPU-second", "cost: client + stand-in + proxy CPU")):
        for i, (mode, values) in enumerate(data.items()):
            xs = [j + i * width for j in range(len(streams))]
            axes.bar(xs, [values[n] for n in streams], width, label=mode, color=f"C{i}")
        axes.set_xticks([j + width * (len(data) - 1) / 2 for j in range(len(streams))])
        axes.set_xticklabels([f"{n} stream{'s' if n > 1 else ''}" for n in streams])
        axes.set_ylabel(ylabel)
        axes.set_title(title)
        axes.legend(fontsize="small", loc="lower right", framealpha=0.9)
    colours = {mode: f"C{i}" for i, mode in enumerate(fps)}
    if density:
        names = list(density)
        right.bar(range(len(names)), [density[m]["streams"] for m in names],
                  color=[colours[m] for m in names])
        right.set_xticks(range(len(names)))
        right.set_xticklabels(names, rotation=30, ha="right", fontsize="small")
        right.set_ylabel(f"streams each >= {target} fps")
        right.set_title("stream density")
    if wire:
        names = list(wire)
        far.bar(range(len(names)), [wire[m]["up_bytes_per_frame"] / 1000 for m in names],
                color=[colours[m] for m in names])
        far.set_xticks(range(len(names)))
        far.set_xticklabels(names, rotation=30, ha="right", fontsize="small")
        far.set_ylabel("kB per frame, client to server")
        far.set_title("bytes on the wire (counted)")
    fig.tight_layout()
    path = RESULTS / "client_vs_inprocess.png"
    fig.savefig(path, dpi=110)
    print(f"plot: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
