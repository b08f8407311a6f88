"""Bad inventories make `playbooks/site.yml` fail in its first play, before any change, with a
message that names the variable. Each case runs the real playbook (in check mode, against this
machine through the local connection) and reads the result through the JSON callback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()

BASE_VARS: dict[str, Any] = {
    "ansible_connection": "local",
    "ansible_python_interpreter": "/usr/bin/python3",
    # This machine has no systemd; the Docker Engine here is the test's own.
    "docker_engine_manage": False,
    "ovms_models_controller_cache_dir": str(CACHE / "models/cache"),
    "ovms_models_controller_repo_dir": str(CACHE / "models/repo"),
    "ovms_server_image_source": "archive",
    "ovms_server_image": "edge-retail/ovms-standin",
    "ovms_server_image_tag": "test",
    "ovms_server_image_archive": str(CACHE / "images/standin.tar"),
    "ovms_client_image_source": "archive",
    "ovms_client_image_archive": str(CACHE / "images/client.tar"),
    "ovms_proxy_image_archive": str(CACHE / "images/proxy.tar"),
    "ovms_client_input_files": [str(CACHE / "media/store-walk.mp4")],
}


def inventory(servers: list[str], clients: list[str], **overrides: Any) -> dict[str, Any]:
    return {
        "all": {
            "vars": {**BASE_VARS, **overrides},
            "children": {
                "ovms_servers": {"hosts": {h: None for h in servers}},
                "ovms_clients": {"hosts": {h: None for h in clients}},
            },
        }
    }


def with_stores(inv: dict[str, Any], stores: dict[str, list[str]]) -> dict[str, Any]:
    """`inv` laid out as a fleet: a group per store (named after it) that sets ovms_store."""
    for store, hosts in stores.items():
        inv["all"]["children"][store.replace("-", "_")] = {
            "hosts": dict.fromkeys(hosts), "vars": {"ovms_store": store}}
    return inv


def run_site(tmp_path: Path, inv: dict[str, Any]) -> dict[str, Any]:
    return run_check(tmp_path, inv, "site.yml")


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_COLLECTIONS_PATH": str(CACHE / "collections"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }


def run_check(tmp_path: Path, inv: dict[str, Any], playbook: str) -> dict[str, Any]:
    """playbooks/<playbook> in check mode against `inv`; it must fail. Its JSON result."""
    inv_file = tmp_path / "hosts.yml"
    inv_file.write_text(yaml.safe_dump(inv))
    env = _env()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "--check", "-i", str(inv_file),
         str(ROOT / "playbooks" / playbook)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert proc.returncode != 0, f"{playbook} accepted a bad inventory:\n{proc.stdout[-3000:]}"
    return json.loads(proc.stdout)


def failures(result: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(play index, task name, message) of every failed task result."""
    found = []
    for index, play in enumerate(result["plays"]):
        for task in play["tasks"]:
            for host_result in task["hosts"].values():
                items = host_result.get("results") or [host_result]
                for item in items:
                    if item.get("failed"):
                        found.append((index, task["task"]["name"], str(item.get("msg", ""))))
    return found


def changed_tasks(result: dict[str, Any]) -> list[str]:
    return [
        task["task"]["name"]
        for play in result["plays"]
        for task in play["tasks"]
        for host_result in task["hosts"].values()
        if host_result.get("changed")
    ]


