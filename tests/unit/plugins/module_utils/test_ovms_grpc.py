"""Both API clients over real gRPC against scripted servers, with and without mutual TLS."""
from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_grpc import (
    TlsOptions,
    format_address,
    make_source_factory,
)
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_status import (
    ModelRequest,
    ModelStatus,
    ServerUnreachable,
    VersionStatus,
    query_once,
)
from ansible_collections.edge_retail.ovms.tests.unit.plugins.grpc_fakes import (
    NAME_MISSING,
    VERSION_MISSING,
    ScriptedServer,
    TlsFiles,
    Version,
    start_server,
)

NO_TLS = TlsOptions()


def ask(api: str, port: int, models: list[ModelRequest], tls: TlsOptions = NO_TLS,
        host: str = "127.0.0.1") -> tuple[ModelStatus, ...]:
    source = make_source_factory(api, format_address(host, port), tls)(5.0)
    try:
        return query_once(source, models)
    finally:
        source.close()


def test_format_address_brackets_ipv6() -> None:
    assert format_address("::1", 9000) == "[::1]:9000"
    assert format_address("ovms.store", 9000) == "ovms.store:9000"


class TestTfs:
    def test_every_version_is_reported(self, scripted_server: ScriptedServer) -> None:
        scripted_server.models["face-detection"][3] = Version("LOADING", 2, "UNKNOWN")
        person, face = ask("tfs", scripted_server.port,
                           [ModelRequest("person-detection"), ModelRequest("face-detection")])
        assert person.available and person.versions == (VersionStatus(1, "AVAILABLE", 0, "OK"),)
        assert not face.available
        assert [(v.version, v.state, v.error_code, v.error_message) for v in face.versions] == [
            (1, "AVAILABLE", 0, "OK"), (2, "AVAILABLE", 0, "OK"), (3, "LOADING", 2, "UNKNOWN")]

    def test_a_pinned_version_is_asked_for_alone(self, scripted_server: ScriptedServer) -> None:
        (status,) = ask("tfs", scripted_server.port, [ModelRequest("face-detection", 2)])
        assert status.available and [v.version for v in status.versions] == [2]

    def test_missing_model_and_version_carry_the_server_text(
            self, scripted_server: ScriptedServer) -> None:
        missing, no_version = ask("tfs", scripted_server.port,
                                  [ModelRequest("nope"), ModelRequest("person-detection", 7)])
        assert missing.error == "NOT_FOUND: " + NAME_MISSING
        assert no_version.error == "NOT_FOUND: " + VERSION_MISSING

    def test_a_server_without_the_tfs_api_is_named(self) -> None:
        server = start_server({"m": {1: Version()}}, apis=("kserve",))
        try:
            with pytest.raises(ServerUnreachable, match="UNIMPLEMENTED.*does not serve the "
                                                        "tfs API.*api: kserve"):
                ask("tfs", server.port, [ModelRequest("m")])
        finally:
            server.server.stop(grace=None)


class TestKServe:
    def test_ready_versions_come_from_metadata(self, scripted_server: ScriptedServer) -> None:
        (status,) = ask("kserve", scripted_server.port, [ModelRequest("face-detection")])
        assert status.available
        assert [(v.version, v.state) for v in status.versions] == [
            (1, "AVAILABLE"), (2, "AVAILABLE")]

    def test_a_version_that_is_not_ready_carries_the_server_text(
            self, scripted_server: ScriptedServer) -> None:
        scripted_server.models["face-detection"][2] = Version("LOADING", 2, "UNKNOWN")
        (status,) = ask("kserve", scripted_server.port, [ModelRequest("face-detection", 2)])
        assert not status.available
        assert status.versions == (VersionStatus(
            2, "NOT_READY", 14, "Model with requested version is not loaded yet"),)

    def test_missing_model_and_no_available_version(self, scripted_server: ScriptedServer) -> None:
        scripted_server.models["person-detection"][1] = Version("LOADING", 2, "UNKNOWN")
        missing, failed = ask("kserve", scripted_server.port,
                              [ModelRequest("nope"), ModelRequest("person-detection")])
        assert missing.error == "NOT_FOUND: " + NAME_MISSING
        # OVMS has no default version when none is AVAILABLE, so KServe says "not found".
        assert failed.error == "NOT_FOUND: " + VERSION_MISSING


@pytest.mark.parametrize("api", ["tfs", "kserve"])
def test_closed_port_names_the_address_and_what_to_check(api: str, closed_port: int) -> None:
    with pytest.raises(ServerUnreachable) as caught:
        ask(api, closed_port, [ModelRequest("m")])
    message = str(caught.value)
    assert message.startswith("UNAVAILABLE: ")
    assert "Connection refused" in message
    assert (f"listens for gRPC on port {closed_port}; that this host can reach "
            f"127.0.0.1:{closed_port}") in message


@pytest.mark.parametrize("api", ["tfs", "kserve"])
class TestMutualTls:
    def options(self, tls_files: TlsFiles, **changes: object) -> TlsOptions:
        values = {"ca_cert": str(tls_files.ca_cert), "client_cert": str(tls_files.client_cert),
                  "client_key": str(tls_files.client_key), "server_name": tls_files.server_name}
        values.update(changes)
        return TlsOptions(**values)

    def test_server_name_lets_an_ip_address_match_the_certificate(
            self, api: str, tls_server: ScriptedServer, tls_files: TlsFiles) -> None:
        (status,) = ask(api, tls_server.port, [ModelRequest("person-detection")],
                        self.options(tls_files))
        assert status.available

    def test_a_host_name_in_the_certificate_needs_no_server_name(
            self, api: str, tls_server: ScriptedServer, tls_files: TlsFiles) -> None:
        (status,) = ask(api, tls_server.port, [ModelRequest("person-detection")],
                        self.options(tls_files, server_name=None), host="localhost")
        assert status.available

    def test_the_certificate_name_must_match(
            self, api: str, tls_server: ScriptedServer, tls_files: TlsFiles) -> None:
        with pytest.raises(ServerUnreachable, match="UNAVAILABLE.*the certificate names "
                                                    "the host option"):
            ask(api, tls_server.port, [ModelRequest("m")],
                self.options(tls_files, server_name=None))

    def test_a_server_signed_by_another_ca_is_refused(
            self, api: str, tls_server: ScriptedServer, tls_files: TlsFiles) -> None:
        with pytest.raises(ServerUnreachable, match="UNAVAILABLE.*ca_cert signed"):
            ask(api, tls_server.port, [ModelRequest("m")],
                self.options(tls_files, ca_cert=str(tls_files.other_ca_cert)))

    def test_the_server_refuses_a_client_without_certificate(
            self, api: str, tls_server: ScriptedServer, tls_files: TlsFiles) -> None:
        with pytest.raises(ServerUnreachable, match="UNAVAILABLE.*else set client_cert"):
            ask(api, tls_server.port, [ModelRequest("m")],
                self.options(tls_files, client_cert=None, client_key=None))

    def test_plain_text_against_tls_suggests_ca_cert(
            self, api: str, tls_server: ScriptedServer, tls_files: TlsFiles) -> None:
        with pytest.raises(ServerUnreachable, match="set ca_cert if it only accepts TLS"):
            ask(api, tls_server.port, [ModelRequest("m")])


def test_tls_file_problems_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"client_key is {tmp_path}, which is not a file"):
        TlsOptions(ca_cert=None, client_key=str(tmp_path)).check_files()
