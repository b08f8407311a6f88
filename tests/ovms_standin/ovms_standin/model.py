"""One model version: its state machine, the compiled model and a pool of infer requests."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import queue
import threading
import time
from collections.abc import Iterator, Mapping

import numpy as np
import openvino as ov

from . import logs
from .config import ANONYMOUS, ModelConfig, ShapeSpec
from .metrics import Registry, Reporter
from .repository import find_model_file
from .status import Code, OvmsError
from .tensors import TensorInfo, describe

UNLOAD_WAIT_S = 30.0


class State(enum.IntEnum):
    """TensorFlow Serving's version states, with the numbers OVMS reports."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


class ErrorCode(enum.IntEnum):
    OK = 0
    UNKNOWN = 2


@dataclasses.dataclass
class _Compiled:
    compiled: ov.CompiledModel
    pool: queue.Queue[ov.InferRequest]
    nireq: int
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    output_ports: dict[str, ov.ConstOutput]


class ModelVersion:
    """A version directory turned into something that serves requests."""

    def __init__(
        self, config: ModelConfig, version: int, core: ov.Core, registry: Registry
    ) -> None:
        self.name = config.name
        self.version = version
        self.config = config
        self._core = core
        self._cond = threading.Condition()
        self._inflight = 0
        self._compiled: _Compiled | None = None
        self.state = State.START
        self.error = ErrorCode.OK
        self.reporter = Reporter(registry, self.name, version)
        self._log_status()

    @property
    def failed(self) -> bool:
        return self.state == State.LOADING and self.error == ErrorCode.UNKNOWN

    @property
    def inputs(self) -> dict[str, TensorInfo]:
        return self._compiled.inputs if self._compiled else {}

    @property
    def outputs(self) -> dict[str, TensorInfo]:
        return self._compiled.outputs if self._compiled else {}

    def _log_status(self) -> None:
        logs.serving.info(
            "STATUS CHANGE: Version %d of model %s status change. New status: "
            '( "state": "%s", "error_code": "%s" )',
            self.version,
            self.name,
            self.state.name,
            self.error.name,
        )

    def _set_state(self, state: State, error: ErrorCode = ErrorCode.OK) -> None:
        with self._cond:
            self.state = state
            self.error = error
            self._cond.notify_all()
        self._log_status()

    def load(self, config: ModelConfig | None = None) -> bool:
        """Load (or reload with a new config); on failure stay LOADING with UNKNOWN."""
        if config is not None:
            self.config = config
        self._set_state(State.LOADING)
        try:
            compiled = self._build()
        except Exception as error:  # noqa: BLE001 - any load failure: LOADING/UNKNOWN, as OVMS
            logs.modelmanager.error(
                "Error occurred while loading model: %s; version: %d; error: %s",
                self.name,
                self.version,
                str(error).strip().replace("\n", " "),
            )
            with self._cond:
                self._compiled = None
            self._set_state(State.LOADING, ErrorCode.UNKNOWN)
            return False
        with self._cond:
            self._compiled = compiled
        self.reporter.create_series(compiled.nireq, _num_streams(compiled.compiled))
        logs.modelmanager.info(
            "Loaded model %s; version: %d; batch size: %s; No of InferRequests: %d",
            self.name,
            self.version,
            _batch_text(compiled.inputs),
            compiled.nireq,
        )
        self._set_state(State.AVAILABLE)
        return True

    def _build(self) -> _Compiled:
        path = find_model_file(self.config.base_path / str(self.version))
        logs.modelmanager.info("Loading model %s version %d from %s", self.name, self.version, path)
        model = self._core.read_model(str(path))
        _apply_shapes(model, self.config)
        model = _apply_layouts(model, self.config.layouts)
        compiled = self._core.compile_model(
            model, self.config.target_device, default_plugin_config(self.config.plugin_config)
        )
        nireq = self.config.nireq or _optimal_nireq(compiled)
        pool: queue.Queue[ov.InferRequest] = queue.Queue()
        for _slot in range(nireq):
            pool.put(compiled.create_infer_request())
        # Names come from the model as read, as OVMS takes them: compiling can add aliases.
        inputs = {info.name: info for info in (describe(p) for p in model.inputs)}
        outputs = {info.name: info for info in (describe(p) for p in model.outputs)}
        ports = {p.get_any_name(): compiled.output(i) for i, p in enumerate(model.outputs)}
        for kind, infos in (("Input", inputs), ("Output", outputs)):
            for info in infos.values():
                logs.modelmanager.info(
                    "%s name: %s; shape: %s; precision: %s",
                    kind,
                    info.name,
                    info.shape_text(),
                    info.precision,
                )
        return _Compiled(compiled, pool, nireq, inputs, outputs, ports)

    def unload(self) -> None:
        """Retire: UNLOADING until requests in flight finish, then END."""
        self._set_state(State.UNLOADING)
        with self._cond:
            self._cond.wait_for(lambda: self._inflight == 0, timeout=UNLOAD_WAIT_S)
            self._compiled = None
        self._set_state(State.END)

    @contextlib.contextmanager
    def guard(self, wait_s: float) -> Iterator[ModelVersion]:
        """Hold the version AVAILABLE for a request; waits a while if it is still loading."""
        with self._cond:
            self._cond.wait_for(
                lambda: self.state >= State.AVAILABLE or self.failed, timeout=wait_s
            )
            if self.state < State.AVAILABLE:
                raise OvmsError(Code.MODEL_VERSION_NOT_LOADED_YET)
            if self.state > State.AVAILABLE:
                raise OvmsError(Code.MODEL_VERSION_NOT_LOADED_ANYMORE)
            self._inflight += 1
        try:
            yield self
        finally:
            with self._cond:
                self._inflight -= 1
                self._cond.notify_all()

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference on a free infer request; call inside guard()."""
        compiled = self._compiled
        if compiled is None:
            raise OvmsError(Code.MODEL_VERSION_NOT_LOADED_ANYMORE)
        self.reporter.current(1)
        try:
            started = time.perf_counter()
            request = compiled.pool.get()
            self.reporter.wait_time((time.perf_counter() - started) * 1e6)
            self.reporter.active(1)
            try:
                started = time.perf_counter()
                results = request.infer(dict(inputs))
                self.reporter.inference_time((time.perf_counter() - started) * 1e6)
                return {
                    name: np.asarray(results[port]) for name, port in compiled.output_ports.items()
                }
            except RuntimeError as error:
                raise OvmsError(Code.OV_INTERNAL_INFERENCE_ERROR, str(error).strip()) from None
            finally:
                self.reporter.active(-1)
                compiled.pool.put(request)
        finally:
            self.reporter.current(-1)


def default_plugin_config(plugin_config: Mapping[str, str]) -> dict[str, str]:
    """What OVMS compiles with (ModelInstance::prepareDefaultPluginConfig): a LATENCY
    PERFORMANCE_HINT unless plugin_config sets NUM_STREAMS or PERFORMANCE_HINT."""
    config = dict(plugin_config)
    if "NUM_STREAMS" not in config and "PERFORMANCE_HINT" not in config:
        config["PERFORMANCE_HINT"] = "LATENCY"
    return config


def _optimal_nireq(compiled: ov.CompiledModel) -> int:
    """OPTIMAL_NUMBER_OF_INFER_REQUESTS, or 1 when the device does not tell, as OVMS does."""
    try:
        return int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    except RuntimeError:
        return 1


def _num_streams(compiled: ov.CompiledModel) -> int:
    """NUM_STREAMS; AUTO, MULTI and HETERO have none, and OVMS (getNumOfStreams) then reports
    the optimal number of infer requests instead."""
    try:
        return int(compiled.get_property("NUM_STREAMS"))
    except RuntimeError:
        try:
            return int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        except RuntimeError:
            return 0


def _batch_text(inputs: Mapping[str, TensorInfo]) -> str:
    first = next(iter(inputs.values()), None)
    if first is None or not first.dims:
        return "none"
    dim = first.dims[0]
    return str(dim.get_length()) if dim.is_static else "-1"


def _target(model: ov.Model, name: str) -> str:
    if name != ANONYMOUS:
        if name not in {n for p in model.inputs for n in p.get_names()}:
            raise ValueError(f"Shape or layout from config not found in model: input '{name}'")
        return name
    if len(model.inputs) != 1:
        raise ValueError(
            "Anonymous fixed shape or layout is invalid for models with multiple inputs"
        )
    return model.inputs[0].get_any_name()


def _partial_shape(spec: ShapeSpec, current: ov.PartialShape) -> ov.PartialShape:
    if spec.auto:
        return ov.PartialShape([ov.Dimension()] * len(current))
    dims = []
    for dim in spec.dims:
        if dim.dynamic:
            dims.append(ov.Dimension())
        else:
            dims.append(ov.Dimension(dim.low, dim.high))
    return ov.PartialShape(dims)


def _apply_shapes(model: ov.Model, config: ModelConfig) -> None:
    shapes: dict[str, ov.PartialShape] = {}
    for name, spec in config.shapes.items():
        target = _target(model, name)
        shapes[target] = _partial_shape(spec, model.input(target).get_partial_shape())
    if not shapes and config.batch_size is not None:
        for port in model.inputs:
            dims = list(port.get_partial_shape())
            if not dims:
                continue
            batch = (
                ov.Dimension()
                if config.batch_size == "auto"
                else ov.Dimension(int(config.batch_size))
            )
            shapes[port.get_any_name()] = ov.PartialShape([batch, *dims[1:]])
    if shapes:
        model.reshape(shapes)


def _apply_layouts(model: ov.Model, layouts: Mapping[str, str]) -> ov.Model:
    if not layouts:
        return model
    ppp = ov.preprocess.PrePostProcessor(model)
    for name, text in layouts.items():
        target = _target(model, name)
        tensor_layout, _sep, model_layout = text.partition(":")
        step = ppp.input(target)
        if model_layout:
            step.tensor().set_layout(ov.Layout(tensor_layout))
            step.model().set_layout(ov.Layout(model_layout))
        else:
            step.model().set_layout(ov.Layout(tensor_layout))
    return ppp.build()
