"""The model repository on disk: numeric version directories and the model file in each."""

from __future__ import annotations

import pathlib

# Looked for in this order in a version directory, like OVMS picks one format per version.
_PATTERNS = ("*.xml", "*.onnx", "*.tflite", "*.pdmodel", "saved_model.pb", "*.pb")


class RepositoryError(Exception):
    """The base path or a version directory cannot be used."""


def list_versions(base_path: pathlib.Path) -> list[int]:
    """Positive integer directory names under base_path."""
    try:
        entries = list(base_path.iterdir())
    except OSError as error:
        raise RepositoryError(
            f"The provided base path is invalid or doesn't exists: {base_path} ({error.strerror})"
        ) from None
    versions = []
    for entry in entries:
        if entry.name.isdigit() and int(entry.name) > 0 and entry.is_dir():
            versions.append(int(entry.name))
    return sorted(versions)


def find_model_file(version_dir: pathlib.Path) -> pathlib.Path:
    """The file openvino should read for this version (a directory for a SavedModel)."""
    try:
        names = sorted(p for p in version_dir.iterdir() if p.is_file())
    except OSError as error:
        raise RepositoryError(f"Cannot list {version_dir}: {error.strerror}") from None
    for pattern in _PATTERNS:
        matches = [p for p in names if p.match(pattern)]
        if not matches:
            continue
        found = matches[0]
        if found.suffix == ".xml" and not found.with_suffix(".bin").exists():
            raise RepositoryError(f"IR file {found} has no matching {found.with_suffix('.bin')}")
        if found.name == "saved_model.pb":
            return version_dir
        return found
    raise RepositoryError(
        f"No model file found in {version_dir}; expected one of: {', '.join(_PATTERNS)}"
    )
