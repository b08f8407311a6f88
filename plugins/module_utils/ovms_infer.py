# Copyright: (c) 2025, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0
"""One real inference request per model, the way the clients send them.

The first half is API-independent: which tensor to send for a model's metadata, what a
model's answer was, when to try again and how to word a failure. The second half talks to
OVMS: ``kserve`` through tritonclient, ``tfs`` through ovmsclient's TensorFlow-Serving stubs,
on the connections (address, TLS options) that ``ovms_grpc`` opens for model_status.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
import typing as t

from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_grpc import (
    API_TFS,
    SERVER_LEVEL_CODES,
    KServeSource,
    TfsSource,
    TlsOptions,
    _code_name,
    _explain,
    missing_library,
)
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_status import (
    ModelRequest,
    ServerUnreachable,
    _seconds,
)

try:
    import numpy as np
except ImportError:
    NUMPY_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    NUMPY_IMPORT_ERROR = None

try:
    import grpc
except ImportError:
    pass

try:
    from ovmsclient.tfs_compat.grpc.requests import make_metadata_request, make_predict_request
    from ovmsclient.tfs_compat.grpc.responses import GrpcModelMetadataResponse
    from ovmsclient.tfs_compat.protos.tensorflow.core.framework import types_pb2
except ImportError:
    pass

try:
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException
except ImportError:
    pass

# Every element of a UINT8 input is mid-grey (an image input sees a flat grey picture);
# every other datatype gets zeros.
UINT8_FILL = 128
# Codes that a server which answers may give for one model and that may pass: a version
# still loading (OVMS: UNAVAILABLE "Model with requested version is not loaded yet") or a
# request that took too long. Requests that fail with them are sent again until the timeout.
TRANSIENT_CODES = frozenset(("UNAVAILABLE", "DEADLINE_EXCEEDED"))
# Bounds of each gRPC request's deadline: at least long enough for a first inference, at
# most a fraction of a store's health gate.
MIN_RPC_TIMEOUT = 2.0
MAX_RPC_TIMEOUT = 30.0

# KServe datatype -> numpy dtype name; BYTES and BF16 have no fixed-size numpy equivalent.
NUMPY_DTYPES = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32",
    "UINT64": "uint64", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64",
}
# TensorFlow DataType names -> KServe datatype, so both APIs report the same names.
TF_DATATYPES = {
    "DT_BOOL": "BOOL", "DT_UINT8": "UINT8", "DT_UINT16": "UINT16", "DT_UINT32": "UINT32",
    "DT_UINT64": "UINT64", "DT_INT8": "INT8", "DT_INT16": "INT16", "DT_INT32": "INT32",
    "DT_INT64": "INT64", "DT_HALF": "FP16", "DT_BFLOAT16": "BF16", "DT_FLOAT": "FP32",
    "DT_DOUBLE": "FP64", "DT_STRING": "BYTES",
}


def missing_infer_library(api: str) -> tuple[str, str] | None:
    """(pip requirement, traceback) when a library needed to infer over ``api`` is missing."""
    return missing_library(api) or (("numpy", NUMPY_IMPORT_ERROR) if NUMPY_IMPORT_ERROR
                                    else None)


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """A tensor as the server describes it; ``-1`` marks a dynamic dimension."""

    name: str
    shape: tuple[int, ...]
    datatype: str  # KServe name: FP32, UINT8, ...

    def as_dict(self) -> dict[str, t.Any]:
        return {"name": self.name, "shape": list(self.shape), "datatype": self.datatype}


@dataclasses.dataclass(frozen=True)
class ModelSignature:
    """What the model's metadata says."""

    version: int | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclasses.dataclass(frozen=True)
class InputTensor:
    """One tensor to send: every element is ``fill``."""

    spec: TensorSpec
    fill: int

    @property
    def numpy_dtype(self) -> str:
        return NUMPY_DTYPES[self.spec.datatype]


@dataclasses.dataclass(frozen=True)
class InferAnswer:
    version: int | None
    outputs: tuple[TensorSpec, ...]
    latency_ms: float


class UnsupportedInput(ValueError):
    """The model has an input this module cannot fill (strings, bfloat16)."""


class ModelCallError(Exception):
    """The server answered a request about one model with an error."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details.strip() or 'no details from the server'}")
        self.code = code

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_CODES


def input_tensors(inputs: t.Sequence[TensorSpec]) -> tuple[InputTensor, ...]:
    """The tensors to send for a model's inputs: dynamic dimensions (-1) become 1."""
    tensors = []
    for spec in inputs:
        if spec.datatype not in NUMPY_DTYPES:
            raise UnsupportedInput(
                f"input '{spec.name}' has datatype {spec.datatype}, which this module cannot "
                f"fill (it sends {', '.join(NUMPY_DTYPES)} tensors only)")
        shape = tuple(1 if dim < 0 else dim for dim in spec.shape)
        fill = UINT8_FILL if spec.datatype == "UINT8" else 0
        tensors.append(InputTensor(TensorSpec(spec.name, shape, spec.datatype), fill))
    return tuple(tensors)


