"""OVMS status codes: the message, gRPC code and HTTP code each one maps to.

Texts and mappings follow OVMS's src/status.cpp, src/grpc_utils.cpp and its REST server.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from http import HTTPStatus
from typing import TypeVar

import grpc

from . import logs


class Code(enum.Enum):
    """A status with (message, gRPC code, HTTP code)."""

    OK = ("", grpc.StatusCode.OK, HTTPStatus.OK)
    MODEL_NAME_MISSING = (
        "Model with requested name is not found",
        grpc.StatusCode.NOT_FOUND,
        HTTPStatus.NOT_FOUND,
    )
    MODEL_VERSION_MISSING = (
        "Model with requested version is not found",
        grpc.StatusCode.NOT_FOUND,
        HTTPStatus.NOT_FOUND,
    )
    MODEL_VERSION_NOT_LOADED_ANYMORE = (
        "Model with requested version is retired",
        grpc.StatusCode.NOT_FOUND,
        HTTPStatus.NOT_FOUND,
    )
    MODEL_VERSION_NOT_LOADED_YET = (
        "Model with requested version is not loaded yet",
        grpc.StatusCode.UNAVAILABLE,
        HTTPStatus.SERVICE_UNAVAILABLE,
    )
    MODEL_VERSION_INVALID_FORMAT = (
        "invalid model version format in request",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    MODEL_SPEC_MISSING = (
        "model_spec missing in request",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_SIGNATURE_DEF = (
        "Invalid signature name",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    MODEL_NOT_LOADED = (
        "Error while loading a model",
        grpc.StatusCode.INTERNAL,
        HTTPStatus.INTERNAL_SERVER_ERROR,
    )
    INVALID_NO_OF_INPUTS = (
        "Invalid number of inputs",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_MISSING_INPUT = (
        "Missing input with specific name",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_MISSING_OUTPUT = (
        "Missing output with specific name",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_NO_OF_SHAPE_DIMENSIONS = (
        "Invalid number of shape dimensions",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_BATCH_SIZE = (
        "Invalid input batch size",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_SHAPE = (
        "Invalid input shape",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_PRECISION = (
        "Invalid input precision",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_VALUE_COUNT = (
        "Invalid number of values in tensor proto container",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_CONTENT_SIZE = (
        "Invalid content size of tensor proto",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_MESSAGE_STRUCTURE = (
        (
            "Passing buffers both in ModelInferRequest::InferInputTensor::contents and in "
            "ModelInferRequest::raw_input_contents is not allowed"
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_INPUT_FORMAT = (
        "Inputs inside buffer does not match expected format.",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    UNSUPPORTED_LAYOUT = (
        "Received binary image input but resource not configured to accept NHWC layout",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_NO_OF_CHANNELS = (
        "Invalid number of channels in binary input",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    BINARY_IMAGES_RESOLUTION_MISMATCH = (
        "Binary input images for this endpoint are required to have the same resolution",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    BYTES_CONTENTS_EMPTY = (
        "Bytes contents is empty",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    # Not in OVMS's gRPC status map (src/grpc_utils.cpp): over gRPC they arrive as UNKNOWN
    # "Unknown error" (see GRPC_UNMAPPED).
    IMAGE_PARSING_FAILED = (
        "Image parsing failed",
        grpc.StatusCode.UNKNOWN,
        HTTPStatus.BAD_REQUEST,
    )
    NOT_IMPLEMENTED = (
        "Functionality not implemented",
        grpc.StatusCode.UNKNOWN,
        HTTPStatus.NOT_IMPLEMENTED,
    )
    OV_INTERNAL_INFERENCE_ERROR = (
        "Internal inference error",
        grpc.StatusCode.INTERNAL,
        HTTPStatus.INTERNAL_SERVER_ERROR,
    )
    INTERNAL_ERROR = (
        "Internal server error",
        grpc.StatusCode.INTERNAL,
        HTTPStatus.INTERNAL_SERVER_ERROR,
    )
    REST_INVALID_URL = ("Invalid request URL", grpc.StatusCode.UNKNOWN, HTTPStatus.BAD_REQUEST)
    REST_UNSUPPORTED_METHOD = (
        "Unsupported method",
        grpc.StatusCode.UNKNOWN,
        HTTPStatus.NOT_ACCEPTABLE,
    )
    REST_COULD_NOT_PARSE_VERSION = (
        "Could not parse model version in request",
        grpc.StatusCode.UNKNOWN,
        HTTPStatus.BAD_REQUEST,
    )
    REST_BODY_IS_NOT_AN_OBJECT = (
        "Request body should be JSON object",
        grpc.StatusCode.UNKNOWN,
        HTTPStatus.BAD_REQUEST,
    )
    JSON_INVALID = (
        "The file is not valid json",
        grpc.StatusCode.FAILED_PRECONDITION,
        HTTPStatus.PRECONDITION_FAILED,
    )
    CONFIG_FILE_INVALID = (
        "Configuration file not found or cannot open",
        grpc.StatusCode.INTERNAL,
        HTTPStatus.INTERNAL_SERVER_ERROR,
    )

    @property
    def message(self) -> str:
        return self.value[0]

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return self.value[1]

    @property
    def http_code(self) -> HTTPStatus:
        return self.value[2]


class OvmsError(Exception):
    """A request failed with an OVMS status; str() is the text OVMS would send."""

    def __init__(self, code: Code, details: str = "") -> None:
        self.code = code
        self.details = details
        text = code.message if not details else f"{code.message} - {details}"
        super().__init__(text)

    @property
    def text(self) -> str:
        return str(self)


# Statuses OVMS's gRPC frontend has no mapping for: it answers UNKNOWN with this text instead
# of the status's own message.
GRPC_UNMAPPED = frozenset({Code.IMAGE_PARSING_FAILED, Code.NOT_IMPLEMENTED})
GRPC_UNMAPPED_TEXT = "Unknown error"

Response = TypeVar("Response")


def grpc_call(context: grpc.ServicerContext, handler: Callable[[], Response]) -> Response:
    """Run a gRPC handler; an OvmsError becomes the status code and text OVMS would send."""
    try:
        return handler()
    except OvmsError as error:
        logs.serving.debug("gRPC request failed: %s", error.text)
        text = GRPC_UNMAPPED_TEXT if error.code in GRPC_UNMAPPED else error.text
        context.abort(error.code.grpc_code, text)
        raise AssertionError("unreachable: abort raises") from None
