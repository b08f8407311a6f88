"""The stand-in's model manager and request checks in-process, with real OpenVINO models.

Watcher passes are driven by calling poll_once(), so no test waits on a clock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ovms_standin"))

from ovms_standin.config import ConfigError
from ovms_standin.manager import ModelManager, PartialConfigError
from ovms_standin.metrics import Registry
from ovms_standin.model import ErrorCode, State
from ovms_standin.status import Code, OvmsError
from ovms_standin.tensors import TensorInfo
from ovms_standin.validation import validate


def save_tiny(directory: Path, add: float) -> None:
    """y = relu(x + add), x of shape [1, 4] f32."""
    x = ops.parameter([1, 4], ov.Type.f32, name="x")
    x.output(0).get_tensor().set_names({"x"})
    y = ops.relu(ops.add(x, ops.constant(np.full([1, 4], add, np.float32))))
    y.output(0).get_tensor().set_names({"y"})
    directory.mkdir(parents=True)
    ov.save_model(ov.Model([y], [x], "tiny"), str(directory / "model.xml"))


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "config.json"
        self.models = root / "models"

    def write(self, *entries: dict[str, object], **top: object) -> None:
        items = [{"config": entry} for entry in entries]
        self.config.write_text(json.dumps({"model_config_list": items, **top}))


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repo = Repo(tmp_path)
    save_tiny(repo.models / "tiny" / "1", 1.0)
    return repo


@pytest.fixture
def manager(repo: Repo):
    created = ModelManager(str(repo.config), Registry())
    yield created
    created.stop()


def start(manager: ModelManager) -> None:
    config, problems = manager.read_config()
    manager.apply(config, problems)


def states(manager: ModelManager, name: str) -> dict[int, tuple[State, ErrorCode]]:
    model = manager.get_model(name)
    return {n: (v.state, v.error) for n, v in model.snapshot().items()}


def run_tiny(manager: ModelManager, version: int = 0) -> np.ndarray:
    instance = manager.get_version("tiny", version)
    with instance.guard(0):
        return instance.infer({"x": np.array([[-3.0, -1.0, 0.0, 2.0]], np.float32)})["y"]


AVAILABLE = (State.AVAILABLE, ErrorCode.OK)
END = (State.END, ErrorCode.OK)
FAILED = (State.LOADING, ErrorCode.UNKNOWN)


def test_new_version_replaces_old_under_latest_one(repo, manager):
    repo.write({"name": "tiny", "base_path": "models/tiny"})
    start(manager)
    assert states(manager, "tiny") == {1: AVAILABLE}
    np.testing.assert_allclose(run_tiny(manager), [[0, 0, 1, 3]])
    save_tiny(repo.models / "tiny" / "2", 5.0)
    manager.poll_once()
    assert states(manager, "tiny") == {1: END, 2: AVAILABLE}
    np.testing.assert_allclose(run_tiny(manager), [[2, 4, 5, 7]])
    with pytest.raises(OvmsError) as retired:
        run_tiny(manager, 1)
    assert retired.value.code is Code.MODEL_VERSION_NOT_LOADED_ANYMORE


def test_policies_all_and_specific(repo, manager):
    save_tiny(repo.models / "tiny" / "2", 5.0)
    repo.write({"name": "tiny", "base_path": "models/tiny", "model_version_policy": {"all": {}}})
    start(manager)
    assert states(manager, "tiny") == {1: AVAILABLE, 2: AVAILABLE}
    repo.write(
        {
            "name": "tiny",
            "base_path": "models/tiny",
            "model_version_policy": {"specific": {"versions": [1]}},
        }
    )
    manager.poll_once()
    assert states(manager, "tiny") == {1: AVAILABLE, 2: END}
    np.testing.assert_allclose(run_tiny(manager), [[0, 0, 1, 3]])


def test_removed_version_directory_is_unloaded(repo, manager):
    save_tiny(repo.models / "tiny" / "2", 5.0)
    repo.write({"name": "tiny", "base_path": "models/tiny"})
    start(manager)
    shutil.rmtree(repo.models / "tiny" / "2")
    manager.poll_once()
    assert states(manager, "tiny") == {1: AVAILABLE, 2: END}


def test_failed_new_version_keeps_the_old_one_serving(repo, manager):
    repo.write({"name": "tiny", "base_path": "models/tiny"})
    start(manager)
    broken = repo.models / "tiny" / "2"
    broken.mkdir()
    (broken / "model.xml").write_text("<net>not a model</net>")
    (broken / "model.bin").write_bytes(b"")
    manager.poll_once()
    assert states(manager, "tiny") == {1: AVAILABLE, 2: FAILED}
    np.testing.assert_allclose(run_tiny(manager), [[0, 0, 1, 3]])
    with pytest.raises(OvmsError) as not_loaded:
        run_tiny(manager, 2)
    assert not_loaded.value.code is Code.MODEL_VERSION_NOT_LOADED_YET
    manager.poll_once()
    assert states(manager, "tiny") == {1: AVAILABLE, 2: FAILED}


def test_unknown_device_fails_the_version_and_default_lookup_is_not_found(repo, manager):
    repo.write({"name": "tiny", "base_path": "models/tiny", "target_device": "NO_SUCH_DEVICE"})
    start(manager)
    assert states(manager, "tiny") == {1: FAILED}
    with pytest.raises(OvmsError) as missing:
        manager.get_version("tiny", 0)
    assert missing.value.code is Code.MODEL_VERSION_MISSING
    assert str(missing.value) == "Model with requested version is not found"


def test_config_change_reloads_and_removal_unloads(repo, manager):
    repo.write({"name": "tiny", "base_path": "models/tiny"})
    start(manager)
    repo.write({"name": "tiny", "base_path": "models/tiny", "nireq": 3})
    manager.poll_once()
    assert manager.get_model("tiny").config.nireq == 3
    assert states(manager, "tiny") == {1: AVAILABLE}
    repo.write()
    manager.poll_once()
    assert states(manager, "tiny") == {1: END}
    with pytest.raises(OvmsError) as gone:
        manager.get_version("tiny", 0)
    assert gone.value.code is Code.MODEL_VERSION_MISSING
    with pytest.raises(OvmsError) as unknown:
        manager.get_model("other")
    assert unknown.value.code is Code.MODEL_NAME_MISSING


def test_broken_config_on_reload_is_not_applied(repo, manager):
    repo.write({"name": "tiny", "base_path": "models/tiny"})
    start(manager)
    before = manager.current
    repo.config.write_text('{"model_config_list": [{"config": {"name": "tiny", "bad": 1}}]}')
    manager.poll_once()
    assert manager.current is before
    assert states(manager, "tiny") == {1: AVAILABLE}
    with pytest.raises(ConfigError, match="additionalProperties"):
        manager.reload_now()


def test_nireq_pool_serves_concurrent_requests(repo, manager):
    repo.write({"name": "tiny", "base_path": "models/tiny", "nireq": 2})
    start(manager)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: run_tiny(manager), range(32)))
    for result in results:
        np.testing.assert_allclose(result, [[0, 0, 1, 3]])
    labels = (("name", "tiny"), ("version", "1"))
    assert manager.registry.value("ovms_current_requests", labels) == 0
    assert manager.registry.value("ovms_infer_req_queue_size", labels) == 2


# A fresh stand-in whose first two requests arrive together (nireq 2): each request validates
# (Type.to_dtype()) and infers (Tensor.data) in its own thread. Run in a new process each time:
# OpenVINO's numpy bridge is set up once per process, and that first use is what could hang.
FIRST_REQUESTS = """
import sys, threading
import numpy as np
from ovms_standin.manager import ModelManager
from ovms_standin.metrics import Registry
manager = ModelManager(sys.argv[1], Registry())
manager.apply(*manager.read_config())
instance = manager.get_version("tiny", 0)
barrier = threading.Barrier(2)
def request():
    barrier.wait()
    with instance.guard(0):
        instance.inputs["x"].numpy_dtype
        instance.infer({"x": np.array([[-3.0, -1.0, 0.0, 2.0]], np.float32)})
