"""Scripted gRPC servers for unit tests: real gRPC and the real client libraries, with model
states chosen by the test (states that the OVMS stand-in cannot easily be driven into).

Lookups follow OVMS (src/kfs_frontend, src/model.cpp): the default version is the highest
AVAILABLE one, a missing name or version is NOT_FOUND, and TFS status for version 0 lists
every version.
"""
from __future__ import annotations

import dataclasses
import datetime
from concurrent import futures
from pathlib import Path

import grpc
from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
)
from tritonclient.grpc import service_pb2, service_pb2_grpc

State = get_model_status_pb2.ModelVersionStatus.State
NAME_MISSING = "Model with requested name is not found"
VERSION_MISSING = "Model with requested version is not found"


@dataclasses.dataclass
class Version:
    state: str = "AVAILABLE"
    error_code: int = 0
    error_message: str = "OK"


# model name -> version number -> status
Models = dict[str, dict[int, Version]]


def _default_version(versions: dict[int, Version]) -> int | None:
    available = [v for v, status in versions.items() if status.state == "AVAILABLE"]
    return max(available, default=None)


def _lookup(models: Models, name: str, version: str, context: grpc.ServicerContext) -> Version:
    if name not in models:
        context.abort(grpc.StatusCode.NOT_FOUND, NAME_MISSING)
    number = int(version) if version else _default_version(models[name])
    if number not in models[name]:
        context.abort(grpc.StatusCode.NOT_FOUND, VERSION_MISSING)
    return models[name][number]


class KServeServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, models: Models) -> None:
        self.models = models

    def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    def ModelReady(self, request, context):
        status = _lookup(self.models, request.name, request.version, context)
        return service_pb2.ModelReadyResponse(ready=status.state == "AVAILABLE")

    def ModelMetadata(self, request, context):
        status = _lookup(self.models, request.name, request.version, context)
        if status.state != "AVAILABLE":
            context.abort(grpc.StatusCode.UNAVAILABLE, "Model with requested version is not "
                          "loaded yet")
        ready = [str(v) for v, s in sorted(self.models[request.name].items())
                 if s.state == "AVAILABLE"]
        return service_pb2.ModelMetadataResponse(name=request.name, versions=ready,
                                                 platform="OpenVINO")


class TfsModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, models: Models) -> None:
        self.models = models

    def GetModelStatus(self, request, context):
        name, number = request.model_spec.name, request.model_spec.version.value
        if name not in self.models:
            context.abort(grpc.StatusCode.NOT_FOUND, NAME_MISSING)
        versions = self.models[name]
        wanted = sorted(versions) if number == 0 else [number]
        if any(v not in versions for v in wanted):
            context.abort(grpc.StatusCode.NOT_FOUND, VERSION_MISSING)
        response = get_model_status_pb2.GetModelStatusResponse()
        for v in wanted:
            entry = response.model_version_status.add()
            entry.version = v
            entry.state = State.Value(versions[v].state)
            entry.status.error_code = versions[v].error_code
            entry.status.error_message = versions[v].error_message
        return response


@dataclasses.dataclass
class ScriptedServer:
    server: grpc.Server
    port: int
    models: Models


def start_server(models: Models, apis: tuple[str, ...] = ("tfs", "kserve"),
                 credentials: grpc.ServerCredentials | None = None) -> ScriptedServer:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    if "kserve" in apis:
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(KServeServicer(models), server)
    if "tfs" in apis:
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(TfsModelServicer(models), server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return ScriptedServer(server, port, models)


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path
    server_name: str

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.server_key.read_bytes(), self.server_cert.read_bytes())],
            root_certificates=self.ca_cert.read_bytes(),
            require_client_auth=True,
        )


def make_tls_files(directory: Path, server_name: str = "ovms.test") -> TlsFiles:
    """A CA, a server certificate for ``server_name`` and localhost, a client certificate,
    another CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def write_key(key, path: Path) -> None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    def certificate(subject: str, key, issuer_name: str, issuer_key, *, ca: bool,
                    dns: tuple[str, ...] = (), usage=None):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if dns:
            names = [x509.DNSName(name) for name in dns]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write_cert(cert, path: Path) -> None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    paths = {name: directory / name for name in (
        "ca.crt", "server.crt", "server.key", "client.crt", "client.key", "other-ca.crt")}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    write_cert(certificate("test CA", ca_key, "test CA", ca_key, ca=True), paths["ca.crt"])
    other_key = ec.generate_private_key(ec.SECP256R1())
    write_cert(certificate("other CA", other_key, "other CA", other_key, ca=True),
               paths["other-ca.crt"])
    server_key = ec.generate_private_key(ec.SECP256R1())
    write_key(server_key, paths["server.key"])
    write_cert(certificate(server_name, server_key, "test CA", ca_key, ca=False,
                           dns=(server_name, "localhost"), usage=ExtendedKeyUsageOID.SERVER_AUTH),
               paths["server.crt"])
    client_key = ec.generate_private_key(ec.SECP256R1())
    write_key(client_key, paths["client.key"])
    write_cert(certificate("store client", client_key, "test CA", ca_key, ca=False,
                           usage=ExtendedKeyUsageOID.CLIENT_AUTH), paths["client.crt"])
    return TlsFiles(paths["ca.crt"], paths["server.crt"], paths["server.key"],
                    paths["client.crt"], paths["client.key"], paths["other-ca.crt"], server_name)
