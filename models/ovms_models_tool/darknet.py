"""Darknet YOLO (`.cfg` + `.weights`) to an OpenVINO model; OpenVINO has no Darknet frontend.

The graph is built layer by layer with OpenVINO's opset from the network description, with
the weights read in Darknet's file order. What comes out is what clients of this repository
read with their `yolo` adapter (YOLOv5 layout):

  input   u8 (or f32) [1, H, W, 3], RGB, values 0..255, the frame stretched to W x H
  output  f32 [1, N, 5 + C]: centre x, centre y, width, height (pixels of the input),
          objectness, C class probabilities; every anchor of every head, no NMS

Layers understood: convolutional (batch norm folded; linear, leaky, relu, logistic, mish),
maxpool, route (with groups/group_id), shortcut, upsample, yolo. Anything else is refused
with the layer's index, so a network this does not cover fails at build time, not at
inference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ovms_models_tool.errors import ToolError

if TYPE_CHECKING:
    import openvino as ov

INPUT_NAME = "images"
OUTPUT_NAME = "output"
# Darknet's batch norm divides by sqrt(variance) + .000001.
BN_EPSILON = 1e-6
LEAKY_SLOPE = 0.1
# Darknet writes the count of images seen as a 64-bit integer from file format 0.2 on.
_WIDE_SEEN_FROM = (0, 2)


@dataclass
class Section:
    """One `[type]` block of a .cfg file and its `key=value` lines."""

    kind: str
    line: int
    options: dict[str, str] = field(default_factory=dict)

    def integer(self, key: str, default: int | None = None) -> int:
        return int(self._value(key, default))

    def number(self, key: str, default: float | None = None) -> float:
        return float(self._value(key, default))

    def integers(self, key: str) -> list[int]:
        return [int(v) for v in self._value(key, None).split(",") if v.strip()]

    def numbers(self, key: str) -> list[float]:
        return [float(v) for v in self._value(key, None).split(",") if v.strip()]

    def _value(self, key: str, default: object) -> str:
        if key in self.options:
            return self.options[key]
        if default is None:
            raise ValueError(f"[{self.kind}] at line {self.line} has no '{key}'")
        return str(default)


def parse_cfg(path: Path) -> list[Section]:
    """The sections of a Darknet network description, `[net]` first."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ToolError(f"darknet cfg {path}: cannot read: {exc.strerror or exc}") from exc
    sections: list[Section] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not text:
            continue
        if text.startswith("[") and text.endswith("]"):
            sections.append(Section(text[1:-1].strip().lower(), number))
            continue
        key, sep, value = text.partition("=")
        if not sep or not sections:
            raise ToolError(f"darknet cfg {path}:{number}: expected [section] or key=value")
        sections[-1].options[key.strip()] = value.strip()
    if not sections or sections[0].kind not in ("net", "network"):
        raise ToolError(f"darknet cfg {path}: expected a [net] section first")
    return sections


