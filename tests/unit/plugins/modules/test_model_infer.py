"""model_infer as Ansible runs it, against scripted servers that speak real gRPC to the real
client libraries, plus its logic on its own with scripted sources and a scripted clock.

The scripted servers extend grpc_fakes' with what an inference needs: model signatures in
ModelMetadata / GetModelMetadata, and ModelInfer / Predict that check the request the way OVMS
does (names, datatypes, shapes with dynamic dimensions, payload size), record what arrived and
answer with outputs of the signature's shapes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_infer import (
    TF_DATATYPES,
    InferAnswer,
    InputTensor,
    ModelCallError,
    ModelSignature,
    TensorSpec,
    UnsupportedInput,
    input_tensors,
    run_inferences,
)
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_status import (
    ModelRequest,
    ServerUnreachable,
)
from ansible_collections.edge_retail.ovms.plugins.modules import model_infer
from ansible_collections.edge_retail.ovms.tests.unit.plugins.grpc_fakes import (
    NAME_MISSING,
    VERSION_MISSING,
    KServeServicer,
    Models,
    TfsModelServicer,
    TlsFiles,
    Version,
    _default_version,
    _lookup,
)
from ovmsclient.tfs_compat.grpc.tensors import make_ndarray
from ovmsclient.tfs_compat.protos.tensorflow.core.framework import tensor_shape_pb2, types_pb2
from ovmsclient.tfs_compat.protos.tensorflow.core.protobuf import meta_graph_pb2
from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tritonclient.grpc import service_pb2, service_pb2_grpc

# Ends a broken test; a working one never waits this long.
BOUND = 60.0
NUMPY = {"UINT8": np.uint8, "FP32": np.float32, "FP16": np.float16, "INT64": np.int64}
TF_ENUM = {kserve: types_pb2.DataType.Value(tf) for tf, kserve in TF_DATATYPES.items()}

# (name, shape with -1 for a dynamic dimension, KServe datatype)
TensorDef = tuple[str, tuple[int, ...], str]


@dataclasses.dataclass
class Signature:
    inputs: tuple[TensorDef, ...]
    outputs: tuple[TensorDef, ...]


SIGNATURES = {
    "person-detection": Signature(
        inputs=(("image_tensor", (1, 300, 300, 3), "UINT8"),),
        outputs=(("detection_boxes", (1, 100, 4), "FP32"), ("detection_scores", (1, 100), "FP32"),
                 ("num_detections", (1,), "FP32"))),
    # Dynamic batch and height, and a second input of another datatype.
    "face-detection": Signature(
        inputs=(("data", (-1, 3, -1, 64), "FP32"), ("scale", (-1,), "FP16")),
        outputs=(("prob", (-1, 2), "FP32"),)),
    "text-model": Signature(inputs=(("text", (-1,), "BYTES"),), outputs=(("ids", (-1,), "INT64"),)),
}


@dataclasses.dataclass
class Received:
    model: str
    version: int
    # input name -> (shape, datatype, the distinct values in the tensor)
    inputs: dict[str, tuple[tuple[int, ...], str, set[float]]]


@dataclasses.dataclass
class InferServer:
    server: grpc.Server
    port: int
    models: Models
    # Errors the next inference requests of a model get, one per request, before it answers.
    infer_errors: dict[str, list[tuple[grpc.StatusCode, str]]]
    received: list[Received]


def _number(models: Models, name: str, version: str) -> int:
    number = int(version) if version else _default_version(models[name])
    assert number is not None
    return number


def _check_request(server: InferServer, name: str, number: int,
                   arrays: dict[str, tuple[np.ndarray, str]], context: grpc.ServicerContext) -> None:
    """OVMS's checks, in its order; records the request when it passes."""
    if server.infer_errors.get(name):
        code, text = server.infer_errors[name].pop(0)
        context.abort(code, text)
    signature = SIGNATURES[name]
    if len(arrays) != len(signature.inputs):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Invalid number of inputs - Expected: "
                      f"{len(signature.inputs)}; Actual: {len(arrays)}")
    for input_name, shape, datatype in signature.inputs:
        if input_name not in arrays:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Missing input with specific name - Required input: {input_name}")
        array, sent_type = arrays[input_name]
        if sent_type != datatype:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Invalid precision - Expected: {datatype}; Actual: {sent_type}")
        if len(array.shape) != len(shape) or any(
                want not in (-1, got) or got < 1 for want, got in zip(shape, array.shape)):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Invalid input shape - Expected: {shape}; Actual: {array.shape}")
    server.received.append(Received(name, number, {
        input_name: (tuple(array.shape), sent_type, set(np.unique(array).tolist()))
        for input_name, (array, sent_type) in arrays.items()}))


