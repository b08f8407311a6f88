"""OVMS's own rules for a model entry, checked before config.json reaches a store."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.edge_retail.ovms.plugins.filter.ovms_config import (
    DEVICE_PROPERTIES,
    FilterModule,
    device_needs,
    device_plugins,
    model_errors,
)

BASE = {"name": "det", "base_path": "/models/det", "target_device": "CPU"}


def errors(**keys: object) -> list[str]:
    return model_errors({**BASE, **keys})


def test_the_table_is_what_the_installed_openvino_reports() -> None:
    # The table stands for OpenVINO 2026.4.1, the runtime of the default OVMS image; a newer
    # openvino here means the table (and the supported OVMS release) must be looked at again.
    ov = pytest.importorskip("openvino")
    core = ov.Core()
    for device, keys in DEVICE_PROPERTIES.items():
        reported = {str(k) for k in core.get_property(device, "SUPPORTED_PROPERTIES")}
        assert reported == set(keys), f"{device}: only in openvino {reported - keys}, only in table {keys - reported}"


@pytest.mark.parametrize(
    "device",
    ["CPU", "GPU", "GPU.1", "NPU", "AUTO", "AUTO:GPU,CPU", "AUTO:-CPU", "MULTI:GPU,CPU",
     "HETERO:GPU,CPU", "BATCH:CPU(16)", "BATCH:GPU"],
)
def test_openvino_devices_are_accepted(device: str) -> None:
    assert errors(target_device=device) == []


@pytest.mark.parametrize("device", ["TPU", "cpu", "AUTO:", "BATCH", "BATCH:CPU(0)", "GPU.x", 3, ""])
def test_other_devices_are_refused_naming_the_model(device: object) -> None:
    found = errors(target_device=device)
    assert len(found) == 1 and found[0].startswith("ovms_models_list entry det: target_device"), found


def test_plugin_keys_are_checked_against_every_device_named() -> None:
    # Plain AUTO does not know INFERENCE_PRECISION_HINT; AUTO over the CPU takes the CPU's keys.
    refused = errors(target_device="AUTO", plugin_config={"INFERENCE_PRECISION_HINT": "f32"})
    assert len(refused) == 1
    assert "plugin_config key INFERENCE_PRECISION_HINT is not supported by device AUTO" in refused[0]
    assert "nor any model after it" in refused[0]
    assert errors(target_device="AUTO:CPU", plugin_config={"INFERENCE_PRECISION_HINT": "f32"}) == []
    assert errors(target_device="BATCH:CPU(16)", plugin_config={"NUM_STREAMS": 2}) == []
    # An AUTO exclusion names no device: OVMS gets no keys from it.
    assert errors(target_device="AUTO:-CPU", plugin_config={"NUM_STREAMS": 2})
    # ENABLE_MMAP is always allowed.
    assert errors(target_device="HETERO:CPU", plugin_config={"ENABLE_MMAP": False}) == []


def test_plugin_config_values_must_be_scalars() -> None:
    found = errors(plugin_config={"NUM_STREAMS": {"n": 2}, "PERF_COUNT": None})
    assert found == [
        (
            "ovms_models_list entry det: plugin_config values must be strings, numbers or booleans; "
            'NUM_STREAMS is {"n": 2}, PERF_COUNT is null'
        )
    ]
    assert errors(plugin_config=["NUM_STREAMS", 2])[0].endswith(
        'plugin_config ["NUM_STREAMS", 2]: expected a mapping of OpenVINO property to value')


@pytest.mark.parametrize("shape", ["auto", "(1,3,224,224)", "[1,3,224,224]", "1,3,224:448,-1",
                                   {"image": "(1,300,300,3)"}])
def test_ovms_shapes_are_accepted(shape: object) -> None:
    assert errors(shape=shape) == []


@pytest.mark.parametrize("shape", ["(1,3,x)", "", [1, 3, 224, 224], {"image": [1, 3]}, 7])
def test_malformed_shapes_are_refused(shape: object) -> None:
    assert errors(shape=shape)[0].startswith("ovms_models_list entry det: shape ")


@pytest.mark.parametrize("policy", [{"all": {}}, {"latest": {"num_versions": 2}},
                                    {"specific": {"versions": [1, 3]}}])
def test_version_policies_in_ovms_forms_are_accepted(policy: object) -> None:
    assert errors(model_version_policy=policy) == []


@pytest.mark.parametrize("policy", [{"latest": {"num_versions": 0}}, {"latest": {}}, {"all": {"x": 1}},
                                    {"specific": {"versions": "1"}}, {"all": {}, "latest": {"num_versions": 1}},
                                    "latest"])
def test_other_version_policies_are_refused(policy: object) -> None:
    assert errors(model_version_policy=policy)[0].startswith("ovms_models_list entry det: model_version_policy")


@pytest.mark.parametrize(("nireq", "ok"), [(0, True), (100000, True), ("4", True), (100001, False),
                                           (-1, False), (True, False), ("many", False)])
def test_nireq_within_ovms_limit(nireq: object, ok: bool) -> None:
    assert (errors(nireq=nireq) == []) is ok


@pytest.mark.parametrize(("batch", "ok"), [("auto", True), (4, True), ("8", True), ("many", False),
                                           (-1, False), (True, False)])
def test_batch_size(batch: object, ok: bool) -> None:
    assert (errors(batch_size=batch) == []) is ok


def test_layout() -> None:
    assert errors(layout="NHWC:NCHW") == []
    assert errors(layout={"image": "NHWC"}) == []
    assert errors(layout="nhwc")[0].startswith("ovms_models_list entry det: layout")


def test_default_device_applies_when_the_entry_names_none() -> None:
    entry = {"name": "det", "plugin_config": {"INFERENCE_PRECISION_HINT": "f32"}}
    assert model_errors(entry, "CPU") == []
    assert "not supported by device AUTO" in model_errors(entry, "AUTO")[0]


def test_not_a_mapping_is_an_error() -> None:
    with pytest.raises(AnsibleFilterError):
        model_errors(["det"])


@pytest.mark.parametrize(("device", "needs"), [("CPU", []), ("GPU", ["gpu"]), ("GPU.1", ["gpu"]),
                                               ("AUTO:GPU,CPU", ["gpu"]), ("MULTI:NPU,GPU", ["npu", "gpu"]),
                                               ("BATCH:GPU(4)", ["gpu"]), ("AUTO", []), (None, [])])
def test_device_needs(device: object, needs: list[str]) -> None:
    assert device_needs(device) == needs


def test_device_plugins_split_as_ovms_does() -> None:
    assert device_plugins("BATCH:CPU(16)") == ["BATCH", "CPU"]
    assert device_plugins("AUTO:GPU.1,-CPU") == ["AUTO", "GPU", "-CPU"]


def test_filters_are_registered() -> None:
    assert set(FilterModule().filters()) == {"ovms_model_errors", "ovms_device_needs"}
