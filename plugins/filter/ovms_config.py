# Copyright: (c) 2026, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0
"""Checks of one OVMS model entry (config.json ``config``) as OVMS itself checks it.

``ovms_model_errors`` returns what OVMS would refuse in a model's settings, so that the
validation play stops a bad entry before it reaches a store: OVMS's config.json schema (types of
shape, layout, batch_size, nireq, model_version_policy and plugin_config values), its nireq
limit, OpenVINO's device names, and whether each ``plugin_config`` key is one the target device
supports. OVMS checks that last one before loading a model; a key the device does not know stops
the model and every model after it in config.json. ``ovms_device_needs`` tells which accelerator a
device needs. Their documentation is in ``ovms_model_errors.yml`` and ``ovms_device_needs.yml``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

# OVMS's limit (modelinstance.cpp, MAX_NIREQ_COUNT): a larger nireq makes the model fail to load.
MAX_NIREQ = 100000

# Keys each OpenVINO device plugin reports as SUPPORTED_PROPERTIES, which is what OVMS checks
# plugin_config against (ov_utils.cpp, validatePluginConfiguration): for "PLUGIN:DEV1,DEV2(n)" the
# keys of PLUGIN and of each listed device together, and ENABLE_MMAP always.
# As OpenVINO 2026.4.1 (the runtime of the default OVMS image) reports them; tests/unit compares
# this table with the installed openvino. The GPU and NPU plugins answer without a device too;
# with an NPU present its plugin may report more keys than listed here.
DEVICE_PROPERTIES: dict[str, frozenset[str]] = {
    "CPU": frozenset({
        "AVAILABLE_DEVICES", "COMPATIBILITY_CHECK", "CPU_DENORMALS_OPTIMIZATION",
        "CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE", "DEVICE_ARCHITECTURE", "DEVICE_ID", "DEVICE_TYPE",
        "DYNAMIC_QUANTIZATION_GROUP_SIZE", "ENABLE_CPU_PINNING", "ENABLE_CPU_RESERVATION",
        "ENABLE_HYPER_THREADING", "ENABLE_TENSOR_PARALLEL", "ENABLE_WEIGHTLESS",
        "EXECUTION_DEVICES", "EXECUTION_MODE_HINT", "FULL_DEVICE_NAME", "INFERENCE_NUM_THREADS",
        "INFERENCE_PRECISION_HINT", "KEY_CACHE_GROUP_SIZE", "KEY_CACHE_PRECISION",
        "KV_CACHE_PRECISION", "LOG_LEVEL", "MODEL_DISTRIBUTION_POLICY", "NUM_STREAMS",
        "OPTIMIZATION_CAPABILITIES", "PERFORMANCE_HINT", "PERFORMANCE_HINT_NUM_REQUESTS",
        "PERF_COUNT", "RANGE_FOR_ASYNC_INFER_REQUESTS", "RANGE_FOR_STREAMS", "SCHEDULING_CORE_TYPE",
        "SUPPORTED_PROPERTIES", "TBB_PARTITIONER", "VALUE_CACHE_GROUP_SIZE",
        "VALUE_CACHE_PRECISION", "WEIGHTS_PATH"
    }),
    "GPU": frozenset({
        "ACTIVATIONS_SCALE_FACTOR", "AVAILABLE_DEVICES", "CACHE_DIR", "CACHE_ENCRYPTION_CALLBACKS",
        "CACHE_MODE", "COMPATIBILITY_CHECK", "COMPILATION_NUM_THREADS", "CONFIG_FILE",
        "DEVICE_ARCHITECTURE", "DEVICE_GOPS", "DEVICE_ID", "DEVICE_LUID", "DEVICE_PCI_INFO",
        "DEVICE_TYPE", "DEVICE_UUID", "DYNAMIC_QUANTIZATION_GROUP_SIZE", "ENABLE_CPU_PINNING",
        "ENABLE_CPU_RESERVATION", "EXECUTION_MODE_HINT", "FULL_DEVICE_NAME", "GPU_CACHELINE_SIZE",
        "GPU_DEVICE_ID", "GPU_DEVICE_MAX_ALLOC_MEM_SIZE", "GPU_DEVICE_TOTAL_MEM_SIZE",
        "GPU_DISABLE_WINOGRAD_CONVOLUTION", "GPU_ENABLE_LARGE_ALLOCATIONS",
        "GPU_ENABLE_LOOP_UNROLLING", "GPU_ENABLE_LORA_OPERATION", "GPU_ENABLE_SDPA_OPTIMIZATION",
        "GPU_EXECUTION_UNITS_COUNT", "GPU_HOST_TASK_PRIORITY", "GPU_MEMORY_STATISTICS",
        "GPU_QUEUE_PRIORITY", "GPU_QUEUE_THROTTLE", "GPU_UARCH_VERSION", "INFERENCE_PRECISION_HINT",
        "KV_CACHE_PRECISION", "MAX_BATCH_SIZE", "MODEL_PRIORITY", "MODEL_PTR", "NUM_STREAMS",
        "OFFLOAD_RATIO", "OPTIMAL_BATCH_SIZE", "OPTIMIZATION_CAPABILITIES", "PERFORMANCE_HINT",
        "PERFORMANCE_HINT_NUM_REQUESTS", "PERF_COUNT", "RANGE_FOR_ASYNC_INFER_REQUESTS",
        "RANGE_FOR_STREAMS", "SUPPORTED_PROPERTIES", "WEIGHTS_PATH"
    }),
    "NPU": frozenset({
        "AVAILABLE_DEVICES", "CACHE_DIR", "CACHE_ENCRYPTION_CALLBACKS", "DEVICE_GOPS", "DEVICE_ID",
        "DEVICE_PCI_INFO", "DEVICE_TYPE", "DEVICE_UUID", "EXECUTION_DEVICES", "LOG_LEVEL",
        "MODEL_PRIORITY", "MODEL_PTR", "NPU_BYPASS_UMD_CACHING", "NPU_COMPILER_TYPE",
        "NPU_COMPILER_VERSION", "NPU_DEFER_WEIGHTS_LOAD", "NPU_DEVICE_ALLOC_MEM_SIZE",
        "NPU_DEVICE_TOTAL_MEM_SIZE", "NPU_DRIVER_VERSION", "NUM_STREAMS",
        "OPTIMAL_NUMBER_OF_INFER_REQUESTS", "OPTIMIZATION_CAPABILITIES", "PERFORMANCE_HINT",
        "PERFORMANCE_HINT_NUM_REQUESTS", "PERF_COUNT", "RANGE_FOR_ASYNC_INFER_REQUESTS",
        "RANGE_FOR_STREAMS", "SUPPORTED_PROPERTIES", "WEIGHTS_PATH"
    }),
    "AUTO": frozenset({
        "DEVICES_UTILIZATION_THRESHOLD", "DEVICE_BIND_BUFFER", "ENABLE_RUNTIME_FALLBACK",
        "ENABLE_STARTUP_FALLBACK", "EXECUTION_MODE_HINT", "FULL_DEVICE_NAME", "LOG_LEVEL",
        "LOW_POWER_DEVICE", "MODEL_PRIORITY", "MULTI_DEVICE_PRIORITIES",
        "OPTIMIZATION_CAPABILITIES", "PERFORMANCE_HINT", "PERFORMANCE_HINT_NUM_REQUESTS",
        "PERF_COUNT", "PERF_CURVE_TABLE", "SCHEDULE_POLICY", "SUPPORTED_PROPERTIES"
    }),
    "MULTI": frozenset({
        "DEVICE_BIND_BUFFER", "EXECUTION_MODE_HINT", "FULL_DEVICE_NAME", "LOG_LEVEL",
        "MODEL_PRIORITY", "MULTI_DEVICE_PRIORITIES", "OPTIMIZATION_CAPABILITIES",
        "PERFORMANCE_HINT", "PERFORMANCE_HINT_NUM_REQUESTS", "PERF_COUNT", "SCHEDULE_POLICY",
        "SUPPORTED_PROPERTIES"
    }),
    "HETERO": frozenset({
        "FULL_DEVICE_NAME", "MODEL_DISTRIBUTION_POLICY", "MULTI_DEVICE_PRIORITIES",
        "OPTIMIZATION_CAPABILITIES", "SUPPORTED_PROPERTIES"
    }),
    "BATCH": frozenset({
        "AUTO_BATCH_TIMEOUT", "FULL_DEVICE_NAME", "MULTI_DEVICE_PRIORITIES", "PERF_COUNT",
        "SUPPORTED_PROPERTIES"
    }),
}
ALWAYS_SUPPORTED = frozenset({"ENABLE_MMAP"})

# Which accelerator a physical device needs on the server.
ACCELERATOR_OF = {"CPU": "none", "GPU": "gpu", "NPU": "npu"}

_PHYSICAL = r"(?:CPU|NPU|GPU(?:\.[0-9]+)?)"
# AUTO may exclude a device with a leading '-'; BATCH takes one device and an optional batch size.
_DEVICE = re.compile(
    rf"^(?:{_PHYSICAL}"
    rf"|AUTO(?::-?{_PHYSICAL}(?:,-?{_PHYSICAL})*)?"
    rf"|(?:MULTI|HETERO)(?::{_PHYSICAL}(?:,{_PHYSICAL})*)?"
    rf"|BATCH:{_PHYSICAL}(?:\([1-9][0-9]*\))?)$"
)
# A dimension: -1 (any), N, or a range N:M; shapes are written (1,3,224,224) or [1,3,224,224].
_DIM = r"\s*(?:-1|[0-9]+(?::[0-9]+)?)\s*"
_SHAPE = re.compile(rf"^(?:auto|\(?{_DIM}(?:,{_DIM})*\)?|\[{_DIM}(?:,{_DIM})*\])$")
_LAYOUT = re.compile(r"^[A-Z.?]+(?::[A-Z.?]+)?$")
_BATCH = re.compile(r"^(?:auto|[0-9]+)$")


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def device_plugins(device: str) -> list[str]:
    """The plugin names whose keys OVMS accepts for ``device``: the part before ':' and each
    listed device without its '(n)' or '.n' and without AUTO's '-' exclusion."""
    head, _sep, rest = device.partition(":")
    names = [head] + [d for d in rest.split(",") if d] if rest else [head]
    # OVMS asks OpenVINO for each name as written minus "(n)"; "GPU.1" answers like "GPU", while
    # an AUTO exclusion ("-CPU") is no device and adds no keys.
    return [re.sub(r"(\(.*\)|\.[0-9]+)$", "", n) for n in names]