CASES = {
    "empty server group": (
        inventory([], ["store1"]),
        "ovms_servers group is empty",
    ),
    "client without a server it can reach": (
        inventory(["store1"], ["store1", "till2"], ovms_client_server_host="nowhere"),
        'ovms_client_server_host is "nowhere", which is not in ovms_servers',
    ),
    "client with two servers to choose from": (
        inventory(["store1", "store2"], ["till2"]),
        ("till2 has no single OVMS server: several server hosts match (store1, store2), so the "
         "choice is ambiguous"),
    ),
    "client whose store has no server": (
        inventory(["store1"], ["till2"], ovms_store="north", ovms_client_store="south"),
        "till2 has no single OVMS server in store south: no server host matches",
    ),
    "model not in the catalog": (
        inventory(["store1"], ["store1"], ovms_models_list=[{"name": "no-such-model"}]),
        "ovms_models_list names no-such-model, not in the catalog",
    ),
    "duplicate model name": (
        inventory(["store1"], ["store1"],
                  ovms_models_list=[{"name": "person-detection"}, {"name": "person-detection"}]),
        "ovms_models_list names a model more than once: person-detection",
    ),
    "negative nireq": (
        inventory(["store1"], ["store1"],
                  ovms_models_list=[{"name": "person-detection", "nireq": -1}]),
        "ovms_models_list entry person-detection: nireq -1: expected a whole number from 0 to 100000",
    ),
    "unknown target_device": (
        inventory(["store1"], ["store1"],
                  ovms_models_list=[{"name": "person-detection", "target_device": "TPU"}]),
        'ovms_models_list entry person-detection: target_device "TPU" is not an OpenVINO device',
    ),
    "a port used twice": (
        inventory(["store1"], ["store1"], ovms_server_grpc_port=9000, ovms_server_rest_port=9000),
        "ovms_server_grpc_port (9000) and ovms_server_rest_port (9000) must be two different",
    ),
    "TFS client against an OVMS without that API": (
        inventory(["store1"], ["store1"], ovms_server_image="openvino/model_server",
                  ovms_server_image_source="pull", ovms_server_image_tag="2026.3",
                  ovms_client_api="tfs"),
        "ovms_client_api is tfs, but store1 runs openvino/model_server:2026.3",
    ),
    "server archive missing on the controller": (
        inventory(["store1"], ["store1"], ovms_server_image_archive="/nonexistent/ovms.tar"),
        'ovms_server_image_archive "/nonexistent/ovms.tar" is not a file on the controller',
    ),
    "server archive holding another image": (
        inventory(["store1"], ["store1"], ovms_server_image_archive=str(CACHE / "images/proxy.tar")),
        (f"ovms_server_image_archive: {CACHE / 'images/proxy.tar'} does not hold "
         "edge-retail/ovms-standin:test; it holds edge-retail/ovms-proxy:1.22-1"),
    ),
    "no model version kept": (
        inventory(["store1"], ["store1"], ovms_models_keep_versions=0),
        "ovms_models_keep_versions is 0; expected 1 or more",
    ),
    "server image ID that is not an ID": (
        inventory(["store1"], ["store1"], ovms_server_image_id="edge-retail/ovms-standin:test"),
        'ovms_server_image_id is "edge-retail/ovms-standin:test"; expected sha256: and 64 hex digits',
    ),
    "pinned model version that is not a number": (
        inventory(["store1"], ["store1"], ovms_server_model_versions={"person-detection": "two"}),
        "ovms_server_model_versions is",
    ),
    "client image ID that is not an ID": (
        inventory(["store1"], ["store1"], ovms_client_image_id="sha256:1234"),
        'ovms_client_image_id is "sha256:1234"; expected sha256: and 64 hex digits',
    ),
    "client archive missing on the controller": (
        inventory(["store1"], ["store1"], ovms_client_image_archive="/nonexistent/client.tar"),
        'ovms_client_image_archive "/nonexistent/client.tar" is not a file on the controller',
    ),

    # --- values the argument specs refuse (each role's `preflight` entry point) ---
    "restart policy the spec refuses": (
        inventory(["store1"], ["store1"], ovms_server_restart_policy="sometimes"),
        "ovms_server_restart_policy",
    ),
    "port that is not a number": (
        inventory(["store1"], ["store1"], ovms_server_grpc_port="nine thousand"),
        "ovms_server_grpc_port",
    ),
    "boolean that is not a boolean": (
        inventory(["store1"], ["store1"], ovms_client_loop="sometimes"),
        "ovms_client_loop",
    ),
    # --- wrong shapes: a mapping where a list goes, a string where a list goes, and back ---
    "model list written as a mapping": (
        inventory(["store1"], ["store1"], ovms_models_list={"name": "person-detection"}),
        'store1: ovms_models_list is {"name": "person-detection"}, expected a list',
    ),
    "input files written as a string": (
        inventory(["store1"], ["store1"], ovms_client_input_files=str(CACHE / "media/store-walk.mp4")),
        "ovms_client_input_files is",
    ),
    "client profile written as a list": (
        inventory(["store1"], ["store1"], ovms_client_profile=["model_name", "person-detection"]),
        'ovms_client_profile is ["model_name", "person-detection"], expected a mapping',
    ),
    "model entry with a key OVMS does not know": (
        inventory(["store1"], ["store1"],
                  ovms_models_list=[{"name": "person-detection", "stateful": True}]),
        "stateful",
    ),
    "model entry without a name": (
        inventory(["store1"], ["store1"], ovms_models_list=[{"nireq": 2}]),
        "name",
    ),
    # --- OVMS settings checked as OVMS checks them ---
    "plugin_config that is a list": (
        inventory(["store1"], ["store1"],
                  ovms_models_list=[{"name": "person-detection", "plugin_config": ["NUM_STREAMS", 2]}]),
        "plugin_config",
    ),
    "plugin_config value that is a mapping": (
        inventory(["store1"], ["store1"], ovms_models_list=[
            {"name": "person-detection", "plugin_config": {"NUM_STREAMS": {"value": 2}}}]),
        "plugin_config values must be strings, numbers or booleans; NUM_STREAMS is",
    ),
    "plugin_config key the device does not support": (
        inventory(["store1"], ["store1"], ovms_models_list=[
            {"name": "person-detection", "target_device": "AUTO"}]),
        ("ovms_models_list entry person-detection: plugin_config key INFERENCE_PRECISION_HINT is not "
         "supported by device AUTO"),
    ),
    "malformed shape": (
        inventory(["store1"], ["store1"], ovms_models_list=[
            {"name": "person-detection", "shape": "(1,300,x,3)"}]),
        'ovms_models_list entry person-detection: shape "(1,300,x,3)": expected auto or dimensions',
    ),
    "malformed version policy": (
        inventory(["store1"], ["store1"], ovms_models_list=[
            {"name": "person-detection", "model_version_policy": {"latest": {"num_versions": 0}}}]),
        "ovms_models_list entry person-detection: model_version_policy",
    ),
    "nireq beyond what OVMS accepts": (
        inventory(["store1"], ["store1"], ovms_models_list=[{"name": "person-detection", "nireq": 100001}]),
        "nireq 100001: expected a whole number from 0 to 100000",
    ),
    "batch_size that is not a size": (
        inventory(["store1"], ["store1"], ovms_models_list=[{"name": "person-detection", "batch_size": "many"}]),
        'batch_size "many": expected auto or a whole number',
    ),
    "GPU model on a server without an accelerator": (
        inventory(["store1"], ["store1"], ovms_models_list=[
            {"name": "person-detection", "target_device": "GPU"}]),
        "store1: GPU in ovms_models_list needs gpu, but ovms_server_accelerator is none",
    ),
    "GPU accelerator on a host without its device nodes": (
        inventory(["store1"], ["store1"], ovms_server_accelerator="gpu", ovms_server_image_source="pull",
                  ovms_server_accelerator_dir="/nonexistent/dri"),
        "store1 has ovms_server_accelerator gpu, but no /nonexistent/dri/renderD* device node",
    ),
    # --- names Docker or X.509 refuse later ---
    "image name that carries a tag": (
        inventory(["store1"], ["store1"], ovms_server_image="openvino/model_server:2026.4.1",
                  ovms_server_image_source="pull"),
        'ovms_server_image is "openvino/model_server:2026.4.1"; expected a repository name',
    ),
    "container name Docker refuses": (
        inventory(["store1"], ["store1"], ovms_server_container_name="ovms server"),
        'ovms_server_container_name is "ovms server"; expected letters, digits',
    ),
    "client container named like the server's": (
        inventory(["store1"], ["store1"], ovms_client_container_name="ovms-server"),
        'store1: ovms_client_container_name is "ovms-server"',
    ),
    "store name too long for a certificate": (
        inventory(["store1"], ["till2"], ovms_store="s" * 45),
        "is too long for a certificate's common name",
    ),
    # --- settings that would only fail on the host ---
    "proxy port the non-root proxy cannot bind": (
        inventory(["store1"], ["till2"], ovms_proxy_grpc_port=443),
        "store1: ovms_proxy_grpc_port 443 / ovms_proxy_rest_port 8443: the proxy runs without root",
    ),
    "client setting the client itself refuses": (
        inventory(["store1"], ["store1"], ovms_client_env={"adapter": "yolo9"}),
        ("store1: the client refuses its settings (ovms_client_profile / ovms_client_env): invalid value "
         "'yolo9' for setting 'adapter' (from ovms_client_env, OVMS_CLIENT_ADAPTER): expected one of"),
    ),
    "client profile with a threshold out of range": (
        inventory(["store1"], ["store1"], ovms_client_profile={
            "model_name": "person-detection", "adapter": "ssd", "input_size": "300x300", "score_threshold": 7}),
        "invalid value",
    ),
    "jpeg frames with the tfs API": (
        inventory(["store1"], ["till2"], ovms_client_encoding="jpeg", ovms_client_api="tfs"),
        ("till2: the client refuses its settings (ovms_client_profile / ovms_client_env): setting "
         "'encoding' is jpeg (from ovms_client_env, OVMS_CLIENT_ENCODING), but 'api' is tfs (from "
         "ovms_client_env, OVMS_CLIENT_API): OVMS takes encoded images (binary inputs) only on the "
         "KServe API; set api: kserve, or encoding: raw"),
    ),
    "jpeg quality out of range": (
        inventory(["store1"], ["till2"], ovms_client_profile={
            "model_name": "person-detection", "adapter": "ssd", "input_size": "300x300", "jpeg_quality": 0}),
        ("till2: the client refuses its settings (ovms_client_profile / ovms_client_env): invalid value 0 "
         "for setting 'jpeg_quality' (from profile ovms_client_profile, key 'jpeg_quality'): expected an "
         "integer between 1 and 100"),
    ),
    "encoding in the profile instead of ovms_client_encoding": (
        inventory(["store1"], ["store1"], ovms_client_profile={
            "model_name": "person-detection", "adapter": "ssd", "input_size": "300x300", "encoding": "jpeg"}),
        "store1: ovms_client_profile sets encoding; set ovms_client_encoding instead",
    ),
    "an encoding the role does not know": (
        inventory(["store1"], ["store1"], ovms_client_encoding="png"),
        "ovms_client_encoding",
    ),
    # --- topology ---
    "host in a group the collection does not know": (
        {"all": {"vars": BASE_VARS, "children": {
            "ovms_servers": {"hosts": {"store1": None}},
            "ovms_clients": {"hosts": {"store1": None}},
            "ovms_client": {"hosts": {"till3": None}}}}},
        '"till3" is in neither ovms_servers nor ovms_clients but in ovms_client',
    ),
    "TLS file named in the inventory that does not exist": (
        inventory(["store1"], ["till2"], ovms_client_tls_ca="/nonexistent/ca.crt"),
        'till2: ovms_client_tls_ca is "/nonexistent/ca.crt" (not a file on the controller)',
    ),
    "remote client with its TLS files emptied": (
        inventory(["store1"], ["till2"], ovms_client_tls_ca="", ovms_client_tls_cert="", ovms_client_tls_key=""),
        "this client reaches store1 over the network, which takes mutual TLS only",
    ),
    "TFS client against a mirrored OVMS without that API": (
        inventory(["store1"], ["store1"], ovms_server_image="registry.example:5000/openvino/model_server",
                  ovms_server_image_source="pull", ovms_server_image_tag="2026.4.1", ovms_client_api="tfs"),
        "ovms_client_api is tfs, but store1 runs registry.example:5000/openvino/model_server:2026.4.1",
    ),
    "client host in two stores": (
        with_stores(inventory(["store1", "store2"], ["till2"]),
                    {"store-0001": ["store1", "till2"], "store-0002": ["store2", "till2"]}),
        'till2 is in 2 stores: group store_0001 sets ovms_store "store-0001", group store_0002 sets ovms_store "store-0002"',
    ),
    # --- typos ---
    "misspelt role variable": (
        inventory(["store1"], ["store1"], ovms_server_imge_tag="2026.4.1"),
        "store1: ovms_server_imge_tag is declared by no role of edge_retail.ovms (did you mean ovms_server_image_tag?)",
    ),
}


