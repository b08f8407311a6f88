#!/usr/bin/python
# Copyright: (c) 2025, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: image_archive_info
short_description: Read the image IDs and tags a C(docker save) archive holds
description:
  - Opens an image archive made with C(docker save) and returns the IDs and C(name:tag) names
    of the images in it, without loading it into an engine.
  - With O(name) and O(tag), also checks that the archive holds that image and returns the IDs
    an engine shows for it once loaded, so a play can skip copying an archive whose image a host
    already has.
  - "Normally run on the controller (C(delegate_to: localhost)), where the archives are."
version_added: 0.1.0
author:
  - edge_retail platform team (!UNKNOWN)
attributes:
  check_mode:
    description: Can run in check mode and return the same result as without it.
    support: full
    details:
      - The module only reads the archive.
  diff_mode:
    description: Will return details on what has changed.
    support: none
  idempotent:
    description:
      - Reading the same archive again gives the same result.
    support: full
options:
  path:
    description: Path of the archive.
    type: path
    required: true
  name:
    description:
      - Image name the archive must hold, for example V(openvino/model_server).
      - A C(docker.io/) or C(library/) prefix is ignored, as C(docker save) does not write it.
    type: str
  tag:
    description: Tag of O(name) the archive must hold. Required with O(name).
    type: str
"""

EXAMPLES = r"""
- name: Read the OVMS image archive on the controller.
  edge_retail.ovms.image_archive_info:
    path: /srv/images/ovms-2026.4.1.tar
    name: openvino/model_server
    tag: "2026.4.1"
  delegate_to: localhost
  register: ovms_archive

- name: Show the ID the host will see after loading it.
  ansible.builtin.debug:
    var: ovms_archive.image_ids
"""

RETURN = r"""
size:
  description: Size of the archive file in bytes (what copying it to a host needs).
  returned: when the archive could be read
  type: int
  sample: 1228546048
repo_tags:
  description: Every C(name:tag) the archive holds.
  returned: when the archive could be read
  type: list
  elements: str
  sample: [openvino/model_server:2026.4.1]
config_ids:
  description: The config digest (image ID with Docker's classic image store) of each image.
  returned: success
  type: list
  elements: str
  sample: [sha256:7b33650419f6b68ad51784d1935c0c7e6dda53ab04010e059ceee7d3ed77b60f]
image_ids:
  description:
    - IDs that O(name):O(tag) may show in C(docker image inspect) once loaded, the config digest
      and, for single-image archives with an OCI C(index.json), the manifest digest (containerd
      image store).
    - Empty when O(name) is not given.
  returned: success
  type: list
  elements: str
  sample: [sha256:7b33650419f6b68ad51784d1935c0c7e6dda53ab04010e059ceee7d3ed77b60f]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edge_retail.ovms.plugins.module_utils.image_archive import (
    ImageArchiveError,
    normalize_reference,
    read_archive,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "name": {"type": "str"},
            "tag": {"type": "str"},
        },
        required_together=[("name", "tag")],
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        info = read_archive(path)
    except (ImageArchiveError, OSError) as exc:
        module.fail_json(msg=f"{path} is not an image archive docker load accepts: {exc}")
    image_ids: list[str] = []
    if module.params["name"]:
        reference = normalize_reference(module.params["name"], module.params["tag"])
        image_ids = info.ids_for(reference)
        if not image_ids:
            module.fail_json(
                msg=f"{path} does not hold {reference}; it holds "
                f"{', '.join(info.repo_tags) or 'only untagged images'}",
                repo_tags=info.repo_tags,
            )
    module.exit_json(
        changed=False,
        size=os.path.getsize(path),
        repo_tags=info.repo_tags,
        config_ids=[image.config_id for image in info.images],
        image_ids=image_ids,
    )


if __name__ == "__main__":
    main()
