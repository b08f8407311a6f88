"""Make this repository importable as ``ansible_collections.edge_retail.ovms``.

Modules import their helpers by that name, which needs a directory laid out as
``ansible_collections/edge_retail/ovms`` on ``sys.path``. ansible-test provides one; a plain
``pytest`` run gets a temporary one that links to the repository.
"""
from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _collections_dir() -> Path:
    if REPO.parent.name == "edge_retail" and REPO.parent.parent.name == "ansible_collections":
        return REPO.parents[2]
    base = Path(tempfile.mkdtemp(prefix="edge-retail-collection-"))
    link = base / "ansible_collections" / "edge_retail" / "ovms"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO, target_is_directory=True)
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    return base


sys.path.insert(0, str(_collections_dir()))
