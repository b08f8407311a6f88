"""The OVMS stand-in's config schema, version policies, shapes and command line, in-process."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ovms_standin"))

from ovms_standin import cli
from ovms_standin.config import (
    ConfigError,
    ModelConfigError,
    VersionPolicy,
    parse_document,
    parse_shape,
    single_model_document,
)

CONFIG_DIR = Path("/config")


def document(**model: object) -> str:
    entry = {"name": "m", "base_path": "/models/m", **model}
    return json.dumps({"model_config_list": [{"config": entry}]})


def test_minimal_config_gets_ovms_defaults():
    config, problems = parse_document(document(), CONFIG_DIR)
    assert problems == []
    (model,) = config.models
    assert model.name == "m"
    assert model.base_path == Path("/models/m")
    assert model.target_device == "CPU"
    assert model.nireq == 0
    assert model.policy == VersionPolicy("latest", 1)
    assert config.metrics_enable is None


def test_full_model_entry_is_parsed():
    config, _problems = parse_document(
        document(
            target_device="GPU",
            nireq=4,
            plugin_config={"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": 2, "FLAG": True},
            model_version_policy={"specific": {"versions": [1, 3]}},
            shape="(1,300,300,3)",
            layout="NHWC:NCHW",
            batch_size="2",
        ),
        CONFIG_DIR,
    )
    (model,) = config.models
    assert model.target_device == "GPU"
    assert model.nireq == 4
    assert model.plugin_config == {
        "INFERENCE_PRECISION_HINT": "f32",
        "NUM_STREAMS": "2",
        "FLAG": "YES",
    }
    assert model.policy == VersionPolicy("specific", versions=(1, 3))
    assert [(d.low, d.high) for d in model.shapes[""].dims] == [
        (1, 1),
        (300, 300),
        (300, 300),
        (3, 3),
    ]
    assert model.layouts == {"": "NHWC:NCHW"}
    assert model.batch_size == 2


def test_relative_base_path_is_resolved_against_the_config_directory():
    config, _problems = parse_document(document(base_path="models/m"), CONFIG_DIR)
    assert config.models[0].base_path == CONFIG_DIR / "models/m"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (document(nireqs=1), "Keyword:additionalProperties Key: #/model_config_list/0/config"),
        (document(nireq="2"), "Key: #/model_config_list/0/config/nireq"),
        (document(plugin_config={"A": [1]}), "Key: #/model_config_list/0/config/plugin_config"),
        (json.dumps({"model_config_list": [], "extra": 1}), "Keyword:additionalProperties Key: #"),
        (json.dumps({}), "Keyword:required"),
        (json.dumps({"model_config_list": [{"config": {"base_path": "/m"}}]}), "Keyword:required"),
    ],
)
def test_schema_rejects_what_ovms_rejects(text, where):
    with pytest.raises(ConfigError, match="JSON schema parse error") as error:
        parse_document(text, CONFIG_DIR)
    assert where in str(error.value)


@pytest.mark.parametrize(
    "policy",
    [
        {"latest": {}},
        {"latest": {"num_versions": 0}},
        {"specific": {"versions": [0]}},
        {"specific": {}},
        {"all": {"x": 1}},
        {"all": {}, "latest": {"num_versions": 1}},
        {"newest": {}},
    ],
)
def test_schema_rejects_malformed_version_policies(policy):
    with pytest.raises(ConfigError, match="model_version_policy"):
        parse_document(document(model_version_policy=policy), CONFIG_DIR)


def test_invalid_json_is_reported_as_such():
    with pytest.raises(ConfigError, match="not a valid JSON file"):
        parse_document('{"model_config_list": [', CONFIG_DIR)


def test_duplicate_model_names_keep_the_first_and_say_so():
    text = json.dumps(
        {
            "model_config_list": [
                {"config": {"name": "m", "base_path": "/a"}},
                {"config": {"name": "m", "base_path": "/b"}},
            ]
        }
    )
    config, problems = parse_document(text, CONFIG_DIR)
    assert [m.base_path for m in config.models] == [Path("/a")]
    assert problems == [
        (
            logging.WARNING,
            "Duplicated model names: m defined in config file. Only first definition will be loaded.",
        ),
        (logging.ERROR, "Loading main OVMS config models failed."),
    ]


def test_bad_shape_skips_only_that_model():
    text = json.dumps(
        {
            "model_config_list": [
                {"config": {"name": "bad", "base_path": "/a", "shape": "(1,x)"}},
                {"config": {"name": "good", "base_path": "/b"}},
            ]
        }
    )
    config, problems = parse_document(text, CONFIG_DIR)
    assert [m.name for m in config.models] == ["good"]
    assert problems == [
        (
            logging.ERROR,
            "Parsing model: bad config failed: The provided shape is in wrong format: '(1,x)'",
        ),
        (logging.ERROR, "Loading main OVMS config models failed."),
    ]


def test_monitoring_section_enables_metrics():
    text = json.dumps(
        {
            "model_config_list": [],
            "monitoring": {"metrics": {"enable": True, "metrics_list": ["ovms_streams"]}},
        }
    )
    config, _problems = parse_document(text, CONFIG_DIR)
    assert config.metrics_enable is True
    assert config.metrics_list == ("ovms_streams",)


@pytest.mark.parametrize(
    ("policy", "available", "served"),
    [
        (VersionPolicy(), [1, 2, 3], [3]),
        (VersionPolicy("latest", 2), [3, 1, 2], [2, 3]),
        (VersionPolicy("latest", 5), [1, 2], [1, 2]),
        (VersionPolicy("all"), [2, 1], [1, 2]),
        (VersionPolicy("specific", versions=(1, 3, 9)), [1, 2, 3], [1, 3]),
        (VersionPolicy(), [], []),
    ],
)
def test_version_policy_selects_versions(policy, available, served):
    assert policy.select(available) == served


def test_policy_from_json():
    assert VersionPolicy.from_json(None) == VersionPolicy("latest", 1)
    assert VersionPolicy.from_json({"all": {}}).kind == "all"
    assert VersionPolicy.from_json({"latest": {"num_versions": 3}}).num_versions == 3


@pytest.mark.parametrize(
    ("text", "dims"),
    [
        ("(1,3,224,224)", [(1, 1), (3, 3), (224, 224), (224, 224)]),
        ("[1, -1, 10:20]", [(1, 1), (-1, -1), (10, 20)]),
    ],
)
def test_shapes_parse(text, dims):
    assert [(d.low, d.high) for d in parse_shape(text).dims] == dims


def test_auto_shape_and_bad_shapes():
    assert parse_shape("auto").auto
    for bad in ("1,2", "(1,a)", "(1;2)", ""):
        with pytest.raises(ModelConfigError, match="wrong format"):
            parse_shape(bad)


def test_single_model_flags_become_a_config_entry():
    text = single_model_document(
        "m", "/models/m", {"nireq": 2, "model_version_policy": '{"all": {}}', "shape": "auto"}
    )
    config, _problems = parse_document(text, CONFIG_DIR)
    (model,) = config.models
    assert model.nireq == 2
    assert model.policy.kind == "all"
    assert model.shapes[""].auto


# ---- command line ----


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(argv)
    assert exit_info.value.code == cli.EX_USAGE
    return capsys.readouterr().err


def test_defaults_leave_both_ports_off_which_ovms_refuses(capsys):
    err = usage_error(["--config_path", "/c.json"], capsys)
    assert "port and rest_port cannot have the same values" in err


def test_unknown_flag_is_a_usage_error(capsys):
    # OVMS lets cxxopts collect unknown options and stray values, then lists them all.
    err = usage_error(["--config_path", "/c.json", "--port", "9000", "--nope", "1"], capsys)
    assert err == "error parsing options - unmatched arguments: --nope, 1, \n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--config_path", "/c", "--model_name", "m", "--port", "9"], "Use either config_path"),
        (["--model_name", "m", "--port", "9"], "Use config_path or model_path with model_name"),
        (["--config_path", "/c", "--port", "9", "--nireq", "2"], "exclusive with the config file"),
        (
            ["--config_path", "/c", "--port", "9", "--metrics_enable"],
            "rest_port setting is missing",
        ),
        (["--config_path", "/c", "--port", "9", "--metrics_list", "x"], "metrics_enable setting"),
        (["--config_path", "/c", "--port", "70000"], "port number out of range"),
        (["--config_path", "/c", "--port", "9", "--log_level", "LOUD"], "log_level should be"),
        (["--config_path", "/c", "--port", "9", "--grpc_bind_address", "a b"], "invalid format"),
        (["--config_path", "/c", "--port", "abc"], "error parsing options"),
    ],
)
def test_invalid_combinations_are_usage_errors(argv, message, capsys):
    assert message in usage_error(argv, capsys)


def test_valid_command_line():
    settings = cli.parse(
        [
            "--config_path",
            "/config/config.json",
            "--port",
            "9000",
            "--rest_port=8000",
            "--metrics_enable",
            "--file_system_poll_wait_seconds",
            "0",
            "--log_level",
            "DEBUG",
        ]
    )
    assert (settings.port, settings.rest_port) == (9000, 8000)
    assert settings.metrics_enable is True
    assert settings.file_system_poll_wait_seconds == 0
    assert settings.grpc_bind_address == "0.0.0.0"
    assert settings.single_model == {}


def test_single_model_mode_keeps_model_flags():
    settings = cli.parse(
        ["--model_name", "m", "--model_path", "/models/m", "--port", "9000", "--nireq", "2"]
    )
    assert settings.model_name == "m"
    assert settings.single_model == {"nireq": 2}
