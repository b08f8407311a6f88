"""Target devices: which plugin_config keys a device accepts, checked before loading as OVMS does.

OVMS (validatePluginConfiguration in src/ov_utils.cpp) asks OpenVINO for SUPPORTED_PROPERTIES
of every plugin named in target_device: for "BATCH:CPU(16)" it asks BATCH and CPU, for
"HETERO:GPU.0,CPU" HETERO, GPU.0 and CPU, for plain "AUTO" only AUTO. ENABLE_MMAP is always
accepted. A device OpenVINO does not know contributes no keys (a warning is logged). The first
key, in sorted order, that none of them supports fails the check.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import openvino as ov

ALWAYS_SUPPORTED = frozenset({"ENABLE_MMAP"})
SUPPORTED_PROPERTIES = "SUPPORTED_PROPERTIES"
DEFAULT_DEVICE = "CPU"
# One line to log: (logging level, text).
Record = tuple[int, str]


def plugin_names(target_device: str) -> list[str]:
    """The plugins whose properties count for a target device, in the order OVMS asks them."""
    head, colon, tail = target_device.partition(":")
    if not colon:
        return [target_device]
    # std::getline over "," yields no token after a trailing comma.
    parts = tail.split(",")
    if parts and parts[-1] == "":
        parts.pop()
    return [head, *(part.split("(", 1)[0] for part in parts)]


def supported_keys(core: ov.Core, target_device: str) -> tuple[set[str], list[Record]]:
    """The plugin_config keys target_device accepts, and the warnings asking for them gave."""
    keys: set[str] = set(ALWAYS_SUPPORTED)
    records: list[Record] = []
    for name in plugin_names(target_device):
        records.append((logging.DEBUG, f"Validating plugin: {name}; configuration"))
        try:
            keys.update(str(key) for key in core.get_property(name, SUPPORTED_PROPERTIES))
        except (RuntimeError, TypeError) as error:  # a device OpenVINO does not know
            text = str(error).strip().replace("\n", " ")
            records.append(
                (
                    logging.WARNING,
                    (
                        f"Exception thrown from IE when requesting plugin: {name}; "
                        f"key: {SUPPORTED_PROPERTIES}; value. Error: {text}"
                    ),
                )
            )
    return keys, records


def check_plugin_config(
    core: ov.Core, target_device: str, plugin_config: Iterable[str]
) -> list[Record] | None:
    """None when every key is supported; otherwise the lines OVMS logs for the failure."""
    keys, records = supported_keys(core, target_device)
    for key in sorted(plugin_config):
        if key in keys:
            continue
        records.append(
            (
                logging.ERROR,
                (
                    f"Plugin config key: {key} not found in supported config keys for device: "
                    f"{target_device}."
                ),
            )
        )
        records.append((logging.INFO, "List of supported keys for this device:"))
        records.extend((logging.INFO, supported) for supported in sorted(keys))
        return records
    return None