def _output_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if dim < 0 else dim for dim in shape)


class KServeInferServicer(KServeServicer):
    def __init__(self, server: InferServer) -> None:
        super().__init__(server.models)
        self.state = server

    def ModelMetadata(self, request, context):
        response = super().ModelMetadata(request, context)
        signature = SIGNATURES[request.name]
        for field, tensors in ((response.inputs, signature.inputs),
                               (response.outputs, signature.outputs)):
            for name, shape, datatype in tensors:
                field.add(name=name, datatype=datatype, shape=shape)
        return response

    def ModelInfer(self, request, context):
        status = _lookup(self.models, request.model_name, request.model_version, context)
        if status.state != "AVAILABLE":
            context.abort(grpc.StatusCode.UNAVAILABLE, "Model with requested version is not "
                          "loaded yet")
        number = _number(self.models, request.model_name, request.model_version)
        arrays = {}
        for tensor, raw in zip(request.inputs, request.raw_input_contents):
            dtype = NUMPY.get(tensor.datatype, np.uint8)
            arrays[tensor.name] = (np.frombuffer(raw, dtype=dtype).reshape(tuple(tensor.shape)),
                                   tensor.datatype)
        _check_request(self.state, request.model_name, number, arrays, context)
        response = service_pb2.ModelInferResponse(model_name=request.model_name,
                                                  model_version=str(number))
        for name, shape, datatype in SIGNATURES[request.model_name].outputs:
            array = np.zeros(_output_shape(shape), dtype=NUMPY[datatype])
            response.outputs.add(name=name, datatype=datatype, shape=array.shape)
            response.raw_output_contents.append(array.tobytes())
        return response


class TfsPredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server: InferServer) -> None:
        self.state = server

    def _version(self, spec: Any, context: grpc.ServicerContext) -> int:
        version = str(spec.version.value or "")
        status = _lookup(self.state.models, spec.name, version, context)
        if status.state != "AVAILABLE":
            context.abort(grpc.StatusCode.UNAVAILABLE, "Model with requested version is not "
                          "loaded yet")
        return _number(self.state.models, spec.name, version)

    def GetModelMetadata(self, request, context):
        number = self._version(request.model_spec, context)
        signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
        for field, tensors in ((signature.inputs, SIGNATURES[request.model_spec.name].inputs),
                               (signature.outputs, SIGNATURES[request.model_spec.name].outputs)):
            for name, shape, datatype in tensors:
                dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]
                field[name].CopyFrom(meta_graph_pb2.TensorInfo(
                    name=name, dtype=TF_ENUM[datatype],
                    tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims)))
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        signature_map.signature_def["serving_default"].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = number
        packed = response.metadata["signature_def"]
        packed.type_url = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
        packed.value = signature_map.SerializeToString()
        return response

    def Predict(self, request, context):
        number = self._version(request.model_spec, context)
        names = {value: key for key, value in TF_ENUM.items()}
        arrays = {name: (make_ndarray(proto), names[proto.dtype])
                  for name, proto in request.inputs.items()}
        _check_request(self.state, request.model_spec.name, number, arrays, context)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = number
        for name, shape, datatype in SIGNATURES[request.model_spec.name].outputs:
            array = np.zeros(_output_shape(shape), dtype=NUMPY[datatype])
            proto = response.outputs[name]
            proto.dtype = TF_ENUM[datatype]
            proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d)
                                          for d in array.shape)
            proto.tensor_content = array.tobytes()
        return response


def start_infer_server(apis: tuple[str, ...] = ("tfs", "kserve"),
                       credentials: grpc.ServerCredentials | None = None) -> InferServer:
    models: Models = {
        "person-detection": {1: Version()},
        "face-detection": {1: Version(), 2: Version()},
        "text-model": {1: Version()},
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    state = InferServer(server, 0, models, {}, [])
    if "kserve" in apis:
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(KServeInferServicer(state),
                                                                    server)
    if "tfs" in apis:
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(TfsModelServicer(models), server)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            TfsPredictionServicer(state), server)
    if credentials is None:
        state.port = server.add_insecure_port("127.0.0.1:0")
    else:
        state.port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return state


