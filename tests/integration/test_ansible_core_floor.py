"""The collection on the lowest ansible-core it supports.

meta/runtime.yml's requires_ansible is the one statement of the supported range; the rest of
the tests run the venv's ansible-core (requirements/python.txt), the newest. Here a second venv
holds the newest release of the lowest minor requires_ansible admits (from PyPI), under the
lowest Python that release runs on, plus what the playbooks need on the controller from
meta/ee-requirements.txt. It is cached under $CACHE_DIR/venv-ansible-core-floor and rebuilt only
when what it is built from changes. With it the built tarball is installed, the site playbook
runs in check mode against the local single-system store (as test_collection_install.py does
with the venv's ansible-core), and the validation play refuses bad inventories with the same
messages as on the newest release. Its collection dependencies (community.docker,
community.crypto, and ansible.posix for the JSON callback) come from the main venv's `ansible`
package, and must declare support for the floor.
"""

from __future__ import annotations

import fcntl
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from test_collection_install import (
    CACHE,
    ROOT,
    build_and_install,
    site_in_check_mode,
)
from test_execution_environment import (
    find_interpreter,
    python_floor,
    requirements,
    requires_ansible_floor,
)
from test_site_bad_input import CASES, VALID, changed_tasks, failures, inventory

# The site check-mode run reads the image archives and the model repository: wait for the
# session builds (tests/conftest.py keeps this file on one worker with the other site runs).
pytestmark = pytest.mark.usefixtures("built_images", "model_repo")

FLOOR_VENV = CACHE / "venv-ansible-core-floor"
MARKER = FLOOR_VENV / "edge-retail-built-from.json"
# meta/ee-requirements.txt packages a check-mode run against the demo's built model repository
# does not use: the models tool imports openvino only to convert a model, and tqdm is optional.
# ansible-core brings PyYAML and cryptography itself; their ranges still apply.
NOT_NEEDED = {"openvino", "tqdm"}
# Collections the runs here use, from the main venv's `ansible` package.
DEPENDENCIES = ["community.docker", "community.crypto", "ansible.posix"]

# Bad inventories whose refusal goes through the validation play's own Jinja (the typo check
# with its closest name, the per-store export of ansible-inventory, the list/mapping shape
# check, per-device plugin_config, stray hosts), an argument spec and the client's settings
# check under the controller's Python. Each must fail with the message the newest release
# gives (test_site_bad_input.py's CASES).
FLOOR_CASES = [
    "misspelt role variable",
    "client host in two stores",
    "model list written as a mapping",
    "plugin_config key the device does not support",
    "client setting the client itself refuses",
    "host in a group the collection does not know",
    "restart policy the spec refuses",
]
# Strings where numbers and booleans go, which the argument specs convert.
FLOOR_VALID = "quoted port numbers and a boolean written as a string"


def floor_requirements() -> list[str]:
    major, minor = requires_ansible_floor()
    return [f"ansible-core>={major}.{minor},<{major}.{minor + 1}"] + [
        str(r) for r in requirements(ROOT / "meta/ee-requirements.txt")
        if r.name.lower() not in NOT_NEEDED
    ]


def venv_site_packages() -> Path:
    """The directory of this venv's `ansible` package's collections."""
    for entry in map(Path, sys.path):
        if (entry / "ansible_collections/community/docker/MANIFEST.json").is_file():
            return entry
    pytest.fail("the venv has no ansible_collections/community/docker (the `ansible` package)")