# Values users write all the time that the argument specs convert: accepted by the validation
# play (the roles read them with | int and | bool), as are devices and names OVMS and Docker take.
VALID: dict[str, dict[str, Any]] = {
    "quoted port numbers and a boolean written as a string": {
        "ovms_server_grpc_port": "9100", "ovms_server_rest_port": "8100", "ovms_client_loop": "false",
        "ovms_server_metrics_enable": "yes"},
    "a BATCH device": {"ovms_models_list": [{"name": "person-detection", "target_device": "BATCH:CPU(16)"}]},
    "AUTO over the CPU with a CPU property": {
        "ovms_models_list": [{"name": "person-detection", "target_device": "AUTO:CPU"}]},
    "an image from a registry mirror": {
        "ovms_server_image": "registry.example:5000/openvino/model_server", "ovms_server_image_source": "pull",
        "ovms_server_image_tag": "2026.4.1"},
    "TLS files of a remote client named in the inventory": {
        "hosts": (["store1"], ["till2"]),
        "ovms_client_tls_ca": str(CACHE / "models/repo/manifest.json"),
        "ovms_client_tls_cert": str(CACHE / "models/repo/manifest.json"),
        "ovms_client_tls_key": str(CACHE / "models/repo/manifest.json")},
    "jpeg frames from a remote client, with their quality in the profile": {
        "hosts": (["store1"], ["till2"]), "ovms_client_encoding": "jpeg",
        "ovms_client_profile": {"model_name": "person-detection", "adapter": "ssd", "input_size": "300x300",
                                "jpeg_quality": "70"}},
    "another group's host in the inventory": {"others": {"store_visitors": ["visitor1"]}},
    "a fleet of two stores, each with its server and till": {
        "hosts": (["store1", "store2"], ["till1", "till2"]),
        "stores": {"store-0001": ["store1", "till1"], "store-0002": ["store2", "till2"]}},
    "OVMS settings in OVMS's own forms": {"ovms_models_list": [{
        "name": "person-detection", "nireq": "4", "shape": "(1,300,300,3)", "layout": "NHWC",
        "batch_size": "auto", "model_version_policy": {"latest": {"num_versions": 2}},
        "plugin_config": {"NUM_STREAMS": 2, "PERFORMANCE_HINT": "LATENCY", "ENABLE_MMAP": True}}]},
}


