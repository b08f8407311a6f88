"""Request checks in OVMS's order, with its texts, then conversion to numpy arrays.

Per input (by name): present, no dimension <= 0, precision, number of dimensions, batch size,
the other dimensions, then the payload size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from .binary import reported_layout
from .config import ANONYMOUS, ModelConfig
from .status import Code, OvmsError
from .tensors import TensorInfo, dim_text, shape_text


class IncomingTensor(Protocol):
    """One request input, whatever API it came through."""

    name: str
    shape: tuple[int, ...]
    # Sent as encoded images (KServe BYTES), decoded by the server (binary.py).
    is_binary: bool

    def check_binary(self, info: TensorInfo, layout: str) -> None:
        """Raise OvmsError when a binary input fails OVMS's request checks."""

    def precision_mismatch(self, info: TensorInfo) -> str | None:
        """The request's precision text if it differs from the model's, else None."""

    def check_content(self, info: TensorInfo) -> None:
        """Raise OvmsError when the payload does not fit the shape."""

    def to_array(self, info: TensorInfo, layout: str) -> np.ndarray: ...


def batch_index(config: ModelConfig, name: str, input_count: int) -> int:
    layout = config.layouts.get(name)
    if layout is None and input_count == 1:
        layout = config.layouts.get(ANONYMOUS)
    if not layout:
        return 0
    tensor_layout = layout.split(":")[0]
    return max(tensor_layout.find("N"), 0)


def validate(
    model_inputs: Mapping[str, TensorInfo],
    received: Sequence[IncomingTensor],
    config: ModelConfig,
) -> dict[str, np.ndarray]:
    if not received or len(received) != len(model_inputs):
        raise OvmsError(
            Code.INVALID_NO_OF_INPUTS, f"Expected: {len(model_inputs)}; Actual: {len(received)}"
        )
    by_name = {tensor.name: tensor for tensor in received}
    arrays: dict[str, np.ndarray] = {}
    for name in sorted(model_inputs):
        info = model_inputs[name]
        tensor = by_name.get(name)
        if tensor is None:
            raise OvmsError(Code.INVALID_MISSING_INPUT, f"Required input: {name}")
        layout = reported_layout(info, config, len(model_inputs))
        if tensor.is_binary:
            _check_dimensions(tensor.shape, name)
            tensor.check_binary(info, layout)
        else:
            _check_shape(info, tensor, batch_index(config, name, len(model_inputs)))
            tensor.check_content(info)
    # As OVMS: every input passes its checks before any is converted (images decoded).
    for name in sorted(model_inputs):
        arrays[name] = by_name[name].to_array(
            model_inputs[name], reported_layout(model_inputs[name], config, len(model_inputs))
        )
    return arrays


def _check_dimensions(shape: Sequence[int], name: str) -> None:
    if any(d <= 0 for d in shape):
        raise OvmsError(
            Code.INVALID_SHAPE,
            f"Negative or zero dimension size is not acceptable: {shape_text(tuple(shape))}; "
            f"input name: {name}",
        )


def _check_shape(info: TensorInfo, tensor: IncomingTensor, batch: int) -> None:
    name = tensor.name
    shape = tuple(tensor.shape)
    _check_dimensions(shape, name)
    actual = tensor.precision_mismatch(info)
    if actual is not None:
        raise OvmsError(
            Code.INVALID_PRECISION,
            f"Expected: {info.precision}; Actual: {actual}; input name: {name}",
        )
    if not shape or len(shape) != len(info.dims):
        raise OvmsError(
            Code.INVALID_NO_OF_SHAPE_DIMENSIONS,
            f"Expected: {info.shape_text()}; Actual: {shape_text(shape)}; input name: {name}",
        )
    if batch < len(shape) and not info.dim_matches(batch, shape[batch]):
        raise OvmsError(
            Code.INVALID_BATCH_SIZE,
            f"Expected: {dim_text(info.dims[batch])}; Actual: {shape[batch]}; input name: {name}",
        )
    if any(not info.dim_matches(i, d) for i, d in enumerate(shape)):
        raise OvmsError(
            Code.INVALID_SHAPE,
            f"Expected: {info.shape_text()}; Actual: {shape_text(shape)}; input name: {name}",
        )


def expected_bytes(info: TensorInfo, shape: Sequence[int]) -> int:
    return math.prod(shape) * info.item_size


def content_size_error(info: TensorInfo, shape: Sequence[int], actual: int, name: str) -> None:
    expected = expected_bytes(info, shape)
    if expected != actual:
        raise OvmsError(
            Code.INVALID_CONTENT_SIZE,
            f"Expected: {expected} bytes; Actual: {actual} bytes; input name: {name}",
        )


def value_count_error(shape: Sequence[int], actual: int, name: str, unit: str = " values") -> None:
    expected = math.prod(shape)
    if expected != actual:
        raise OvmsError(
            Code.INVALID_VALUE_COUNT,
            f"Expected: {expected}{unit}; Actual: {actual}{unit}; input name: {name}",
        )
