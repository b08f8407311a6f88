"""Binary (encoded image) inputs on the KServe API, checked and decoded as OVMS does.

Behaviour and texts follow OVMS's src/kfs_frontend/validation.cpp (request checks),
src/kfs_frontend/kfs_utils.cpp (`validateTensor`), src/tensor_conversion*.cpp (decoding,
channels, resolution, resize) and src/grpc_utils.cpp (status -> gRPC code):

- an input sent with datatype BYTES to a model input of 4 dimensions is an image batch: the
  request shape must be [N], with N images in `bytes_contents` or in `raw_input_contents`
  (each image preceded by its 4-byte little-endian length);
- the input's layout (the model's own, else the config's, else OVMS's default `N...`) must fit
  `N...HWC`;
- each image is decoded by OpenCV as it is (`IMREAD_UNCHANGED`: BGR for colour JPEG), its
  channel count must match the model's, it is converted to the model's element type and, only
  when the layout is NHWC, N?HWC or `...` and no dimension is fully dynamic, resized to the
  model's height and width (cv::resize, bilinear); otherwise an image of another resolution is
  refused with `Invalid input shape`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import cv2
import numpy as np
import openvino as ov

from .config import ANONYMOUS, ModelConfig
from .status import Code, OvmsError
from .tensors import TensorInfo

DEFAULT_LAYOUT = "N..."
UNSPECIFIED_LAYOUT = "..."
# Element types OVMS converts decoded images to (`getMatTypeFromTensorPrecision`).
_CV_DEPTHS = {
    "FP32": np.float32,
    "FP64": np.float64,
    "FP16": np.float16,
    "I16": np.int16,
    "U8": np.uint8,
    "I8": np.int8,
    "U16": np.uint16,
    "I32": np.int32,
}


def is_image_input(info: TensorInfo) -> bool:
    """OVMS's pre-processing hint IMAGE: a 4-D input that is not a string tensor."""
    return info.precision != "STRING" and len(info.dims) == 4


def reported_layout(info: TensorInfo, config: ModelConfig, input_count: int) -> str:
    """The layout OVMS reports for an input: the model's own, the config's, or `N...`."""
    if info.layout:
        return info.layout
    text = config.layouts.get(info.name)
    if text is None and input_count == 1:
        text = config.layouts.get(ANONYMOUS)
    if text:
        return text.split(":")[0]
    return DEFAULT_LAYOUT


def _expand(layout: str, rank: int) -> list[str] | None:
    """A layout's letter per dimension ('?' for any), or None when it cannot have this rank."""
    if "..." in layout:
        head, _sep, tail = layout.partition("...")
        fill = rank - len(head) - len(tail)
        if fill < 0:
            return None
        return [*head, *("?" * fill), *tail]
    return list(layout) if len(layout) == rank else None


def fits_binary_layout(layout: str, rank: int) -> bool:
    """Whether the layout intersects `N...HWC` at this rank (OVMS's `validateLayout`)."""
    mine = _expand(layout, rank)
    wanted = _expand("N...HWC", rank)
    if mine is None or wanted is None:
        return False
    return all(a == b or "?" in (a, b) for a, b in zip(mine, wanted, strict=True))


def resize_supported(info: TensorInfo, layout: str) -> bool:
    """OVMS's `isResizeSupported`: no fully dynamic dimension, layout NHWC, N?HWC or `...`."""
    if any(d.is_dynamic and d.get_max_length() < 0 and d.get_min_length() <= 0 for d in info.dims):
        return False
    return layout in ("NHWC", "N?HWC", UNSPECIFIED_LAYOUT)


def split_raw(buffer: bytes) -> list[bytes] | None:
    """Length-prefixed images from raw_input_contents; None when the lengths do not add up."""
    images: list[bytes] = []
    offset = 0
    while offset + 4 <= len(buffer):
        (size,) = struct.unpack_from("<I", buffer, offset)
        offset += 4
        if offset + size > len(buffer):
            return None
        images.append(buffer[offset : offset + size])
        offset += size
    return images if offset == len(buffer) else None


def raw_count(raw: bytes) -> int:
    """Images in raw_input_contents, or INVALID_INPUT_FORMAT when the lengths do not add up."""
    images = split_raw(raw)
    if images is None:
        raise OvmsError(Code.INVALID_INPUT_FORMAT)
    return len(images)


def batch_position(layout: str) -> int | None:
    position = layout.find("N")
    return position if position >= 0 else None


