"""Client settings: profile < env file < environment < flags, and errors that name the setting."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from ovms_client import cli
from ovms_client.errors import ConfigError, ExitCode
from ovms_client.labels import load_labels
from ovms_client.settings import (
    SETTINGS,
    SHIPPED_PROFILES,
    Settings,
    SourceKind,
    env_name,
    load,
    parse_env_file,
)

CLIENT = Path(__file__).resolve().parents[2] / "client"


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A directory with files that input, labels and TLS settings can point at."""
    (tmp_path / "walk.mp4").write_bytes(b"not decoded by the settings layer")
    (tmp_path / "frames").mkdir()
    (tmp_path / "labels.txt").write_text("background\nperson\n")
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("PEM")
    return tmp_path


def write_profile(directory: Path, **values: object) -> Path:
    base = {
        "model_name": "person-detection",
        "server_address": "127.0.0.1:9000",
        "inputs": ["walk.mp4"],
    }
    base.update(values)
    path = directory / "profile.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def test_profile_alone_gives_its_values_and_defaults(media: Path) -> None:
    profile = write_profile(media, score_threshold=0.7, api="tfs")
    settings = load({}, {}, Path("/"), str(profile))
    assert settings.model_name == "person-detection"
    assert settings.api == "tfs"
    assert settings.score_threshold == 0.7
    assert settings.in_flight == 2
    assert settings.layout == "NHWC"
    # Relative paths resolve against the profile's directory, not the working directory.
    assert settings.inputs[0].source == str(media / "walk.mp4")
    assert settings.inputs[0].kind is SourceKind.VIDEO


def test_precedence_is_flags_over_environment_over_env_file_over_profile(media: Path) -> None:
    profile = write_profile(
        media, score_threshold=0.1, in_flight=1, request_timeout=1, model_version=1
    )
    env_file = media / "client.env"
    env_file.write_text(
        "# comment\n\nOVMS_CLIENT_SCORE_THRESHOLD=0.2\nOVMS_CLIENT_IN_FLIGHT=3\n"
        "export OVMS_CLIENT_REQUEST_TIMEOUT='4'\nUNRELATED=ignored\n"
    )
    environ = {"OVMS_CLIENT_SCORE_THRESHOLD": "0.3", "OVMS_CLIENT_IN_FLIGHT": "5"}
    flags = {"score_threshold": "0.4"}
    settings = load(flags, environ, Path("/"), str(profile), str(env_file))
    assert settings.score_threshold == 0.4  # flag
    assert settings.in_flight == 5  # environment over env file
    assert settings.request_timeout == 4.0  # env file over profile
    assert settings.model_version == 1  # profile only


def test_profile_and_env_file_can_be_named_in_the_environment(media: Path) -> None:
    profile = write_profile(media)
    env_file = media / "client.env"
    env_file.write_text("OVMS_CLIENT_API=tfs\n")
    environ = {"OVMS_CLIENT_PROFILE": str(profile), "OVMS_CLIENT_ENV_FILE": str(env_file)}
    assert load({}, environ, Path("/")).api == "tfs"


def test_shipped_profile_is_found_by_name_in_the_package_and_loads(media: Path) -> None:
    settings = load({"inputs": [str(media / "walk.mp4")]}, {}, media, "person-detection-ssd")
    assert settings.model_name == "person-detection"
    assert settings.input_size == (300, 300)
    assert settings.adapter == "ssd"
    # The labels file is found beside the profile, inside the package.
    assert settings.labels == SHIPPED_PROFILES / "person-detection-ssd.labels"
    assert load_labels(settings.labels)[1] == "person"


