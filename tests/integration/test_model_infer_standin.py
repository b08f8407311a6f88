"""edge_retail.ovms.model_infer against the OVMS stand-in.

The module runs the way Ansible runs it (a separate Python process reading its arguments from
a file) against the stand-in on loopback, which runs real OpenVINO inference on the models
tool's person detector. The stand-in, its configuration (the person detector and a model that
fails to load) and the wait for its first load are test_model_status_standin's.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import test_model_status_standin as model_status_tests
from test_model_status_standin import FIRST_LOAD_TIMEOUT, NAME_MISSING, Standin

# Its fixtures, used here under the same names: the link that makes the checkout importable as
# the collection, and one stand-in per test module, waited for with model_status.
collections_dir = model_status_tests.collections_dir
standin = model_status_tests.standin

MODULE = "ansible_collections.edge_retail.ovms.plugins.modules.model_infer"
VERSION_MISSING = "Model with requested version is not found"
# The person detector's tensors (models/catalog.yml): one image in, the TF OD API's four out.
DETECTOR_INPUTS = [{"name": "image_tensor", "shape": [1, 300, 300, 3], "datatype": "UINT8"}]
DETECTOR_OUTPUTS = {
    "detection_boxes": ([1, 100, 4], "FP32"),
    "detection_scores": ([1, 100], "FP32"),
    "detection_classes": ([1, 100], "FP32"),
    "num_detections": ([1], "FP32"),
}


def run_infer(collections_dir: Path, tmp_path: Path, **args: Any) -> tuple[int, dict[str, Any]]:
    args_file = tmp_path / f"args-{time.monotonic_ns()}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    done = subprocess.run([sys.executable, "-m", MODULE, str(args_file)],
                          env=dict(os.environ, PYTHONPATH=str(collections_dir)),
                          capture_output=True, text=True, timeout=FIRST_LOAD_TIMEOUT + 60,
                          check=False)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("api", ["kserve", "tfs"])
@pytest.mark.parametrize("check_mode", [False, True])
def test_person_detector_answers_with_its_output_shapes(
        standin: Standin, collections_dir: Path, tmp_path: Path, api: str,
        check_mode: bool) -> None:
    rc, result = run_infer(collections_dir, tmp_path, host="127.0.0.1", port=standin.port,
                           api=api, timeout=0, _ansible_check_mode=check_mode,
                           models=["person-detection", {"name": "person-detection",
                                                        "version": 1}])
    assert rc == 0, result["msg"]
    assert result["changed"] is False
    assert result["address"] == f"127.0.0.1:{standin.port}"
    for model, requested in zip(result["models"], [None, 1], strict=True):
        assert (model["name"], model["requested_version"], model["version"]) == (
            "person-detection", requested, 1)
        assert model["ok"] and model["error"] == ""
        assert model["inputs"] == DETECTOR_INPUTS
        assert {o["name"]: (o["shape"], o["datatype"]) for o in model["outputs"]} == (
            DETECTOR_OUTPUTS)
        assert isinstance(model["latency_ms"], float) and model["latency_ms"] > 0


@pytest.mark.parametrize("api", ["kserve", "tfs"])
def test_an_unknown_model_fails_naming_it(standin: Standin, collections_dir: Path,
                                          tmp_path: Path, api: str) -> None:
    rc, result = run_infer(collections_dir, tmp_path, host="127.0.0.1", port=standin.port,
                           api=api, timeout=FIRST_LOAD_TIMEOUT,
                           models=["person-detection", "shelf-detection",
                                   {"name": "person-detection", "version": 2}])
    assert rc == 1
    assert result["msg"].startswith(
        f"2 of 3 models on OVMS at 127.0.0.1:{standin.port} ({api} API) failed their inference "
        "check after ")
    assert result["msg"].endswith(
        f" s: 'shelf-detection': model metadata: NOT_FOUND: {NAME_MISSING}; "
        f"'person-detection' version 2: model metadata: NOT_FOUND: {VERSION_MISSING}")
    assert [(m["name"], m["ok"]) for m in result["models"]] == [
        ("person-detection", True), ("shelf-detection", False), ("person-detection", False)]
    # The model that answered still reports what it returned.
    assert len(result["models"][0]["outputs"]) == len(DETECTOR_OUTPUTS)


def test_a_model_that_failed_to_load_reports_the_server_text(
        standin: Standin, collections_dir: Path, tmp_path: Path) -> None:
    rc, result = run_infer(collections_dir, tmp_path, host="127.0.0.1", port=standin.port,
                           timeout=0, models=["broken", {"name": "broken", "version": 1}])
    assert rc == 1
    assert result["msg"].startswith("2 of 2 models")
    # No version is AVAILABLE, so there is no default version to send to.
    assert f"'broken': model metadata: NOT_FOUND: {VERSION_MISSING}" in result["msg"]
    # The version that is still LOADING is a transient error, reported at the deadline.
    assert ("'broken' version 1: model metadata: UNAVAILABLE: Model with requested version is "
            "not loaded yet") in result["msg"]