def check_request(
    info: TensorInfo,
    name: str,
    shape: Sequence[int],
    contents: Sequence[bytes],
    raw: bytes | None,
    layout: str,
) -> None:
    """The request-level checks OVMS makes on a binary input before decoding anything."""
    count = raw_count(raw) if raw is not None else len(contents)
    if not is_image_input(info):
        # A 2-D U8 input (OVMS's strings as bytes) is not implemented here; OVMS's answer for
        # any other input without a pre-processing hint is this one.
        raise OvmsError(Code.NOT_IMPLEMENTED)
    if len(shape) != 1:
        raise OvmsError(
            Code.INVALID_NO_OF_SHAPE_DIMENSIONS,
            f"Expected number of input shape dimensions: 1; Actual: {len(shape)}; "
            f"input name: {name}",
        )
    batch = batch_position(layout)
    if batch is None:
        raise OvmsError(Code.INVALID_BATCH_SIZE, f"Batch not present in input name: {name}")
    if shape[0] != count:
        raise OvmsError(Code.INVALID_BATCH_SIZE)
    if not info.dims[batch].compatible(ov.Dimension(shape[0])):
        # OVMS counts bytes_contents here, so a batch sent in raw_input_contents reads 0.
        raise OvmsError(
            Code.INVALID_BATCH_SIZE,
            f"Expected: {_dim(info.dims[batch])}; Actual: {len(contents)}; input name: {name}",
        )


def decode(
    info: TensorInfo, contents: Sequence[bytes], raw: bytes | None, layout: str
) -> np.ndarray:
    """The images as the model's NHWC tensor, or the OvmsError OVMS answers with."""
    if not fits_binary_layout(layout, len(info.dims)):
        raise OvmsError(Code.UNSUPPORTED_LAYOUT)
    images = split_raw(raw) if raw is not None else list(contents)
    if images is None:
        raise OvmsError(Code.IMAGE_PARSING_FAILED)
    batch = batch_position(layout)
    if batch is None or not images or not info.dims[batch].compatible(ov.Dimension(len(images))):
        raise OvmsError(Code.INVALID_BATCH_SIZE)
    if any(not image for image in images):
        raise OvmsError(Code.BYTES_CONTENTS_EMPTY)
    resize = resize_supported(info, layout)
    height, width = info.dims[1], info.dims[2]
    target: tuple[int, int] | None = None
    decoded: list[np.ndarray] = []
    for index, data in enumerate(images):
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise OvmsError(Code.IMAGE_PARSING_FAILED)
        if image.ndim == 2:
            image = image[:, :, np.newaxis]
        first = decoded[0] if decoded else None
        if first is not None and not resize and image.shape[:2] != first.shape[:2]:
            raise OvmsError(Code.BINARY_IMAGES_RESOLUTION_MISMATCH)
        channels = info.dims[3]
        wanted = (
            ov.Dimension(first.shape[2]) if _is_any(channels) and first is not None else channels
        )
        if not _is_any(wanted) and not wanted.compatible(ov.Dimension(image.shape[2])):
            raise OvmsError(Code.INVALID_NO_OF_CHANNELS)
        if index == 0:
            target = (_target(height, image.shape[0]), _target(width, image.shape[1]))
        depth = _CV_DEPTHS.get(info.precision)
        if depth is None:
            raise OvmsError(Code.INVALID_PRECISION)
        image = image.astype(depth, copy=False)
        assert target is not None
        if image.shape[:2] != target:
            if not resize:
                raise OvmsError(Code.INVALID_SHAPE)
            resized = cv2.resize(image, (target[1], target[0]))
            image = resized if resized.ndim == 3 else resized[:, :, np.newaxis]
        decoded.append(image)
    return np.ascontiguousarray(np.stack(decoded))


def _is_any(dim: ov.Dimension) -> bool:
    return dim.is_dynamic and dim.get_min_length() <= 0 and dim.get_max_length() < 0


def _target(dim: ov.Dimension, size: int) -> int:
    """OVMS's `updateTargetResolution`: a fixed size, or the image's clamped to a range."""
    if dim.is_static:
        return dim.get_length()
    if _is_any(dim):
        return size
    low, high = dim.get_min_length(), dim.get_max_length()
    if high >= 0 and size > high:
        return high
    return max(size, low)


def _dim(dim: ov.Dimension) -> str:
    if dim.is_static:
        return str(dim.get_length())
    low, high = dim.get_min_length(), dim.get_max_length()
    return "-1" if high < 0 else f"{low}:{high}"