def test_profiles_dir_is_searched_first_then_the_package(media: Path) -> None:
    own = media / "profiles"
    own.mkdir()
    (own / "person-detection-ssd.yaml").write_text(
        "model_name: own\nserver_address: 127.0.0.1:9000\ninputs: [../walk.mp4]\n"
    )
    environ = {"OVMS_CLIENT_PROFILES_DIR": str(own)}
    assert load({}, environ, media, "person-detection-ssd").model_name == "own"
    # A name the directory does not have still finds the shipped profile.
    shipped = load({"inputs": ["walk.mp4"]}, environ, media, "yolov8-coco")
    assert shipped.labels == SHIPPED_PROFILES / "yolo-coco.labels"


def test_inputs_accept_lists_mappings_and_comma_separated_env(media: Path) -> None:
    profile = write_profile(
        media,
        inputs=[
            {"source": "walk.mp4", "id": "door"},
            "frames",
            "rtsp://127.0.0.1:8554/cam",
            "/dev/video0",
            1,
        ],
    )
    specs = load({}, {}, media, str(profile)).inputs
    assert [(s.stream_id, s.kind) for s in specs] == [
        ("door", SourceKind.VIDEO),
        ("stream1", SourceKind.IMAGES),
        ("stream2", SourceKind.STREAM),
        ("stream3", SourceKind.CAMERA),
        ("stream4", SourceKind.CAMERA),
    ]
    from_env = load(
        {}, {"OVMS_CLIENT_INPUT": f"{media}/walk.mp4, {media}/frames"}, media, str(profile)
    ).inputs
    assert [s.kind for s in from_env] == [SourceKind.VIDEO, SourceKind.IMAGES]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("score_threshold", 1.5, "expected a number between 0.0 and 1.0"),
        ("score_threshold", "high", "expected a number"),
        ("in_flight", 0, "expected an integer between 1 and 64"),
        ("api", "rest", "expected one of kserve, tfs"),
        ("layout", "HWC", "expected one of NHWC, NCHW"),
        ("server_address", "localhost", "expected HOST:PORT"),
        ("server_address", "host:70000", "expected HOST:PORT"),
        ("input_size", "300", "expected WIDTHxHEIGHT"),
        ("dtype", "int4", "expected one of uint8, float32"),
        ("loop", "maybe", "expected true or false"),
        ("labels", "missing.txt", "is not a file"),
        ("inputs", ["nowhere.mp4"], "does not exist"),
        ("request_timeout", 0, "expected a number > 0.0"),
        ("output", ".", "is a directory"),
    ],
)
def test_bad_profile_values_name_setting_and_origin(
    media: Path, key: str, value: object, expected: str
) -> None:
    profile = write_profile(media, **{key: value})
    with pytest.raises(ConfigError) as caught:
        load({}, {}, media, str(profile))
    message = str(caught.value)
    assert f"setting '{key}'" in message
    assert f"profile {profile}" in message
    assert expected in message


def test_bad_environment_value_names_the_variable(media: Path) -> None:
    profile = write_profile(media)
    with pytest.raises(ConfigError, match="environment variable OVMS_CLIENT_IN_FLIGHT"):
        load({}, {"OVMS_CLIENT_IN_FLIGHT": "many"}, media, str(profile))


def test_bad_flag_value_names_the_flag(media: Path) -> None:
    profile = write_profile(media)
    with pytest.raises(ConfigError, match="flag --metrics-interval"):
        load({"metrics_interval": "-1"}, {}, media, str(profile))


def test_a_good_override_hides_a_bad_lower_layer_value(media: Path) -> None:
    profile = write_profile(media, score_threshold="nonsense")
    assert load({"score_threshold": "0.6"}, {}, media, str(profile)).score_threshold == 0.6


def test_unknown_keys_are_rejected_everywhere(media: Path) -> None:
    profile = write_profile(media, scor_threshold=0.5)
    with pytest.raises(ConfigError, match="unknown setting 'scor_threshold'"):
        load({}, {}, media, str(profile))
    good = write_profile(media)
    with pytest.raises(ConfigError, match="unknown setting OVMS_CLIENT_THRESHOLD"):
        load({}, {"OVMS_CLIENT_THRESHOLD": "1"}, media, str(good))


