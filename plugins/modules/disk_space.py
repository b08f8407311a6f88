#!/usr/bin/python
# Copyright: (c) 2026, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: disk_space
short_description: Read the free space of the filesystem that holds a path
description:
  - Returns the bytes free for unprivileged writers (what C(df) shows as available) and the size
    of the filesystem a path is on, and the mount point of that filesystem.
  - When the path does not exist yet (a directory a later task creates, or check mode on a fresh
    host), the nearest existing parent directory is measured instead.
  - With O(needed), also says whether that many bytes fit; the module never fails for lack of
    space itself, so the calling play can word the error (host, variable, path).
version_added: 0.2.0
author:
  - edge_retail platform team (!UNKNOWN)
attributes:
  check_mode:
    description: Can run in check mode and return the same result as without it.
    support: full
    details:
      - The module only reads filesystem statistics.
  diff_mode:
    description: Will return details on what has changed.
    support: none
  idempotent:
    description:
      - The module changes nothing; free space may differ between runs because other writers do.
    support: full
options:
  path:
    description: A file or directory; the filesystem that holds it (or its nearest existing parent) is measured.
    type: path
    required: true
  needed:
    description: Bytes about to be written under O(path); sets RV(enough).
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Read the free space where the model versions are staged.
  edge_retail.ovms.disk_space:
    path: /opt/ovms/models/.staging
    needed: 12636937
  register: models_space

- name: Assert that the version fits.
  ansible.builtin.assert:
    that: models_space.enough
    fail_msg: "{{ models_space.free }} bytes free on {{ models_space.mount }}"
"""

RETURN = r"""
measured:
  description: The existing path that was measured (O(path) or its nearest existing parent).
  returned: success
  type: str
  sample: /opt/ovms/models
mount:
  description: Mount point of the filesystem that holds RV(measured).
  returned: success
  type: str
  sample: /opt
free:
  description: Bytes an unprivileged writer can still use (C(f_bavail * f_frsize)).
  returned: success
  type: int
  sample: 5368709120
total:
  description: Size of the filesystem in bytes.
  returned: success
  type: int
  sample: 21474836480
needed:
  description: O(needed), as given.
  returned: success
  type: int
  sample: 12636937
enough:
  description: Whether O(needed) bytes fit in RV(free).
  returned: success
  type: bool
  sample: true
"""

import os

from ansible.module_utils.basic import AnsibleModule


def existing_parent(path: str) -> str:
    """``path`` itself or the nearest directory above it that exists."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def mount_point(path: str) -> str:
    """The mount point of the filesystem ``path`` is on: the highest directory above it on
    the same device."""
    current = os.path.realpath(path)
    device = os.stat(current).st_dev
    while current != os.path.dirname(current):
        parent = os.path.dirname(current)
        if os.stat(parent).st_dev != device:
            break
        current = parent
    return current


def measure(path: str, needed: int) -> dict[str, object]:
    measured = existing_parent(path)
    stats = os.statvfs(measured)
    free = stats.f_bavail * stats.f_frsize
    return {
        "measured": measured,
        "mount": mount_point(measured),
        "free": free,
        "total": stats.f_blocks * stats.f_frsize,
        "needed": needed,
        "enough": needed <= free,
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "needed": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    if module.params["needed"] < 0:
        module.fail_json(msg=f"needed is {module.params['needed']}; expected 0 or more bytes")
    try:
        result = measure(module.params["path"], module.params["needed"])
    except OSError as exc:
        module.fail_json(msg=f"cannot read the free space of {module.params['path']}: {exc}")
    # No `path` or `size` keys: AnsibleModule would overwrite them with the path's own stat.
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
