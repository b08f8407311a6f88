"""The IDs image_archive_info reads from a real `docker save` archive are the IDs the engine
shows for the image: what lets the container_image role skip copying an archive."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ansible_collections.edge_retail.ovms.plugins.module_utils.image_archive import read_archive

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()


def test_archive_ids_match_the_engine(docker_client, built_images: dict[str, str]) -> None:
    index = json.loads((CACHE / "images/index.json").read_text())
    # The proxy archive is the smallest of the role-deployed images.
    entry = index["proxy"]
    info = read_archive(entry["archive"])
    engine_id = docker_client.images.get(built_images["proxy"]).id
    assert info.repo_tags == [built_images["proxy"]]
    assert engine_id in info.ids_for(built_images["proxy"])
    assert info.ids_for("edge-retail/ovms-proxy:no-such-tag") == []
