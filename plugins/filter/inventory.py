# Copyright: (c) 2026, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0
"""Filter that finds hosts placed in two stores of one inventory.

A fleet inventory makes a group per store that sets ``ovms_store``. A host put in two such
groups silently gets one of the two values (Ansible merges group variables in its own order),
so a till could join the wrong store's server and certificates. Only the inventory's structure
shows it: the filter reads ``ansible-inventory --list --export``, which keeps each group's own
variables. Documentation is in ``store_conflicts.yml`` beside this file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from ansible.errors import AnsibleFilterError

_NOT_GROUPS = {"_meta"}


def _children(export: dict[str, Any]) -> dict[str, list[str]]:
    return {
        name: list((group or {}).get("children") or [])
        for name, group in export.items()
        if name not in _NOT_GROUPS
    }


def _descendants(group: str, children: dict[str, list[str]]) -> set[str]:
    found: set[str] = set()
    todo = list(children.get(group, []))
    while todo:
        child = todo.pop()
        if child not in found:
            found.add(child)
            todo.extend(children.get(child, []))
    return found


def _members(group: str, export: dict[str, Any], children: dict[str, list[str]]) -> set[str]:
    hosts: set[str] = set()
    for name in {group} | _descendants(group, children):
        hosts.update((export.get(name) or {}).get("hosts") or [])
    return hosts


def store_conflicts(
    export: dict[str, Any], hosts: Iterable[str], variable: str = "ovms_store"
) -> list[dict[str, Any]]:
    """Each of ``hosts`` that two or more of the most specific groups setting ``variable`` give
    different values, with those groups and values; hosts that set ``variable`` themselves are
    left alone (their own value wins whatever the groups say)."""
    if not isinstance(export, dict):
        raise AnsibleFilterError("store_conflicts expects the JSON of ansible-inventory --list --export")
    children = _children(export)
    hostvars = (export.get("_meta") or {}).get("hostvars") or {}
    setters = {
        name: group["vars"][variable]
        for name, group in export.items()
        if name not in _NOT_GROUPS and isinstance(group, dict) and variable in (group.get("vars") or {})
    }
    members = {name: _members(name, export, children) for name in setters}
    conflicts = []
    for host in hosts:
        if variable in (hostvars.get(host) or {}):
            continue
        groups = {name for name in setters if host in members[name]}
        # A child group overrides its parents on purpose: only the most specific groups compete.
        specific = {g for g in groups if not (_descendants(g, children) & groups)}
        values = {str(setters[g]) for g in specific}
        if len(values) > 1:
            groups_set = {g: setters[g] for g in sorted(specific)}
            message = f"{host} is in {len(groups_set)} stores: " + ", ".join(
                f"group {g} sets {variable} {json.dumps(v)}" for g, v in groups_set.items())
            conflicts.append({"host": host, "groups": groups_set, "message": message})
    return conflicts


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"store_conflicts": store_conflicts}
