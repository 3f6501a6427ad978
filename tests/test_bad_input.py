"""Bad input is refused up front: exit 2, one line naming the flag, file or key and what was expected, no
traceback, Ray not started and no MLflow run opened (issue 10's campaign, every case it lists).

The searches run in-process with ray.init replaced by a function that fails the test: a case that reached
Ray would show up as that failure, not as a pass."""

from __future__ import annotations

import sqlite3

import pytest

from ecgtune.cli import main
from ecgtune.spaces import spaces_dir

pytestmark = pytest.mark.integration  # the cases that reach check_fit prepare the quickstart's real data

QUICKSTART = (spaces_dir() / "quickstart.yaml").read_text()


def _space(tmp_path, name: str, old: str, new: str) -> str:
    assert old in QUICKSTART, old
    path = tmp_path / f"{name}.yaml"
    path.write_text(QUICKSTART.replace(old, new, 1))
    return str(path)


LR = "lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}"
BATCH = "batch_size: {type: categorical, choices: [32, 64, 128]}"
WEIGHTED = "weighted_sampling: {type: categorical, choices: [true, false]}"
SPACE_CASES = {  # name -> (text replaced, replacement, what the error line says)
    "lr_word": (LR, "lr: fast", "key 'stages[0].params.lr': expected a positive number"),
    "lr_negative": (LR, "lr: -0.1", "key 'stages[0].params.lr': expected a positive number"),
    "batch_zero": (BATCH, "batch_size: 0", "key 'stages[0].params.batch_size': expected a whole number >= 1, got 0"),
    "batch_negative": (BATCH, "batch_size: -4", "key 'stages[0].params.batch_size': expected a whole number >= 1, got -4"),
    "epochs_fraction": ("epochs: 6", "epochs: 2.5", "key 'stages[0].params.epochs': expected a whole number >= 1, got 2.5"),
    "epochs_word": ("epochs: 6", "epochs: many", "key 'stages[0].params.epochs': expected a whole number >= 1, got 'many'"),
    "weighted_no": (WEIGHTED, 'weighted_sampling: "no"', "key 'stages[0].params.weighted_sampling': expected true or false, got 'no'"),
    "hparam_unknown": ("  num_blocks: 4", "  num_blockz: 4", "key 'model': model 'cnn1d_residual' has no hyperparameter 'num_blockz'; it takes num_blocks, "),
    "hparam_word": ("  num_blocks: 4", "  num_blocks: four",
                    "key 'model': model 'cnn1d_residual' hyperparameter 'num_blocks': expected a whole number (its default is 4), got 'four'"),
    "cpu_zero": ("resources: {cpu: 1, gpu: 0.25}", "resources: {cpu: 0, gpu: 0}", "key 'resources': a trial needs a CPU or a GPU"),
    "cpu_too_many": ("resources: {cpu: 1, gpu: 0.25}", "resources: {cpu: 64}", "key 'resources': a trial asks for CPU 64"),
    "smoke_epochs_zero": ("smoke_test: {epochs: 1,", "smoke_test: {epochs: 0,", "smoke_test.epochs"),
    "metric_unknown": ("metric: val_balanced_accuracy", "metric: val_auc_roc", "key 'metric': 'val_auc_roc' is not a validation metric"),
    "alias_bomb": (
        "description: A real",
        'x0: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(f"x{i}: &{chr(97 + i)} [{','.join(['*' + chr(96 + i)] * 9)}]\n" for i in range(1, 9))
        + "description: A real",
        "its YAML aliases expand to a document far larger than the file",
    ),
}