@pytest.mark.parametrize("case", list(VALID))
def test_valid_inventory_passes_validation(case: str, tmp_path: Path) -> None:
    inv_file = tmp_path / "hosts.yml"
    settings = dict(VALID[case])
    servers, clients = settings.pop("hosts", (["store1"], ["store1"]))
    others = settings.pop("others", {})
    stores = settings.pop("stores", {})
    inv = with_stores(inventory(servers, clients, **settings), stores)
    for group, hosts in others.items():
        inv["all"]["children"][group] = {"hosts": dict.fromkeys(hosts)}
    inv_file.write_text(yaml.safe_dump(inv))
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "--check", "-i", str(inv_file),
         str(ROOT / "playbooks" / "validate.yml")],
        capture_output=True, text=True, env=_env(), timeout=600, check=False,
    )
    assert proc.returncode == 0, f"{case}: refused:\n{proc.stdout[-3000:]}"
    for host, stats in json.loads(proc.stdout)["stats"].items():
        assert stats["failures"] == 0 and stats["changed"] == 0, (host, stats)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_inventory_fails_before_any_change(case: str, tmp_path: Path) -> None:
    inv, expected = CASES[case]
    result = run_site(tmp_path, inv)
    failed = failures(result)
    assert failed, f"no task failed: {json.dumps(result['stats'])}"
    play_index, task, message = failed[0]
    assert play_index == 0, f"{case}: first failure in play {play_index} ({task}), not preflight"
    assert expected in " ".join(message.split()), f"{case}: {task}: {message}"
    assert changed_tasks(result) == [], f"{case}: tasks changed before the failure"