def test_missing_required_setting_says_where_to_set_it(media: Path) -> None:
    path = media / "partial.yaml"
    path.write_text("server_address: 127.0.0.1:9000\ninputs: [walk.mp4]\n")
    with pytest.raises(ConfigError) as caught:
        load({}, {}, media, str(path))
    message = str(caught.value)
    assert "setting 'model_name' is required" in message
    assert "OVMS_CLIENT_MODEL_NAME" in message
    assert "--model-name" in message


def test_profile_that_is_not_a_mapping_or_not_yaml(media: Path) -> None:
    listed = media / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load({}, {}, media, str(listed))
    broken = media / "broken.yaml"
    broken.write_text("model_name: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load({}, {}, media, str(broken))
    with pytest.raises(ConfigError, match="cannot read profile"):
        load({}, {}, media, str(media / "absent.yaml"))


def test_tls_settings_must_come_as_a_usable_set(media: Path) -> None:
    profile = write_profile(
        media,
        tls_ca="ca.pem",
        tls_cert="client.pem",
        tls_key="client.key",
        tls_server_name="ovms.store.local",
    )
    settings = load({}, {}, media, str(profile))
    assert settings.tls
    assert settings.tls_key == media / "client.key"
    with pytest.raises(ConfigError, match="'tls_cert' and 'tls_key' go together"):
        load({}, {}, media, str(write_profile(media, tls_ca="ca.pem", tls_cert="client.pem")))
    with pytest.raises(ConfigError, match="'tls_cert' needs 'tls_ca'"):
        load({}, {}, media, str(write_profile(media, tls_cert="client.pem", tls_key="client.key")))
    with pytest.raises(ConfigError, match="'tls_server_name' only applies with TLS"):
        load({}, {}, media, str(write_profile(media, tls_server_name="x")))


def test_env_file_syntax_errors_give_the_line(media: Path) -> None:
    env_file = media / "bad.env"
    env_file.write_text("OVMS_CLIENT_API=kserve\nthis line has no equals sign\n")
    with pytest.raises(ConfigError, match=r"bad.env line 2: expected KEY=VALUE"):
        parse_env_file(env_file)


def test_labels_file_forms(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("background\nperson\n\ncar\n")
    assert load_labels(plain) == {0: "background", 1: "person", 3: "car"}
    numbered = tmp_path / "numbered.txt"
    numbered.write_text("# coco subset\n1 person\n3: car\n")
    assert load_labels(numbered) == {1: "person", 3: "car"}


def test_cli_check_prints_effective_settings(
    media: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVMS_CLIENT_IN_FLIGHT", "4")
    profile = write_profile(media)
    code = cli.main(["--profile", str(profile), "--check", "--api", "tfs", "--loop"])
    assert code == ExitCode.OK
    printed = json.loads(capsys.readouterr().out)
    assert printed["api"] == "tfs"
    assert printed["loop"] is True
    assert printed["in_flight"] == 4


def test_cli_bad_configuration_exits_2_with_the_reason(
    media: Path, caplog: pytest.LogCaptureFixture
) -> None:
    profile = write_profile(media, in_flight=100)
    assert cli.main(["--profile", str(profile), "--check"]) == ExitCode.CONFIG
    assert "setting 'in_flight'" in caplog.text


def test_readme_documents_every_setting() -> None:
    readme = (CLIENT / "README.md").read_text()
    for name in SETTINGS:
        assert f"| `{name}`" in readme, name
        assert f"`{env_name(name)}`" in readme, name


def test_input_fps_is_unset_by_default_and_comes_from_every_layer(media: Path) -> None:
    profile = write_profile(media)
    # Unset: the source decides (a looping video plays at its own rate; see sources.pace_for).
    assert load({}, {}, media, str(profile)).input_fps is None
    assert load({}, {}, media, str(write_profile(media, input_fps=0))).input_fps == 0.0
    assert load({}, {}, media, str(write_profile(media, input_fps=2))).input_fps == 2.0
    assert load({}, {"OVMS_CLIENT_INPUT_FPS": "2.5"}, media, str(profile)).input_fps == 2.5
    assert (
        load({"input_fps": "0.5"}, {"OVMS_CLIENT_INPUT_FPS": "2.5"}, media, str(profile)).input_fps
        == 0.5
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-1, "expected a number >= 0.0"), ("fast", "expected a number"), (True, "expected a number")],
)
def test_bad_input_fps_in_profile_names_setting_and_origin(
    media: Path, value: object, expected: str
) -> None:
    profile = write_profile(media, input_fps=value)
    with pytest.raises(ConfigError) as caught:
        load({}, {}, media, str(profile))
    message = str(caught.value)
    assert "setting 'input_fps'" in message
    assert f"profile {profile}, key 'input_fps'" in message
    assert expected in message


def test_bad_input_fps_names_the_variable_or_flag(media: Path) -> None:
    profile = write_profile(media)
    with pytest.raises(
        ConfigError,
        match=r"'input_fps' \(from environment variable "
        r"OVMS_CLIENT_INPUT_FPS\): expected a number",
    ):
        load({}, {"OVMS_CLIENT_INPUT_FPS": "2fps"}, media, str(profile))
    with pytest.raises(
        ConfigError,
        match=r"'input_fps' \(from flag --input-fps\): expected "
        r"a number >= 0.0",
    ):
        load({"input_fps": "-0.5"}, {}, media, str(profile))


def test_cli_input_fps_flag(media: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = write_profile(media)
    assert cli.main(["--profile", str(profile), "--check", "--input-fps", "2"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["input_fps"] == 2.0


# --- one definition per setting: where values come from, and what errors say about it


@pytest.mark.parametrize(
    ("layer", "origin"),
    [
        ("profile", "from profile {profile}, key 'in_flight'"),
        ("env file", "from env file {env_file}, OVMS_CLIENT_IN_FLIGHT"),
        ("environment", "from environment variable OVMS_CLIENT_IN_FLIGHT"),
        ("flag", "from flag --in-flight"),
    ],
)
def test_the_winning_layer_is_the_one_an_error_names(media: Path, layer: str, origin: str) -> None:
    """Layers below `layer` set a good value, `layer` a bad one, layers above nothing: the
    bad value wins and the error says where it came from."""
    order = ["profile", "env file", "environment", "flag"]
    position = order.index(layer)

    def value(at: str, good: str) -> str | None:
        here = order.index(at)
        return None if here > position else ("0" if here == position else good)

    profile = write_profile(media, in_flight=int(value("profile", "3") or 0))
    env_file = media / "client.env"
    in_env_file = value("env file", "4")
    env_file.write_text("" if in_env_file is None else f"OVMS_CLIENT_IN_FLIGHT={in_env_file}\n")
    in_environment = value("environment", "5")
    environ = {} if in_environment is None else {"OVMS_CLIENT_IN_FLIGHT": in_environment}
    flags = {} if value("flag", "6") is None else {"in_flight": "0"}
    with pytest.raises(ConfigError) as caught:
        load(flags, environ, media, str(profile), str(env_file))
    raw = 0 if layer == "profile" else "0"  # YAML gives an int, the others text
    assert str(caught.value) == (
        f"invalid value {raw!r} for setting 'in_flight' "
        f"({origin.format(profile=profile, env_file=env_file)}): "
        "expected an integer between 1 and 64"
    )


def test_each_layer_overrides_the_one_below_setting_by_setting(media: Path) -> None:
    profile = write_profile(media, in_flight=3, top_k=3, mqtt_qos=1, max_frames=3)
    env_file = media / "client.env"
    env_file.write_text("OVMS_CLIENT_TOP_K=4\nOVMS_CLIENT_MQTT_QOS=2\nOVMS_CLIENT_MAX_FRAMES=4\n")
    environ = {"OVMS_CLIENT_MQTT_QOS": "0", "OVMS_CLIENT_MAX_FRAMES": "5"}
    settings = load({"max_frames": "6"}, environ, media, str(profile), str(env_file))
    assert (settings.in_flight, settings.top_k, settings.mqtt_qos, settings.max_frames) == (
        3,
        4,
        0,
        6,
    )
    assert settings.model_version == 0  # default: no layer sets it


def test_inputs_errors_name_the_flag_and_variable_that_exist(media: Path) -> None:
    # The flag is --input (repeatable); an error must not point at a flag that does not exist.
    partial = media / "partial.yaml"
    partial.write_text("model_name: m\nserver_address: 127.0.0.1:9000\n")
    with pytest.raises(ConfigError) as caught:
        load({}, {}, media, str(partial))
    assert "setting 'inputs' is required" in str(caught.value)
    assert "--input\b" not in str(caught.value) and "--inputs" not in str(caught.value)
    assert str(caught.value).endswith("OVMS_CLIENT_INPUTS or --input")
    with pytest.raises(ConfigError, match=r"\(from flag --input\): .*does not exist"):
        load({"inputs": ["nowhere.mp4"]}, {}, media, str(partial))
    # The variable named is the one that was set, alias or not.
    with pytest.raises(ConfigError, match=r"\(from environment variable OVMS_CLIENT_INPUT\)"):
        load({}, {"OVMS_CLIENT_INPUT": "nowhere.mp4"}, media, str(partial))
    profile = write_profile(media)
    text = profile.read_text().replace("inputs:", "input:")
    profile.write_text(text.replace("walk.mp4", "nowhere.mp4"))
    with pytest.raises(ConfigError, match=r"from profile .*, key 'input'\)"):
        load({}, {}, media, str(profile))


def test_profile_may_not_set_input_and_inputs(media: Path) -> None:
    profile = write_profile(media, input="frames")  # written in key order: input, inputs
    with pytest.raises(ConfigError, match=r"sets 'inputs' twice \(as 'input' and 'inputs'\)"):
        load({}, {}, media, str(profile))


def test_cli_flag_errors_name_the_flag(media: Path, caplog: pytest.LogCaptureFixture) -> None:
    profile = write_profile(media)
    code = cli.main(["--profile", str(profile), "--check", "--input", "nowhere.mp4"])
    assert code == ExitCode.CONFIG
    assert "setting 'inputs' (from flag --input)" in caplog.text
    assert cli.main(["--profile", str(profile), "--check", "--layout", "CHW"]) == ExitCode.CONFIG
    assert (
        "'CHW' for setting 'layout' (from flag --layout): expected one of NHWC, NCHW" in caplog.text
    )


def test_choices_are_read_in_any_case(media: Path) -> None:
    settings = load(
        {"layout": "nchw", "api": "KServe", "log_level": "debug"},
        {},
        media,
        str(write_profile(media)),
    )
    assert (settings.layout, settings.api, settings.log_level) == ("NCHW", "kserve", "DEBUG")


def test_help_shows_every_setting_with_its_default_choices_and_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wide terminal keeps argparse from wrapping inside the texts looked for.
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit) as caught:
        cli.main(["--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "--api {kserve,tfs}" in text
    assert "--layout {NHWC,NCHW}" in text
    assert "--log-level {DEBUG,INFO,WARNING,ERROR}" in text
    assert "--input SOURCE" in text and "--inputs" not in text
    assert "--loop, --no-loop" in text
    assert "(env OVMS_CLIENT_API; default: kserve)" in text
    assert "(env OVMS_CLIENT_SCORE_THRESHOLD; default: 0.5)" in text
    assert "(env OVMS_CLIENT_OUTPUT_MAX_MB; default: 64)" in text
    assert "(env OVMS_CLIENT_INPUT_SIZE; default: from model metadata)" in text
    assert "(env OVMS_CLIENT_MODEL_NAME; required)" in text
    assert "person-detection-ssd" in text  # the shipped profiles are named
    for info in SETTINGS.values():
        assert f"{info.flag} " in text or f"{info.flag}," in text, info.name
        assert f"env {info.env};" in text, info.name


def test_every_flag_reaches_its_setting(media: Path) -> None:
    """Each setting's flag, given a valid value, ends up in that setting."""
    values = {
        "model_version": "3",
        "api": "tfs",
        "tls_server_name": "x",
        "input_fps": "2",
        "input_name": "image",
        "input_size": "4x2",
        "layout": "NCHW",
        "color_order": "BGR",
        "dtype": "float32",
        "mean": "1",
        "scale": "2",
        "adapter": "yolo",
        "score_threshold": "0.1",
        "iou_threshold": "0.2",
        "top_k": "7",
        "yolo_variant": "v8",
        "output": "out.jsonl",
        "output_max_mb": "1",
        "output_backups": "2",
        "annotate_dir": "ann",
        "mqtt_broker": "b:1883",
        "mqtt_topic": "t/{stream}",
        "mqtt_qos": "1",
        "prometheus_port": "9108",
        "prometheus_address": "127.0.0.1",
        "metrics_interval": "1",
        "ready_timeout": "2",
        "request_timeout": "3",
        "in_flight": "4",
        "max_frames": "9",
        "log_level": "ERROR",
        "density_target_fps": "1.5",
        "density_max_streams": "3",
        "density_trial_s": "2",
        "tls_ca": "ca.pem",
        "tls_cert": "client.pem",
        "tls_key": "client.key",
        "labels": "labels.txt",
        "jpeg_quality": "50",
        "classifier_model": "classifier",
        "classifier_labels": "labels.txt",
        "classifier_top_k": "2",
        "classifier_color_order": "BGR",
        "classify_labels": "person,car",
    }
    argv = [arg for name, value in values.items() for arg in (SETTINGS[name].flag, value)]
    args = cli.build_parser().parse_args(
        [
            *argv,
            "--model-name",
            "m",
            "--server-address",
            "h:1",
            "--input",
            "walk.mp4",
            "--input",
            "frames",
            "--loop",
            "--stream-density",
        ]
    )
    dumped = load(cli._flags(args), {}, media).to_dict()
    assert dumped["model_name"] == "m" and dumped["server_address"] == "h:1"
    assert [i["kind"] for i in dumped["inputs"]] == ["video", "images"]
    assert dumped["loop"] is True and dumped["stream_density"] is True
    unchanged = {name for name in SETTINGS if name not in values}
    # encoding: jpeg cannot go with api tfs, layout NCHW, mean and scale set above; its flag
    # is checked in test_jpeg_encoding_from_every_layer.
    assert unchanged == {
        "model_name",
        "server_address",
        "inputs",
        "loop",
        "stream_density",
        "encoding",
    }
    for name in values:
        assert dumped[name] != Settings.model_fields[name].default, name


def test_tfs_without_the_extra_is_a_configuration_error(
    media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ovms_client.settings.tfs_api_installed", lambda: False)
    profile = write_profile(media)
    assert load({}, {}, media, str(profile)).api == "kserve"
    with pytest.raises(ConfigError) as caught:
        load({}, {"OVMS_CLIENT_API": "tfs"}, media, str(profile))
    assert str(caught.value).startswith(
        "setting 'api' is tfs (from environment variable OVMS_CLIENT_API), which needs the "
        "ovmsclient package: install edge-retail-ovms-client[tfs]"
    )


def _settings_table_script():
    spec = importlib.util.spec_from_file_location(
        "settings_table", CLIENT / "scripts/settings_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_settings_table_is_the_one_generated_from_the_model(tmp_path: Path) -> None:
    script = _settings_table_script()
    readme = (CLIENT / "README.md").read_text(encoding="utf-8")
    assert script.with_table(readme) == readme, (
        "client/README.md's settings table is stale: run python client/scripts/settings_table.py"
    )
    assert script.main(["--check"]) == 0
    # One row per setting, in the model's order.
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    table = rows[: len(SETTINGS)]
    assert [row.split("`")[1] for row in table] == list(SETTINGS)


def test_settings_table_check_fails_on_a_stale_readme_and_the_script_fixes_it(
    tmp_path: Path,
) -> None:
    script = _settings_table_script()
    stale = tmp_path / "README.md"
    readme = (CLIENT / "README.md").read_text(encoding="utf-8")
    stale.write_text(readme.replace("| `in_flight` |", "| `in_flight_renamed` |"))
    assert script.main(["--check", "--readme", str(stale)]) == 1
    assert script.main(["--readme", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == readme


# --- encoding: jpeg (OVMS binary inputs)


def test_jpeg_encoding_from_every_layer(media: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = write_profile(media)
    settings = load({}, {}, media, str(profile))
    assert (settings.encoding, settings.jpeg_quality) == ("raw", 85)
    assert load({}, {}, media, str(write_profile(media, encoding="JPEG"))).encoding == "jpeg"
    assert load({}, {"OVMS_CLIENT_ENCODING": "jpeg"}, media, str(profile)).encoding == "jpeg"
    argv = ["--profile", str(profile), "--check", "--encoding", "jpeg", "--jpeg-quality", "70"]
    assert cli.main(argv) == ExitCode.OK
    dumped = json.loads(capsys.readouterr().out)
    assert (dumped["encoding"], dumped["jpeg_quality"]) == ("jpeg", 70)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "expected an integer between 1 and 100"),
        (101, "expected an integer between 1 and 100"),
        ("high", "expected an integer"),
        (8.5, "expected an integer"),
    ],
)
def test_jpeg_quality_out_of_range_names_setting_and_origin(
    media: Path, value: object, expected: str
) -> None:
    profile = write_profile(media, encoding="jpeg", jpeg_quality=value)
    with pytest.raises(ConfigError) as caught:
        load({}, {}, media, str(profile))
    assert str(caught.value) == (
        f"invalid value {value!r} for setting 'jpeg_quality' (from profile {profile}, key "
        f"'jpeg_quality'): {expected}"
    )


def test_jpeg_with_the_tfs_api_is_refused_naming_both_settings(media: Path) -> None:
    profile = write_profile(media, api="tfs")
    with pytest.raises(ConfigError) as caught:
        load({"encoding": "jpeg"}, {}, media, str(profile))
    assert str(caught.value) == (
        "setting 'encoding' is jpeg (from flag --encoding), but 'api' is tfs (from profile "
        f"{profile}, key 'api'): OVMS takes encoded images (binary inputs) only on the KServe "
        "API; set api: kserve, or encoding: raw"
    )


def test_cli_refuses_jpeg_with_tfs_with_exit_code_2(
    media: Path, caplog: pytest.LogCaptureFixture
) -> None:
    profile = write_profile(media, encoding="jpeg")
    code = cli.main(["--profile", str(profile), "--check", "--api", "tfs"])
    assert code == ExitCode.CONFIG
    assert "OVMS takes encoded images (binary inputs) only on the KServe API" in caplog.text


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"layout": "NCHW"}, r"but 'layout' is NCHW \(from profile"),
        ({"dtype": "float32", "scale": 255}, "'mean' and 'scale' cannot be applied"),
    ],
)
def test_jpeg_needs_what_ovms_binary_inputs_take(
    media: Path, values: dict[str, object], expected: str
) -> None:
    profile = write_profile(media, encoding="jpeg", **values)
    with pytest.raises(ConfigError, match=expected):
        load({}, {}, media, str(profile))
    # The same settings are fine with raw tensors.
    assert load({}, {}, media, str(write_profile(media, **values))).encoding == "raw"