@pytest.fixture
def infer_server() -> Iterator[InferServer]:
    state = start_infer_server()
    yield state
    state.server.stop(grace=None)


def run(capsys: pytest.CaptureFixture[str], **args: Any) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        model_infer.main()
    result = json.loads(capsys.readouterr().out)
    assert (exited.value.code != 0) == bool(result.get("failed"))
    return result


# --- arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    ({"models": ["m"]}, "missing required arguments: host"),
    ({"host": "h"}, "missing required arguments: models"),
    ({"host": "h", "models": ["m"], "api": "rest"},
     "value of api must be one of: kserve, tfs, got: rest"),
    ({"host": "h", "models": ["m"], "ca_cert": "/c", "client_cert": "/c"},
     "parameters are required together: client_cert, client_key"),
    ({"host": "h", "models": ["m"], "server_name": "ovms.test"},
     "missing parameter(s) required by 'server_name': ca_cert"),
    ({"host": "h", "models": []}, "models is empty; expected at least one model name"),
    ({"host": "h", "models": [{"name": "m", "version": 0}]},
     "models[0] version is 0; expected a positive integer"),
    ({"host": "h", "models": [{"name": "m", "shape": [1]}]},
     "models[0] has unknown key(s) shape; expected only 'name' and 'version'"),
    ({"host": "h", "models": ["m", "m"]}, "models lists m/None more than once"),
    ({"host": "h", "models": ["m"], "port": 0}, "port is 0; expected 1-65535"),
    ({"host": "h", "models": ["m"], "timeout": -1}, "timeout is -1.0; expected 0 or more seconds"),
    ({"host": "h", "models": ["m"], "interval": 0},
     "interval is 0.0; expected more than 0 seconds"),
    ({"host": "h", "models": ["m"], "ca_cert": "/nonexistent/ca.crt"},
     "ca_cert is /nonexistent/ca.crt, which is not a file on this host"),
])
def test_invalid_arguments_fail_naming_the_option(
        capsys: pytest.CaptureFixture[str], args: dict[str, Any], expected: str) -> None:
    result = run(capsys, **args)
    assert result["failed"]
    assert expected in result["msg"]


def test_every_argument_problem_is_reported_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, host="h", port=70000, timeout=-2, models=[{"name": ""}])
    assert result["msg"] == (
        "port is 70000; expected 1-65535; timeout is -2.0; expected 0 or more seconds; "
        "models[0] has an empty name; expected the model name from the OVMS config")
    assert result["models"] == [] and result["changed"] is False


# --- against scripted servers ----------------------------------------------------------------


@pytest.mark.parametrize("api", ["kserve", "tfs"])
@pytest.mark.parametrize("check_mode", [False, True])
def test_one_inference_per_model_from_its_metadata(
        capsys: pytest.CaptureFixture[str], infer_server: InferServer, api: str,
        check_mode: bool) -> None:
    result = run(capsys, host="127.0.0.1", port=infer_server.port, api=api,
                 models=["person-detection", "face-detection",
                         {"name": "face-detection", "version": 1}],
                 _ansible_check_mode=check_mode)
    assert not result.get("failed"), result["msg"]
    assert result["changed"] is False
    assert (result["api"], result["address"]) == (api, f"127.0.0.1:{infer_server.port}")
    person, face, face_v1 = result["models"]
    # The version that answered: the default one (highest AVAILABLE) or the pinned one.
    assert [(m["name"], m["requested_version"], m["version"], m["ok"], m["error"])
            for m in result["models"]] == [
        ("person-detection", None, 1, True, ""), ("face-detection", None, 2, True, ""),
        ("face-detection", 1, 1, True, "")]
    assert person["inputs"] == [{"name": "image_tensor", "shape": [1, 300, 300, 3],
                                 "datatype": "UINT8"}]
    assert sorted((o["name"], o["shape"], o["datatype"]) for o in person["outputs"]) == [
        ("detection_boxes", [1, 100, 4], "FP32"), ("detection_scores", [1, 100], "FP32"),
        ("num_detections", [1], "FP32")]
    # Dynamic dimensions are sent as 1.
    assert sorted((i["name"], i["shape"], i["datatype"]) for i in face["inputs"]) == [
        ("data", [1, 3, 1, 64], "FP32"), ("scale", [1], "FP16")]
    assert face["outputs"] == [{"name": "prob", "shape": [1, 2], "datatype": "FP32"}]
    assert all(isinstance(m["latency_ms"], float) and m["latency_ms"] >= 0
               for m in result["models"])
    assert face_v1["outputs"] == face["outputs"]
    # What the server received: one request per model, mid-grey bytes and float zeros.
    assert [(r.model, r.version) for r in infer_server.received] == [
        ("person-detection", 1), ("face-detection", 2), ("face-detection", 1)]
    assert infer_server.received[0].inputs == {
        "image_tensor": ((1, 300, 300, 3), "UINT8", {128})}
    assert infer_server.received[1].inputs == {"data": ((1, 3, 1, 64), "FP32", {0.0}),
                                               "scale": ((1,), "FP16", {0.0})}


