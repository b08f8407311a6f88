# Copyright: (c) 2025, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0
"""gRPC connections to OVMS: address, TLS options, and one status client per API.

``tfs`` uses ovmsclient (TensorFlow-Serving API, gone from OVMS 2026.3 on); ``kserve``
uses tritonclient (KServe v2 API). Both libraries are imported lazily so that a host
needs only the one for the API it uses.
"""

from __future__ import annotations

import dataclasses
import os
import traceback
import typing as t

from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_status import (
    AVAILABLE,
    NOT_READY,
    ModelRequest,
    ModelStatus,
    ServerUnreachable,
    StatusSource,
    VersionStatus,
    parse_tfs_status,
)

try:
    import grpc
except ImportError:
    grpc = None
    GRPC_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    GRPC_IMPORT_ERROR = None

try:
    import ovmsclient
    from ovmsclient.tfs_compat.base.errors import ModelServerError
    from ovmsclient.tfs_compat.grpc.serving_client import GrpcClient
    from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import (
        model_service_pb2_grpc,
        prediction_service_pb2_grpc,
    )
except ImportError:
    OVMSCLIENT_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    OVMSCLIENT_IMPORT_ERROR = None

try:
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException
except ImportError:
    TRITONCLIENT_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    TRITONCLIENT_IMPORT_ERROR = None

API_TFS = "tfs"
API_KSERVE = "kserve"
# The pip requirement that provides each API's client, for missing-library messages.
API_PACKAGES = {API_TFS: "ovmsclient", API_KSERVE: "tritonclient[grpc]"}

# gRPC codes that mean the server itself could not be asked, as opposed to an answer
# about one model.
SERVER_LEVEL_CODES = frozenset(
    ("UNAVAILABLE", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "UNAUTHENTICATED", "PERMISSION_DENIED")
)


def missing_library(api: str) -> tuple[str, str] | None:
    """(pip requirement, traceback) when the client library for ``api`` cannot be imported."""
    error = GRPC_IMPORT_ERROR or (
        OVMSCLIENT_IMPORT_ERROR if api == API_TFS else TRITONCLIENT_IMPORT_ERROR)
    if error:
        return API_PACKAGES[api], error
    return None


def format_address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


@dataclasses.dataclass(frozen=True)
class TlsOptions:
    """Paths on the managed host; their contents are only ever handed to gRPC."""

    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    server_name: str | None = None

    @property
    def enabled(self) -> bool:
        return self.ca_cert is not None

    def check_files(self) -> None:
        """Raise ValueError naming the option whose file cannot be read."""
        for option in ("ca_cert", "client_cert", "client_key"):
            path = getattr(self, option)
            if path is None:
                continue
            if not os.path.isfile(path):
                raise ValueError(f"{option} is {path}, which is not a file on this host; "
                                 "expected the path of a PEM file")
            if not os.access(path, os.R_OK):
                raise ValueError(f"{option} is {path}, which this user cannot read; expected "
                                 "a PEM file readable by the remote user (check become)")

    def channel_options(self) -> list[tuple[str, str]]:
        if self.server_name:
            return [("grpc.ssl_target_name_override", self.server_name)]
        return []


def _explain(code: str, details: str, address: str, api: str, tls: TlsOptions) -> str:
    port = address.rsplit(":", 1)[1]
    text = f"{code}: {details.strip().rstrip('.') or 'no details from gRPC'}. "
    if code == "UNIMPLEMENTED":
        return text + (
            f"The server does not serve the {api} API on that port: OVMS 2026.3 and newer "
            f"serve only KServe (api: kserve), and port {port} must be OVMS's gRPC port, not "
            "its REST port.")
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return text + ("The server refused this client: check that client_cert and "
                       "client_key are signed by a CA the server trusts.")
    if code == "DEADLINE_EXCEEDED":
        return text + (f"The server did not answer in time: check that port {port} is OVMS's "
                       "gRPC port and that the server is not overloaded.")
    checks = [f"OVMS (or its TLS proxy) runs and listens for gRPC on port {port}",
              f"this host can reach {address} (routing, firewall)"]
    if not tls.enabled:
        checks.append("the server accepts plain text (set ca_cert if it only accepts TLS)")
    else:
        checks.append("ca_cert signed the server's certificate")
        name = tls.server_name or "the host option (or set server_name to the name it has)"
        checks.append(f"the certificate names {name}")
        if not tls.client_cert:
            checks.append("the server accepts clients without a certificate (else set "
                          "client_cert and client_key)")
    return text + "Check that " + "; that ".join(checks) + "."


def _code_name(code: t.Any) -> str:
    """'NOT_FOUND' from a grpc.StatusCode or tritonclient's 'StatusCode.NOT_FOUND'."""
    name = getattr(code, "name", None) or str(code)
    return name.rsplit(".", 1)[-1]


def _code_value(name: str) -> int:
    """gRPC and TensorFlow share canonical error codes, so one int field fits both APIs."""
    member = getattr(grpc.StatusCode, name, None) if grpc is not None else None
    return int(member.value[0]) if member is not None else 2


