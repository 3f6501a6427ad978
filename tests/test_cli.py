"""The CLI in-process: exit codes and messages for good and bad input."""

from __future__ import annotations

import urllib.error

import pytest

from ecgtune.cli import main


def test_spaces_lists_names_and_descriptions(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    for name in ("quickstart", "pretrain_mitdb", "individuals_patients", "finetune_patients",
                 "heartbeat_aami", "heartbeat_seed", "mi_scratch", "mi_transfer"):
        assert name in out


def test_unknown_space_exits_2_listing_known_spaces(capsys):
    assert main(["search", "--space", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown search space 'nope'" in err and "quickstart" in err


def test_malformed_space_file_exits_2_naming_file_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text((__import__("ecgtune.spaces", fromlist=["x"]).spaces_dir() / "quickstart.yaml").read_text()
                   .replace("mode: max", "mode: biggest"))
    assert main(["search", "--space", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'mode'" in err and "max or min" in err


def test_patients_on_a_space_without_per_patient_stage_exits_2(capsys):
    assert main(["search", "--space", "pretrain_mitdb", "--patients", "100"]) == 2
    assert "no stage" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--models", "resnet"], "not among the models of space 'heartbeat_aami'"),
        (["--epochs", "0"], "--epochs: expected a positive integer"),
        (["--split", "by_moon_phase"], "unknown split protocol 'by_moon_phase'"),
    ],
)
def test_bad_budget_model_or_split_options_exit_2(extra, message, capsys):
    assert main(["search", "--space", "heartbeat_aami", *extra]) == 2
    assert message in capsys.readouterr().err


def test_missing_data_exits_2_says_where_it_looked_and_starts_no_run(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):  # PhysioNet is the outside world: unreachable here
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    empty = tmp_path / "empty_data"
    empty.mkdir()
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    assert main(["search", "--space", "quickstart", "--smoke-test", "--data-dir", str(empty), "--mlflow-uri", uri]) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "ECGTUNE_DATA_DIR" in err
    assert not (tmp_path / "m.db").exists()  # failed before any MLflow run was opened


@pytest.mark.integration
def test_corrupt_record_exits_2_naming_the_record(tmp_path, real_data_dir, capsys):
    import shutil

    data = tmp_path / "data" / "mitdb"
    data.mkdir(parents=True)
    for rec in ("100", "105", "106", "119", "200", "208", "213", "223"):
        for ext in ("hea", "dat", "atr"):
            shutil.copy(real_data_dir / "mitdb" / f"{rec}.{ext}", data)
    (data / "208.dat").write_bytes((data / "208.dat").read_bytes()[:1000])  # truncated signal file
    assert main(["search", "--space", "quickstart", "--smoke-test", "--data-dir", str(tmp_path / "data")]) == 2
    assert "208" in capsys.readouterr().err


@pytest.mark.integration
def test_resume_without_an_earlier_search_exits_2(real_data_dir, capsys, tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    assert main(["search", "--space", "quickstart", "--smoke-test", "--resume",
                 "--data-dir", str(real_data_dir), "--mlflow-uri", uri]) == 2
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["search", "--help"], ["data", "prepare", "--help"]])
def test_help_exits_0(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out


@pytest.mark.integration
def test_data_prepare_prints_counts(real_data_dir, capsys):
    assert main(["data", "prepare", "mitdb", "--data-dir", str(real_data_dir), "--param", "records=[100]"]) == 0
    assert "1 records" in capsys.readouterr().out


def test_import_and_help_stay_light():
    """`import ecgtune.cli` (what `ecgtune --help` runs) loads none of the heavy dependencies."""
    import subprocess
    import sys

    code = ("import sys, ecgtune.cli; heavy = [m for m in ('torch', 'ray', 'mlflow', 'wfdb', 'optuna') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
