"""Convert a source model to OpenVINO IR with fixed inputs and one clean name per tensor."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ovms_models_tool.catalog import ConvertSpec, TensorSpec
from ovms_models_tool.errors import ToolError

if TYPE_CHECKING:
    import openvino as ov

IR_XML = "model.xml"


def convert_to_ir(
    model_name: str,
    source: Path,
    spec: ConvertSpec,
    out_dir: Path,
    fmt: str = "",
    companions: tuple[Path, ...] = (),
) -> None:
    """Write `out_dir/model.xml` and `model.bin` converted from `source`.

    `companions` are the source's other files (a Darknet network's .weights).
    """
    # Imported here so that listing the catalog or fetching unconverted models works without it.
    try:
        import openvino as ov
    except ImportError as exc:
        raise ToolError(
            f"{model_name}: converting needs the openvino Python package, which "
            f"{sys.executable} lacks; install the pins in requirements/python.txt"
        ) from exc

    if fmt == "darknet":
        model = _darknet_model(model_name, source, companions, spec)
    else:
        inputs = [_input_arg(ov, t) for t in spec.inputs] or None
        try:
            model = ov.convert_model(str(source), input=inputs)
        except Exception as exc:  # frontends raise assorted types; each is a bad source model
            raise ToolError(f"{model_name}: OpenVINO could not convert {source}: {exc}") from exc
    _rename(model_name, "input", model.inputs, spec.inputs)
    _rename(model_name, "output", model.outputs, spec.outputs)
    ov.save_model(model, str(out_dir / IR_XML), compress_to_fp16=spec.compress_to_fp16)


def _darknet_model(
    model_name: str, cfg: Path, companions: tuple[Path, ...], spec: ConvertSpec
) -> ov.Model:
    """Build a Darknet YOLO network; its one input can be given a size and element type."""
    from ovms_models_tool import darknet

    weights = next((p for p in companions if p.suffix.lower() == ".weights"), None)
    if weights is None:
        raise ToolError(f"{model_name}: format darknet needs the .weights file next to {cfg}")
    if len(spec.inputs) > 1:
        raise ToolError(f"{model_name}: convert.inputs: a Darknet network has one input")
    size: tuple[int, int] | None = None
    element = "u8"
    if spec.inputs:
        wanted = spec.inputs[0]
        if wanted.source != darknet.INPUT_NAME:
            raise ToolError(
                f"{model_name}: convert.inputs: input {wanted.source!r} not found in the "
                f"converted model; its input tensor names are {[darknet.INPUT_NAME]}"
            )
        if wanted.shape is not None:
            if len(wanted.shape) != 4 or wanted.shape[0] != 1 or wanted.shape[3] != 3:
                raise ToolError(
                    f"{model_name}: convert.inputs[0].shape is {list(wanted.shape)}; a Darknet "
                    "network takes [1, HEIGHT, WIDTH, 3] (NHWC, RGB)"
                )
            size = (wanted.shape[1], wanted.shape[2])
        if wanted.type is not None:
            if wanted.type not in ("u8", "f32"):
                raise ToolError(
                    f"{model_name}: convert.inputs[0].type is {wanted.type}; a Darknet network "
                    "takes u8 or f32 (values 0..255 either way)"
                )
            element = wanted.type
    return darknet.build_model(cfg, weights, size, element)


def _input_arg(ov: ModuleType, tensor: TensorSpec) -> tuple[object, ...]:
    parts: list[object] = [tensor.source]
    if tensor.shape is not None:
        parts.append(list(tensor.shape))
    if tensor.type is not None:
        # Looked up by name: ov.Type("u8") would parse the string as a numpy dtype code.
        parts.append(getattr(ov.Type, tensor.type))
    return tuple(parts)


def _rename(
    model_name: str, kind: str, ports: list[ov.Output], wanted: tuple[TensorSpec, ...]
) -> None:
    """Give each listed port exactly one tensor name; converters attach several."""
    for tensor in wanted:
        matches = [p for p in ports if tensor.source in p.get_names()]
        if len(matches) != 1:
            present = sorted(n for p in ports for n in p.get_names())
            raise ToolError(
                f"{model_name}: convert.{kind}s: {kind} {tensor.source!r} not found in the "
                f"converted model; its {kind} tensor names are {present}"
            )
        matches[0].get_tensor().set_names({tensor.name})