def parse_version(text: t.Any) -> int | None:
    """A version number from an API field; ``None`` when the server did not name one."""
    text = str(text).strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


@dataclasses.dataclass(frozen=True)
class ModelInference:
    """The outcome of one model's metadata and inference requests."""

    request: ModelRequest
    version: int | None = None
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    latency_ms: float | None = None
    # "<step>: <code>: <server's text>" when a step failed.
    error: str = ""
    # The failure may pass (see TRANSIENT_CODES), so the model is asked again.
    transient: bool = False

    @property
    def ok(self) -> bool:
        return not self.error

    def as_dict(self) -> dict[str, t.Any]:
        return {
            "name": self.request.name,
            "requested_version": self.request.version,
            "version": self.version,
            "ok": self.ok,
            "error": self.error,
            "inputs": [spec.as_dict() for spec in self.inputs],
            "outputs": [spec.as_dict() for spec in self.outputs],
            "latency_ms": self.latency_ms,
        }

    def describe_problem(self) -> str:
        return f"{self.request.label()}: {self.error}"


class InferSource(t.Protocol):
    """One connection to a server that can describe models and run inference."""

    def check_server(self, probe: ModelRequest) -> None:
        """Raise ServerUnreachable when the server cannot be asked; ``probe`` is a model
        that an API without a liveness call may ask about instead."""

    def signature(self, model: ModelRequest) -> ModelSignature:
        """The model's metadata; raise ModelCallError when the server refuses."""

    def infer(self, model: ModelRequest, inputs: tuple[InputTensor, ...]) -> InferAnswer:
        """Send one request; raise ModelCallError when the server refuses."""

    def close(self) -> None:
        """Release the connection."""


def infer_model(source: InferSource, model: ModelRequest) -> ModelInference:
    """Metadata, then one inference request; failures are named by the step that failed."""
    try:
        signature = source.signature(model)
    except ModelCallError as exc:
        return ModelInference(model, error=f"model metadata: {exc}", transient=exc.transient)
    try:
        inputs = input_tensors(signature.inputs)
    except UnsupportedInput as exc:
        return ModelInference(model, signature.version, error=str(exc))
    sent = tuple(tensor.spec for tensor in inputs)
    try:
        answer = source.infer(model, inputs)
    except ModelCallError as exc:
        return ModelInference(model, signature.version, sent, error=f"inference request: {exc}",
                              transient=exc.transient)
    version = answer.version if answer.version is not None else signature.version
    return ModelInference(model, version, sent, answer.outputs, answer.latency_ms)


@dataclasses.dataclass(frozen=True)
class InferResult:
    # One per requested model that the server was asked about, in the order requested.
    inferences: tuple[ModelInference, ...]
    elapsed: float
    unreachable: ServerUnreachable | None
    requested: int

    @property
    def ok(self) -> bool:
        return (self.unreachable is None and len(self.inferences) == self.requested
                and all(i.ok for i in self.inferences))

    def failure_message(self, address: str, api: str, timeout: float) -> str:
        if self.unreachable is not None:
            return (f"Could not query OVMS at {address} over the {api} gRPC API within "
                    f"{_seconds(timeout)} s: {self.unreachable}")
        problems = [i.describe_problem() for i in self.inferences if not i.ok]
        return (f"{len(problems)} of {self.requested} models on OVMS at {address} ({api} API) "
                f"failed their inference check after {_seconds(self.elapsed)} s: "
                f"{'; '.join(problems)}")


def run_inferences(
    open_source: t.Callable[[float], InferSource],
    models: list[ModelRequest],
    timeout: float,
    interval: float,
    clock: t.Callable[[], float] = time.monotonic,
    sleep: t.Callable[[float], None] = time.sleep,
) -> InferResult:
    """Run one inference per model; retry while the server cannot be asked or a model's
    failure is transient, until ``timeout`` seconds have passed.

    A model that answered, or failed for good, is not asked again; a failure for good ends
    the wait, since the result can no longer be a success.
    """
    start = clock()
    done: dict[int, ModelInference] = {}
    while True:
        pending = [i for i in range(len(models)) if i not in done or done[i].transient]
        rpc_timeout = max(MIN_RPC_TIMEOUT, min(MAX_RPC_TIMEOUT, timeout - (clock() - start)))
        source = open_source(rpc_timeout)
        unreachable = None
        try:
            source.check_server(models[pending[0]])
            for index in pending:
                done[index] = infer_model(source, models[index])
        except ServerUnreachable as exc:
            unreachable = exc
        finally:
            source.close()
        elapsed = clock() - start
        result = InferResult(tuple(done[i] for i in sorted(done)), elapsed, unreachable,
                             len(models))
        settled = unreachable is None and not any(r.transient for r in done.values())
        failed_for_good = any(not r.ok and not r.transient for r in done.values())
        if settled or failed_for_good or elapsed >= timeout:
            return result
        # The last round lands on the deadline rather than after it.
        sleep(min(interval, timeout - elapsed))


# --- gRPC -------------------------------------------------------------------------------


def _fill_array(tensor: InputTensor) -> t.Any:
    return np.full(tensor.spec.shape, tensor.fill, dtype=tensor.numpy_dtype)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 2)