CLI_CASES = {  # name -> (arguments after `search --space quickstart --smoke-test`, what the error line says)
    "address_malformed": (["--address", "not an address"], "--address: expected auto, host:port"),
    "address_nobody": (["--address", "127.0.0.1:1"], "--address: nothing answers at 127.0.0.1:1"),
    "uri_no_scheme": (["--mlflow-uri", "notascheme"], "--mlflow-uri: expected a URI of one of the schemes"),
    "uri_no_server": (["--mlflow-uri", "http://127.0.0.1:9"], "--mlflow-uri: no MLflow server answers at http://127.0.0.1:9"),
    "uri_unwritable": (["--mlflow-uri", "sqlite:////proc/ecgtune-test/m.db"], "--mlflow-uri: the folder of the SQLite database"),
    "storage_unwritable": (["--storage-path", "/proc/ecgtune-test"], "--storage-path: the Ray results folder is not writable"),
    "patients_empty": (["--patients", ""], "--patients: expected a comma-separated list of names, got ''"),
    "patients_twice": (["--patients", "100,100"], "--patients: each record at most once"),
    "models_empty": (["--models", ""], "--models: expected a comma-separated list of names, got ''"),
    "storage_query": (["--storage-path", "s3://bucket/x?endpoint_override=127.0.0.1:9&scheme=http"],
                      "options after '?' do not survive Ray adding folders to the path"),
    "storage_scheme": (["--storage-path", "nosuchfs://bucket/x"], "--storage-path nosuchfs://bucket/x: not a storage URI"),
    "patients_spaced": (["--patients", "100 208"], "--patients: expected names separated by commas, got '100 208'"),
    "resources_speck": (["--resources", "cpu=1e-9"], "--resources: cpu=1e-9 is below the smallest share"),
}


@pytest.fixture
def no_ray(monkeypatch):
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started for bad input")

    monkeypatch.setattr(ray, "init", refuse)


def _refused(argv, capsys, expected: str, db) -> None:
    """``db``: the SQLite store in which no run may have been opened (None: a store holding searches)."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ecgtune: error: ") and expected in lines[0], captured.err
    assert len(lines[0]) < 1200 and "Traceback" not in captured.err + captured.out
    if db is not None and db.exists():  # the registry may have been read; no run was opened
        with sqlite3.connect(db) as conn:
            tables = {t for (t,) in conn.execute("select name from sqlite_master where type='table'")}
            assert "runs" not in tables or conn.execute("select count(*) from runs").fetchone() == (0,)


@pytest.mark.parametrize("case", sorted(SPACE_CASES))
def test_a_bad_space_file_is_refused_before_anything_starts(case, tmp_path, capsys, no_ray, real_data_dir):
    old, new, expected = SPACE_CASES[case]
    db = tmp_path / "m.db"
    _refused(["search", "--space", _space(tmp_path, case, old, new), "--smoke-test", "--data-dir", str(real_data_dir),
              "--mlflow-uri", f"sqlite:///{db}"], capsys, expected, db)


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_a_bad_option_is_refused_before_anything_starts(case, tmp_path, capsys, no_ray, real_data_dir):
    extra, expected = CLI_CASES[case]
    space = "individuals_patients" if case.startswith("patients") else "quickstart"
    db = tmp_path / "m.db"
    uri = [] if "--mlflow-uri" in extra else ["--mlflow-uri", f"sqlite:///{db}"]
    _refused(["search", "--space", space, "--smoke-test", "--data-dir", str(real_data_dir), *uri, *extra],
             capsys, expected, db)


def test_bad_places_and_names_are_refused(tmp_path, capsys, no_ray, monkeypatch):
    db = tmp_path / "m.db"
    _refused(["search", "--space", str(tmp_path)], capsys, "a folder, not a search-space file", db)
    _refused(["search", "--space", "x.txt"], capsys, "--space x.txt: no such search-space file", db)
    long_name = tmp_path / f"{'a' * 248}.yaml"
    long_name.write_text(QUICKSTART)
    _refused(["search", "--space", str(long_name)], capsys, "expected at most 100 characters", db)
    _refused(["data", "prepare", "mitdb", "--param", "records=[100"], capsys, "--param 'records=[100': the value is not valid YAML", db)
    _refused(["data", "prepare", "mitdb", "--param", "records"], capsys, "--param 'records': expected KEY=VALUE", db)
    monkeypatch.setenv("ECGTUNE_HOME", "/proc/ecgtune-test-home")
    _refused(["search", "--space", "quickstart"], capsys, "ECGTUNE_HOME: the ecgtune home", db)


def test_a_broken_file_in_the_spaces_folder_is_listed_as_broken_not_fatal(tmp_path, monkeypatch, capsys):
    (tmp_path / "quickstart.yaml").write_text(QUICKSTART)
    (tmp_path / "broken.yaml").write_text("description: [unclosed\n")
    monkeypatch.setenv("ECGTUNE_SPACES_DIR", str(tmp_path))
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "quickstart  A real Optuna" in out and "broken      (cannot be used:" in out and "not valid YAML" in out


def test_address_auto_without_a_cluster_is_one_line(tmp_path, capsys, monkeypatch, real_data_dir):
    """Ray's "auto" joins any Ray instance of the machine (CI runs several), so "none there" is Ray's own
    ConnectionError, raised here as Ray raises it; before the fix it came out as a traceback."""
    import ray

    def no_cluster(*args, **kwargs):
        raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to.")

    monkeypatch.setattr(ray, "init", no_cluster)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    db = tmp_path / "m.db"
    _refused(["search", "--space", "quickstart", "--smoke-test", "--address", "auto", "--data-dir", str(real_data_dir),
              "--mlflow-uri", f"sqlite:///{db}"], capsys, "--address auto: no Ray cluster to join (Could not find any", db)


def _store_with_searches(tmp_path, *experiments: str) -> str:
    """A real SQLite MLflow store in which each of ``experiments`` holds one search's parent run."""
    from mlflow.tracking import MlflowClient

    from ecgtune.tuning.tracking import SEARCH_TAG

    uri = f"sqlite:///{tmp_path / 'searches.db'}"
    client = MlflowClient(uri, uri)
    for name in experiments:
        client.create_run(client.create_experiment(name), tags={SEARCH_TAG: name})
    return uri


