"""Fixtures for the model_status unit tests: scripted gRPC servers and TLS files."""
from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from ansible_collections.edge_retail.ovms.tests.unit.plugins.grpc_fakes import (
    ScriptedServer,
    TlsFiles,
    Version,
    make_tls_files,
    start_server,
)


def _models() -> dict[str, dict[int, Version]]:
    return {
        "person-detection": {1: Version()},
        "face-detection": {1: Version(), 2: Version()},
    }


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    """Both APIs on a free loopback port; tests edit ``.models`` to set states."""
    server = start_server(_models())
    yield server
    server.server.stop(grace=None)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(tls_files: TlsFiles) -> Iterator[ScriptedServer]:
    """Both APIs behind mutual TLS with a certificate for ``tls_files.server_name`` only."""
    server = start_server(_models(), credentials=tls_files.server_credentials())
    yield server
    server.server.stop(grace=None)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: bound, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
