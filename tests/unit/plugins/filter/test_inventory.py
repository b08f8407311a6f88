"""The two-stores check, fed by the real `ansible-inventory --list --export` of fleet-style
inventories (a group per store setting ovms_store, group_vars files, nested groups)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.edge_retail.ovms.plugins.filter.inventory import (
    FilterModule,
    store_conflicts,
)


def export(tmp_path: Path, hosts: dict[str, Any], group_vars: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    for group, values in (group_vars or {}).items():
        (inv / "group_vars").mkdir(exist_ok=True)
        (inv / "group_vars" / f"{group}.yml").write_text(yaml.safe_dump(values))
    proc = subprocess.run(
        [sys.executable, "-m", "ansible.cli.inventory", "--list", "--export", "-i", str(inv)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(proc.stdout)


FLEET = {
    "all": {
        "children": {
            "store_0001": {"hosts": {"srv1": None, "till1": None}, "vars": {"ovms_store": "store-0001"}},
            "store_0002": {"hosts": {"srv2": None, "till2": None}},
            "ovms_servers": {"hosts": {"srv1": None, "srv2": None}},
            "ovms_clients": {"hosts": {"till1": None, "till2": None}},
        }
    }
}


def test_a_fleet_with_one_store_per_host_has_no_conflict(tmp_path: Path) -> None:
    data = export(tmp_path, FLEET, {"store_0002": {"ovms_store": "store-0002"}})
    assert store_conflicts(data, ["srv1", "srv2", "till1", "till2"]) == []


def test_a_till_in_two_store_groups_is_found_with_both_stores(tmp_path: Path) -> None:
    fleet = json.loads(json.dumps(FLEET))
    fleet["all"]["children"]["store_0002"]["hosts"]["till1"] = None
    # One store sets it in the inventory file, the other in a group_vars file: both count.
    data = export(tmp_path, fleet, {"store_0002": {"ovms_store": "store-0002"}})
    assert store_conflicts(data, ["srv1", "srv2", "till1", "till2"]) == [
        {"host": "till1", "groups": {"store_0001": "store-0001", "store_0002": "store-0002"},
         "message": 'till1 is in 2 stores: group store_0001 sets ovms_store "store-0001", '
                    'group store_0002 sets ovms_store "store-0002"'}
    ]


def test_a_host_that_names_its_store_itself_is_left_alone(tmp_path: Path) -> None:
    fleet = json.loads(json.dumps(FLEET))
    fleet["all"]["children"]["store_0002"]["hosts"]["till1"] = {"ovms_store": "store-0001"}
    data = export(tmp_path, fleet, {"store_0002": {"ovms_store": "store-0002"}})
    assert store_conflicts(data, ["till1"]) == []


def test_a_child_group_overrides_its_parent_without_conflict(tmp_path: Path) -> None:
    nested = {
        "all": {
            "vars": {"ovms_store": "default-store"},
            "children": {
                "north": {
                    "vars": {"ovms_store": "north-hq"},
                    "children": {"store_0007": {"hosts": {"srv7": None}, "vars": {"ovms_store": "store-0007"}}},
                },
            },
        }
    }
    assert store_conflicts(export(tmp_path, nested), ["srv7"]) == []


def test_two_groups_with_the_same_store_do_not_conflict(tmp_path: Path) -> None:
    inv = {"all": {"children": {
        "a": {"hosts": {"h": None}, "vars": {"ovms_store": "s1"}},
        "b": {"hosts": {"h": None}, "vars": {"ovms_store": "s1"}},
    }}}
    assert store_conflicts(export(tmp_path, inv), ["h"]) == []


def test_the_input_must_be_the_export_mapping() -> None:
    with pytest.raises(AnsibleFilterError, match="ansible-inventory --list --export"):
        store_conflicts("[]", ["h"])  # type: ignore[arg-type]


def test_the_filter_is_registered() -> None:
    assert FilterModule().filters()["store_conflicts"] is store_conflicts
