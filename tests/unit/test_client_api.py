"""How the client's API layer classifies gRPC failures: retry later, or stop with a reason."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from ovms_client.api import KServeApi, TfsApi, channel_options, make_api
from ovms_client.errors import ExitCode, InferenceError, ServerUnavailable
from ovms_client.settings import load


def settings(tmp_path: Path, address: str, api: str, **extra: str):
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    values = {
        "model_name": "m",
        "server_address": address,
        "inputs": [str(image)],
        "api": api,
        "request_timeout": "2",
        **extra,
    }
    return load(values, {}, tmp_path)


@pytest.fixture
def empty_server() -> Iterator[str]:
    """A gRPC server with no services: every call answers UNIMPLEMENTED, as an OVMS that
    dropped the TensorFlow Serving API does for TFS calls."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_tfs_against_a_server_without_the_tfs_api_says_to_use_kserve(
    tmp_path: Path, empty_server: str
) -> None:
    api = make_api(settings(tmp_path, empty_server, "tfs"))
    assert isinstance(api, TfsApi)
    with pytest.raises(InferenceError, match=r"UNIMPLEMENTED.*set api: kserve") as caught:
        api.model_ready()
    assert caught.value.exit_code == ExitCode.INFERENCE
    api.close()


def test_kserve_unimplemented_is_fatal_too(tmp_path: Path, empty_server: str) -> None:
    api = make_api(settings(tmp_path, empty_server, "kserve"))
    assert isinstance(api, KServeApi)
    with pytest.raises(
        InferenceError,
        match=r"model readiness check on .* \(kserve\): "
        r"UNIMPLEMENTED",
    ):
        api.model_ready()
    api.close()


@pytest.mark.parametrize("kind", ["kserve", "tfs"])
def test_nobody_listening_is_unavailable_not_fatal(
    tmp_path: Path, closed_port: str, kind: str
) -> None:
    api = make_api(settings(tmp_path, closed_port, kind))
    with pytest.raises(ServerUnavailable, match="UNAVAILABLE"):
        api.model_ready()
    api.close()


def test_channel_options_shorten_reconnect_backoff_and_override_server_name(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("PEM")
    options = dict(
        channel_options(
            settings(
                tmp_path, "127.0.0.1:9000", "kserve", tls_ca=str(ca), tls_server_name="ovms.store"
            )
        )
    )
    assert options["grpc.max_reconnect_backoff_ms"] <= 5000
    # A dead connection after a network cut is noticed by keepalive, not by TCP's retries.
    assert options["grpc.keepalive_time_ms"] + options["grpc.keepalive_timeout_ms"] <= 20000
    assert options["grpc.ssl_target_name_override"] == "ovms.store"
    plain = dict(channel_options(settings(tmp_path, "127.0.0.1:9000", "kserve")))
    assert "grpc.ssl_target_name_override" not in plain
