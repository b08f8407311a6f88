"""Build `<repo>/<model>/<version>/` directories and keep `<repo>/manifest.json` in step."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ovms_models_tool.catalog import ModelEntry
from ovms_models_tool.convert import convert_to_ir
from ovms_models_tool.errors import ToolError
from ovms_models_tool.fsutil import (
    move_dir_into_place,
    sha256_file,
    staging_dir,
    tree_files,
    write_file_atomically,
)
from ovms_models_tool.sources import Log, fetch_sources

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Outcome:
    model: str
    version: int
    work_done: bool
    message: str


def load_manifest(repo: Path) -> dict[str, Any]:
    path = repo / MANIFEST
    if not path.exists():
        return {"models": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ToolError(f"manifest {path}: unreadable ({exc}); delete it to rebuild") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ToolError(f"manifest {path}: expected {{'models': {{...}}}}; delete it to rebuild")
    return data


def save_manifest(repo: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest only when its content changes, so a no-op run leaves it untouched."""
    path = repo / MANIFEST
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    write_file_atomically(path, text.encode())


def version_files(repo: Path, entry: ModelEntry) -> dict[str, str]:
    """`{"<name>/<version>/<file>": sha256}` for what is on disk now."""
    version_dir = repo / entry.name / str(entry.version)
    prefix = PurePosixPath(entry.name, str(entry.version))
    return {
        str(prefix / rel.as_posix()): sha256_file(version_dir / rel)
        for rel in tree_files(version_dir)
    }


def sync_model(
    entry: ModelEntry,
    cache: Path,
    repo: Path,
    log: Log,
    pip_find_links: Path | None = None,
) -> Outcome:
    """Make the model's version directory match the catalog, doing no work when it does."""
    manifest = load_manifest(repo)
    recorded = manifest["models"].get(entry.name)
    version_dir = repo / entry.name / str(entry.version)
    if recorded and recorded.get("version") == entry.version and version_dir.is_dir():
        if recorded.get("catalog_digest") != entry.digest:
            raise ToolError(
                f"{entry.name}: the catalog entry changed since version {entry.version} was "
                f"built in {version_dir}; OVMS never re-reads a version directory it has "
                f"loaded, so give the entry a new version (or delete {version_dir} if it "
                "never reached a store)"
            )
        if version_files(repo, entry) == recorded.get("files"):
            manifest["models"][entry.name] = _record(entry, recorded["files"])
            save_manifest(repo, manifest)
            return Outcome(
                entry.name,
                entry.version,
                False,
                f"{entry.name}: version {entry.version} up to date in {version_dir} "
                "(no download, no conversion)",
            )
        log(f"{entry.name}: {version_dir} differs from {MANIFEST}; rebuilding it")
    elif version_dir.exists():
        log(f"{entry.name}: {version_dir} is not recorded in {MANIFEST}; rebuilding it")

    fetched = fetch_sources(entry, cache, log, pip_find_links)
    with staging_dir(repo) as staged:
        _build(entry, fetched.paths, staged)
        move_dir_into_place(staged, version_dir)
    files = version_files(repo, entry)
    manifest["models"][entry.name] = _record(entry, files)
    save_manifest(repo, manifest)
    how = "fetched into the cache" if fetched.fetched else "sources from the cache"
    what = "converted to IR" if entry.convert else "copied"
    return Outcome(
        entry.name,
        entry.version,
        True,
        f"{entry.name}: built version {entry.version} in {version_dir} ({how}, {what})",
    )


def _build(entry: ModelEntry, sources: dict[str, Path], out_dir: Path) -> None:
    if entry.convert is not None:
        main_file = sources[entry.source.files[0].name]
        companions = tuple(sources[f.name] for f in entry.source.files[1:])
        convert_to_ir(entry.name, main_file, entry.convert, out_dir, entry.format, companions)
        return
    for name, path in sources.items():
        # OVMS pairs .xml with .bin (and .pdmodel with .pdiparams) by a shared stem.
        shutil.copyfile(path, out_dir / f"model{PurePosixPath(name).suffix.lower()}")


def _record(entry: ModelEntry, files: dict[str, str]) -> dict[str, Any]:
    return {
        "version": entry.version,
        "format": "ir" if entry.convert else entry.format,
        "files": files,
        "ovms": entry.ovms,
        "catalog_digest": entry.digest,
    }
