"""The two gRPC APIs OVMS speaks, behind one small interface.

`kserve` uses tritonclient (KServe v2, what current OVMS keeps); `tfs` uses ovmsclient's
TensorFlow-Serving protos (OVMS 2026.2 and older). Both get the same channel: the same TLS
credentials and the same reconnect backoff, so results and failure behaviour match.

ovmsclient is the optional `[tfs]` extra: it is imported only when a TfsApi is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Protocol

import grpc
import numpy as np
import tritonclient.grpc as triton

from ovms_client.errors import ConfigError, InferenceError, ServerUnavailable
from ovms_client.settings import Settings

# Codes that mean "not now": server down or restarting, model (re)loading, overload.
TRANSIENT_CODES = {
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "RESOURCE_EXHAUSTED",
    "ABORTED",
    "CANCELLED",
    "INTERNAL",
    "UNKNOWN",
    "FAILED_PRECONDITION",
}
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

# KServe datatype / TF DataType -> numpy dtype name.
_KSERVE_DTYPES = {
    "UINT8": "uint8",
    "INT8": "int8",
    "UINT16": "uint16",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BOOL": "bool",
    "BYTES": "bytes",
}
_TF_DTYPES = {
    "DT_UINT8": "uint8",
    "DT_INT8": "int8",
    "DT_UINT16": "uint16",
    "DT_INT16": "int16",
    "DT_INT32": "int32",
    "DT_INT64": "int64",
    "DT_HALF": "float16",
    "DT_FLOAT": "float32",
    "DT_DOUBLE": "float64",
    "DT_BOOL": "bool",
    "DT_STRING": "bytes",
}
_NUMPY_TO_KSERVE = {v: k for k, v in _KSERVE_DTYPES.items()}
# Encoded images (OVMS binary inputs): tritonclient sends an object array of bytes as BYTES,
# each element preceded by its 4-byte little-endian length in raw_input_contents, which is
# how OVMS reads a batch of images there.
_NUMPY_TO_KSERVE["object"] = "BYTES"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # -1 for a dynamic dimension
    dtype: str  # numpy name, e.g. "uint8"


@dataclass(frozen=True)
class ModelInfo:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


class ServingApi(Protocol):
    address: str

    def model_ready(self) -> bool: ...
    def model_info(self) -> ModelInfo: ...
    def infer(self, input_name: str, tensor: np.ndarray) -> dict[str, np.ndarray]: ...
    def close(self) -> None: ...


KEEPALIVE_TIME_MS = 10000
KEEPALIVE_TIMEOUT_MS = 5000


def channel_options(settings: Settings) -> list[tuple[str, int | str]]:
    options: list[tuple[str, int | str]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        # gRPC's default reconnect backoff grows to 120 s; a store server that comes back
        # after a restart should see its clients within seconds.
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.min_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 3000),
        # After a network cut the old TCP connection is dead without either side being told;
        # gRPC would wait for TCP's retransmission backoff (tens of seconds) before sending
        # again. A keepalive ping that goes unanswered closes it and a new connection is made
        # as soon as the path is back. Pings go out only while requests are in flight, which
        # servers' ping policies (OVMS, nginx) accept.
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ]
    if settings.tls_server_name:
        options.append(("grpc.ssl_target_name_override", settings.tls_server_name))
    return options


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    if not settings.tls:
        return None
    assert settings.tls_ca is not None
    return grpc.ssl_channel_credentials(
        root_certificates=settings.tls_ca.read_bytes(),
        private_key=settings.tls_key.read_bytes() if settings.tls_key else None,
        certificate_chain=settings.tls_cert.read_bytes() if settings.tls_cert else None,
    )


def _fail(code_name: str, details: str, what: str, settings: Settings) -> Exception:
    """Map a gRPC status to ServerUnavailable (retry) or InferenceError (stop)."""
    message = f"{what} on {settings.server_address} ({settings.api}): {code_name}: {details}"
    if code_name in TRANSIENT_CODES:
        return ServerUnavailable(message)
    if code_name == "UNIMPLEMENTED" and settings.api == "tfs":
        message += (
            " — this server does not speak the TensorFlow Serving API (OVMS 2026.3 "
            "and later removed it); set api: kserve"
        )
    return InferenceError(message)


class KServeApi:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.address = settings.server_address
        self._version = str(settings.model_version) if settings.model_version else ""
        self._client = triton.InferenceServerClient(
            settings.server_address,
            creds=channel_credentials(settings),
            channel_args=channel_options(settings),
        )

    def _error(self, exc: Exception, what: str) -> Exception:
        status = exc.status() if hasattr(exc, "status") else None
        code = (status or "").removeprefix("StatusCode.")
        message = exc.message() if hasattr(exc, "message") else str(exc)
        if not code:
            return InferenceError(f"{what} on {self.address} (kserve): {message}")
        return _fail(code, str(message), what, self.settings)

    def model_ready(self) -> bool:
        try:
            return bool(
                self._client.is_model_ready(
                    self.settings.model_name,
                    self._version,
                    client_timeout=self.settings.request_timeout,
                )
            )
        except triton.InferenceServerException as exc:
            raise self._error(exc, "model readiness check") from None

    def model_info(self) -> ModelInfo:
        try:
            meta = self._client.get_model_metadata(
                self.settings.model_name,
                self._version,
                client_timeout=self.settings.request_timeout,
            )
        except triton.InferenceServerException as exc:
            raise self._error(exc, "model metadata request") from None

        def info(tensors: object) -> tuple[TensorInfo, ...]:
            return tuple(
                TensorInfo(
                    t.name,
                    tuple(int(d) for d in t.shape),
                    _KSERVE_DTYPES.get(t.datatype, t.datatype.lower()),
                )
                for t in tensors  # type: ignore[attr-defined]
            )

        return ModelInfo(info(meta.inputs), info(meta.outputs))

    def infer(self, input_name: str, tensor: np.ndarray) -> dict[str, np.ndarray]:
        datatype = _NUMPY_TO_KSERVE.get(tensor.dtype.name)
        if datatype is None:
            raise InferenceError(f"no KServe datatype for input dtype {tensor.dtype.name}")
        request_input = triton.InferInput(input_name, list(tensor.shape), datatype)
        request_input.set_data_from_numpy(tensor)
        try:
            result = self._client.infer(
                self.settings.model_name,
                [request_input],
                model_version=self._version,
                client_timeout=self.settings.request_timeout,
            )
        except triton.InferenceServerException as exc:
            raise self._error(exc, "inference request") from None
        names = [output.name for output in result.get_response().outputs]
        return {name: result.as_numpy(name) for name in names}

    def close(self) -> None:
        self._client.close()


def _tfs_modules() -> SimpleNamespace:
    """ovmsclient's TensorFlow Serving helpers and stubs (the [tfs] extra)."""
    try:
        from ovmsclient.tfs_compat.grpc import requests, responses, tensors
        from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import (
            model_service_pb2_grpc,
            prediction_service_pb2_grpc,
        )
    except ImportError as exc:
        raise ConfigError(
            f"setting 'api' is tfs, which needs the ovmsclient package "
            f"({exc}): install edge-retail-ovms-client[tfs], or set api: "
            f"kserve"
        ) from None
    return SimpleNamespace(
        requests=requests,
        responses=responses,
        tensors=tensors,
        model_service=model_service_pb2_grpc,
        prediction_service=prediction_service_pb2_grpc,
    )