@pytest.mark.parametrize("api", ["kserve", "tfs"])
def test_failure_names_every_model_that_failed_with_the_server_text(
        capsys: pytest.CaptureFixture[str], infer_server: InferServer, api: str) -> None:
    infer_server.infer_errors["face-detection"] = [
        (grpc.StatusCode.INVALID_ARGUMENT, "Invalid input layout - Expected: NCHW")]
    result = run(capsys, host="127.0.0.1", port=infer_server.port, api=api, timeout=BOUND,
                 models=["person-detection", "shelf-detection", "face-detection",
                         {"name": "person-detection", "version": 3}, "text-model"])
    assert result["failed"]
    assert result["msg"].startswith(
        f"4 of 5 models on OVMS at 127.0.0.1:{infer_server.port} ({api} API) failed their "
        "inference check after ")
    problems = result["msg"].split(" s: ", 1)[1].split("; ")
    assert problems == [
        f"'shelf-detection': model metadata: NOT_FOUND: {NAME_MISSING}",
        ("'face-detection': inference request: INVALID_ARGUMENT: Invalid input layout - "
         "Expected: NCHW"),
        f"'person-detection' version 3: model metadata: NOT_FOUND: {VERSION_MISSING}",
        ("'text-model': input 'text' has datatype BYTES, which this module cannot fill (it "
         "sends BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, "
         "FP64 tensors only)"),
    ]
    assert [(m["name"], m["ok"]) for m in result["models"]] == [
        ("person-detection", True), ("shelf-detection", False), ("face-detection", False),
        ("person-detection", False), ("text-model", False)]
    face = result["models"][2]
    # TFS metadata names the version; KServe names it only in the inference answer.
    assert face["version"] == (2 if api == "tfs" else None)
    assert face["outputs"] == [] and face["latency_ms"] is None
    assert face["inputs"]  # what was sent, for the reader of the failure
    # A failure for good is not retried, although the timeout would allow it.
    assert [r.model for r in infer_server.received] == ["person-detection"]


@pytest.mark.parametrize("api", ["kserve", "tfs"])
def test_a_transient_error_is_retried_until_it_passes(
        capsys: pytest.CaptureFixture[str], infer_server: InferServer, api: str) -> None:
    infer_server.infer_errors["face-detection"] = [
        (grpc.StatusCode.UNAVAILABLE, "Model with requested version is not loaded yet")] * 2
    result = run(capsys, host="127.0.0.1", port=infer_server.port, api=api, timeout=BOUND,
                 interval=0.01, models=["person-detection", "face-detection"])
    assert not result.get("failed"), result["msg"]
    assert [m["ok"] for m in result["models"]] == [True, True]
    # The model that answered was not asked again.
    assert [r.model for r in infer_server.received] == ["person-detection", "face-detection"]
    assert infer_server.infer_errors["face-detection"] == []


def test_a_transient_error_at_the_deadline_is_reported(
        capsys: pytest.CaptureFixture[str], infer_server: InferServer) -> None:
    infer_server.models["face-detection"][2] = Version("LOADING", 2, "UNKNOWN")
    infer_server.models["face-detection"][1] = Version("LOADING", 2, "UNKNOWN")
    result = run(capsys, host="127.0.0.1", port=infer_server.port, timeout=0,
                 models=[{"name": "face-detection", "version": 2}])
    assert result["failed"]
    assert result["msg"].endswith("'face-detection' version 2: model metadata: UNAVAILABLE: "
                                  "Model with requested version is not loaded yet")


