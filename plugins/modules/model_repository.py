#!/usr/bin/python
# Copyright: (c) 2026, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: model_repository
short_description: Keep an OVMS model repository in step with a checksum manifest
description:
  - Checks a host's OVMS model repository in one pass, the work an unchanged re-run repeats on
    every store. The repository, its staging directory and each model's directory exist, root-owned,
    with their modes; every file of each model version to serve matches its sha256; the versions
    around the served one are pruned.
  - With O(staged=clear), whatever is in the staging directory is removed first (what a run cut
    off while copying left there), and the versions not in the repository are returned in
    RV(missing), for the play to copy into C(<staging_dir>/<name>-<version>/).
  - With O(staged=place), each version not in the repository is verified in the staging directory
    and renamed into the repository. The rename is atomic because the staging directory is on the
    repository's filesystem, so OVMS, which rescans its repository, never sees a partial version.
  - A version whose files do not match is neither moved nor pruned around; the module reports it in
    RV(mismatched) and does not fail, so that the calling play can word the error (host,
    variable, manifest). The same holds for a staging directory on another filesystem
    (RV(same_filesystem)).
version_added: 0.3.0
author:
  - edge_retail platform team (!UNKNOWN)
attributes:
  check_mode:
    description: Can run in check mode and report what would change.
    support: full
    details:
      - A version that is not staged yet (its copy is skipped in check mode) is reported as placed
        without being verified.
  diff_mode:
    description: Will return details on what has changed.
    support: none
  idempotent:
    description:
      - A second run with the same arguments changes nothing.
    support: full
options:
  path:
    description: The model repository, C(<path>/<name>/<version>/).
    type: path
    required: true
  staging_dir:
    description:
      - Where versions are copied before they are verified and moved into O(path).
      - Must be on the filesystem of O(path).
    type: path
    required: true
  versions:
    description: The version of each model to serve.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The model's directory name in O(path).
        type: str
        required: true
      version:
        description: The version to serve, a directory C(<path>/<name>/<version>).
        type: int
        required: true
      files:
        description:
          - The sha256 of each file of the version, keyed by its path relative to O(path)
            (C(<name>/<version>/<file>)), as the models tool's manifest lists them.
        type: dict
        required: true
  keep_versions:
    description:
      - How many versions to keep for each model, the served one included. Versions above the
        served one are removed (OVMS serves the highest version directory).
    type: int
    default: 2
  staged:
    description:
      - V(clear) empties the staging directory and reports the versions to copy.
      - V(place) verifies the staged versions and moves them into the repository.
    type: str
    choices: [clear, place]
    default: clear
"""

EXAMPLES = r"""
- name: Check the model repository and clear the staging directory.
  edge_retail.ovms.model_repository:
    path: /opt/ovms/models
    staging_dir: /opt/ovms/models/.staging
    versions:
      - name: person-detection
        version: 2
        files:
          person-detection/2/model.xml: 9f1c0c3a5b0e4b0f8a3b6f0a7f0f5e2d9c1b8a7e6d5c4b3a2f1e0d9c8b7a6f5e
          person-detection/2/model.bin: 0b1a2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9
  register: repository

- name: Move the versions copied to the staging directory into the repository.
  edge_retail.ovms.model_repository:
    path: /opt/ovms/models
    staging_dir: /opt/ovms/models/.staging
    versions: "{{ wanted_versions }}"
    staged: place
  when: repository.missing | length > 0
"""

RETURN = r"""
missing:
  description: Models whose version to serve is not in the repository after this run.
  returned: success
  type: list
  elements: str
  sample: [person-detection]
stage_dirs:
  description: Where to copy each model of RV(missing), C(<staging_dir>/<name>-<version>).
  returned: success
  type: dict
  sample: {person-detection: /opt/ovms/models/.staging/person-detection-2}
placed:
  description: The versions this run moved into the repository, by model name.
  returned: success
  type: dict
  sample: {person-detection: 2}
mismatched:
  description: Files of a version that is in the repository (or, with O(staged=place), staged) and
    does not match O(versions); C(actual) is null for a missing file.
  returned: success
  type: list
  elements: dict
  sample:
    - name: person-detection
      version: 2
      file: /opt/ovms/models/person-detection/2/model.bin
      expected: 0b1a2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9
      actual: 5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d
removed:
  description: What this run removed (or would remove in check mode) from the staging directory
    and of the versions around the served ones.
  returned: success
  type: list
  elements: str
  sample: [/opt/ovms/models/.staging/person-detection-2, /opt/ovms/models/person-detection/3]
verified:
  description: How many files were checked against their sha256.
  returned: success
  type: int
  sample: 2
same_filesystem:
  description: Whether O(staging_dir) is on the filesystem of O(path); null while either does not
    exist (check mode on a fresh host).
  returned: success
  type: bool
  sample: true
