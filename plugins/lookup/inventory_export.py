# Copyright: (c) 2026, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0
"""Lookup that reads an inventory the way ``ansible-inventory --list --export`` shows it."""

from __future__ import annotations

DOCUMENTATION = r"""
name: inventory_export
author:
  - edge_retail platform team (!UNKNOWN)
version_added: "0.2.0"
short_description: Each group's and host's own variables, as C(ansible-inventory --list --export) shows them
description:
  - Parses the given inventory sources again, in the controller process that runs the play,
    and returns the structure C(ansible-inventory --list --export) prints, without starting
    C(ansible-inventory) (a second Ansible, seconds per run).
  - Each group has its direct C(hosts), its C(children) and its own C(vars) (from the source
    and from C(group_vars/) beside the source or the playbook); C(_meta.hostvars) has each
    host's own variables. No variable is merged across groups, which is what shows a host
    that two groups place in different stores (filter P(edge_retail.ovms.store_conflicts#filter)).
  - Vault-encrypted values are read with the play's vault secrets.
  - "On an inventory it cannot read it returns C({\"failed\": true, \"msg\": <reason>}) instead
    of failing the task."
options:
  _terms:
    description: The inventory sources, as the play got them (C(ansible_inventory_sources)).
    type: list
    elements: str
    required: true
  playbook_dir:
    description: Also read C(group_vars/) and C(host_vars/) beside this directory, as C(--playbook-dir) does.
    type: path
"""

EXAMPLES = r"""
- name: Refuse a host in two stores.
  ansible.builtin.assert:
    that: __conflicts | length == 0
    fail_msg: "{{ __conflicts | map(attribute='message') | join('; ') }}"
  vars:
    __conflicts: >-
      {{ lookup('edge_retail.ovms.inventory_export', *ansible_inventory_sources, playbook_dir=playbook_dir)
         | edge_retail.ovms.store_conflicts(groups['all']) }}
"""

RETURN = r"""
_raw:
  description:
    - "One mapping, the JSON document C(ansible-inventory --list --export) would print, or
      C({\"failed\": true, \"msg\": ...}) when the inventory could not be read."
  type: dict
"""

from typing import Any

from ansible.errors import AnsibleError
from ansible.inventory.manager import InventoryManager
from ansible.plugins.lookup import LookupBase
from ansible.utils.vars import combine_vars
from ansible.vars.plugins import get_vars_from_inventory_sources, get_vars_from_path

# Variables Ansible gives every host; ansible-inventory leaves them out too.
_MAGIC = {"inventory_file", "inventory_dir", "inventory_hostname", "inventory_hostname_short", "group_names"}


def _own(variables: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in variables.items() if name not in _MAGIC}


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        self.set_options(var_options=variables, direct=kwargs)
        sources: list[str] = []
        for term in terms:
            sources.extend(str(item) for item in (term if isinstance(term, (list, tuple)) else [term]))
        basedir = self.get_option("playbook_dir")
        try:
            return [self._export(sources, basedir)]
        except (AnsibleError, OSError, ValueError) as exc:
            return [{"failed": True, "msg": str(exc)}]

    def _export(self, sources: list[str], basedir: str | None) -> dict[str, Any]:
        loader = self._loader
        inventory = InventoryManager(loader=loader, sources=sources)

        def plugin_vars(entity: Any) -> dict[str, Any]:
            found = get_vars_from_inventory_sources(loader, inventory._sources, [entity], "all")
            if basedir:
                found = combine_vars(found, get_vars_from_path(loader, basedir, [entity], "all"))
            return found

        export: dict[str, Any] = {"_meta": {"hostvars": {}}}
        for group in inventory.groups.values():
            entry = {
                "hosts": [host.name for host in group.hosts],
                "children": [child.name for child in group.child_groups],
                "vars": combine_vars(group.get_vars(), plugin_vars(group)),
            }
            # ansible-inventory leaves out a group with nothing in it (an empty `ungrouped`).
            if any(entry.values()) or group.name == "all":
                export[group.name] = entry
        for host in inventory.hosts.values():
            export["_meta"]["hostvars"][host.name] = _own(combine_vars(host.get_vars(), plugin_vars(host)))
        return export
