"""KServe v2 gRPC API (inference.GRPCInferenceService) as OVMS serves it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from . import binary
from .manager import WAIT_FOR_LOADED_S, ModelManager
from .model import ModelVersion, State
from .status import Code, OvmsError, grpc_call
from .tensors import KSERVE_CONTENTS_FIELD, TensorInfo
from .validation import content_size_error, validate, value_count_error

API = "KServe"
PLATFORM = "OpenVINO"
SERVER_NAME = "OpenVINO Model Server"


class KserveTensor:
    """A ModelInferRequest input, with its raw buffer if the request used raw contents."""

    def __init__(
        self, proto: service_pb2.ModelInferRequest.InferInputTensor, raw: bytes | None
    ) -> None:
        self.name = proto.name
        self.proto = proto
        self.raw = raw
        self.shape = tuple(proto.shape)
        # OVMS treats every BYTES input as needing pre-processing (`requiresPreProcessing`).
        self.is_binary = proto.datatype == "BYTES"

    def check_binary(self, info: TensorInfo, layout: str) -> None:
        binary.check_request(
            info, self.name, self.shape, self.proto.contents.bytes_contents, self.raw, layout
        )

    def precision_mismatch(self, info: TensorInfo) -> str | None:
        if self.proto.datatype != info.kserve_datatype:
            return self.proto.datatype
        return None

    def _typed_values(self) -> Sequence[object]:
        field = KSERVE_CONTENTS_FIELD.get(self.proto.datatype)
        return getattr(self.proto.contents, field) if field else ()

    def check_content(self, info: TensorInfo) -> None:
        if self.raw is not None:
            content_size_error(info, self.shape, len(self.raw), self.name)
        else:
            value_count_error(self.shape, len(self._typed_values()), self.name)

    def to_array(self, info: TensorInfo, layout: str) -> np.ndarray:
        if self.is_binary:
            return binary.decode(info, self.proto.contents.bytes_contents, self.raw, layout)
        if self.raw is not None:
            flat = np.frombuffer(self.raw, dtype=info.numpy_dtype)
        else:
            flat = np.array(self._typed_values(), dtype=info.numpy_dtype)
        return flat.reshape(self.shape)


def parse_version(text: str) -> int:
    if not text:
        return 0
    if not text.isdigit():
        raise OvmsError(Code.MODEL_VERSION_INVALID_FORMAT)
    return int(text)


def received_tensors(request: service_pb2.ModelInferRequest) -> list[KserveTensor]:
    raw = list(request.raw_input_contents)
    if raw:
        for tensor in request.inputs:
            if tensor.HasField("contents"):
                raise OvmsError(
                    Code.INVALID_MESSAGE_STRUCTURE,
                    "Passing buffers both in InferInputTensor contents and in "
                    "raw_input_contents is not allowed. Detected buffer in InferInputTensor "
                    f"contents for input: {tensor.name}",
                )
    tensors = []
    for index, tensor in enumerate(request.inputs):
        buffer = (raw[index] if index < len(raw) else b"") if raw else None
        tensors.append(KserveTensor(tensor, buffer))
    return tensors


def infer(
    manager: ModelManager, request: service_pb2.ModelInferRequest, interface: str
) -> service_pb2.ModelInferResponse:
    started = time.perf_counter()
    version = manager.get_version(request.model_name, parse_version(request.model_version))
    ok = False
    try:
        with version.guard(WAIT_FOR_LOADED_S):
            arrays = validate(version.inputs, received_tensors(request), version.config)
            outputs = version.infer(arrays)
        response = service_pb2.ModelInferResponse(
            model_name=version.name, model_version=str(version.version), id=request.id
        )
        for name in sorted(outputs):
            array = np.ascontiguousarray(outputs[name])
            response.outputs.add(
                name=name, datatype=version.outputs[name].kserve_datatype, shape=array.shape
            )
            response.raw_output_contents.append(array.tobytes())
        ok = True
        return response
    finally:
        version.reporter.request(API, interface, "ModelInfer", ok)
        if ok:
            version.reporter.request_time(interface, (time.perf_counter() - started) * 1e6)


def _tensor_metadata(
    info: TensorInfo,
) -> service_pb2.ModelMetadataResponse.TensorMetadata:
    return service_pb2.ModelMetadataResponse.TensorMetadata(
        name=info.name, datatype=info.kserve_datatype, shape=info.flat_dims()
    )


def metadata(
    manager: ModelManager, name: str, version_text: str, interface: str
) -> service_pb2.ModelMetadataResponse:
    version = manager.get_version(name, parse_version(version_text))
    ok = False
    try:
        with version.guard(0):
            model = manager.get_model(name)
            ready = [
                str(v.version) for v in model.snapshot().values() if v.state == State.AVAILABLE
            ]
            response = service_pb2.ModelMetadataResponse(
                name=version.name,
                versions=sorted(ready, key=int),
                platform=PLATFORM,
                inputs=[_tensor_metadata(i) for i in version.inputs.values()],
                outputs=[_tensor_metadata(o) for o in version.outputs.values()],
            )
        ok = True
        return response
    finally:
        version.reporter.request(API, interface, "ModelMetadata", ok)


def model_ready(manager: ModelManager, name: str, version_text: str, interface: str) -> bool:
    version: ModelVersion = manager.get_version(name, parse_version(version_text))
    ready = version.state == State.AVAILABLE
    version.reporter.request(API, interface, "ModelReady", True)
    return ready


# Method names are gRPC's; the base class defines them.
class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, manager: ModelManager, is_ready: Callable[[], bool], version: str) -> None:
        self.manager = manager
        self.is_ready = is_ready
        self.version = version

    def ServerLive(
        self, request: service_pb2.ServerLiveRequest, context: grpc.ServicerContext
    ) -> service_pb2.ServerLiveResponse:
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(
        self, request: service_pb2.ServerReadyRequest, context: grpc.ServicerContext
    ) -> service_pb2.ServerReadyResponse:
        return service_pb2.ServerReadyResponse(ready=self.is_ready())

    def ServerMetadata(
        self, request: service_pb2.ServerMetadataRequest, context: grpc.ServicerContext
    ) -> service_pb2.ServerMetadataResponse:
        return service_pb2.ServerMetadataResponse(name=SERVER_NAME, version=self.version)

    def ModelReady(
        self, request: service_pb2.ModelReadyRequest, context: grpc.ServicerContext
    ) -> service_pb2.ModelReadyResponse:
        return grpc_call(
            context,
            lambda: service_pb2.ModelReadyResponse(
                ready=model_ready(self.manager, request.name, request.version, "gRPC")
            ),
        )

    def ModelMetadata(
        self, request: service_pb2.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> service_pb2.ModelMetadataResponse:
        return grpc_call(
            context, lambda: metadata(self.manager, request.name, request.version, "gRPC")
        )

    def ModelInfer(
        self, request: service_pb2.ModelInferRequest, context: grpc.ServicerContext
    ) -> service_pb2.ModelInferResponse:
        return grpc_call(context, lambda: infer(self.manager, request, "gRPC"))