def preflight_facts(tmp_path: Path, inv: dict[str, Any], task: str) -> dict[str, dict[str, Any]]:
    """validate.yml in check mode on `inv` (it must pass): the facts `task` set, per host."""
    inv_file = tmp_path / "hosts.yml"
    inv_file.write_text(yaml.safe_dump(inv))
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "--check", "-i", str(inv_file),
         str(ROOT / "playbooks" / "validate.yml")],
        capture_output=True, text=True, env=_env(), timeout=600, check=False,
    )
    assert proc.returncode == 0, f"refused:\n{proc.stdout[-3000:]}"
    facts: dict[str, dict[str, Any]] = {}
    for play in json.loads(proc.stdout)["plays"]:
        for result in play["tasks"]:
            # Role tasks are named "<role> : <task>".
            if result["task"]["name"].split(" : ")[-1] == task:
                for host, host_result in result["hosts"].items():
                    facts[host] = host_result.get("ansible_facts", {})
    return facts


@pytest.mark.parametrize(
    ("api", "expected"),
    [("kserve", {"store1": "raw", "till2": "jpeg"}), ("tfs", {"store1": "raw", "till2": "raw"})],
)
def test_auto_encoding_is_jpeg_only_for_a_remote_server_on_kserve(
    api: str, expected: dict[str, str], tmp_path: Path
) -> None:
    facts = preflight_facts(
        tmp_path, inventory(["store1"], ["store1", "till2"], ovms_client_api=api),
        "Work out how frames travel to the server.",
    )
    assert {host: f["__ovms_client_encoding"] for host, f in facts.items()} == expected


