# Copyright: (c) 2025, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0
"""Read what a ``docker save`` archive holds without loading it.

``docker save`` writes a tar with ``manifest.json`` (one entry per image: its config file and
the ``RepoTags`` saved with it) and, since Docker 25, an OCI ``index.json`` too. The image ID an
engine shows after ``docker load`` is the sha256 of the config file with the classic image store,
and the digest of the manifest in ``index.json`` with the containerd image store; both are
returned so the caller can compare either with ``docker image inspect``.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass, field

MANIFEST = "manifest.json"
INDEX = "index.json"


class ImageArchiveError(Exception):
    """The file is not an image archive ``docker load`` accepts."""


@dataclass
class ArchivedImage:
    config_id: str
    repo_tags: list[str] = field(default_factory=list)


@dataclass
class ArchiveInfo:
    images: list[ArchivedImage]
    manifest_digests: list[str]

    @property
    def repo_tags(self) -> list[str]:
        return [tag for image in self.images for tag in image.repo_tags]

    def ids_for(self, reference: str) -> list[str]:
        """Every image ID that ``reference`` (name:tag) may show once this archive is loaded."""
        ids = [image.config_id for image in self.images if reference in image.repo_tags]
        if ids and len(self.images) == 1:
            ids.extend(self.manifest_digests)
        return ids


def _config_id(config_path: str) -> str:
    # "blobs/sha256/<hex>" (OCI layout) or "<hex>.json" (older docker save).
    name = config_path.rsplit("/", 1)[-1]
    # Slices, not str.removesuffix: module_utils stay importable on Python 3.8 hosts.
    if name.endswith(".json"):  # noqa: FURB188
        name = name[: -len(".json")]
    if len(name) != 64 or any(c not in "0123456789abcdef" for c in name):
        raise ImageArchiveError(f"{MANIFEST} names config {config_path!r}, not a sha256 digest")
    return f"sha256:{name}"


def _read_json(archive: tarfile.TarFile, name: str) -> object | None:
    try:
        member = archive.getmember(name)
    except KeyError:
        return None
    handle = archive.extractfile(member)
    if handle is None:
        raise ImageArchiveError(f"{name} in the archive is not a regular file")
    try:
        return json.loads(handle.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ImageArchiveError(f"{name} in the archive is not JSON: {exc}") from exc


def read_archive(path: str) -> ArchiveInfo:
    """Parse ``path``; raises ImageArchiveError (or OSError) with a reason a user can act on."""
    try:
        with tarfile.open(path, "r:*") as archive:
            manifest = _read_json(archive, MANIFEST)
            index = _read_json(archive, INDEX)
    except tarfile.TarError as exc:
        raise ImageArchiveError(f"not a tar archive ({exc})") from exc
    if not isinstance(manifest, list) or not manifest:
        raise ImageArchiveError(f"no {MANIFEST} with at least one image; make it with `docker save`")
    images = []
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise ImageArchiveError(f"an entry of {MANIFEST} has no Config")
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise ImageArchiveError(f"RepoTags in {MANIFEST} is not a list of names")
        images.append(ArchivedImage(_config_id(entry["Config"]), list(tags)))
    digests: list[str] = []
    if isinstance(index, dict):
        for descriptor in index.get("manifests") or []:
            if isinstance(descriptor, dict) and isinstance(descriptor.get("digest"), str):
                digests.append(descriptor["digest"])
    return ArchiveInfo(images, digests)


def normalize_reference(name: str, tag: str) -> str:
    """The form ``docker save`` writes in RepoTags: no docker.io/ or library/ prefix."""
    for prefix in ("docker.io/", "index.docker.io/"):
        if name.startswith(prefix):  # noqa: FURB188
            name = name[len(prefix):]
    if name.startswith("library/") and name.count("/") == 1:
        name = name[len("library/"):]
    return f"{name}:{tag}"