class WeightReader:
    """Darknet's .weights: a header, then every layer's float32 parameters in order."""

    def __init__(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ToolError(f"darknet weights {path}: cannot read: {exc.strerror or exc}") from exc
        if len(data) < 20:
            raise ToolError(f"darknet weights {path}: too short for a header ({len(data)} bytes)")
        major, minor, _revision = (int(v) for v in np.frombuffer(data, np.int32, 3))
        seen_bytes = 8 if (major, minor) >= _WIDE_SEEN_FROM else 4
        body = data[12 + seen_bytes :]
        if len(body) % 4:
            raise ToolError(f"darknet weights {path}: body is not whole float32 values")
        self.path = path
        self.values = np.frombuffer(body, np.float32)
        self.position = 0

    def take(self, count: int, what: str) -> np.ndarray:
        end = self.position + count
        if end > self.values.size:
            raise ToolError(
                f"darknet weights {self.path}: ran out at {what} (needs {count} values, "
                f"{self.values.size - self.position} left): the weights do not fit the cfg"
            )
        chunk = self.values[self.position : end]
        self.position = end
        return chunk

    def check_used_up(self) -> None:
        left = self.values.size - self.position
        if left:
            raise ToolError(
                f"darknet weights {self.path}: {left} values left over after the last layer: "
                "the weights do not fit the cfg"
            )


@dataclass(frozen=True)
class Layer:
    """A layer's output in NCHW and its channel count."""

    node: Any
    channels: int


def build_model(
    cfg_path: Path,
    weights_path: Path,
    input_size: tuple[int, int] | None = None,
    input_type: str = "u8",
) -> ov.Model:
    """The OpenVINO model of a Darknet YOLO network; `input_size` is (height, width)."""
    import openvino as ov

    sections = parse_cfg(cfg_path)
    net = sections[0]
    try:
        height, width = input_size or (net.integer("height"), net.integer("width"))
        channels = net.integer("channels", 3)
    except ValueError as exc:
        raise ToolError(f"darknet cfg {cfg_path}: [net]: {exc}") from exc
    if channels != 3:
        raise ToolError(f"darknet cfg {cfg_path}: [net] channels={channels}; expected 3 (RGB)")
    if input_type not in ("u8", "f32"):
        raise ToolError(f"darknet input type {input_type!r}: expected u8 or f32")
    builder = _GraphBuilder(cfg_path, WeightReader(weights_path), height, width)
    image = builder.ops.parameter(
        [1, height, width, 3], getattr(ov.Type, input_type), name=INPUT_NAME
    )
    image.output(0).get_tensor().set_names({INPUT_NAME})
    output = builder.build(image, sections[1:])
    return ov.Model([output], [image], cfg_path.stem)


class _GraphBuilder:
    def __init__(self, cfg_path: Path, weights: WeightReader, height: int, width: int) -> None:
        import openvino.opset13 as ops

        self.ops = ops
        self.cfg_path = cfg_path
        self.weights = weights
        self.height = height
        self.width = width

    def const(self, value: np.ndarray | float | list[int]) -> Any:
        array = np.asarray(value)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        elif array.dtype.kind in "iu":
            array = array.astype(np.int64)
        return self.ops.constant(array)

    def build(self, image: Any, sections: list[Section]) -> Any:
        ops = self.ops
        x = ops.convert(image, "f32")
        x = ops.multiply(x, self.const(1.0 / 255.0))
        x = ops.transpose(x, self.const([0, 3, 1, 2]))
        current = Layer(x, 3)
        layers: list[Layer] = []
        heads: list[tuple[Layer, Section]] = []
        for index, section in enumerate(sections):
            try:
                current = self._layer(index, section, current, layers, heads)
            except (ValueError, KeyError, IndexError) as exc:
                raise ToolError(
                    f"darknet cfg {self.cfg_path}: layer {index} [{section.kind}] "
                    f"(line {section.line}): {exc}"
                ) from exc
            layers.append(current)
        self.weights.check_used_up()
        if not heads:
            raise ToolError(f"darknet cfg {self.cfg_path}: no [yolo] layer, so no detections")
        decoded = [self._decode(layer, section) for layer, section in heads]
        out = ops.concat(decoded, 1) if len(decoded) > 1 else decoded[0]
        out.output(0).get_tensor().set_names({OUTPUT_NAME})
        return out

    def _layer(
        self,
        index: int,
        section: Section,
        current: Layer,
        layers: list[Layer],
        heads: list[tuple[Layer, Section]],
    ) -> Layer:
        kind = section.kind
        if kind == "convolutional":
            return self._convolutional(index, section, current)
        if kind == "maxpool":
            return self._maxpool(section, current)
        if kind == "route":
            return self._route(index, section, layers)
        if kind == "shortcut":
            source = layers[_absolute(section.integer("from"), index)]
            added = self.ops.add(current.node, source.node)
            return Layer(
                self._activation(added, section.options.get("activation", "linear")),
                current.channels,
            )
        if kind == "upsample":
            stride = section.integer("stride", 2)
            scaled = self.ops.interpolate(
                current.node,
                self.const([float(stride), float(stride)]),
                "nearest",
                "scales",
                axes=self.const([2, 3]),
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
            return Layer(scaled, current.channels)
        if kind == "yolo":
            heads.append((current, section))
            return current
        raise ValueError(
            "layer type not supported (convolutional, maxpool, route, shortcut, upsample, yolo are)"
        )

    def _convolutional(self, index: int, section: Section, current: Layer) -> Layer:
        filters = section.integer("filters")
        size = section.integer("size", 1)
        stride = section.integer("stride", 1)
        groups = section.integer("groups", 1)
        if groups != 1:
            raise ValueError("grouped convolutions are not supported")
        padding = size // 2 if section.integer("pad", 0) else section.integer("padding", 0)
        what = f"layer {index} [convolutional]"
        kernel_count = filters * current.channels * size * size
        if section.integer("batch_normalize", 0):
            bias = self.weights.take(filters, what)
            gamma = self.weights.take(filters, what)
            mean = self.weights.take(filters, what)
            variance = self.weights.take(filters, what)
            kernel = self.weights.take(kernel_count, what).reshape(
                filters, current.channels, size, size
            )
            factor = gamma / (np.sqrt(variance) + BN_EPSILON)
            kernel = kernel * factor[:, None, None, None]
            bias = bias - mean * factor
        else:
            bias = self.weights.take(filters, what)
            kernel = self.weights.take(kernel_count, what).reshape(
                filters, current.channels, size, size
            )
        conv = self.ops.convolution(
            current.node,
            self.const(kernel),
            [stride, stride],
            [padding, padding],
            [padding, padding],
            [1, 1],
        )
        biased = self.ops.add(conv, self.const(bias.reshape(1, filters, 1, 1)))
        return Layer(
            self._activation(biased, section.options.get("activation", "logistic")), filters
        )

    def _activation(self, node: Any, name: str) -> Any:
        ops = self.ops
        if name == "linear":
            return node
        if name == "leaky":
            return ops.prelu(node, self.const([LEAKY_SLOPE]))
        if name == "relu":
            return ops.relu(node)
        if name == "logistic":
            return ops.sigmoid(node)
        if name == "mish":
            return ops.mish(node)
        raise ValueError(f"activation {name!r} not supported (linear, leaky, relu, logistic, mish)")

    def _maxpool(self, section: Section, current: Layer) -> Layer:
        size = section.integer("size", 2)
        stride = section.integer("stride", size)
        # Darknet pads a maxpool by size-1 in total, at the bottom and right when the stride
        # keeps the size; with stride 2 and size 2 that is no padding at all.
        extra = size - 1 if stride == 1 else max(size - stride, 0)
        pooled = self.ops.max_pool(
            current.node,
            [stride, stride],
            [1, 1],
            [extra // 2, extra // 2],
            [extra - extra // 2, extra - extra // 2],
            [size, size],
            auto_pad="explicit",
        )
        return Layer(pooled.output(0), current.channels)

    def _route(self, index: int, section: Section, layers: list[Layer]) -> Layer:
        sources = [layers[_absolute(i, index)] for i in section.integers("layers")]
        if len(sources) > 1:
            joined = self.ops.concat([s.node for s in sources], 1)
            return Layer(joined, sum(s.channels for s in sources))
        source = sources[0]
        groups = section.integer("groups", 1)
        if groups == 1:
            return source
        part = self.ops.split(source.node, self.const(np.int64(1)), groups)
        return Layer(part.output(section.integer("group_id", 0)), source.channels // groups)

    def _decode(self, layer: Layer, section: Section) -> Any:
        """A [yolo] head's raw map to [1, A*GH*GW, 5+C] rows in input pixels."""
        ops = self.ops
        classes = section.integer("classes")
        mask = section.integers("mask")
        anchors = np.asarray(section.numbers("anchors"), np.float32).reshape(-1, 2)[mask]
        scale_xy = section.number("scale_x_y", 1.0)
        shape = _partial_shape(layer.node)
        grid_h, grid_w = shape[2].get_length(), shape[3].get_length()
        count = len(mask)
        if layer.channels != count * (5 + classes):
            raise ToolError(
                f"darknet cfg {self.cfg_path}: [yolo] at line {section.line}: the layer before "
                f"it has {layer.channels} channels, expected {count} x (5 + {classes})"
            )
        # [1, A*(5+C), GH, GW] -> [1, A, GH, GW, 5+C]
        raw = ops.reshape(layer.node, self.const([1, count, 5 + classes, grid_h, grid_w]), False)
        raw = ops.transpose(raw, self.const([0, 1, 3, 4, 2]))
        squashed = ops.sigmoid(raw)
        cells_y, cells_x = np.meshgrid(
            np.arange(grid_h, dtype=np.float32), np.arange(grid_w, dtype=np.float32), indexing="ij"
        )
        grid = np.stack([cells_x, cells_y], axis=-1)[None, None]
        stride = np.array([self.width / grid_w, self.height / grid_h], np.float32)
        centre = self._slice(squashed, 0, 2)
        centre = ops.add(
            ops.multiply(centre, self.const(scale_xy)), self.const(-0.5 * (scale_xy - 1.0))
        )
        centre = ops.multiply(ops.add(centre, self.const(grid)), self.const(stride))
        size = ops.multiply(
            ops.exp(self._slice(raw, 2, 4)), self.const(anchors.reshape(1, count, 1, 1, 2))
        )
        scores = self._slice(squashed, 4, 5 + classes)
        rows = ops.concat([centre, size, scores], 4)
        return ops.reshape(rows, self.const([1, -1, 5 + classes]), False)

    def _slice(self, node: Any, start: int, stop: int) -> Any:
        return self.ops.slice(
            node, self.const([start]), self.const([stop]), self.const([1]), self.const([4])
        )


def _absolute(reference: int, index: int) -> int:
    """Darknet layer references: negative ones count back from the current layer."""
    absolute = index + reference if reference < 0 else reference
    if not 0 <= absolute < index:
        raise ValueError(f"refers to layer {reference}, which is not an earlier layer")
    return absolute


def _partial_shape(node: Any) -> Any:
    """The shape of a node's only output, or of an output port."""
    if hasattr(node, "get_output_partial_shape"):
        return node.get_output_partial_shape(0)
    return node.get_partial_shape()
