"""Element types and shapes as OVMS names them in each API."""

from __future__ import annotations

import dataclasses

import numpy as np
import openvino as ov
from ovmsclient.tfs_compat.protos.tensorflow.core.framework import types_pb2

_BY_OV_NAME: dict[str, tuple[str, str, int]] = {
    # openvino type name: (OVMS precision, KServe datatype, TFS DataType)
    "f32": ("FP32", "FP32", types_pb2.DT_FLOAT),
    "f16": ("FP16", "FP16", types_pb2.DT_HALF),
    "bf16": ("BF16", "BF16", types_pb2.DT_BFLOAT16),
    "f64": ("FP64", "FP64", types_pb2.DT_DOUBLE),
    "i64": ("I64", "INT64", types_pb2.DT_INT64),
    "i32": ("I32", "INT32", types_pb2.DT_INT32),
    "i16": ("I16", "INT16", types_pb2.DT_INT16),
    "i8": ("I8", "INT8", types_pb2.DT_INT8),
    "u64": ("U64", "UINT64", types_pb2.DT_UINT64),
    "u32": ("U32", "UINT32", types_pb2.DT_UINT32),
    "u16": ("U16", "UINT16", types_pb2.DT_UINT16),
    "u8": ("U8", "UINT8", types_pb2.DT_UINT8),
    "boolean": ("BOOL", "BOOL", types_pb2.DT_BOOL),
    "string": ("STRING", "BYTES", types_pb2.DT_STRING),
}
_TFS_NAMES = {
    types_pb2.DT_FLOAT: "FP32",
    types_pb2.DT_DOUBLE: "FP64",
    types_pb2.DT_INT32: "I32",
    types_pb2.DT_INT8: "I8",
    types_pb2.DT_UINT8: "U8",
    types_pb2.DT_HALF: "FP16",
    types_pb2.DT_INT16: "I16",
    types_pb2.DT_UINT16: "U16",
    types_pb2.DT_UINT64: "U64",
    types_pb2.DT_INT64: "I64",
    types_pb2.DT_BOOL: "BOOL",
    types_pb2.DT_STRING: "STRING",
}
KSERVE_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def warm_numpy_bridge() -> None:
    """Set up OpenVINO's numpy bridge once, from one thread, before any request runs.

    OpenVINO's Python binding builds its element-type -> numpy dtype table (behind
    `Tensor.data`, `Type.to_dtype()` and an InferRequest's inputs and outputs) on first use, in
    a C++ function-local static whose initialiser lets go of the GIL while pybind11 looks up
    numpy's C API. When two threads make that first call together, the one initialising waits
    for the GIL while the other holds the GIL and waits for the static: every thread of the
    process stops, gRPC and REST included. A server that just (re)started and gets two requests
    at once (nireq >= 2, a client resuming with two in flight) hung like this. OVMS is C++ and
    has no GIL; making the first call here, at import, keeps the stand-in serving as it does.
    """
    ov.Tensor(ov.Type.u8, ov.Shape([1])).data.fill(0)
    ov.Type.u8.to_dtype()


warm_numpy_bridge()


def tfs_type_name(dtype: int) -> str:
    """How OVMS spells a TFS DataType in error texts."""
    return _TFS_NAMES.get(dtype, "INVALID")


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """A model input or output as the APIs describe it."""

    name: str
    element_type: ov.Type
    dims: tuple[ov.Dimension, ...]
    # The layout the model itself sets for the tensor (e.g. `NHWC` after a config layout was
    # applied), '' when it sets none.
    layout: str = ""

    @property
    def precision(self) -> str:
        return _BY_OV_NAME.get(self.element_type.get_type_name(), ("UNDEFINED", "", 0))[0]

    @property
    def kserve_datatype(self) -> str:
        return _BY_OV_NAME.get(self.element_type.get_type_name(), ("", "INVALID", 0))[1]

    @property
    def tfs_dtype(self) -> int:
        return _BY_OV_NAME.get(self.element_type.get_type_name(), ("", "", 0))[2]

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.element_type.to_dtype())

    @property
    def item_size(self) -> int:
        return self.numpy_dtype.itemsize

    def flat_dims(self) -> list[int]:
        """Dimensions for metadata: fixed sizes, -1 where dynamic."""
        return [d.get_length() if d.is_static else -1 for d in self.dims]

    def shape_text(self) -> str:
        return "(" + ",".join(dim_text(d) for d in self.dims) + ")"

    def dim_matches(self, index: int, size: int) -> bool:
        return self.dims[index].compatible(ov.Dimension(size))


def dim_text(dim: ov.Dimension) -> str:
    if dim.is_static:
        return str(dim.get_length())
    low, high = dim.get_min_length(), dim.get_max_length()
    if high < 0:
        return "-1"
    return f"{low}:{high}"


def shape_text(shape: list[int] | tuple[int, ...]) -> str:
    return "(" + ",".join(str(d) for d in shape) + ")"


def describe(port: ov.Output) -> TensorInfo:
    layout = ov.layout_helpers.get_layout(port)
    return TensorInfo(
        name=port.get_any_name(),
        element_type=port.get_element_type(),
        dims=tuple(port.get_partial_shape()),
        # "[N,H,W,C]" -> "NHWC", "[N,...]" -> "N...", as OVMS writes layouts.
        layout="" if layout.empty else layout.to_string().strip("[]").replace(",", ""),
    )