threads = [threading.Thread(target=request, daemon=True) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(30)
print("hung" if any(thread.is_alive() for thread in threads) else "served", flush=True)
"""
# Without the stand-in's warm-up about one fresh process in three hung here.
FIRST_REQUEST_ROUNDS = 6


def test_first_requests_at_once_do_not_hang_a_fresh_server(repo):
    repo.write({"name": "tiny", "base_path": "models/tiny", "nireq": 2})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "ovms_standin")}
    for _round in range(FIRST_REQUEST_ROUNDS):
        try:
            done = subprocess.run(
                [sys.executable, "-c", FIRST_REQUESTS, str(repo.config)],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail("a fresh stand-in hung on its first two requests (process did not end)")
        assert done.stdout.strip() == "served", done.stderr[-2000:]


def test_shape_and_layout_from_config(repo, manager):
    x = ops.parameter([1, 2, 3, 4], ov.Type.f32, name="image")
    x.output(0).get_tensor().set_names({"image"})
    y = ops.relu(x)
    y.output(0).get_tensor().set_names({"out"})
    (repo.models / "img" / "1").mkdir(parents=True)
    ov.save_model(ov.Model([y], [x], "img"), str(repo.models / "img" / "1" / "model.xml"))
    repo.write(
        {"name": "img", "base_path": "models/img", "layout": "NHWC:NCHW"},
        {"name": "dyn", "base_path": "models/img", "shape": "auto"},
    )
    start(manager)
    nhwc = manager.get_version("img", 0)
    assert nhwc.inputs["image"].flat_dims() == [1, 3, 4, 2]
    dynamic = manager.get_version("dyn", 0)
    assert dynamic.inputs["image"].flat_dims() == [-1, -1, -1, -1]


# ---- plugin_config checked against the device; target devices OVMS accepts ----

PRECISION = {"INFERENCE_PRECISION_HINT": "f32"}


def tiny_entry(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "base_path": "models/tiny", **extra}


def test_unsupported_plugin_key_stops_the_model_list_at_start(repo, manager):
    repo.write(
        tiny_entry("first", plugin_config=PRECISION),
        tiny_entry("auto-precision", target_device="AUTO", plugin_config=PRECISION),
        tiny_entry("after"),
    )
    start(manager)
    assert states(manager, "first") == {1: AVAILABLE}
    for name in ("auto-precision", "after"):
        with pytest.raises(OvmsError) as missing:
            manager.get_model(name)
        assert missing.value.code is Code.MODEL_NAME_MISSING
    assert manager.current is not None and manager.current.stopped_at == "auto-precision"


def test_unsupported_plugin_key_on_reload_unloads_that_model_and_the_later_ones(repo, manager):
    good = [tiny_entry("first"), tiny_entry("second"), tiny_entry("third")]
    repo.write(*good)
    start(manager)
    assert [states(manager, n) for n in ("first", "second", "third")] == [{1: AVAILABLE}] * 3
    repo.write(good[0], tiny_entry("second", plugin_config={"NO_SUCH_KEY": "1"}), good[2])
    manager.poll_once()
    assert states(manager, "first") == {1: AVAILABLE}
    assert states(manager, "second") == {1: END}
    assert states(manager, "third") == {1: END}
    np.testing.assert_allclose(run_tiny_named(manager, "first"), [[0, 0, 1, 3]])
    # POST /v1/config/reload loads the same file again and fails again, as OVMS does.
    with pytest.raises(PartialConfigError):
        manager.reload_now()
    assert states(manager, "third") == {1: END}
    repo.write(*good)
    manager.poll_once()
    assert [states(manager, n)[1] for n in ("second", "third")] == [AVAILABLE, AVAILABLE]
    assert manager.reload_now() is False


def run_tiny_named(manager: ModelManager, name: str) -> np.ndarray:
    instance = manager.get_version(name, 0)
    with instance.guard(0):
        return instance.infer({"x": np.array([[-3.0, -1.0, 0.0, 2.0]], np.float32)})["y"]


@pytest.mark.parametrize(
    ("device", "plugin_config", "nireq"),
    [
        ("BATCH:CPU(16)", PRECISION, 16),
        ("AUTO", {"PERFORMANCE_HINT": "LATENCY"}, 1),
        ("AUTO:CPU", PRECISION, 1),
        ("MULTI:CPU", PRECISION, 1),
        ("HETERO:CPU", PRECISION, 1),
    ],
)
def test_target_devices_ovms_accepts_load_and_serve(repo, manager, device, plugin_config, nireq):
    repo.write(tiny_entry("tiny", target_device=device, plugin_config=plugin_config))
    start(manager)
    assert states(manager, "tiny") == {1: AVAILABLE}
    np.testing.assert_allclose(run_tiny(manager), [[0, 0, 1, 3]])
    labels = (("name", "tiny"), ("version", "1"))
    assert manager.registry.value("ovms_infer_req_queue_size", labels) == nireq
    assert manager.registry.value("ovms_streams", labels) >= 1


class Incoming:
    """A request tensor as the validator sees it: numbers, not JPEG or PNG bytes."""

    is_binary = False

    def __init__(self, name: str, shape: tuple[int, ...], precision: str, payload: int) -> None:
        self.name = name
        self.shape = shape
        self.precision = precision
        self.payload = payload

    def precision_mismatch(self, info: TensorInfo) -> str | None:
        return None if self.precision == info.precision else self.precision

    def check_content(self, info: TensorInfo) -> None:
        from ovms_standin.validation import content_size_error

        content_size_error(info, self.shape, self.payload, self.name)

    def to_array(self, info: TensorInfo) -> np.ndarray:
        return np.zeros(self.shape, info.numpy_dtype)


@pytest.mark.parametrize(
    ("received", "code", "text"),
    [
        ([], Code.INVALID_NO_OF_INPUTS, "Invalid number of inputs - Expected: 1; Actual: 0"),
        (
            [Incoming("other", (1, 4), "FP32", 16)],
            Code.INVALID_MISSING_INPUT,
            "Missing input with specific name - Required input: x",
        ),
        (
            [Incoming("x", (1, 0), "FP32", 0)],
            Code.INVALID_SHAPE,
            (
                "Invalid input shape - Negative or zero dimension size is not acceptable: (1,0); "
                "input name: x"
            ),
        ),
        (
            [Incoming("x", (1, 4), "I64", 32)],
            Code.INVALID_PRECISION,
            "Invalid input precision - Expected: FP32; Actual: I64; input name: x",
        ),
        (
            [Incoming("x", (4,), "FP32", 16)],
            Code.INVALID_NO_OF_SHAPE_DIMENSIONS,
            "Invalid number of shape dimensions - Expected: (1,4); Actual: (4); input name: x",
        ),
        (
            [Incoming("x", (2, 4), "FP32", 32)],
            Code.INVALID_BATCH_SIZE,
            "Invalid input batch size - Expected: 1; Actual: 2; input name: x",
        ),
        (
            [Incoming("x", (1, 5), "FP32", 20)],
            Code.INVALID_SHAPE,
            "Invalid input shape - Expected: (1,4); Actual: (1,5); input name: x",
        ),
        (
            [Incoming("x", (1, 4), "FP32", 15)],
            Code.INVALID_CONTENT_SIZE,
            (
                "Invalid content size of tensor proto - Expected: 16 bytes; Actual: 15 bytes; "
                "input name: x"
            ),
        ),
    ],
)
def test_validation_order_and_texts(repo, manager, received, code, text):
    repo.write({"name": "tiny", "base_path": "models/tiny"})
    start(manager)
    instance = manager.get_version("tiny", 0)
    with pytest.raises(OvmsError) as error:
        validate(instance.inputs, received, instance.config)
    assert error.value.code is code
    assert str(error.value) == text