"""

import hashlib
import os
import re
import shutil
from typing import Any

from ansible.module_utils.basic import AnsibleModule

VERSION_DIR = re.compile(r"^[0-9]+$")


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def delete(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


class Repository:
    """One run of the module: what it checked, changed and found wrong."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.path: str = module.params["path"]
        self.staging: str = module.params["staging_dir"]
        self.keep: int = module.params["keep_versions"]
        self.changed = False
        self.removed: list[str] = []
        self.mismatched: list[dict[str, Any]] = []
        self.verified = 0

    def directory(self, path: str, mode: str) -> bool:
        """Make ``path`` a root-owned directory with ``mode``; False when it does not exist (yet)
        in check mode."""
        if not os.path.isdir(path):
            self.changed = True
            if self.module.check_mode:
                return False
            os.makedirs(path)
        args = {"path": path, "mode": mode, "owner": "root", "group": "root",
                "secontext": None, "attributes": None}
        self.changed = self.module.set_fs_attributes_if_different(args, self.changed)
        return True

    def remove(self, path: str) -> None:
        self.removed.append(path)
        self.changed = True
        if not self.module.check_mode:
            delete(path)

    def version_dir(self, entry: dict[str, Any]) -> str:
        return os.path.join(self.path, entry["name"], str(entry["version"]))

    def stage_dir(self, entry: dict[str, Any]) -> str:
        # Flat (<name>-<version>), so the rename into the repository leaves nothing behind.
        return os.path.join(self.staging, f"{entry['name']}-{entry['version']}")

    def verify(self, entry: dict[str, Any], root: str) -> bool:
        """Check every file of the version under ``root`` against its sha256."""
        prefix = f"{entry['name']}/{entry['version']}/"
        good = True
        for key, expected in sorted(entry["files"].items()):
            relative = key[len(prefix):] if key.startswith(prefix) else os.path.basename(key)
            path = os.path.join(root, relative)
            actual = sha256_file(path) if os.path.isfile(path) else None
            self.verified += 1
            if actual != expected:
                good = False
                self.mismatched.append({"name": entry["name"], "version": entry["version"],
                                        "file": path, "expected": expected, "actual": actual})
        return good

    def prune(self, entry: dict[str, Any]) -> None:
        """Remove versions above the served one and older ones beyond the kept number."""
        model_dir = os.path.join(self.path, entry["name"])
        found = sorted((int(name) for name in os.listdir(model_dir)
                        if VERSION_DIR.match(name) and os.path.isdir(os.path.join(model_dir, name))),
                       reverse=True)
        above = [v for v in found if v > entry["version"]]
        kept = [v for v in found if v <= entry["version"]]
        for version in above + kept[self.keep:]:
            self.remove(os.path.join(model_dir, str(version)))

    def same_filesystem(self) -> bool | None:
        if not (os.path.isdir(self.path) and os.path.isdir(self.staging)):
            return None
        return os.stat(self.path).st_dev == os.stat(self.staging).st_dev

    def run(self, versions: list[dict[str, Any]], staged: str) -> dict[str, Any]:
        repository_there = self.directory(self.path, "0755")
        # Inside the repository OVMS mounts: read-only like the versions (root writes regardless).
        staging_there = repository_there and self.directory(self.staging, "0555")
        same = self.same_filesystem()
        if staged == "clear" and staging_there:
            for name in sorted(os.listdir(self.staging)):
                self.remove(os.path.join(self.staging, name))
        missing: list[str] = []
        placed: dict[str, int] = {}
        for entry in versions:
            model_there = repository_there and self.directory(
                os.path.join(self.path, entry["name"]), "0555")
            final = self.version_dir(entry)
            if model_there and os.path.isdir(final):
                if self.verify(entry, final):
                    self.prune(entry)
                continue
            if staged == "clear":
                missing.append(entry["name"])
                continue
            stage = self.stage_dir(entry)
            if self.module.check_mode and not os.path.isdir(stage):
                # The copy before this was skipped in check mode: it would be placed.
                placed[entry["name"]] = entry["version"]
                self.changed = True
                continue
            if not self.verify(entry, stage):
                missing.append(entry["name"])
                continue
            if same is False:
                # Renaming across filesystems would copy, and OVMS would see a partial version.
                missing.append(entry["name"])
                continue
            placed[entry["name"]] = entry["version"]
            self.changed = True
            if not self.module.check_mode:
                os.rename(stage, final)
                self.prune(entry)
        return {"changed": self.changed, "missing": missing, "placed": placed,
                "stage_dirs": {entry["name"]: self.stage_dir(entry) for entry in versions
                               if entry["name"] in missing},
                "mismatched": self.mismatched, "removed": self.removed,
                "verified": self.verified, "same_filesystem": same}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "staging_dir": {"type": "path", "required": True},
            "versions": {
                "type": "list", "elements": "dict", "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "version": {"type": "int", "required": True},
                    "files": {"type": "dict", "required": True},
                },
            },
            "keep_versions": {"type": "int", "default": 2},
            "staged": {"type": "str", "choices": ["clear", "place"], "default": "clear"},
        },
        supports_check_mode=True,
    )
    if module.params["keep_versions"] < 1:
        module.fail_json(msg=f"keep_versions is {module.params['keep_versions']}; expected 1 or "
                             "more (the served version is always kept)")
    for entry in module.params["versions"]:
        if entry["version"] < 1 or "/" in entry["name"] or entry["name"] in ("", ".", ".."):
            module.fail_json(msg=f"versions: {entry['name']!r} version {entry['version']} is not "
                                 "a model directory name and a version of 1 or more")
    try:
        result = Repository(module).run(module.params["versions"], module.params["staged"])
    except OSError as exc:
        module.fail_json(msg=f"model repository {module.params['path']}: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
