"""Where the OVMS stand-in is as strict as OVMS: removed flags and config keys, cxxopts'
command line texts, and plugin_config keys checked against the device (real OpenVINO)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import openvino as ov
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ovms_standin"))

from ovms_standin import cli
from ovms_standin.config import (
    REMOVED_MODEL_KEYS,
    ConfigError,
    ModelConfig,
    parse_document,
)
from ovms_standin.devices import check_plugin_config, plugin_names, supported_keys
from ovms_standin.model import default_plugin_config

CONFIG_DIR = Path("/config")
AUTO_PRECISION_ERROR = (
    "Plugin config key: INFERENCE_PRECISION_HINT not found in supported config keys for "
    "device: AUTO."
)
BASE = ["--config_path", "/config/config.json", "--port", "9000"]


@pytest.fixture(scope="module")
def core() -> ov.Core:
    return ov.Core()


def cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(argv)
    assert exit_info.value.code == 64  # EX_USAGE, what OVMS exits with on Linux
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


# ---- command line: OVMS 2026.3 removed the stateful flags ----


def test_removed_flags_are_the_ones_ovms_dropped():
    assert set(cli.REMOVED_FLAGS) == {
        "stateful",
        "idle_sequence_cleanup",
        "low_latency_transformation",
        "max_sequence_number",
        "sequence_cleaner_poll_wait_minutes",
    }
    assert not set(cli.REMOVED_FLAGS) & set(cli.OPTIONS)


@pytest.mark.parametrize(
    ("extra", "unmatched"),
    [
        (["--stateful"], "--stateful, "),
        (["--stateful", "true"], "--stateful, true, "),
        (["--idle_sequence_cleanup=false"], "--idle_sequence_cleanup=false, "),
        (["--low_latency_transformation"], "--low_latency_transformation, "),
        (["--max_sequence_number", "500"], "--max_sequence_number, 500, "),
        (
            ["--sequence_cleaner_poll_wait_minutes", "5"],
            "--sequence_cleaner_poll_wait_minutes, 5, ",
        ),
    ],
)
def test_removed_flags_are_unmatched_arguments(extra, unmatched, capsys):
    err = cli_error([*BASE, *extra], capsys)
    assert err == f"error parsing options - unmatched arguments: {unmatched}\n"


def test_removed_flags_fail_in_single_model_mode_too(capsys):
    argv = ["--model_name", "m", "--model_path", "/models/m", "--port", "9000", "--stateful"]
    assert cli_error(argv, capsys) == "error parsing options - unmatched arguments: --stateful, \n"


def test_every_unmatched_token_is_listed_in_order(capsys):
    err = cli_error([*BASE, "--nope", "-z", "stray", "--", "--port", "1"], capsys)
    assert err == ("error parsing options - unmatched arguments: --nope, -z, stray, --port, 1, \n")


def test_unmatched_arguments_win_over_help_and_version(capsys):
    assert cli_error(["--version", "--nope"], capsys).startswith("error parsing options - ")
    assert cli_error(["--help", "--nope"], capsys).startswith("error parsing options - ")


def test_a_boolean_flag_does_not_take_the_next_token(capsys):
    err = cli_error(
        ["--config_path", "/c", "--port", "9", "--rest_port", "8", "--metrics_enable", "true"],
        capsys,
    )
    assert err == "error parsing options - unmatched arguments: true, \n"


@pytest.mark.parametrize(("text", "value"), [("true", True), ("T", True), ("0", False)])
def test_a_boolean_flag_takes_a_value_after_equals(text, value):
    settings = cli.parse([*BASE, "--rest_port", "8000", f"--metrics_enable={text}"])
    assert settings.metrics_enable is value


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--metrics_enable=yes"], "Argument \u2018yes\u2019 failed to parse"),
        (["--rest_port", "abc"], "Argument \u2018abc\u2019 failed to parse"),
        (["--rest_port", "-1"], "Argument \u2018-1\u2019 failed to parse"),
        (["--rest_port", "4294967296"], "Argument \u20184294967296\u2019 failed to parse"),
        (["--rest_port="], "Argument \u2018\u2019 failed to parse"),
        (["--rest_port"], "Option \u2018rest_port\u2019 is missing an argument"),
    ],
)
def test_bad_values_get_cxxopts_texts(extra, message, capsys):
    assert cli_error([*BASE, *extra], capsys) == f"error parsing options: {message}\n"


def test_a_valued_flag_takes_the_next_token_even_with_a_dash():
    settings = cli.parse([*BASE, "--log_path", "-weird-name.log"])
    assert settings.log_path == "-weird-name.log"


# ---- config.json: OVMS 2026.3 removed the stateful keys from its schema ----


def entry_document(**model: object) -> str:
    entry = {"name": "m", "base_path": "/models/m", **model}
    return json.dumps({"model_config_list": [{"config": entry}]})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("stateful", True),
        ("idle_sequence_cleanup", False),
        ("low_latency_transformation", True),
        ("max_sequence_number", 100),
    ],
)
def test_removed_model_keys_fail_the_schema(key, value):
    assert key in REMOVED_MODEL_KEYS
    with pytest.raises(ConfigError) as error:
        parse_document(entry_document(**{key: value}), CONFIG_DIR)
    assert str(error.value) == (
        "JSON schema parse error:#/definitions/model_config/properties/config. "
        f"Keyword:additionalProperties Key: #/model_config_list/0/config/{key}"
    )


def test_duplicated_keys_count_as_rapidjson_sees_them():
    text = (
        '{"model_config_list": [{"config": {"name": "a", "base_path": "/a"},'
        ' "config": {"name": "b", "base_path": "/b"}}]}'
    )
    with pytest.raises(ConfigError) as error:
        parse_document(text, CONFIG_DIR)
    assert str(error.value) == (
        "JSON schema parse error:#/definitions/model_config. Keyword:maxProperties "
        "Key: #/model_config_list/0"
    )


def test_a_key_next_to_config_fails_on_max_properties_as_in_ovms():
    text = json.dumps({"model_config_list": [{"config": {"name": "a"}, "stateful": True}]})
    with pytest.raises(ConfigError, match=r"#/definitions/model_config\. Keyword:maxProperties"):
        parse_document(text, CONFIG_DIR)


# ---- plugin_config keys against the target device's SUPPORTED_PROPERTIES ----


@pytest.mark.parametrize(
    ("device", "names"),
    [
        ("CPU", ["CPU"]),
        ("AUTO", ["AUTO"]),
        ("AUTO:GPU,CPU", ["AUTO", "GPU", "CPU"]),
        ("BATCH:CPU(16)", ["BATCH", "CPU"]),
        ("HETERO:GPU.0,CPU,", ["HETERO", "GPU.0", "CPU"]),
        ("MULTI:CPU", ["MULTI", "CPU"]),
    ],
)
def test_plugin_names_split_like_ovms(device, names):
    assert plugin_names(device) == names


@pytest.mark.parametrize(
    ("device", "supports_precision_hint"),
    [
        ("CPU", True),
        ("AUTO", False),
        ("MULTI", False),
        ("HETERO", False),
        ("AUTO:CPU", True),
        ("MULTI:CPU", True),
        ("HETERO:CPU", True),
        ("BATCH:CPU(16)", True),
    ],
)
def test_supported_keys_come_from_openvino(core, device, supports_precision_hint):
    keys, _records = supported_keys(core, device)
    assert ("INFERENCE_PRECISION_HINT" in keys) is supports_precision_hint
    assert "ENABLE_MMAP" in keys
    assert "PERFORMANCE_HINT" in keys or device.startswith(("HETERO", "BATCH"))


def test_batch_adds_its_own_keys_to_the_device_ones(core):
    keys, _records = supported_keys(core, "BATCH:CPU(16)")
    assert {"AUTO_BATCH_TIMEOUT", "INFERENCE_PRECISION_HINT", "NUM_STREAMS"} <= keys


def test_unsupported_key_is_reported_with_ovms_lines(core):
    records = check_plugin_config(
        core, "AUTO", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    )
    assert records is not None
    errors = [text for level, text in records if level == logging.ERROR]
    assert errors == [AUTO_PRECISION_ERROR]
    infos = [text for level, text in records if level == logging.INFO]
    assert infos[0] == "List of supported keys for this device:"
    assert infos[1:] == sorted(supported_keys(core, "AUTO")[0])


def test_first_unsupported_key_in_sorted_order_is_named(core):
    records = check_plugin_config(core, "HETERO:CPU", {"ZZZ": "1", "AAA": "1"})
    assert records is not None
    assert (
        logging.ERROR,
        "Plugin config key: AAA not found in supported config keys for device: HETERO:CPU.",
    ) in records


@pytest.mark.parametrize(
    ("device", "config"),
    [
        ("CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}),
        ("BATCH:CPU(16)", {"INFERENCE_PRECISION_HINT": "f32", "AUTO_BATCH_TIMEOUT": "1"}),
        ("AUTO", {"PERFORMANCE_HINT": "THROUGHPUT", "ENABLE_MMAP": "NO"}),
        ("NO_SUCH_DEVICE", {}),
    ],
)
def test_supported_keys_pass(core, device, config):
    assert check_plugin_config(core, device, config) is None


def test_unknown_device_supports_only_enable_mmap(core):
    assert check_plugin_config(core, "NO_SUCH_DEVICE", {"ENABLE_MMAP": "YES"}) is None
    records = check_plugin_config(core, "NO_SUCH_DEVICE", {"NUM_STREAMS": "1"})
    assert records is not None
    (warning,) = [text for level, text in records if level == logging.WARNING]
    assert warning.startswith(
        "Exception thrown from IE when requesting plugin: NO_SUCH_DEVICE; "
        "key: SUPPORTED_PROPERTIES; value. Error: "
    )
    assert records[-2:] == [
        (logging.INFO, "List of supported keys for this device:"),
        (logging.INFO, "ENABLE_MMAP"),
    ]


# ---- the model list stops at the first model with an unsupported key ----


def models_document(*entries: dict[str, object]) -> str:
    return json.dumps({"model_config_list": [{"config": e} for e in entries]})


def checker(core: ov.Core):
    def check(model: ModelConfig):
        return check_plugin_config(core, model.target_device, model.plugin_config)

    return check


def test_reading_stops_at_the_model_with_an_unsupported_key(core):
    text = models_document(
        {"name": "first", "base_path": "/a", "plugin_config": {"INFERENCE_PRECISION_HINT": "f32"}},
        {
            "name": "bad",
            "base_path": "/b",
            "target_device": "AUTO",
            "plugin_config": {"INFERENCE_PRECISION_HINT": "f32"},
        },
        {"name": "after", "base_path": "/c"},
    )
    config, problems = parse_document(text, CONFIG_DIR, checker(core))
    assert [m.name for m in config.models] == ["first"]
    assert config.stopped_at == "bad"
    errors = [text for level, text in problems if level == logging.ERROR]
    assert errors == [
        AUTO_PRECISION_ERROR,
        "Plugin config contains unsupported keys",
        "Loading main OVMS config models failed.",
    ]


def test_the_check_comes_before_the_duplicate_name_check(core):
    text = models_document(
        {"name": "m", "base_path": "/a"},
        {"name": "m", "base_path": "/b", "plugin_config": {"NO_SUCH_KEY": "1"}},
        {"name": "after", "base_path": "/c"},
    )
    config, _problems = parse_document(text, CONFIG_DIR, checker(core))
    assert [m.name for m in config.models] == ["m"]
    assert config.stopped_at == "m"


def test_a_model_that_does_not_parse_is_skipped_before_the_check(core):
    text = models_document(
        {
            "name": "bad-shape",
            "base_path": "/a",
            "shape": "(1,x)",
            "plugin_config": {"NO_SUCH_KEY": "1"},
        },
        {"name": "after", "base_path": "/c"},
    )
    config, _problems = parse_document(text, CONFIG_DIR, checker(core))
    assert [m.name for m in config.models] == ["after"]
    assert config.stopped_at is None


def test_without_a_target_device_the_check_uses_cpu(core):
    text = models_document(
        {
            "name": "a",
            "base_path": "/a",
            "target_device": "",
            "plugin_config": {"INFERENCE_PRECISION_HINT": "f32"},
        },
    )
    config, problems = parse_document(text, CONFIG_DIR, checker(core))
    assert config.models[0].target_device == "CPU"
    assert config.stopped_at is None
    assert problems == []


# ---- what OVMS adds to plugin_config when compiling ----


@pytest.mark.parametrize(
    ("given", "compiled"),
    [
        ({}, {"PERFORMANCE_HINT": "LATENCY"}),
        ({"NUM_STREAMS": "2"}, {"NUM_STREAMS": "2"}),
        ({"PERFORMANCE_HINT": "THROUGHPUT"}, {"PERFORMANCE_HINT": "THROUGHPUT"}),
        (
            {"INFERENCE_PRECISION_HINT": "f32"},
            {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"},
        ),
    ],
)
def test_latency_hint_is_the_default(given, compiled):
    assert default_plugin_config(given) == compiled