@pytest.mark.parametrize("api", ["kserve", "tfs"])
def test_unreachable_server_names_the_address(
        capsys: pytest.CaptureFixture[str], closed_port: int, api: str) -> None:
    result = run(capsys, host="127.0.0.1", port=closed_port, api=api, timeout=0,
                 models=["person-detection"])
    assert result["failed"]
    assert result["msg"].startswith(
        f"Could not query OVMS at 127.0.0.1:{closed_port} over the {api} gRPC API within 0 s: "
        "UNAVAILABLE: ")
    assert "Connection refused" in result["msg"]
    assert result["models"] == []


def test_tfs_against_a_kserve_only_server_says_to_use_kserve(
        capsys: pytest.CaptureFixture[str]) -> None:
    state = start_infer_server(apis=("kserve",))
    try:
        result = run(capsys, host="127.0.0.1", port=state.port, api="tfs", timeout=0,
                     models=["person-detection"])
    finally:
        state.server.stop(grace=None)
    assert result["failed"]
    assert "within 0 s: UNIMPLEMENTED: " in result["msg"]
    assert "serve only KServe (api: kserve)" in result["msg"]


@pytest.mark.parametrize("api", ["kserve", "tfs"])
def test_mutual_tls_with_a_server_name(capsys: pytest.CaptureFixture[str], tls_files: TlsFiles,
                                       api: str) -> None:
    state = start_infer_server(credentials=tls_files.server_credentials())
    try:
        result = run(capsys, host="127.0.0.1", port=state.port, api=api,
                     models=["person-detection"], ca_cert=str(tls_files.ca_cert),
                     client_cert=str(tls_files.client_cert),
                     client_key=str(tls_files.client_key), server_name=tls_files.server_name)
    finally:
        state.server.stop(grace=None)
    assert not result.get("failed"), result["msg"]
    key_body = tls_files.client_key.read_text().splitlines()[1]
    assert key_body not in json.dumps(result)


def _collections_dir() -> Path:
    # .../ansible_collections/edge_retail/ovms/plugins/modules/model_infer.py
    return Path(model_infer.__file__).parents[5]


@pytest.mark.parametrize(("api", "blocked", "package"), [
    ("kserve", "tritonclient", "tritonclient[grpc]"),
    ("tfs", "ovmsclient", "ovmsclient"),
])
def test_missing_client_library_says_what_to_install(
        tmp_path: Path, closed_port: int, api: str, blocked: str, package: str) -> None:
    (tmp_path / blocked).mkdir()
    message = f"No module named {blocked!r}"
    (tmp_path / blocked / "__init__.py").write_text(f"raise ImportError({message!r})\n")
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "host": "127.0.0.1", "port": closed_port, "api": api, "models": ["m"]}}))
    path = [str(tmp_path), str(_collections_dir()), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))
    done = subprocess.run(
        [sys.executable, "-m", "ansible_collections.edge_retail.ovms.plugins.modules.model_infer",
         str(args)], env=env, capture_output=True, text=True, timeout=BOUND, check=False)
    assert done.returncode == 1 and done.stdout, done.stderr
    result = json.loads(done.stdout)
    assert result["msg"].startswith(
        f"Failed to import the required Python library ({package}) on ")
    assert f"api={api}" in result["msg"]
    assert result["msg"].endswith(f"Import error: ImportError: {message}")


# --- the logic on its own -------------------------------------------------------------------


def test_input_tensors_fill_and_replace_dynamic_dimensions() -> None:
    tensors = input_tensors([TensorSpec("image", (-1, 224, 224, 3), "UINT8"),
                             TensorSpec("mask", (2, -1), "BOOL"),
                             TensorSpec("ids", (), "INT64")])
    assert tensors == (InputTensor(TensorSpec("image", (1, 224, 224, 3), "UINT8"), 128),
                       InputTensor(TensorSpec("mask", (2, 1), "BOOL"), 0),
                       InputTensor(TensorSpec("ids", (), "INT64"), 0))
    assert [t.numpy_dtype for t in tensors] == ["uint8", "bool", "int64"]


@pytest.mark.parametrize("datatype", ["BYTES", "BF16", "STRING"])
def test_inputs_without_a_fixed_size_type_are_refused(datatype: str) -> None:
    with pytest.raises(UnsupportedInput, match=f"input 'x' has datatype {datatype}, which "):
        input_tensors([TensorSpec("ok", (1,), "FP32"), TensorSpec("x", (1,), datatype)])


