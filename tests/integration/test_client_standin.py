"""The client CLI against the OVMS stand-in (real gRPC, real OpenVINO) run as a local process.

Covers: the same detections over KServe, TFS and in-process OpenVINO; a video through the CLI;
the server stopped and restarted under a running client; SIGTERM; mutual TLS through a
TLS-terminating relay (what the store's proxy does); configuration errors and exit codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from media import make_walk_video, walk_frames

ROOT = Path(__file__).resolve().parents[2]
MODEL = "person-detection"
PROFILE = ROOT / "client/src/ovms_client/profiles/person-detection-ssd.yaml"
BOX_TOLERANCE_PX = 2.0


def free_port() -> int:
    """A free port below Linux's ephemeral range (32768-60999).

    Servers here are restarted on the same port; while one is down, a port from the ephemeral
    range can be handed to any outgoing connection on the machine and the restart would fail.
    """
    rng = random.Random()
    for _attempt in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("no free port found in 20000-31999")


def wait_for(predicate, what: str, timeout: float = 60.0, every: float = 0.1):
    """Poll until predicate() is truthy; the timeout only bounds a hung test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


class StandIn:
    """The stand-in as a subprocess on 127.0.0.1, restartable on the same ports."""

    def __init__(self, model_repo: Path, workdir: Path) -> None:
        self.config = workdir / "config.json"
        self.config.write_text(
            json.dumps(
                {
                    "model_config_list": [
                        {"config": {"name": MODEL, "base_path": str(model_repo / MODEL)}}
                    ]
                }
            )
        )
        self.port = free_port()
        self.rest_port = free_port()
        self.log = workdir / "standin.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "tests/ovms_standin")}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ovms_standin",
                    "--config_path",
                    str(self.config),
                    "--port",
                    str(self.port),
                    "--rest_port",
                    str(self.rest_port),
                    "--grpc_bind_address",
                    "127.0.0.1",
                    "--rest_bind_address",
                    "127.0.0.1",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._ready, f"the stand-in to serve {MODEL} ({self.log})")

    def _ready(self) -> bool:
        import tritonclient.grpc as triton

        if self.process is not None and self.process.poll() is not None:
            pytest.fail(
                f"stand-in exited with {self.process.returncode}: {self.log.read_text()[-2000:]}"
            )
        client = triton.InferenceServerClient(self.address)
        try:
            return bool(client.is_model_ready(MODEL, client_timeout=2))
        except triton.InferenceServerException:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