def device_needs(device: Any) -> list[str]:
    """Accelerators ('gpu', 'npu') a device string needs, in order, without duplicates."""
    needs: list[str] = []
    if not isinstance(device, str):
        return needs
    for plugin in device_plugins(device.strip()):
        need = ACCELERATOR_OF.get(plugin, "none")
        if need != "none" and need not in needs:
            needs.append(need)
    return needs


def _policy_errors(policy: Any) -> list[str]:
    expected = ("expected one of {all: {}}, {latest: {num_versions: N}} or "
                "{specific: {versions: [N, ...]}} with N 1 or more")
    if not isinstance(policy, dict) or len(policy) != 1:
        return [f"model_version_policy {_show(policy)}: {expected}"]
    kind, body = next(iter(policy.items()))
    ok = isinstance(body, dict) and (
        (kind == "all" and body == {})
        or (kind == "latest" and list(body) == ["num_versions"] and _positive_int(body["num_versions"]))
        or (kind == "specific" and list(body) == ["versions"] and isinstance(body["versions"], list)
            and all(_positive_int(v) for v in body["versions"]))
    )
    return [] if ok else [f"model_version_policy {_show(policy)}: {expected}"]


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _shape_like_errors(key: str, value: Any, pattern: re.Pattern[str], expected: str) -> list[str]:
    # OVMS's schema: a string, or a mapping of input name to string.
    values = value.values() if isinstance(value, dict) else [value]
    if all(isinstance(v, str) and pattern.match(v.strip()) for v in values) and values:
        return []
    return [f"{key} {_show(value)}: expected {expected}, or a mapping of input name to one"]


