"""role_argument_specs reads every role's argument specs by role name, and names the file it
cannot read."""
from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleLookupError
from ansible_collections.edge_retail.ovms.plugins.lookup.role_argument_specs import LookupModule

ROOT = Path(__file__).resolve().parents[4]


def run(*terms: str) -> dict:
    [specs] = LookupModule().run(list(terms), variables={})
    return specs


def test_every_role_of_the_collection_is_read_with_its_entry_points() -> None:
    specs = run(str(ROOT / "roles"))
    with_spec = sorted(p.parts[-3] for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))
    assert sorted(specs) == with_spec
    assert "ovms_models_list" in specs["ovms_models"]["main"]["options"]
    assert "preflight" in specs["ovms_client"]


def test_a_role_without_argument_specs_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "a/meta").mkdir(parents=True)
    (tmp_path / "a/meta/argument_specs.yml").write_text("argument_specs:\n  main:\n    options: {}\n")
    (tmp_path / "b/tasks").mkdir(parents=True)
    assert run(str(tmp_path)) == {"a": {"main": {"options": {}}}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("argument_specs: [unclosed\n", "cannot read"), ("just: text\n", "has no argument_specs mapping")],
)
def test_a_bad_spec_file_is_named(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "r/meta").mkdir(parents=True)
    (tmp_path / "r/meta/argument_specs.yml").write_text(text)
    with pytest.raises(AnsibleLookupError, match=expected) as err:
        run(str(tmp_path))
    assert "r/meta/argument_specs.yml" in str(err.value)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(AnsibleLookupError, match="is not a directory"):
        run(str(tmp_path / "nowhere"))
