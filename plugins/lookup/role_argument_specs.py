# Copyright: (c) 2026, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0
"""Lookup that reads the argument specs of every role in a roles directory."""

from __future__ import annotations

DOCUMENTATION = r"""
name: role_argument_specs
author:
  - edge_retail platform team (!UNKNOWN)
version_added: "0.2.0"
short_description: The argument specs of every role under a roles directory, by role name
description:
  - Reads C(<roles_dir>/<role>/meta/argument_specs.yml) of each role under the given directory,
    in the controller process that runs the play, and returns their C(argument_specs)
    mappings keyed by role name.
  - The validation play of C(playbooks/site.yml) checks every inventory variable against these
    specs; reading them here costs no module run on an unchanged re-run.
  - A role without C(meta/argument_specs.yml) is left out; a file that is not YAML, or has no
    C(argument_specs) mapping, fails the lookup naming the file.
options:
  _terms:
    description: One roles directory (the collection's C(roles/)).
    type: list
    elements: path
    required: true
"""

EXAMPLES = r"""
- name: Read the collection's role argument specs.
  ansible.builtin.set_fact:
    specs: "{{ lookup('edge_retail.ovms.role_argument_specs', playbook_dir ~ '/../roles') }}"
"""

RETURN = r"""
_raw:
  description:
    - One mapping of role name to that role's C(argument_specs) (entry point name to its spec).
  type: dict
"""

from pathlib import Path
from typing import Any

import yaml
from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


def read_specs(roles_dir: Path) -> dict[str, Any]:
    """Role name -> argument_specs mapping, for each role of `roles_dir` that has one."""
    if not roles_dir.is_dir():
        raise AnsibleLookupError(f"role_argument_specs: {roles_dir} is not a directory")
    specs: dict[str, Any] = {}
    for path in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise AnsibleLookupError(f"role_argument_specs: cannot read {path}: {exc}") from exc
        entry_points = document.get("argument_specs") if isinstance(document, dict) else None
        if not isinstance(entry_points, dict):
            raise AnsibleLookupError(f"role_argument_specs: {path} has no argument_specs mapping")
        specs[path.parts[-3]] = entry_points
    return specs


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleLookupError("role_argument_specs takes one roles directory")
        return [read_specs(Path(str(terms[0])))]
