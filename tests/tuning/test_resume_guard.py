"""--resume goes on only with the search that was interrupted: the same space file and contents, split,
prepared data, models, patients and budget; anything else is refused naming what differs."""

from __future__ import annotations

import os
import shutil

import pytest

from ecgtune.cli import main
from ecgtune.spaces import load_space, shape_search, spaces_dir
from ecgtune.tuning.state import SearchState, resume_mismatch, what_ran


def _ran(space, key="k1"):
    return {space.experiment_name: what_ran(space, key)}


def test_the_same_search_resumes_and_every_difference_is_named(tmp_path):
    space = load_space("individuals_patients")
    saved = _ran(space)
    assert resume_mismatch(saved, _ran(space)) is None
    assert "split 'per_patient', this one 'chronological'" in resume_mismatch(saved, _ran(space.with_split("chronological")))
    assert "data_key 'k1', this one 'k2'" in resume_mismatch(saved, _ran(space, "k2"))
    assert "patients" in resume_mismatch(saved, _ran(space.with_patients(["100"])))
    # --patients given differently also changes the data key: the patients, the cause, are named.
    assert "patients [" in resume_mismatch(saved, _ran(space.with_patients(["100"]), "k2"))
    assert "budget" in resume_mismatch(saved, _ran(space.with_budget(epochs=2)))
    optuna = load_space("heartbeat_aami")
    assert "models" in resume_mismatch(_ran(optuna), _ran(optuna.with_models(["cnet"])))
    assert "budget" in resume_mismatch(_ran(optuna), _ran(optuna.with_budget(num_samples=2)))
    assert "spaces" in resume_mismatch(saved, _ran(optuna))
    # The same space file edited between the crash and --resume: its grid may differ.
    copy = tmp_path / "individuals_patients.yaml"
    copy.write_text((spaces_dir() / "individuals_patients.yaml").read_text())
    before = {space.experiment_name: what_ran(load_space(str(copy)), "k1")}
    copy.write_text(copy.read_text().replace("description:", "description: edited -", 1))
    assert "the space file's contents changed" in resume_mismatch(before, {space.experiment_name: what_ran(load_space(str(copy)), "k1")})
    assert "space_file" in resume_mismatch(saved, before)  # another file of the same name
    # A state file written before these fields existed is compared on what it holds.
    assert resume_mismatch({space.experiment_name: {"patients": list(space.patients)}}, _ran(space)) is None


@pytest.mark.integration
def test_resuming_another_search_exits_2_before_anything_starts(real_data_dir, tmp_path, capsys):
    """States are kept per split: `--resume --split chronological` finds no interrupted chronological search;
    an interrupted search whose prepared data differ (edited preprocessing, another data version) is refused,
    naming the difference, before Ray starts or a run opens."""
    import mlflow

    (space,) = shape_search([load_space("quickstart")], smoke_test=True)
    from ecgtune.tuning.prepared import prepare_data
    from ecgtune.tuning.search import schedule_name

    key = prepare_data(space, str(real_data_dir)).key
    # The data key follows the bytes preparation read, not the folder: a copy of the records has the same
    # key; one byte changed in a signal file (size and modification time kept) gives another.
    copy = tmp_path / "copy"
    (copy / "mitdb").mkdir(parents=True)
    for record in space.preprocessing["records"]:
        for ext in ("hea", "dat", "atr"):
            shutil.copy2(real_data_dir / "mitdb" / f"{record}.{ext}", copy / "mitdb" / f"{record}.{ext}")
    assert prepare_data(space, str(copy)).key == key
    edited = copy / "mitdb" / "100.dat"
    stat = edited.stat()
    with open(edited, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    edited_key = prepare_data(space, str(copy)).key
    assert edited_key != key
    name = schedule_name([space])
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    common = ["search", "--space", "quickstart", "--smoke-test", "--resume", "--data-dir", str(real_data_dir), "--mlflow-uri", uri]
    SearchState.new(name, _ran(space, key)).save()
    assert main([*common, "--split", "chronological"]) == 2
    assert f"nothing to resume: no earlier search of {name!r} under split chronological" in capsys.readouterr().err
    # Interrupted on the edited copy, resumed on the real folder: refused.
    state = SearchState.new(name, _ran(space, edited_key))
    state.save()
    assert main(common) == 2
    err = capsys.readouterr().err
    assert f"--resume: the interrupted search {name!r} ({state.invocation}) is another search" in err
    assert f"data_key {edited_key!r}, this one {key!r}" in err and "Traceback" not in err
    mlflow.set_tracking_uri(uri)
    assert mlflow.search_runs(search_all_experiments=True).empty  # no run opened


def _checkpoint_error_record(exc: BaseException):
    import logging

    try:
        raise exc
    except BaseException:
        import sys

        info = sys.exc_info()
    return logging.LogRecord("ray.tune.execution.tune_controller", logging.ERROR, __file__, 1,
                             "Trial %s: Error handling checkpoint %s", ("train_fn_1", "cp"), info)


def test_a_checkpoint_tune_deleted_before_a_crash_is_not_reported_on_resume():
    from ecgtune.tuning.tuner import GoneCheckpointFilter

    gone = FileNotFoundError("Path not found: (fs, /r/trials/f66b30ac/checkpoint_000000)")
    assert not GoneCheckpointFilter().filter(_checkpoint_error_record(gone))
    # any other failure to handle a checkpoint still reaches the user
    assert GoneCheckpointFilter().filter(_checkpoint_error_record(OSError("No space left on device")))
    assert GoneCheckpointFilter().filter(_checkpoint_error_record(FileNotFoundError("/r/model.pt")))
