"""Class id -> label text."""

from __future__ import annotations

import re
from pathlib import Path

from ovms_client.errors import ConfigError

_ID_LINE = re.compile(r"^(\d+)[\s:]+(.+)$")


def load_labels(path: Path | None) -> dict[int, str]:
    """Read a labels file.

    Two forms: plain lines, where line N (counting from 0) names class N, or `ID LABEL`
    (also `ID: LABEL`) lines. Blank lines count as classes in the plain form so that ids stay
    aligned with line numbers; `#` lines are comments.
    """
    if path is None:
        return {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(
            f"cannot read labels file {path} (setting 'labels'): {exc.strerror}"
        ) from None
    entries = [line.strip() for line in lines if not line.lstrip().startswith("#")]
    while entries and not entries[-1]:
        entries.pop()
    matches = [_ID_LINE.match(e) for e in entries if e]
    if matches and all(matches):
        return {int(m.group(1)): m.group(2).strip() for m in matches if m}
    return {index: text for index, text in enumerate(entries) if text}


def label_for(labels: dict[int, str], class_id: int) -> str:
    return labels.get(class_id, str(class_id))