class KServeInferSource(KServeSource):
    """KServe v2 ServerLive, ModelMetadata and ModelInfer through tritonclient."""

    def check_server(self, probe: ModelRequest | None = None) -> None:
        super().check_server()

    def _model_error(self, exc: t.Any) -> Exception:
        # tritonclient raises without a status for problems it finds itself.
        code = _code_name(exc.status()) if exc.status() else "UNKNOWN"
        if code in SERVER_LEVEL_CODES - TRANSIENT_CODES:
            return self._unreachable(exc)
        return ModelCallError(code, str(exc.message()))

    def signature(self, model: ModelRequest) -> ModelSignature:
        version = "" if model.version is None else str(model.version)
        try:
            metadata = self._client.get_model_metadata(model.name, version,
                                                       client_timeout=self._rpc_timeout)
        except InferenceServerException as exc:
            raise self._model_error(exc) from None

        def specs(tensors: t.Iterable[t.Any]) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(tensor.name, tuple(int(d) for d in tensor.shape),
                                    tensor.datatype) for tensor in tensors)

        # KServe metadata lists the ready versions, not the one that will answer.
        return ModelSignature(model.version, specs(metadata.inputs), specs(metadata.outputs))

    def infer(self, model: ModelRequest, inputs: tuple[InputTensor, ...]) -> InferAnswer:
        request_inputs = []
        for tensor in inputs:
            request_input = triton_grpc.InferInput(tensor.spec.name, list(tensor.spec.shape),
                                                   tensor.spec.datatype)
            request_input.set_data_from_numpy(_fill_array(tensor))
            request_inputs.append(request_input)
        version = "" if model.version is None else str(model.version)
        started = time.perf_counter()
        try:
            result = self._client.infer(model.name, request_inputs, model_version=version,
                                        client_timeout=self._rpc_timeout)
        except InferenceServerException as exc:
            raise self._model_error(exc) from None
        latency_ms = _elapsed_ms(started)
        response = result.get_response()
        outputs = tuple(TensorSpec(output.name, tuple(int(d) for d in output.shape),
                                   output.datatype) for output in response.outputs)
        return InferAnswer(parse_version(response.model_version), outputs, latency_ms)


class TfsInferSource(TfsSource):
    """TensorFlow-Serving GetModelMetadata and Predict through ovmsclient's stubs."""

    def check_server(self, probe: ModelRequest | None = None) -> None:
        """TFS has no liveness call: asking for a model's status shows whether the API
        answers (a NOT_FOUND answer is an answer too)."""
        if probe is not None:
            self.model_status(probe)

    def _model_error(self, exc: t.Any) -> Exception:
        code, details = _code_name(exc.code()), exc.details() or ""
        if code in SERVER_LEVEL_CODES - TRANSIENT_CODES:
            return ServerUnreachable(_explain(code, details, self._address, API_TFS, self._tls))
        return ModelCallError(code, details)

    def signature(self, model: ModelRequest) -> ModelSignature:
        request = make_metadata_request(model.name, model.version or 0)
        stub = self._client.prediction_service_stub
        try:
            raw = stub.GetModelMetadata(request.raw_request, timeout=self._rpc_timeout)
        except grpc.RpcError as exc:
            raise self._model_error(exc) from None
        metadata = GrpcModelMetadataResponse(raw).to_dict()

        def specs(tensors: dict[str, dict[str, t.Any]]) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(name, tuple(int(d) for d in fields["shape"]),
                                    TF_DATATYPES.get(fields["dtype"], fields["dtype"]))
                         for name, fields in tensors.items())

        return ModelSignature(parse_version(metadata["model_version"]),
                              specs(metadata["inputs"]), specs(metadata["outputs"]))

    def infer(self, model: ModelRequest, inputs: tuple[InputTensor, ...]) -> InferAnswer:
        arrays = {tensor.spec.name: _fill_array(tensor) for tensor in inputs}
        request = make_predict_request(arrays, model.name, model.version or 0)
        stub = self._client.prediction_service_stub
        started = time.perf_counter()
        try:
            raw = stub.Predict(request.raw_request, timeout=self._rpc_timeout)
        except grpc.RpcError as exc:
            raise self._model_error(exc) from None
        latency_ms = _elapsed_ms(started)
        outputs = []
        for name in sorted(raw.outputs):
            proto = raw.outputs[name]
            dtype = types_pb2.DataType.Name(proto.dtype)
            outputs.append(TensorSpec(name, tuple(int(d.size) for d in proto.tensor_shape.dim),
                                      TF_DATATYPES.get(dtype, dtype)))
        return InferAnswer(parse_version(raw.model_spec.version.value), tuple(outputs),
                           latency_ms)


def make_infer_source_factory(api: str, address: str,
                              tls: TlsOptions) -> t.Callable[[float], InferSource]:
    source_class: type[KServeInferSource | TfsInferSource] = (
        TfsInferSource if api == API_TFS else KServeInferSource)

    def open_source(rpc_timeout: float) -> InferSource:
        return source_class(address, tls, rpc_timeout)

    return open_source
