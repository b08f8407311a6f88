"""The typo check: inventory variables with a collection prefix that nothing declares."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.edge_retail.ovms.plugins.filter.variables import (
    FilterModule,
    argument_errors,
    undeclared_variables,
)

DECLARED = ["ovms_server_image_tag", "ovms_server_image", "ovms_client_api", "docker_engine_source", "ovms_store"]
PREFIXES = ["ovms_", "docker_engine_", "container_image_"]


def test_misspelt_names_are_found_with_the_closest_declared_one() -> None:
    names = ["ovms_server_imge_tag", "docker_engine_sorce", "ovms_client_api", "ovms_store"]
    assert undeclared_variables(names, DECLARED, PREFIXES) == [
        {"name": "docker_engine_sorce", "closest": "docker_engine_source"},
        {"name": "ovms_server_imge_tag", "closest": "ovms_server_image_tag"},
    ]


def test_names_without_a_collection_prefix_are_not_ours() -> None:
    assert undeclared_variables(["ansible_host", "my_ovms_thing", "ovmsx"], DECLARED, PREFIXES) == []


def test_a_name_close_to_nothing_has_no_suggestion() -> None:
    assert undeclared_variables(["ovms_zzzzzzzzzzzzzz"], DECLARED, PREFIXES) == [
        {"name": "ovms_zzzzzzzzzzzzzz", "closest": ""}]


def test_strings_instead_of_lists_are_refused() -> None:
    with pytest.raises(AnsibleFilterError):
        undeclared_variables("ovms_x", DECLARED, PREFIXES)


def test_filter_is_registered() -> None:
    assert FilterModule().filters() == {
        "undeclared_variables": undeclared_variables, "argument_errors": argument_errors}


def test_argument_errors_name_each_bad_value_with_ansibles_messages() -> None:
    options = {"port": {"type": "int"}, "policy": {"type": "str", "choices": ["always", "no"]},
               "flag": {"type": "bool"}, "left_out": {"type": "int"}}
    errors = argument_errors({"port": "lots", "policy": "sometimes", "flag": "yes", "other": 1}, options)
    assert len(errors) == 2
    assert any("'port'" in e and "convert to int" in e for e in errors), errors
    assert any("policy must be one of: always, no, got: sometimes" in e for e in errors), errors


def test_argument_errors_accept_what_the_spec_converts() -> None:
    assert argument_errors({"port": "9000", "flag": "false"}, {"port": {"type": "int"}, "flag": {"type": "bool"}}) == []


def test_argument_errors_refuse_other_input() -> None:
    with pytest.raises(AnsibleFilterError, match="argument_errors expects"):
        argument_errors(["port"], {})  # type: ignore[arg-type]


def test_argument_errors_ignore_the_specs_documented_defaults() -> None:
    # Specs document role defaults as written in defaults/main.yml, templates included.
    options = {"grpc": {"type": "int", "default": "{{ other_port | default(9000) }}"},
               "models": {"type": "list", "elements": "dict",
                          "options": {"nireq": {"type": "int", "default": "{{ x }}"}}}}
    assert argument_errors({"models": [{}]}, options) == []
    assert argument_errors({"models": [{"nireq": "many"}]}, options) != []