def test_a_report_or_by_value_of_a_space_never_searched_is_one_line_and_leaves_no_folder(tmp_path, capsys, no_ray):
    """The README's newcomer path: after `ecgtune search --space quickstart --smoke-test`, a report of a
    space that has no search at all (nor a smoke-test one) names both experiments and the searched ones;
    before, it left an empty --out folder behind."""
    uri = _store_with_searches(tmp_path, "quickstart-smoke", "pretrain_mitdb")
    capsys.readouterr()  # MLflow's lines about creating the store
    out = tmp_path / "report"
    _refused(["report", "--space", "finetune_patients", "--mlflow-uri", uri, "--out", str(out)], capsys,
             "--space finetune_patients: no search in experiment 'finetune_patients' nor 'finetune_patients-smoke'"
             f" of {uri}; run `ecgtune search --space finetune_patients` first (experiments with searches: "
             "pretrain_mitdb, quickstart-smoke)", None)
    assert not out.exists()
    _refused(["report", "--space", "pretrain_mitdb", "--smoke-test", "--mlflow-uri", uri, "--out", str(out)], capsys,
             "its full search is in 'pretrain_mitdb': leave out --smoke-test", None)
    assert not out.exists()
    _refused(["report", "--experiment", "nothing-here", "--mlflow-uri", uri, "--out", str(out)], capsys,
             "experiment 'nothing-here': no trial runs", None)  # refused by the report itself, once it began
    assert not out.exists()
    _refused(["by-value", "--space", "finetune_patients", "--stage", "finetune", "--param", "lr", "--mlflow-uri", uri],
             capsys, "--space finetune_patients: no search in experiment 'finetune_patients' nor", None)
    _refused(["by-value", "--space", "quickstart", "--stage", "pretrain", "--param", "lr", "--smoke-test",
              "--mlflow-uri", uri], capsys, "experiment 'quickstart-smoke' has no finished search", None)