class TfsSource:
    """TensorFlow-Serving ModelService.GetModelStatus through ovmsclient."""

    def __init__(self, address: str, tls: TlsOptions, rpc_timeout: float) -> None:
        self._address = address
        self._tls = tls
        self._rpc_timeout = rpc_timeout
        if tls.server_name:
            # make_grpc_client cannot override the TLS target name, so build its client
            # from a channel that can.
            channel = grpc.secure_channel(address, self._credentials(), tls.channel_options())
            self._client = GrpcClient(channel,
                                      prediction_service_pb2_grpc.PredictionServiceStub(channel),
                                      model_service_pb2_grpc.ModelServiceStub(channel))
        else:
            self._client = ovmsclient.make_grpc_client(address, tls_config=self._tls_config())

    def _tls_config(self) -> dict[str, str] | None:
        if not self._tls.enabled:
            return None
        config = {"server_cert_path": self._tls.ca_cert}
        if self._tls.client_cert:
            config.update(client_cert_path=self._tls.client_cert,
                          client_key_path=self._tls.client_key)
        return config

    def _credentials(self) -> t.Any:
        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            with open(path, "rb") as handle:
                return handle.read()

        return grpc.ssl_channel_credentials(root_certificates=read(self._tls.ca_cert),
                                            private_key=read(self._tls.client_key),
                                            certificate_chain=read(self._tls.client_cert))

    def check_server(self) -> None:
        """TFS has no liveness call; the first status request shows whether it answers."""

    def model_status(self, model: ModelRequest) -> ModelStatus:
        try:
            status = self._client.get_model_status(model.name, model.version or 0,
                                                   timeout=self._rpc_timeout)
        except (ModelServerError, ConnectionError, TimeoutError) as exc:
            # ovmsclient raises inside its `except RpcError`, so the gRPC error is the context.
            rpc_error = exc.__context__
            if isinstance(rpc_error, grpc.RpcError):
                code, details = _code_name(rpc_error.code()), rpc_error.details() or ""
            else:
                code, details = "UNKNOWN", str(exc)
            if code in SERVER_LEVEL_CODES:
                raise ServerUnreachable(
                    _explain(code, details, self._address, API_TFS, self._tls)) from None
            return ModelStatus(model, error=f"{code}: {details}")
        return parse_tfs_status(model, status)

    def close(self) -> None:
        self._client.channel.close()


class KServeSource:
    """KServe v2 ServerLive / ModelReady / ModelMetadata through tritonclient."""

    def __init__(self, address: str, tls: TlsOptions, rpc_timeout: float) -> None:
        self._address = address
        self._tls = tls
        self._rpc_timeout = rpc_timeout
        self._client = triton_grpc.InferenceServerClient(
            address,
            ssl=tls.enabled,
            root_certificates=tls.ca_cert,
            private_key=tls.client_key,
            certificate_chain=tls.client_cert,
            channel_args=tls.channel_options() or None,
        )

    def _unreachable(self, exc: Exception) -> ServerUnreachable:
        return ServerUnreachable(_explain(_code_name(exc.status()), exc.message(),
                                          self._address, API_KSERVE, self._tls))

    def check_server(self) -> None:
        try:
            live = self._client.is_server_live(client_timeout=self._rpc_timeout)
        except InferenceServerException as exc:
            raise self._unreachable(exc) from None
        if not live:
            raise ServerUnreachable(f"the server at {self._address} answered but reports it is "
                                    "not live; it may be starting or shutting down")

    def model_status(self, model: ModelRequest) -> ModelStatus:
        version = "" if model.version is None else str(model.version)
        try:
            ready = self._client.is_model_ready(model.name, version,
                                                client_timeout=self._rpc_timeout)
        except InferenceServerException as exc:
            code = _code_name(exc.status())
            if code in SERVER_LEVEL_CODES:
                raise self._unreachable(exc) from None
            return ModelStatus(model, error=f"{code}: {exc.message()}")
        # KServe has no per-version state; ModelMetadata names the ready versions and, for
        # a version that is not ready, OVMS's error says why.
        try:
            metadata = self._client.get_model_metadata(model.name, version,
                                                       client_timeout=self._rpc_timeout)
        except InferenceServerException as exc:
            code = _code_name(exc.status())
            return ModelStatus(model, (VersionStatus(model.version, NOT_READY,
                                                     _code_value(code), exc.message()),))
        if not ready:
            return ModelStatus(model, (VersionStatus(model.version, NOT_READY),))
        if model.version is not None:
            return ModelStatus(model, (VersionStatus(model.version, AVAILABLE),))
        versions = tuple(VersionStatus(int(v), AVAILABLE) for v in metadata.versions)
        return ModelStatus(model, versions or (VersionStatus(None, AVAILABLE),))

    def close(self) -> None:
        self._client.close()


def make_source_factory(api: str, address: str,
                        tls: TlsOptions) -> t.Callable[[float], StatusSource]:
    source_class = TfsSource if api == API_TFS else KServeSource

    def open_source(rpc_timeout: float) -> StatusSource:
        return source_class(address, tls, rpc_timeout)

    return open_source
