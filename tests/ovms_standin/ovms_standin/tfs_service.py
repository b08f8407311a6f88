"""TensorFlow Serving gRPC API: PredictionService (Predict, GetModelMetadata), ModelService."""

from __future__ import annotations

import time

import grpc
import numpy as np
from ovmsclient.tfs_compat.protos.tensorflow.core.framework import (
    tensor_pb2,
    tensor_shape_pb2,
    types_pb2,
)
from ovmsclient.tfs_compat.protos.tensorflow.core.protobuf import meta_graph_pb2
from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from .manager import WAIT_FOR_LOADED_S, Model, ModelManager
from .model import ModelVersion
from .status import Code, OvmsError, grpc_call
from .tensors import TensorInfo, tfs_type_name
from .validation import content_size_error, validate, value_count_error

API = "TensorFlowServing"
SIGNATURE = "serving_default"
# OVMS packs the map under TensorFlow Serving's type name; ovmsclient renamed its copy.
SIGNATURE_DEF_MAP_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"


class TfsTensor:
    """A PredictRequest input seen through the checks OVMS applies to it."""

    # Encoded images over the TFS API (DT_STRING) are not implemented (README).
    is_binary = False

    def check_binary(self, info: TensorInfo, layout: str) -> None:
        raise AssertionError("TFS inputs are never binary here")

    def __init__(self, name: str, proto: tensor_pb2.TensorProto) -> None:
        self.name = name
        self.proto = proto
        self.shape = tuple(d.size for d in proto.tensor_shape.dim)

    def precision_mismatch(self, info: TensorInfo) -> str | None:
        if self.proto.dtype == types_pb2.DT_STRING:
            return "STRING (binary inputs are not supported by the OVMS stand-in)"
        if self.proto.dtype != info.tfs_dtype:
            return tfs_type_name(self.proto.dtype)
        return None

    def check_content(self, info: TensorInfo) -> None:
        if self.proto.dtype == types_pb2.DT_UINT16:
            value_count_error(self.shape, len(self.proto.int_val), self.name, "")
        elif self.proto.dtype == types_pb2.DT_HALF:
            value_count_error(self.shape, len(self.proto.half_val), self.name, "")
        else:
            content_size_error(info, self.shape, len(self.proto.tensor_content), self.name)

    def to_array(self, info: TensorInfo, layout: str = "") -> np.ndarray:
        if self.proto.dtype == types_pb2.DT_UINT16:
            flat = np.array(self.proto.int_val, dtype=np.uint16)
        elif self.proto.dtype == types_pb2.DT_HALF:
            flat = np.array(self.proto.half_val, dtype=np.uint16).view(np.float16)
        else:
            flat = np.frombuffer(self.proto.tensor_content, dtype=info.numpy_dtype)
        return flat.reshape(self.shape)


def tensor_info(info: TensorInfo) -> meta_graph_pb2.TensorInfo:
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in info.flat_dims()]
    return meta_graph_pb2.TensorInfo(
        name=info.name,
        dtype=info.tfs_dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims),
    )


def metadata_response(version: ModelVersion) -> get_model_metadata_pb2.GetModelMetadataResponse:
    signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for name, info in version.inputs.items():
        signature.inputs[name].CopyFrom(tensor_info(info))
    for name, info in version.outputs.items():
        signature.outputs[name].CopyFrom(tensor_info(info))
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    signature_map.signature_def[SIGNATURE].CopyFrom(signature)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = version.name
    response.model_spec.version.value = version.version
    response.model_spec.signature_name = SIGNATURE
    packed = response.metadata["signature_def"]
    packed.type_url = SIGNATURE_DEF_MAP_URL
    packed.value = signature_map.SerializeToString()
    return response


def status_response(
    model: Model, version: int | None
) -> get_model_status_pb2.GetModelStatusResponse:
    """All versions, or one; OVMS treats version 0 like no version."""
    versions = model.snapshot()
    if version:
        if version not in versions:
            raise OvmsError(Code.MODEL_VERSION_MISSING)
        versions = {version: versions[version]}
    response = get_model_status_pb2.GetModelStatusResponse()
    for number in sorted(versions):
        instance = versions[number]
        entry = response.model_version_status.add()
        entry.version = number
        entry.state = int(instance.state)
        entry.status.error_code = int(instance.error)
        entry.status.error_message = instance.error.name
    return response


def report_status(model: Model, interface: str, method: str, api: str) -> None:
    """OVMS counts status-like calls once per model, on any of its versions."""
    versions = model.snapshot()
    if versions:
        versions[max(versions)].reporter.request(api, interface, method, True)


def predict(
    manager: ModelManager, request: predict_pb2.PredictRequest, interface: str
) -> predict_pb2.PredictResponse:
    started = time.perf_counter()
    version = manager.get_version(request.model_spec.name, request.model_spec.version.value)
    ok = False
    try:
        with version.guard(WAIT_FOR_LOADED_S):
            received = [TfsTensor(name, proto) for name, proto in request.inputs.items()]
            arrays = validate(version.inputs, received, version.config)
            outputs = version.infer(arrays)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = version.name
        response.model_spec.version.value = version.version
        response.model_spec.signature_name = SIGNATURE
        for name, array in outputs.items():
            info = version.outputs[name]
            proto = response.outputs[name]
            proto.dtype = info.tfs_dtype
            proto.tensor_shape.dim.extend(
                tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape
            )
            proto.tensor_content = np.ascontiguousarray(array).tobytes()
        ok = True
        return response
    finally:
        version.reporter.request(API, interface, "Predict", ok)
        if ok:
            version.reporter.request_time(interface, (time.perf_counter() - started) * 1e6)


def get_metadata(
    manager: ModelManager, request: get_model_metadata_pb2.GetModelMetadataRequest, interface: str
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    if list(request.metadata_field) != ["signature_def"]:
        raise OvmsError(Code.INVALID_SIGNATURE_DEF)
    version = manager.get_version(request.model_spec.name, request.model_spec.version.value)
    ok = False
    try:
        with version.guard(0):
            response = metadata_response(version)
        ok = True
        return response
    finally:
        version.reporter.request(API, interface, "GetModelMetadata", ok)


# Method names are gRPC's; the base classes define them.
class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        return grpc_call(context, lambda: predict(self.manager, request, "gRPC"))

    def GetModelMetadata(
        self,
        request: get_model_metadata_pb2.GetModelMetadataRequest,
        context: grpc.ServicerContext,
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return grpc_call(context, lambda: get_metadata(self.manager, request, "gRPC"))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        def handle() -> get_model_status_pb2.GetModelStatusResponse:
            model = self.manager.get_model(request.model_spec.name)
            response = status_response(model, request.model_spec.version.value)
            report_status(model, "gRPC", "GetModelStatus", API)
            return response

        return grpc_call(context, handle)

    def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        # OVMS answers OK: it reloads on its own.
        return model_management_pb2.ReloadConfigResponse()