# --- every role variable, from the argument specs --------------------------------------------
# container_image's variables are passed by the roles that include it, not set in inventories.
INVENTORY_ROLES = sorted(
    p.parts[-3] for p in (ROOT / "roles").glob("*/meta/argument_specs.yml") if p.parts[-3] != "container_image")


def _options(role: str) -> dict[str, dict[str, Any]]:
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]["options"]


def _bad_value(option: dict[str, Any]) -> tuple[str, Any] | None:
    """A value the option must refuse, and which check refuses it: 'shape' (the validation
    play's own list/mapping/single-value check) or 'spec' (the role's argument spec)."""
    kind = option.get("type", "str")
    if "choices" in option:
        return "spec", "not-one-of-the-choices"
    return {
        "int": ("spec", "lots"),
        "float": ("spec", "fast"),
        "bool": ("spec", "perhaps"),
        "list": ("shape", {"not": "a list"}),
        "dict": ("shape", ["not", "a mapping"]),
        "str": ("shape", {"not": "a string"}),
        "path": ("shape", ["not", "a path"]),
    }.get(kind)


def _bad_settings(check: str, roles: list[str]) -> dict[str, Any]:
    settings = {}
    for role in roles:
        for name, option in _options(role).items():
            bad = _bad_value(option)
            if bad is not None and bad[0] == check:
                settings[name] = bad[1]
    return settings


# One run per role for the argument specs (a role's spec reports all its errors at once, and the
# first role that fails stops the play), one run for the shape check of every role. A server and
# a remote client: every role's preflight runs, the proxy's and the TLS ones included.
SPEC_RUNS = {f"spec of {role}": _bad_settings("spec", [role]) for role in INVENTORY_ROLES
             if _bad_settings("spec", [role])}
SPEC_RUNS["shape of every role's variables"] = _bad_settings("shape", INVENTORY_ROLES)


def test_every_inventory_variable_has_a_bad_value_tested() -> None:
    tested = {name for settings in SPEC_RUNS.values() for name in settings}
    declared = {name for role in INVENTORY_ROLES for name in _options(role)}
    assert not declared - tested, f"no bad value generated for {sorted(declared - tested)}"


@pytest.mark.parametrize("run", list(SPEC_RUNS))
def test_every_bad_role_variable_is_named_before_any_change(run: str, tmp_path: Path) -> None:
    settings = SPEC_RUNS[run]
    assert settings, f"{run}: nothing to test"
    result = run_site(tmp_path, inventory(["store1"], ["till2"], **settings))
    failed = failures(result)
    assert failed, f"no task failed: {json.dumps(result['stats'])}"
    assert {index for index, _task, _msg in failed} == {0}, f"{run}: failures after preflight: {failed}"
    messages = " ".join(" ".join(message.split()) for _index, _task, message in failed)
    missing = [name for name in settings if name not in messages]
    assert not missing, f"{run}: not named in the refusal: {missing}\n{messages[:3000]}"
    assert changed_tasks(result) == [], f"{run}: tasks changed before the failure"