def model_errors(entry: Any, default_device: str = "CPU") -> list[str]:
    """What OVMS would refuse in one model entry of ovms_models_list (merged with its catalog
    settings), each message naming the model and the key."""
    if not isinstance(entry, dict):
        raise AnsibleFilterError(f"ovms_model_errors expects a model entry (a mapping), got {_show(entry)}")
    name = entry.get("name", "?")
    errors: list[str] = []
    device = entry.get("target_device", default_device)
    device_ok = isinstance(device, str) and bool(_DEVICE.match(device.strip()))
    if not device_ok:
        errors.append(
            f"target_device {_show(device)} is not an OpenVINO device; expected CPU, GPU, GPU.<n>, NPU, "
            "AUTO[:devices], MULTI:devices, HETERO:devices or BATCH:<device>[(<batch>)]"
        )
    if "nireq" in entry:
        nireq = entry["nireq"]
        if isinstance(nireq, str) and nireq.strip().isdigit():
            nireq = int(nireq)
        if not isinstance(nireq, int) or isinstance(nireq, bool) or not 0 <= nireq <= MAX_NIREQ:
            errors.append(f"nireq {_show(entry['nireq'])}: expected a whole number from 0 to {MAX_NIREQ} (OVMS's limit)")
    if "shape" in entry:
        errors += _shape_like_errors("shape", entry["shape"], _SHAPE,
                                     'auto or dimensions such as "(1,3,224,224)" (-1 any, N:M a range)')
    if "layout" in entry:
        errors += _shape_like_errors("layout", entry["layout"], _LAYOUT, 'a layout such as "NHWC" or "NHWC:NCHW"')
    if "batch_size" in entry:
        batch = entry["batch_size"]
        ok = (isinstance(batch, int) and not isinstance(batch, bool) and batch >= 0) or (
            isinstance(batch, str) and bool(_BATCH.match(batch.strip())))
        if not ok:
            errors.append(f"batch_size {_show(batch)}: expected auto or a whole number")
    if "model_version_policy" in entry:
        errors += _policy_errors(entry["model_version_policy"])
    config = entry.get("plugin_config", {})
    if config is None:
        config = {}
    if not isinstance(config, dict):
        errors.append(f"plugin_config {_show(config)}: expected a mapping of OpenVINO property to value")
    else:
        bad_values = [k for k, v in config.items() if isinstance(v, (dict, list)) or v is None]
        if bad_values:
            errors.append(
                "plugin_config values must be strings, numbers or booleans; "
                + ", ".join(f"{k} is {_show(config[k])}" for k in bad_values)
            )
        if device_ok:
            plugins = device_plugins(device.strip())
            known = set(ALWAYS_SUPPORTED)
            for plugin in plugins:
                known |= DEVICE_PROPERTIES.get(plugin, frozenset())
            unsupported = [k for k in config if k not in known]
            if unsupported:
                errors.append(
                    f"plugin_config key {', '.join(unsupported)} is not supported by device {device} "
                    f"(OVMS would not load this model nor any model after it); {device} supports: "
                    + ", ".join(sorted(known - {"SUPPORTED_PROPERTIES"}))
                )
    return [f"ovms_models_list entry {name}: {e}" for e in errors]


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"ovms_model_errors": model_errors, "ovms_device_needs": device_needs}
