"""The serve config file: file < LPTEM_* variables < flags, sources, every refusal naming file, key, line."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lptem.service.cli import config_from_args, resolve_serve
from lptem.service.config_cli import render
from lptem.service.config_file import ConfigError, key_lines
from lptem.service.mailbox import Policy
from lptem.service.record import RecordFolderError, record_folder


def write(tmp_path: Path, text: str, name: str = "lptem.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_flags_override_variables_which_override_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'metrics_port = 9105\nmsd_lags = 16\npolicy = "queue"\n\n[engine_options]\nsymmetry = 4\n'
        "particle_radius_px = 6.5\n",
    )
    env = {"LPTEM_MSD_LAGS": "24", "LPTEM_POLICY": "latest", "LPTEM_ENGINE_OPTIONS": "particle_radius_px=7"}
    resolved = resolve_serve(["--config", str(path), "--policy", "queue", "-E", "polarity=dark"], env)
    args = resolved.namespace
    assert (args.metrics_port, args.msd_lags, args.policy) == (9105, 24, "queue")
    assert sorted(args.engine_opt) == ["particle_radius_px=7", "polarity=dark", "symmetry=4"]
    sources = {key: str(source) for key, source in resolved.sources.items()}
    assert sources["metrics_port"] == f"file {path} line 1"
    assert sources["msd_lags"] == "env LPTEM_MSD_LAGS"
    assert sources["policy"] == "flag --policy"
    assert sources["msd_window"] == "default"
    assert sources["engine_options.symmetry"] == f"file {path} line 6"
    assert sources["engine_options.particle_radius_px"] == "env LPTEM_ENGINE_OPTIONS"
    config = config_from_args(args)
    assert config.policy is Policy.QUEUE
    assert config.msd.max_lag == 24
    assert config.engine_options == {"symmetry": "4", "particle_radius_px": "7", "polarity": "dark"}


def test_without_a_file_or_variables_the_flags_defaults_hold(tmp_path: Path) -> None:
    resolved = resolve_serve([], {})
    assert resolved.file is None
    assert {s.kind for s in resolved.sources.values()} == {"default"}
    assert resolved.namespace.metrics_port == 0
    assert resolved.namespace.engine_opt == []


def test_the_file_can_come_from_LPTEM_CONFIG_and_its_relative_paths_from_its_folder(tmp_path: Path) -> None:
    path = write(tmp_path, 'record = "records/run1"\nkeys = "/etc/lptem/keys"\nauto_detect = false\n')
    resolved = resolve_serve([], {"LPTEM_CONFIG": str(path)})
    assert resolved.namespace.record == tmp_path / "records" / "run1"
    assert resolved.namespace.keys == Path("/etc/lptem/keys")
    assert resolved.namespace.auto_detect is False


def test_show_prints_toml_that_reads_back_to_the_same_settings(tmp_path: Path) -> None:
    path = write(tmp_path, 'metrics_port = 9105\npixel_size_nm = 0.5\n[engine_options]\nsymmetry = "4"\n')
    shown = render(resolve_serve(["--config", str(path), "--msd-rate", "2"], {}))
    assert f"# file {path} line 1" in shown
    assert "# flag --msd-rate" in shown
    again = resolve_serve(["--config", str(write(tmp_path, shown, "shown.toml"))], {}).namespace
    first = resolve_serve(["--config", str(path), "--msd-rate", "2"], {}).namespace
    assert {**vars(again), "config": None} == {**vars(first), "config": None}
    assert tomllib.loads(shown)["engine_options"] == {"symmetry": "4"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "metrics_port = 9105\nmetrics_prot = 1\n",
            r"line 2: unknown key 'metrics_prot' \(did you mean 'metrics_port'\?\)",
        ),
        ('\n\nmetrics_port = "9105"\n', "line 3: metrics_port: must be an integer, got string '9105'"),
        ("msd_rate = true\n", "line 1: msd_rate: must be a number, got boolean True"),
        ('auto_detect = "yes"\n', "line 1: auto_detect: must be true or false, got string 'yes'"),
        ('policy = "fastest"\n', r"line 1: policy: must be one of \['latest', 'queue'\], got 'fastest'"),
        ('publish = "tcp://nowhere"\n', "line 1: publish: "),
        (
            'ingest = "tcp://127.0.0.1:1"\ningest_connect = "tcp://127.0.0.1:2"\n',
            "ingest and ingest_connect cannot both be set",
        ),
        ("engine_options = 3\n", "line 1: engine_options must be a table"),
        ("[engine_options]\nsymmetry = [4]\n", "line 2: engine_options.symmetry: must be a number"),
        ("metrics_port = \n", "not valid TOML: .*line 1"),
        ("msd_rate = nan\n", "line 1: msd_rate: must be a finite number"),
    ],
)
def test_a_bad_file_is_refused_naming_file_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"{path}.*{expected}") as caught:
        resolve_serve(["--config", str(path)], {})
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LPTEM_METRIC_PORT": "1"}, "LPTEM_METRIC_PORT: no such setting .*metrics_port"),
        ({"LPTEM_METRICS_PORT": "ninety"}, "LPTEM_METRICS_PORT: must be an integer, got 'ninety'"),
        ({"LPTEM_INSECURE": "maybe"}, "LPTEM_INSECURE: must be true or false"),
        ({"LPTEM_ENGINE_OPTIONS": "symmetry"}, "LPTEM_ENGINE_OPTIONS: expected KEY=VALUE"),
    ],
)
def test_a_bad_variable_is_refused_by_name(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=f"environment variable {expected}"):
        resolve_serve([], env)


def test_other_commands_variables_are_not_settings_of_serve() -> None:
    resolved = resolve_serve([], {"LPTEM_KEY": "a.key_secret", "LPTEM_SERVER_KEY": "s.key", "HOME": "/x"})
    assert {s.kind for s in resolved.sources.values()} == {"default"}


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read the config file"):
        resolve_serve(["--config", str(tmp_path / "nope.toml")], {})


def test_key_lines_follow_tables_and_quoted_keys() -> None:
    text = '# c\na = 1\n"b" = 2\n\n[engine_options]\n  symmetry = 4\n'
    assert key_lines(text) == {"a": 2, "b": 3, "engine_options": 5, "engine_options.symmetry": 6}


def test_a_record_folder_template_gets_the_start_time_so_each_start_records_anew() -> None:
    start = datetime(2026, 12, 5, 9, 30, 0, tzinfo=UTC)
    assert record_folder(Path("/var/lib/lptem/records/{start}"), start) == Path(
        "/var/lib/lptem/records/20261205T093000Z"
    )
    assert record_folder(Path("run1"), start) == Path("run1")
    assert record_folder(None) is None
    with pytest.raises(RecordFolderError, match=r"only \{start\} may be filled in"):
        record_folder(Path("records/{user}"), start)