def test_a_space_file_of_random_bytes_is_refused(tmp_path, capsys, no_ray):
    path = tmp_path / "noise.yaml"
    path.write_bytes(bytes(range(250, 256)) * 50)
    _refused(["search", "--space", str(path), "--smoke-test"], capsys, f"{path}: not a text file (byte 0 is not UTF-8)",
             tmp_path / "m.db")


def test_report_refuses_an_output_it_cannot_write_and_a_store_it_cannot_reach(tmp_path, capsys, no_ray):
    uri = _store_with_searches(tmp_path, "quickstart-smoke")
    capsys.readouterr()
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    _refused(["report", "--mlflow-uri", uri, "--out", str(a_file)], capsys, "a file, not a folder", None)
    _refused(["report", "--mlflow-uri", uri, "--out", str(a_file / "below")], capsys,
             f"{a_file} is a file, so no folder can be made below it", None)
    _refused(["report", "--mlflow-uri", uri, "--out", "/proc/ecgtune-report"], capsys, "cannot write into /proc", None)
    for command in (["report", "--out", str(tmp_path / "r")],
                    ["by-value", "--space", "quickstart", "--stage", "pretrain", "--param", "lr"]):
        _refused([*command, "--mlflow-uri", "notascheme"], capsys, "--mlflow-uri: expected a URI of one of the schemes", None)
        _refused([*command, "--mlflow-uri", "http://127.0.0.1:9"], capsys, "no MLflow server answers at http://127.0.0.1:9", None)
    assert not (tmp_path / "r").exists()


@pytest.fixture
def web_server():
    """A plain HTTP server on a free port: something answers there, but not Ray."""
    import subprocess
    import sys
    import time

    from tests.tuning.test_search_integration import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket

    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port
    server.terminate()
    server.wait(timeout=10)


def test_an_address_where_a_web_server_answers_is_not_taken_for_a_ray_head(tmp_path, capsys, no_ray, web_server,
                                                                           real_data_dir):
    """Before: ray.init retried against it for 12 minutes, deaf to Ctrl-C."""
    _refused(["search", "--space", "quickstart", "--smoke-test", "--address", f"127.0.0.1:{web_server}",
              "--data-dir", str(real_data_dir), "--mlflow-uri", f"sqlite:///{tmp_path / 'm.db'}"], capsys,
             f"--address: 127.0.0.1:{web_server} answers, but not as a Ray head", tmp_path / "m.db")


def test_a_ray_head_passes_the_address_probe(ray_local):
    from ecgtune.tuning.targets import check_address

    check_address(ray_local.get_runtime_context().gcs_address)  # raises if the probe took it for something else


def test_a_billion_samples_are_refused_before_they_are_laid_out(tmp_path, capsys, no_ray, real_data_dir):
    """Not a smoke test (which caps the samples): before, the search laid out every sample first, for hours."""
    _refused(["search", "--space", "quickstart", "--num-samples", "1000000000", "--data-dir", str(real_data_dir),
              "--mlflow-uri", f"sqlite:///{tmp_path / 'm.db'}"], capsys,
             "plans 1,000,000,000 trials for unit pretrain-cnn1d_residual", tmp_path / "m.db")


@pytest.mark.parametrize("space, epochs, expected", [
    ("image_ptbxl", "      epochs: 100",
     "key 'stages.scratch.params.augment': augmentations change the signal under every input, but these examples' "
     "inputs (images, neighbouring beats) are made once when the data are prepared; leave augment at 0"),
    ("ribeiro_ptbxl_binary_100hz", "      epochs: 70",
     "key 'stages.scratch.params.augment': augmentations change one-lead signals; these examples have several leads"),
])
def test_augmentations_the_inputs_cannot_take_are_refused_before_ray(space, epochs, expected, tmp_path, capsys, no_ray,
                                                                      real_data_dir):
    """Before: the first training batch of every trial failed, after Ray started and the runs were opened."""
    text = (spaces_dir() / f"{space}.yaml").read_text()
    assert epochs in text
    path = tmp_path / f"{space}.yaml"
    path.write_text(text.replace(epochs, f"{epochs}\n      augment: 0.2", 1))
    _refused(["search", "--space", str(path), "--smoke-test", "--data-dir", str(real_data_dir), "--mlflow-uri",
              f"sqlite:///{tmp_path / 'm.db'}"], capsys, expected, tmp_path / "m.db")