@pytest.fixture(scope="module")
def floor_bin() -> Path:
    """The bin directory of the floor venv: built once, reused while the floor, its Python and
    the requirements stay the same."""
    floor_python = python_floor()
    wanted = {"python": list(floor_python), "requirements": floor_requirements()}
    lock = CACHE / "venv-ansible-core-floor.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if MARKER.is_file() and json.loads(MARKER.read_text()) == wanted:
            return FLOOR_VENV / "bin"
        python = find_interpreter(floor_python)
        assert python, (f"no Python {floor_python[0]}.{floor_python[1]} on this machine, the "
                        f"lowest controller Python of ansible-core {requires_ansible_floor()}")
        # A half-built or outdated venv is replaced as a whole.
        subprocess.run([python, "-m", "venv", "--clear", str(FLOOR_VENV)], check=True,
                       capture_output=True, text=True, timeout=600)
        proc = subprocess.run(
            [str(FLOOR_VENV / "bin/python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", *wanted["requirements"]],
            capture_output=True, text=True, timeout=1800, check=False,
        )
        assert proc.returncode == 0, f"pip install {wanted['requirements']}:\n{proc.stderr}"
        MARKER.write_text(json.dumps(wanted))
    return FLOOR_VENV / "bin"


@pytest.fixture(scope="module")
def floor_installed(floor_bin: Path, tmp_path_factory: pytest.TempPathFactory,
                    ) -> tuple[Path, dict[str, str]]:
    """The built tarball, installed with the floor's ansible-galaxy."""
    return build_and_install(tmp_path_factory.mktemp("floor-collection"), bin_dir=floor_bin,
                             dependencies=venv_site_packages())


def core_version(bin_dir: Path) -> tuple[Version, tuple[int, int]]:
    """ansible-core's version and its Python's, as `ansible --version` reports them."""
    proc = subprocess.run([str(bin_dir / "ansible"), "--version"], capture_output=True,
                          text=True, check=True, timeout=120)
    core = re.search(r"\[core (\S+)\]", proc.stdout)
    python = re.search(r"python version = (\d+)\.(\d+)", proc.stdout)
    assert core and python, proc.stdout
    return Version(core.group(1)), (int(python.group(1)), int(python.group(2)))


def test_floor_venv_runs_the_lowest_supported_release(floor_bin: Path):
    core, python = core_version(floor_bin)
    spec = yaml.safe_load((ROOT / "meta/runtime.yml").read_text())["requires_ansible"]
    assert SpecifierSet(spec).contains(core), (core, spec)
    assert (core.major, core.minor) == requires_ansible_floor()
    assert python == python_floor()
    # And the main venv's is newer: the two runs cover both ends.
    venv_core = core_version(Path(sys.executable).parent)[0]
    assert (venv_core.major, venv_core.minor) > (core.major, core.minor)


@pytest.mark.parametrize("name", DEPENDENCIES)
def test_dependency_collection_supports_the_floor(name: str, floor_bin: Path):
    path = venv_site_packages() / "ansible_collections" / name.replace(".", "/")
    spec = yaml.safe_load((path / "meta/runtime.yml").read_text())["requires_ansible"]
    core = core_version(floor_bin)[0]
    assert SpecifierSet(spec).contains(core), f"{name} requires ansible-core {spec}, not {core}"


def test_site_on_the_floor_in_check_mode(floor_bin: Path, floor_installed, tmp_path: Path):
    collections, env = floor_installed
    # The site playbook from the installed copy, as a user on the floor runs it.
    result = site_in_check_mode(collections, env, tmp_path, bin_dir=floor_bin)
    assert result["stats"]["localhost"]["ok"] > 0


def validate(floor_bin: Path, env: dict[str, str], tmp_path: Path, inv: dict[str, Any],
             ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """edge_retail.ovms.validate of the floor in check mode against `inv`."""
    inv_file = tmp_path / "hosts.yml"
    inv_file.write_text(yaml.safe_dump(inv))
    env = {**env, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    proc = subprocess.run(
        [str(floor_bin / "ansible-playbook"), "--check", "-i", str(inv_file),
         "edge_retail.ovms.validate"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900, check=False,
    )
    try:
        return proc, json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON result (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-3000:]}")


@pytest.mark.parametrize("case", FLOOR_CASES)
def test_validation_refuses_bad_inventory_on_the_floor(case: str, floor_bin: Path,
                                                       floor_installed, tmp_path: Path):
    inv, expected = CASES[case]
    proc, result = validate(floor_bin, floor_installed[1], tmp_path, inv)
    assert proc.returncode != 0, f"{case}: accepted:\n{proc.stdout[-3000:]}"
    failed = failures(result)
    assert failed, f"{case}: no task failed: {json.dumps(result['stats'])}"
    task, message = failed[0][1:]
    assert expected in " ".join(message.split()), f"{case}: {task}: {message}"
    assert changed_tasks(result) == [], f"{case}: tasks changed before the failure"


def test_validation_accepts_valid_inventory_on_the_floor(floor_bin: Path, floor_installed,
                                                         tmp_path: Path):
    proc, result = validate(floor_bin, floor_installed[1], tmp_path,
                            inventory(["store1"], ["store1"], **VALID[FLOOR_VALID]))
    assert proc.returncode == 0, f"{FLOOR_VALID}: refused: {failures(result)}"
    assert result["stats"], result
    for host, stats in result["stats"].items():
        assert stats["failures"] == 0 and stats["changed"] == 0, (host, stats)