class ScriptedSource:
    """Answers from a script: per round, per model, an answer or an error to raise."""

    def __init__(self, rounds: list[Any], log: list[str], timeouts: list[float],
                 rpc_timeout: float) -> None:
        self.script = rounds.pop(0) if rounds else {}
        self.log = log
        timeouts.append(rpc_timeout)

    def check_server(self, probe: ModelRequest) -> None:
        self.log.append(f"check {probe.name}")
        if isinstance(self.script, ServerUnreachable):
            raise self.script

    def signature(self, model: ModelRequest) -> ModelSignature:
        self.log.append(f"metadata {model.name}")
        return ModelSignature(7, (TensorSpec("x", (-1, 2), "FP32"),), ())

    def infer(self, model: ModelRequest, inputs: tuple[InputTensor, ...]) -> InferAnswer:
        self.log.append(f"infer {model.name} {[t.spec.shape for t in inputs]}")
        answer = self.script.get(model.name, "ok")
        if isinstance(answer, Exception):
            raise answer
        return InferAnswer(None, (TensorSpec("y", (1,), "FP32"),), 1.5)

    def close(self) -> None:
        self.log.append("close")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(rounds: list[Any], log: list[str], timeouts: list[float]) -> Any:
    return lambda rpc_timeout: ScriptedSource(rounds, log, timeouts, rpc_timeout)


def test_waits_through_an_unreachable_server_and_a_loading_model() -> None:
    log: list[str] = []
    timeouts: list[float] = []
    clock = Clock()
    rounds = [ServerUnreachable("UNAVAILABLE: refused"),
              {"b": ModelCallError("UNAVAILABLE", "not loaded yet")},
              {}]
    result = run_inferences(scripted(rounds, log, timeouts), [ModelRequest("a"), ModelRequest("b")],
                            timeout=10, interval=2, clock=clock, sleep=clock.sleep)
    assert result.ok
    assert clock.sleeps == [2, 2]
    assert log == ["check a", "close",
                   "check a", "metadata a", "infer a [(1, 2)]", "metadata b", "infer b [(1, 2)]",
                   "close",
                   # Only the model that has not answered yet is asked again.
                   "check b", "metadata b", "infer b [(1, 2)]", "close"]
    assert [i.as_dict()["version"] for i in result.inferences] == [7, 7]
    assert result.inferences[0].as_dict() == {
        "name": "a", "requested_version": None, "version": 7, "ok": True, "error": "",
        "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32"}],
        "outputs": [{"name": "y", "shape": [1], "datatype": "FP32"}], "latency_ms": 1.5}
    # Each request's deadline is the time left, within bounds.
    assert timeouts == [10, 8, 6]


def test_a_failure_for_good_ends_the_wait_at_once() -> None:
    log: list[str] = []
    clock = Clock()
    rounds = [{"a": ModelCallError("UNAVAILABLE", "not loaded yet"),
               "b": ModelCallError("INVALID_ARGUMENT", "Invalid input shape")}]
    result = run_inferences(scripted(rounds, log, []), [ModelRequest("a"), ModelRequest("b")],
                            timeout=30, interval=1, clock=clock, sleep=clock.sleep)
    assert not result.ok and clock.sleeps == []
    assert result.failure_message("h:9000", "kserve", 30) == (
        "2 of 2 models on OVMS at h:9000 (kserve API) failed their inference check after 0 s: "
        "'a': inference request: UNAVAILABLE: not loaded yet; 'b': inference request: "
        "INVALID_ARGUMENT: Invalid input shape")


def test_gives_up_at_the_deadline_naming_the_connection_error() -> None:
    clock = Clock()
    rounds = [ServerUnreachable("UNAVAILABLE: refused")] * 10
    result = run_inferences(scripted(rounds, [], []), [ModelRequest("a")], timeout=2.5,
                            interval=1, clock=clock, sleep=clock.sleep)
    assert not result.ok and result.inferences == ()
    # The last round lands on the deadline.
    assert clock.sleeps == [1, 1, 0.5]
    assert result.failure_message("h:9000", "tfs", 2.5) == (
        "Could not query OVMS at h:9000 over the tfs gRPC API within 2.5 s: UNAVAILABLE: refused")


def test_timeout_zero_asks_once() -> None:
    log: list[str] = []
    clock = Clock()
    rounds = [{"a": ModelCallError("DEADLINE_EXCEEDED", "")}]
    result = run_inferences(scripted(rounds, log, []), [ModelRequest("a")], timeout=0,
                            interval=1, clock=clock, sleep=clock.sleep)
    assert not result.ok and clock.sleeps == []
    assert result.inferences[0].error == (
        "inference request: DEADLINE_EXCEEDED: no details from the server")