def test_an_object_store_that_does_not_answer_is_refused_before_ray(tmp_path, capsys, no_ray, monkeypatch, real_data_dir):
    """Before: a traceback after Ray started and the parent run was opened. (The S3 endpoint is a local port
    where nothing listens: no real bucket is reached.)"""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    _refused(["search", "--space", "quickstart", "--smoke-test", "--storage-path", "s3://ecgtune-test-bucket/runs",
              "--data-dir", str(real_data_dir), "--mlflow-uri", f"sqlite:///{tmp_path / 'm.db'}"], capsys,
             "--storage-path s3://ecgtune-test-bucket/runs: cannot be read (", tmp_path / "m.db")


def test_address_auto_takes_only_a_ray_of_this_user(ray_local, monkeypatch):
    """`auto` joins any Ray of the machine: one another user started is refused (and left)."""
    import getpass

    from ecgtune.errors import EcgtuneError
    from ecgtune.tuning import ray_runtime, targets

    gcs = ray_local.get_runtime_context().gcs_address
    assert targets.listener_user(int(gcs.rsplit(":", 1)[1])) == getpass.getuser()  # our own Ray: ours
    ray_runtime.refuse_another_users_cluster(gcs)  # taken
    monkeypatch.setattr(targets, "listener_user", lambda port: "someone-else")
    left = []
    monkeypatch.setattr(ray_local, "shutdown", lambda: left.append(True))
    with pytest.raises(EcgtuneError, match=f"--address auto: the Ray cluster on this machine \\({gcs}\\) was started "
                                           "by user 'someone-else'"):
        ray_runtime.refuse_another_users_cluster(gcs)
    assert left == [True]



def test_a_spaces_folder_that_does_not_exist_is_refused(tmp_path, capsys, monkeypatch):
    """Before: `ecgtune spaces` printed nothing and exited 0."""
    monkeypatch.setenv("ECGTUNE_SPACES_DIR", str(tmp_path / "nowhere"))
    _refused(["spaces"], capsys, f"ECGTUNE_SPACES_DIR={tmp_path / 'nowhere'}: no such folder", None)


def test_a_split_the_dataset_cannot_take_is_refused(tmp_path, capsys, no_ray, real_data_dir):
    """Before: `--split per_patient` on multi-label PTB-XL records failed with an IndexError after Ray started."""
    _refused(["search", "--space", "signal_ptbxl", "--smoke-test", "--split", "per_patient", "--data-dir",
              str(real_data_dir), "--mlflow-uri", f"sqlite:///{tmp_path / 'm.db'}"], capsys,
             "split 'per_patient' does not fit dataset 'ptbxl'", tmp_path / "m.db")


@pytest.mark.parametrize("listed, expected", [
    ("A00001,N\n/elsewhere/A00002,N\n", "line 2: record '/elsewhere/A00002' is not a recording name"),
    ("A00001,N\n../cinc2017/A00001,O\n", "line 2: record '../cinc2017/A00001' is not a recording name"),
    ("A00001,N\nA00001,O\n", "line 2: record 'A00001' is listed twice"),
])
def test_a_cinc2017_reference_naming_paths_or_a_recording_twice_is_refused(listed, expected, tmp_path, capsys):
    """Before: a path was read from outside the data folder; one recording under two ids sat in training and
    validation at once."""
    folder = tmp_path / "data" / "cinc2017"
    folder.mkdir(parents=True)
    (folder / "REFERENCE.csv").write_text(listed)
    _refused(["data", "prepare", "cinc2017", "--data-dir", str(tmp_path / "data")], capsys, expected, None)