class TfsApi:
    def __init__(self, settings: Settings) -> None:
        self._tfs = _tfs_modules()
        self.settings = settings
        self.address = settings.server_address
        creds = channel_credentials(settings)
        options = channel_options(settings)
        if creds is None:
            self._channel = grpc.insecure_channel(settings.server_address, options)
        else:
            self._channel = grpc.secure_channel(settings.server_address, creds, options)
        self._predict = self._tfs.prediction_service.PredictionServiceStub(self._channel)
        self._models = self._tfs.model_service.ModelServiceStub(self._channel)

    def _error(self, exc: grpc.RpcError, what: str) -> Exception:
        code = exc.code().name if hasattr(exc, "code") and exc.code() else "UNKNOWN"
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return _fail(code, str(details), what, self.settings)

    def model_ready(self) -> bool:
        request = self._tfs.requests.make_status_request(
            self.settings.model_name, self.settings.model_version
        )
        try:
            raw = self._models.GetModelStatus(
                request.raw_request, timeout=self.settings.request_timeout
            )
        except grpc.RpcError as exc:
            raise self._error(exc, "model status request") from None
        versions = self._tfs.responses.GrpcModelStatusResponse(raw).to_dict()
        return any(v.get("state") == "AVAILABLE" for v in versions.values())

    def model_info(self) -> ModelInfo:
        request = self._tfs.requests.make_metadata_request(
            self.settings.model_name, self.settings.model_version
        )
        try:
            raw = self._predict.GetModelMetadata(
                request.raw_request, timeout=self.settings.request_timeout
            )
        except grpc.RpcError as exc:
            raise self._error(exc, "model metadata request") from None
        meta = self._tfs.responses.GrpcModelMetadataResponse(raw).to_dict()

        def info(tensors: dict[str, dict[str, object]]) -> tuple[TensorInfo, ...]:
            return tuple(
                TensorInfo(
                    name,
                    tuple(int(d) for d in t["shape"]),  # type: ignore[attr-defined]
                    _TF_DTYPES.get(str(t["dtype"]), str(t["dtype"]).lower()),
                )
                for name, t in tensors.items()
            )

        return ModelInfo(info(meta["inputs"]), info(meta["outputs"]))

    def infer(self, input_name: str, tensor: np.ndarray) -> dict[str, np.ndarray]:
        request = self._tfs.requests.make_predict_request(
            {input_name: tensor}, self.settings.model_name, self.settings.model_version
        )
        try:
            raw = self._predict.Predict(request.raw_request, timeout=self.settings.request_timeout)
        except grpc.RpcError as exc:
            raise self._error(exc, "inference request") from None
        return {name: self._tfs.tensors.make_ndarray(proto) for name, proto in raw.outputs.items()}

    def close(self) -> None:
        self._channel.close()


def make_api(settings: Settings) -> ServingApi:
    if settings.api == "tfs":
        return TfsApi(settings)
    return KServeApi(settings)