@pytest.fixture(scope="module")
def standin(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    server = StandIn(model_repo, tmp_path_factory.mktemp("standin"))
    server.start()
    yield server
    server.stop()


def client_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVMS_CLIENT_")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "client/src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return env


def client_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ovms_client", "--profile", str(PROFILE), *args]


def run_client(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        client_command(*args),
        env=client_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def detections_of(text: str) -> list[dict]:
    return [r for r in records(text) if r["type"] == "detections"]


def openvino_reference(model_repo: Path, image_path: Path) -> list[tuple[float, ...]]:
    """Person boxes (score, x0, y0, x1, y1 in pixels) from OpenVINO in this process."""
    import openvino as ov

    compiled = ov.Core().compile_model(
        str(model_repo / MODEL / "1/model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    image = cv2.imread(str(image_path))
    height, width = image.shape[:2]
    tensor = cv2.cvtColor(
        cv2.resize(image, (300, 300), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB
    )[np.newaxis]
    result = compiled.create_infer_request().infer({"image_tensor": tensor})
    out = {name: value for port, value in result.items() for name in port.get_names()}
    count = int(out["num_detections"].reshape(-1)[0])
    found = []
    for i in range(count):
        score = float(out["detection_scores"][0, i])
        if score > 0.5 and int(out["detection_classes"][0, i]) == 1:
            ymin, xmin, ymax, xmax = (float(v) for v in out["detection_boxes"][0, i])
            found.append((score, xmin * width, ymin * height, xmax * width, ymax * height))
    return found


def boxes_of(record: dict) -> list[tuple[float, ...]]:
    return [
        (d["score"], d["box"]["xmin"], d["box"]["ymin"], d["box"]["xmax"], d["box"]["ymax"])
        for d in record["detections"]
        if d["label"] == "person"
    ]


def assert_same_boxes(got: list[tuple[float, ...]], want: list[tuple[float, ...]]) -> None:
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        assert g[0] > 0.5
        assert g[0] == pytest.approx(w[0], abs=0.02)
        assert g[1:] == pytest.approx(w[1:], abs=BOX_TOLERANCE_PX)


def test_person_jpg_same_over_kserve_tfs_and_in_process_openvino(
    standin: StandIn, model_repo: Path, person_jpg: Path
) -> None:
    reference = openvino_reference(model_repo, person_jpg)
    assert len(reference) == 1, "person.jpg shows one person"
    for api in ("kserve", "tfs"):
        done = run_client(
            "--input",
            str(person_jpg),
            "--server-address",
            standin.address,
            "--api",
            api,
            "--output",
            "-",
        )
        assert done.returncode == 0, done.stderr
        frames = detections_of(done.stdout)
        assert len(frames) == 1
        assert (frames[0]["width"], frames[0]["height"]) == (640, 424)
        assert_same_boxes(boxes_of(frames[0]), reference)


def test_video_through_the_cli_gives_json_lines_and_an_fps_summary(
    standin: StandIn, tmp_path: Path
) -> None:
    truth = make_walk_video(tmp_path / "walk.mp4", frames=45)
    output = tmp_path / "results" / "walk.jsonl"
    done = run_client(
        "--input",
        str(tmp_path / "walk.mp4"),
        "--server-address",
        standin.address,
        "--output",
        str(output),
        "--in-flight",
        "3",
    )
    assert done.returncode == 0, done.stderr
    lines = records(output.read_text())
    frames = [r for r in lines if r["type"] == "detections"]
    assert [r["frame"] for r in frames] == list(range(45))
    assert all(
        r["stream"] == "stream0" and (r["width"], r["height"]) == (1280, 720) for r in frames
    )
    timestamps = [r["timestamp"] for r in frames]
    assert timestamps == sorted(timestamps)
    matched = 0
    for record, box in zip(frames, truth, strict=True):
        for _score, x0, y0, x1, y1 in boxes_of(record):
            if (
                iou(
                    (x0 / 1280, y0 / 720, x1 / 1280, y1 / 720),
                    (box.xmin, box.ymin, box.xmax, box.ymax),
                )
                >= 0.5
            ):
                matched += 1
                break
    assert matched >= 0.75 * len(frames), f"person found in {matched}/45 frames"
    summary = lines[-1]
    assert summary["type"] == "summary"
    assert summary["frames"] == 45 and summary["exit_code"] == 0
    assert summary["fps"] > 0 and summary["stopped_by"] == "end of input"
    p50 = summary["streams"]["stream0"]["latency_ms"]["p50"]
    assert 0 < p50 <= summary["streams"]["stream0"]["latency_ms"]["p95"]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def count_frames(path: Path) -> int:
    if not path.is_file():
        return 0
    return path.read_text().count('"type":"detections"')


def test_server_restart_mid_stream_client_keeps_running_and_resumes(
    model_repo: Path, tmp_path: Path
) -> None:
    server = StandIn(model_repo, tmp_path)
    server.start()
    make_walk_video(tmp_path / "walk.mp4", frames=20, size=(640, 360))
    output = tmp_path / "out.jsonl"
    stderr = tmp_path / "client.stderr"
    with stderr.open("w") as err:
        client = subprocess.Popen(
            client_command(
                "--input",
                str(tmp_path / "walk.mp4"),
                "--loop",
                "--server-address",
                server.address,
                "--output",
                str(output),
                "--metrics-interval",
                "0.5",
            ),
            env=client_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_for(lambda: count_frames(output) >= 30, "frames before the outage")
        server.stop()
        wait_for(lambda: "server unavailable" in stderr.read_text(), "the client to notice")
        during = count_frames(output)
        # Let the client retry for a while against a dead port: it must stay up.
        time.sleep(2)
        assert client.poll() is None, stderr.read_text()
        server.start()
        wait_for(lambda: count_frames(output) >= during + 30, "frames after the restart")
        client.send_signal(signal.SIGTERM)
        assert client.wait(30) == 0, stderr.read_text()
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        server.stop()
    log = stderr.read_text()
    assert log.count("server unavailable") == 1, log
    assert log.count("server back after") == 1, log
    lines = records(output.read_text())
    frames = [r["frame"] for r in lines if r["type"] == "detections"]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    assert any(r["type"] == "metrics" and r["server"] == "down" for r in lines)
    summary = lines[-1]
    assert summary["type"] == "summary"
    assert summary["stopped_by"] == "signal" and summary["exit_code"] == 0
    assert summary["server_outages"] == 1
    assert summary["frames"] == len(frames)


class MjpegCamera:
    """An IP camera on 127.0.0.1: an endless multipart JPEG stream over HTTP, which the client
    reads through OpenCV's FFmpeg backend like an RTSP camera. It can be unplugged and back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.jpegs = [
            cv2.imencode(".jpg", f.image)[1].tobytes() for f in walk_frames(10, (320, 180))
        ]
        self.server: ThreadingHTTPServer | None = None
        self.unplugged = threading.Event()

    def start(self) -> None:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                index = 0
                try:
                    while not camera.unplugged.is_set():
                        jpeg = camera.jpegs[index % len(camera.jpegs)]
                        index += 1
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            b"Content-Length: %d\r\n\r\n" % len(jpeg)
                        )
                        self.wfile.write(jpeg + b"\r\n")
                        time.sleep(1 / 30)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *_args: object) -> None:
                pass

        self.unplugged.clear()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.unplugged.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cam.mjpg"


def run_through_camera_outage(
    camera: MjpegCamera | RtspCamera, standin: StandIn, tmp_path: Path
) -> tuple[str, list[dict]]:
    """The client on a network camera that goes away for a while and comes back; SIGTERM once
    frames flow again. Returns the client's log and its result records."""
    output = tmp_path / "out.jsonl"
    stderr = tmp_path / "client.stderr"
    client: subprocess.Popen[bytes] | None = None
    try:
        camera.start()
        with stderr.open("w") as err:
            client = subprocess.Popen(
                client_command(
                    "--input",
                    camera.url,
                    "--server-address",
                    standin.address,
                    "--output",
                    str(output),
                ),
                env=client_env(),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        wait_for(lambda: count_frames(output) >= 20, "frames from the camera")
        camera.stop()
        wait_for(lambda: "lost input" in stderr.read_text(), "the client to notice the loss")
        before = count_frames(output)
        time.sleep(1.5)  # the camera stays away across a few reconnect attempts
        assert client.poll() is None, stderr.read_text()
        camera.start()
        wait_for(lambda: count_frames(output) >= before + 20, "frames after the camera's return")
        client.send_signal(signal.SIGTERM)
        assert client.wait(30) == 0, stderr.read_text()
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        camera.stop()
    return stderr.read_text(), records(output.read_text())


def test_network_camera_that_goes_away_is_reopened(standin: StandIn, tmp_path: Path) -> None:
    log, lines = run_through_camera_outage(MjpegCamera(), standin, tmp_path)
    assert log.count("lost input") == 1, log
    assert "is back after" in log
    frames = [r["frame"] for r in lines if r["type"] == "detections"]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    assert all(r["width"] == 320 for r in lines if r["type"] == "detections")
    assert lines[-1]["type"] == "summary" and lines[-1]["stopped_by"] == "signal"


def test_bad_profile_values_exit_2_naming_the_setting(tmp_path: Path, person_jpg: Path) -> None:
    profile = tmp_path / "bad.yaml"
    profile.write_text(PROFILE.read_text().replace("score_threshold: 0.5", "score_threshold: 5"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ovms_client",
            "--profile",
            str(profile),
            "--input",
            str(person_jpg),
        ],
        env=client_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert (
        f"setting 'score_threshold' (from profile {profile}, key 'score_threshold')" in done.stderr
    )
    assert "expected a number between 0.0 and 1.0" in done.stderr
    assert done.stdout == ""


def test_profile_that_disagrees_with_the_model_exits_2(standin: StandIn, person_jpg: Path) -> None:
    done = run_client(
        "--input", str(person_jpg), "--server-address", standin.address, "--input-size", "320x320"
    )
    assert done.returncode == 2
    assert (
        "setting 'input_size' is 320x320, but model input 'image_tensor' is 300x300" in done.stderr
    )


def test_unknown_model_is_not_ready_and_exits_3(standin: StandIn, person_jpg: Path) -> None:
    for api in ("kserve", "tfs"):
        done = run_client(
            "--input",
            str(person_jpg),
            "--server-address",
            standin.address,
            "--api",
            api,
            "--model-name",
            "no-such-model",
            "--ready-timeout",
            "1",
            "--output",
            "-",
        )
        assert done.returncode == 3, done.stderr
        assert "model 'no-such-model'" in done.stderr
        assert "was not ready within ready_timeout=1 s" in done.stderr


# --- TLS: the client talks TLS to a relay that terminates it in front of the stand-in, as the
# store's proxy does in front of OVMS.


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for ovms.store.test only, and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=edge-retail test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )
    for name, ext in (
        ("server", ("subjectAltName=DNS:ovms.store.test\nextendedKeyUsage=serverAuth\n")),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(ext)
        openssl(
            "req",
            *ec,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
            cwd=d,
        )
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            cwd=d,
        )
    return d


class TlsRelay:
    """Terminates (mutual) TLS on 127.0.0.1 and relays the bytes to a plaintext backend."""

    def __init__(self, backend_port: int, pki: Path) -> None:
        self.backend_port = backend_port
        self.context = ssl.create_default_context(
            ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.pem")
        )
        self.context.load_cert_chain(str(pki / "server.pem"), str(pki / "server.key"))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.set_alpn_protocols(["h2"])  # gRPC insists on ALPN h2
        self.loop = asyncio.new_event_loop()
        self.port = 0
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def serve() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            async with server:
                await server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(serve())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def close(self) -> None:
        for task in asyncio.all_tasks(self.loop):
            self.loop.call_soon_threadsafe(task.cancel)
        self.thread.join(10)


@pytest.fixture(scope="module")
def relay(standin: StandIn, pki: Path) -> Iterator[TlsRelay]:
    proxy = TlsRelay(standin.port, pki)
    yield proxy
    proxy.close()


def tls_args(
    pki: Path, relay: TlsRelay, client_cert: bool = True, server_name: bool = True
) -> list[str]:
    args = ["--server-address", f"127.0.0.1:{relay.port}", "--tls-ca", str(pki / "ca.pem")]
    if client_cert:
        args += ["--tls-cert", str(pki / "client.pem"), "--tls-key", str(pki / "client.key")]
    if server_name:
        args += ["--tls-server-name", "ovms.store.test"]
    return args


def test_mutual_tls_gives_the_same_detections_over_both_apis(
    standin: StandIn, relay: TlsRelay, pki: Path, person_jpg: Path
) -> None:
    plain = run_client(
        "--input", str(person_jpg), "--server-address", standin.address, "--output", "-"
    )
    assert plain.returncode == 0, plain.stderr
    want = boxes_of(detections_of(plain.stdout)[0])
    for api in ("kserve", "tfs"):
        done = run_client(
            "--input", str(person_jpg), "--api", api, "--output", "-", *tls_args(pki, relay)
        )
        assert done.returncode == 0, done.stderr
        assert_same_boxes(boxes_of(detections_of(done.stdout)[0]), want)


@pytest.mark.parametrize("missing", ["client certificate", "server name"])
def test_tls_refusals_exit_3_with_the_reason(
    relay: TlsRelay, pki: Path, person_jpg: Path, missing: str
) -> None:
    args = tls_args(
        pki,
        relay,
        client_cert=missing != "client certificate",
        server_name=missing != "server name",
    )
    done = run_client("--input", str(person_jpg), "--ready-timeout", "1", *args)
    assert done.returncode == 3, done.stderr
    assert f"127.0.0.1:{relay.port} was not ready within ready_timeout=1 s" in done.stderr
    assert "UNAVAILABLE" in done.stderr
    if missing == "server name":
        # The certificate names ovms.store.test, not the 127.0.0.1 the client dialled.
        assert "Hostname Verification Check failed" in done.stderr


class RtspCamera:
    """rtsp://127.0.0.1:PORT/cam served by GStreamer's RTSP server (tests/rtsp_camera.py) from
    the walk scene's frames; it can be stopped and started again on the same port."""

    SIZE = (320, 180)

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        for index, frame in enumerate(walk_frames(10, self.SIZE)):
            cv2.imwrite(str(folder / f"frame{index:03d}.jpg"), frame.image)
        self.log = folder.parent / "rtsp-camera.log"
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # Output goes to a file: a pipe nobody reads could fill up and stall the server.
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "/usr/bin/python3",
                    str(Path(__file__).parents[1] / "rtsp_camera.py"),
                    str(self.folder / "frame%03d.jpg"),
                    str(self.SIZE[0]),
                    str(self.SIZE[1]),
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self.process
        wait_for(
            lambda: process.poll() is not None or self.log.read_text().count("ready") > self.starts,
            "the RTSP camera",
            timeout=30,
        )
        assert process.poll() is None, self.log.read_text()
        self.starts += 1

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"


def test_rtsp_camera_gives_detections_and_is_reopened_after_it_goes_away(
    standin: StandIn, tmp_path: Path
) -> None:
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    log, lines = run_through_camera_outage(RtspCamera(frames_dir), standin, tmp_path)
    assert "is back after" in log, log
    detections = [r for r in lines if r["type"] == "detections"]
    assert all(r["width"] == RtspCamera.SIZE[0] for r in detections)
    people = [
        d
        for r in detections
        for d in r["detections"]
        if d["label"] == "person" and d["score"] > 0.5
    ]
    assert len(people) >= len(detections) // 2, f"{len(people)} people in {len(detections)} frames"
    assert lines[-1]["type"] == "summary" and lines[-1]["stopped_by"] == "signal"
