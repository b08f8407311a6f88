"""Client settings: profile < env file < environment < flags, and errors that name the setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from ovms_client import cli
from ovms_client.errors import ConfigError, ExitCode
from ovms_client.labels import load_labels
from ovms_client.settings import FIELDS, SourceKind, env_name, load, parse_env_file

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
    base = {"model_name": "person-detection", "server_address": "127.0.0.1:9000",
            "inputs": ["walk.mp4"]}
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
    profile = write_profile(media, score_threshold=0.1, in_flight=1, request_timeout=1,
                            model_version=1)
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


def test_shipped_profile_is_found_by_name_and_loads(media: Path) -> None:
    environ = {"OVMS_CLIENT_PROFILES_DIR": str(CLIENT / "profiles")}
    settings = load({"inputs": [str(media / "walk.mp4")]}, environ, media,
                    "person-detection-ssd")
    assert settings.model_name == "person-detection"
    assert settings.input_size == (300, 300)
    assert settings.adapter == "ssd"
    assert load_labels(settings.labels)[1] == "person"


def test_inputs_accept_lists_mappings_and_comma_separated_env(media: Path) -> None:
    profile = write_profile(media, inputs=[{"source": "walk.mp4", "id": "door"}, "frames",
                                           "rtsp://127.0.0.1:8554/cam", "/dev/video0", 1])
    specs = load({}, {}, media, str(profile)).inputs
    assert [(s.stream_id, s.kind) for s in specs] == [
        ("door", SourceKind.VIDEO), ("stream1", SourceKind.IMAGES),
        ("stream2", SourceKind.STREAM), ("stream3", SourceKind.CAMERA),
        ("stream4", SourceKind.CAMERA),
    ]
    from_env = load({}, {"OVMS_CLIENT_INPUT": f"{media}/walk.mp4, {media}/frames"}, media,
                    str(profile)).inputs
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
def test_bad_profile_values_name_setting_and_origin(media: Path, key: str, value: object,
                                                    expected: str) -> None:
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
    profile = write_profile(media, tls_ca="ca.pem", tls_cert="client.pem", tls_key="client.key",
                            tls_server_name="ovms.store.local")
    settings = load({}, {}, media, str(profile))
    assert settings.tls
    assert settings.tls_key == media / "client.key"
    with pytest.raises(ConfigError, match="'tls_cert' and 'tls_key' go together"):
        load({}, {}, media, str(write_profile(media, tls_ca="ca.pem", tls_cert="client.pem")))
    with pytest.raises(ConfigError, match="'tls_cert' needs 'tls_ca'"):
        load({}, {}, media, str(write_profile(media, tls_cert="client.pem",
                                              tls_key="client.key")))
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


def test_cli_check_prints_effective_settings(media: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVMS_CLIENT_IN_FLIGHT", "4")
    profile = write_profile(media)
    code = cli.main(["--profile", str(profile), "--check", "--api", "tfs", "--loop"])
    assert code == ExitCode.OK
    printed = json.loads(capsys.readouterr().out)
    assert printed["api"] == "tfs"
    assert printed["loop"] is True
    assert printed["in_flight"] == 4


def test_cli_bad_configuration_exits_2_with_the_reason(media: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    profile = write_profile(media, in_flight=100)
    assert cli.main(["--profile", str(profile), "--check"]) == ExitCode.CONFIG
    assert "setting 'in_flight'" in caplog.text


def test_readme_documents_every_setting() -> None:
    readme = (CLIENT / "README.md").read_text()
    for spec in FIELDS:
        assert f"| `{spec.name}`" in readme, spec.name
        assert f"`{env_name(spec.name)}`" in readme, spec.name


def test_input_fps_defaults_to_unpaced_and_comes_from_every_layer(media: Path) -> None:
    profile = write_profile(media)
    assert load({}, {}, media, str(profile)).input_fps == 0.0
    assert load({}, {}, media, str(write_profile(media, input_fps=2))).input_fps == 2.0
    assert load({}, {"OVMS_CLIENT_INPUT_FPS": "2.5"}, media, str(profile)).input_fps == 2.5
    assert load({"input_fps": "0.5"}, {"OVMS_CLIENT_INPUT_FPS": "2.5"}, media,
                str(profile)).input_fps == 0.5


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-1, "expected a number >= 0.0"), ("fast", "expected a number"),
     (True, "expected a number")],
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
    with pytest.raises(ConfigError, match=r"'input_fps' \(from environment variable "
                                          r"OVMS_CLIENT_INPUT_FPS\): expected a number"):
        load({}, {"OVMS_CLIENT_INPUT_FPS": "2fps"}, media, str(profile))
    with pytest.raises(ConfigError, match=r"'input_fps' \(from flag --input-fps\): expected "
                                          r"a number >= 0.0"):
        load({"input_fps": "-0.5"}, {}, media, str(profile))


def test_cli_input_fps_flag(media: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = write_profile(media)
    assert cli.main(["--profile", str(profile), "--check", "--input-fps", "2"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["input_fps"] == 2.0
