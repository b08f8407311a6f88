"""Write roles/<role>/README.md from the role's meta/argument_specs.yml and meta/readme.yml.

The variables come from the argument specs only, so a README cannot drift from what
ansible-core validates: every entry point (main, preflight, ...) with each option's type,
default, choices, whether it is required and its description. meta/readme.yml holds what a
spec cannot say, written by hand:

    intro: |      Markdown: what the role does, in a few lines.
      ...
    example: |    A play that uses the role (YAML), shown under "Example".
      ...
    notes: |      Optional Markdown after the example: other uses, tags, caveats.
      ...

Usage:
    python scripts/role-readmes.py            write every README that changed
    python scripts/role-readmes.py --check    only report out-of-date READMEs (exit 1)

tests/unit/test_role_readmes.py fails when a README differs from what this script writes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "edge_retail.ovms"
SOURCE = "meta/readme.yml"
SPECS = "meta/argument_specs.yml"

# Ansible's documentation markup, as used in argument specs: C(code), O(option), V(value),
# E(env var), P(plugin), M(module), I(italic), B(bold), U(url), L(text,url), R(text,anchor).
_MARKUP = re.compile(r"\b([CMOVEPIBURL])\(([^()]*)\)")
_HORIZONTALLINE = "HORIZONTALLINE"


def _markup(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        kind, body = match.group(1), match.group(2)
        if kind in "CMOVEP":
            return f"`{body}`"
        if kind == "I":
            return f"*{body}*"
        if kind == "B":
            return f"**{body}**"
        if kind == "U":
            return f"<{body}>"
        text_part, _sep, target = body.partition(",")
        if kind == "L":
            return f"[{text_part.strip()}]({target.strip()})"
        return text_part.strip()  # R(text,anchor): no anchors in a README

    return _MARKUP.sub(replace, text).replace(_HORIZONTALLINE, "---")


def _paragraphs(value: Any) -> list[str]:
    """A spec's description: a string or a list of strings, each one paragraph."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [_markup(" ".join(str(item).split())) for item in items]


def _cell(text: str) -> str:
    """Text that is safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    """A value as inline code: strings as they are, anything else as compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if text == "":
        return '`""`'
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _type(spec: dict[str, Any]) -> str:
    kind = str(spec.get("type", "str"))
    if "elements" in spec:
        return f"list of {spec['elements']}" if kind == "list" else f"{kind} of {spec['elements']}"
    return kind


def _option_row(name: str, spec: dict[str, Any]) -> str:
    required = bool(spec.get("required", False))
    if "default" in spec:
        default = _code(spec["default"])
    else:
        default = ""
    choices = ", ".join(_code(c) for c in spec.get("choices", []) or [])
    description = " ".join(_paragraphs(spec.get("description")))
    if spec.get("options"):
        description += " Keys: " + ", ".join(_code(k) for k in spec["options"]) + "."
    cells = [_code(name), _type(spec), "yes" if required else "no", default, choices, description]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _entry_point(role: str, name: str, spec: dict[str, Any], earlier: dict[str, dict]) -> list[str]:
    lines = [f"### `{name}`", ""]
    if spec.get("short_description"):
        lines += [_markup(" ".join(str(spec["short_description"]).split())), ""]
    for paragraph in _paragraphs(spec.get("description")):
        lines += [f"- {paragraph}"]
    if spec.get("description"):
        lines.append("")
    if name == "main":
        usage = (
            f"`roles: [{COLLECTION}.{role}]`, or `include_role`/`import_role` without `tasks_from`."
        )
    else:
        usage = f"`include_role`/`import_role` of `{COLLECTION}.{role}` with `tasks_from: {name}`."
    lines += [f"Use: {usage}", ""]
    options = spec.get("options") or {}
    same_as = next((other for other, opts in earlier.items() if opts and opts == options), None)
    if not options:
        lines += ["No options.", ""]
    elif same_as:
        lines += [f"Options: the same as the `{same_as}` entry point.", ""]
    else:
        lines += [
            "| Option | Type | Required | Default | Choices | Description |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += [_option_row(opt, opt_spec or {}) for opt, opt_spec in options.items()]
        lines.append("")
    return lines


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read it as YAML: {exc}") from exc


def render(role_dir: Path) -> str:
    """The README.md of a role, as this script writes it."""
    role = role_dir.name
    specs = (_load(role_dir / SPECS) or {}).get("argument_specs") or {}
    source_path = role_dir / SOURCE
    source = _load(source_path) or {}
    for key in ("intro", "example"):
        if not str(source.get(key) or "").strip():
            raise ValueError(f"{source_path}: '{key}' is missing or empty")
    # main first, then the other entry points in the order the spec lists them.
    names = sorted(specs, key=lambda n: (n != "main",))
    lines = [
        f"# {COLLECTION}.{role}",
        "",
        (
            "<!-- Generated by scripts/role-readmes.py from meta/argument_specs.yml and"
            " meta/readme.yml: edit those, then run `python scripts/role-readmes.py`. -->"
        ),
        "",
        source["intro"].strip(),
        "",
        "## Example",
        "",
        "```yaml",
        source["example"].strip(),
        "```",
        "",
    ]
    if str(source.get("notes") or "").strip():
        lines += [source["notes"].strip(), ""]
    lines += [
        "## Entry points and variables",
        "",
        (
            f"From `{SPECS}`; ansible-core checks every variable against it when the entry point"
            f" runs (`ansible-doc -t role {COLLECTION}.{role}` shows the same)."
        ),
        "",
    ]
    lines += [f"- [`{name}`](#{name.lower()})" for name in names]
    lines.append("")
    earlier: dict[str, dict] = {}
    for name in names:
        entry = specs[name] or {}
        lines += _entry_point(role, name, entry, earlier)
        earlier[name] = entry.get("options") or {}
    return "\n".join(lines).rstrip() + "\n"


def role_dirs(root: Path = ROOT) -> list[Path]:
    """Every role of the collection that has argument specs."""
    return sorted(p.parent.parent for p in (root / "roles").glob(f"*/{SPECS}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="report out-of-date READMEs, write nothing"
    )
    args = parser.parse_args(argv)
    stale, broken = [], []
    for role_dir in role_dirs():
        readme = role_dir / "README.md"
        try:
            text = render(role_dir)
        except ValueError as exc:
            broken.append(str(exc))
            continue
        current = readme.read_text(encoding="utf-8") if readme.is_file() else None
        if current == text:
            continue
        stale.append(readme.relative_to(ROOT))
        if not args.check:
            readme.write_text(text, encoding="utf-8")
    verb = "out of date" if args.check else "written"
    for path in stale:
        print(f"{path}: {verb}")
    for message in broken:
        print(message, file=sys.stderr)
    if broken:
        return 2
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
