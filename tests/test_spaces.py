"""Search-space files: every shipped file loads; bad files are refused naming the file and the key."""

from pathlib import Path

import pytest
import yaml

from ecgtune.errors import EcgtuneError
from ecgtune.spaces import Domain, list_spaces, load_search, load_space, shape_search, spaces_dir, to_param_space

SUITES = sorted(p.stem for p in spaces_dir().glob("*.yaml") if "suite" in yaml.safe_load(p.read_text()))
SHIPPED = sorted(p.stem for p in spaces_dir().glob("*.yaml") if p.stem not in SUITES)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_space_loads_and_converts(name):
    space = load_space(name)
    assert space.description
    for stage in space.stages:
        param_space = to_param_space(space, stage)
        assert set(param_space["train"]) >= {"lr", "batch_size", "epochs"}
    assert list_spaces()[name] == space.description


def test_the_issue_spaces_exist():
    assert {"pretrain_mitdb", "individuals_patients", "finetune_patients", "quickstart",
            "heartbeat_aami", "mi_scratch", "mi_transfer"} <= set(SHIPPED)


def test_heartbeat_aami_searches_the_four_models_smote_lr_and_batch_size():
    space = load_space("heartbeat_aami")
    assert [m.name for m in space.models] == ["cnet", "seq2seq", "bilstm", "bigru"]
    assert set(space.stages[0].domains()) == {"smote", "lr", "batch_size"}
    assert space.stages[0].domains()["smote"].values == (False, True)
    assert space.split == "random_beats" and space.metric == "val_f1_macro"


def test_mi_transfer_names_its_source_and_replaces_the_head():
    space = load_space("mi_transfer")
    assert space.transfer.task == "aami_beats" and space.transfer.replace_head
    # The same architectures as the source space, so that the features fit.
    assert space.models == load_space("heartbeat_aami").models


def test_finetune_patients_is_the_seed_grid():
    space = load_space("finetune_patients")
    assert [s.stage for s in space.stages] == ["pretrain", "scratch", "finetune"]
    assert len(space.patients) == 29
    for stage in space.stages[1:]:
        grid = stage.domains()
        assert grid["lr"].values == (1e-3, 1e-2, 1e-1)
        assert grid["batch_size"].values == (4, 16, 32)
        assert grid["weighted_sampling"].values == (True, False)


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _valid() -> dict:
    return yaml.safe_load((spaces_dir() / "individuals_patients.yaml").read_text())


@pytest.mark.parametrize(
    "mutate,key,expected",
    [
        (lambda d: d["stages"][0]["params"].update(lr={"type": "float", "low": 0.1, "high": 0.01}), "lr", "low <= high"),
        (lambda d: d["stages"][0]["params"].update(lrate=0.1), "lrate", "one of"),
        (lambda d: d.update(mode="maximum"), "mode", "max or min"),
        (lambda d: d.update(metric="test_balanced_accuracy"), "metric", "validation metric"),
        (lambda d: d["model"].update(name="resnet9000"), "model.name", "cnn1d_residual"),
        (lambda d: d["dataset"].update(name="nodb"), "dataset.name", "mitdb"),
        (lambda d: d["dataset"].update(split="by_moon_phase"), "dataset.split", "per_patient"),
        (lambda d: d["stages"][0].update(stage="warmup"), "stage", "pretrain"),
        (lambda d: d["stages"][0].update(search={"algorithm": "optuna"}), "batch_size", "Optuna cannot take a grid"),
        (lambda d: d["stages"][0]["params"].update(epochs={"type": "int", "low": 1, "high": 5}), "epochs", "algorithm grid"),
        (lambda d: d["stages"][0]["params"].update(optimizer="adamw"), "optimizer", "adam"),
        (lambda d: d.update(resources={"cpu": -1}), "resources.cpu", ">= 0"),
        (lambda d: d.pop("description"), "description", "missing"),
        (lambda d: d.update(patients=[]), "patients", "non-empty"),
        (lambda d: d["stages"][0]["params"].update(lr={"type": "float", "low": 0, "high": 1, "log": True}), "lr", "low > 0"),
        (lambda d: d.pop("task"), "task", "missing"),
        (lambda d: d.update(task="AAMI beats"), "task", "lower-case"),
        (lambda d: d.update(models=[{"name": "cnet"}]), "model", "exactly one of model"),
        (lambda d: (d.pop("model"), d.update(models=[{"name": "cnet"}, {"name": "cnet"}])), "models", "at most once"),
        (lambda d: d.update(transfer={"task": "aami_beats", "dataset": "mitdb", "split": "random_beats"}),
         "transfer", "finetune stage"),
        (lambda d: d.update(transfer={"task": "aami_beats", "split": "random_beats"}), "transfer", "dataset"),
        (lambda d: d.update(smoke_test={"epoch": 1}), "smoke_test.epoch", "one of"),
        (lambda d: d["dataset"].update(split="folds"), "dataset.split", "does not fit dataset 'mitdb'"),
        (lambda d: d["dataset"].update(split={"protocol": "random_records", "test": 1.5}), "dataset.split",
         "split option test must be a fraction"),
        (lambda d: d["dataset"].update(split={"protocol": "chronological", "test": 0.2}), "dataset.split",
         "split chronological takes no options"),
        (lambda d: d["dataset"].update(path="/data/mine"), "dataset.path", "only wfdb takes a path"),
    ],
)
def test_bad_files_name_the_file_and_the_key(tmp_path, mutate, key, expected):
    doc = _valid()
    mutate(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(EcgtuneError) as err:
        load_space(str(path))
    message = str(err.value)
    assert str(path) in message and key in message and expected in message


def test_unknown_space_lists_known_ones():
    with pytest.raises(EcgtuneError, match="quickstart"):
        load_space("no_such_space")


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("stages: [\n")
    with pytest.raises(EcgtuneError, match="broken.yaml"):
        load_space(str(path))


def test_int_domain_bounds_are_inclusive():
    domain = Domain("int", low=3, high=4).to_tune()
    draws = {domain.sample() for _ in range(200)}
    assert draws == {3, 4}


def test_smoke_shrinks_but_keeps_the_grid():
    space = load_space("finetune_patients").shrunk(patients_given=False)
    assert space.smoke_test and space.experiment_name == "finetune_patients-smoke"
    assert len(space.patients) == 2
    assert space.preprocessing["records"] == list(space.patients)
    assert all(s.params["epochs"] == 1 for s in space.stages)
    scratch = space.stage("scratch").domains()
    assert len(scratch["lr"].values) * len(scratch["batch_size"].values) * len(scratch["weighted_sampling"].values) == 18


def test_patients_option_replaces_the_study_patients():
    space = load_space("finetune_patients").with_patients(["100", "208"]).shrunk(patients_given=True)
    assert space.patients == ("100", "208")


def test_patients_option_refused_without_a_per_patient_stage():
    with pytest.raises(EcgtuneError, match="no stage"):
        load_space("pretrain_mitdb").with_patients(["100"])


def test_split_option_replaces_the_protocol_and_rejects_unknown_ones():
    assert load_space("finetune_patients").with_split("chronological").split == "chronological"
    with pytest.raises(EcgtuneError, match="per_patient"):
        load_space("finetune_patients").with_split("by_moon_phase")


def test_models_option_keeps_a_subset_and_refuses_unknown_models():
    space = load_space("heartbeat_aami").with_models(["bigru", "cnet"])
    assert [m.name for m in space.models] == ["bigru", "cnet"]
    with pytest.raises(EcgtuneError, match="resnet.*cnet, seq2seq"):
        load_space("heartbeat_aami").with_models(["resnet"])


def test_budget_option_caps_epochs_and_samples_but_keeps_a_grid():
    space = load_space("heartbeat_aami").with_budget(epochs=3, num_samples=1)
    stage = space.stages[0]
    assert stage.params["epochs"] == 3 and stage.search.num_samples == 1 and stage.search.grace_period == 3
    grid = load_space("finetune_patients").with_budget(epochs=2).stage("scratch")
    assert len(grid.domains()["lr"].values) == 3 and grid.params["epochs"] == 2
    with pytest.raises(EcgtuneError, match="--epochs"):
        load_space("quickstart").with_budget(epochs=0)


def test_num_samples_never_repeats_a_grid(tmp_path):
    """A grid run N times repeats every combination with the same seed (identical copies): refused in a
    space file and from --num-samples; in a search of several spaces the samples go to the sampled ones."""
    with pytest.raises(EcgtuneError, match="every stage of individuals_patients is a grid.*leave --num-samples out"):
        load_space("individuals_patients").with_budget(num_samples=3)
    with pytest.raises(EcgtuneError, match="every stage of individuals_patients is a grid"):
        shape_search([load_space("individuals_patients")], num_samples=3)
    mixed = {s.name: s for s in shape_search(load_search(["all_pairs"])[0], num_samples=3)}
    assert mixed["heartbeat_aami"].stages[0].search.num_samples == 3
    finetune = mixed["finetune_patients"]
    assert all(st.search.num_samples == 1 for st in finetune.stages)  # its grids run once
    bad = tmp_path / "grid_twice.yaml"
    source = (spaces_dir() / "individuals_patients.yaml").read_text()
    bad.write_text(source.replace("search: {algorithm: grid}", "search: {algorithm: grid, num_samples: 2}"))
    with pytest.raises(EcgtuneError, match="grid_twice.yaml.*num_samples.*1 for a grid"):
        load_search([str(bad)])


def model_dataset_pairs(space) -> set[tuple[str, str, str]]:
    """(model, dataset, how the dataset is cut into examples): what a space trains."""
    cut = space.preprocessing.get("mode") or space.preprocessing.get("task") or ""
    return {(m.name, space.dataset, cut) for m in space.models}


def test_all_pairs_runs_every_shipped_model_dataset_pair_in_one_search():
    spaces, suite = load_search(["all_pairs"])
    assert suite == "all_pairs" and "all_pairs" in SUITES
    covered = set().union(*(model_dataset_pairs(s) for s in spaces))
    shipped = set().union(*(model_dataset_pairs(load_space(name)) for name in SHIPPED))
    assert covered == shipped
    assert list_spaces()["all_pairs"].startswith("Every shipped model/dataset pair")


def test_a_suite_is_not_a_space_and_cannot_nest(tmp_path):
    with pytest.raises(EcgtuneError, match="a suite of spaces"):
        load_space("all_pairs")
    nested = tmp_path / "nested.yaml"
    nested.write_text("description: x\nsuite: [all_pairs]\n")
    with pytest.raises(EcgtuneError, match="a suite of spaces"):
        load_search([str(nested)])
    empty = tmp_path / "empty.yaml"
    empty.write_text("description: x\nsuite: []\n")
    with pytest.raises(EcgtuneError, match="empty.yaml.*suite.*non-empty list"):
        load_search([str(empty)])


def test_options_apply_to_every_space_of_a_search_where_they_fit():
    spaces, _ = load_search(["all_pairs"])
    shaped = shape_search(spaces, patients=["105"], models=["cnet", "cnn1d_residual"], smoke_test=True)
    by_name = {s.name: s for s in shaped}
    assert set(by_name) == {"finetune_patients", "heartbeat_aami", "mi_scratch", "mi_transfer",
                            "heartbeat_interpatient"}  # no cnet in dualnet_*
    assert by_name["finetune_patients"].patients == ("105",)  # the only per-patient space
    assert [m.name for m in by_name["mi_transfer"].models] == ["cnet"]
    assert all(s.smoke_test for s in shaped)
    only_cnn = shape_search(spaces, models=["cnn1d_residual"])
    assert [s.name for s in only_cnn] == ["finetune_patients"]  # spaces without the model leave the search
    with pytest.raises(EcgtuneError, match="resnet"):
        shape_search(spaces, models=["resnet"])
    with pytest.raises(EcgtuneError, match="at most once"):
        shape_search(spaces, patients=["100", "100"])


def test_smoke_params_and_per_model_hyperparameters_make_a_large_grid_small(tmp_path):
    doc = _valid()
    doc["smoke_test"] = {"params": {"lr": 0.01}, "model": {"block_channels": 8}, "models": {"cnn1d_residual": {"num_blocks": 1}}}
    space = load_space(str(_write(tmp_path, doc)))
    assert "lr" in space.stages[0].domains()  # the full space keeps its grid
    smoke = space.shrunk(patients_given=False)
    assert all("lr" not in s.domains() and s.params["lr"] == 0.01 for s in smoke.stages)
    assert smoke.models[0].hparams == {**space.models[0].hparams, "block_channels": 8, "num_blocks": 1}


@pytest.mark.parametrize("smoke,key", [
    ({"params": {"lrate": 0.1}}, "smoke_test.params.lrate"),
    ({"params": {"optimizer": "adamw"}}, "smoke_test.params.optimizer"),
    ({"models": {"cnet": {"frame_size": 2}}}, "smoke_test.models.cnet"),
])
def test_bad_smoke_overrides_name_the_key(tmp_path, smoke, key):
    doc = _valid()
    doc["smoke_test"] = smoke
    path = _write(tmp_path, doc)
    with pytest.raises(EcgtuneError) as err:
        load_space(str(path))
    assert str(path) in str(err.value) and key in str(err.value)


def test_seed000_spaces_run_fusion_from_the_champions_of_both_branches():
    from ecgtune.tuning.plan import build_plan

    spaces, suite = load_search(["image_encodings"])
    assert suite == "image_encodings"
    fusion = load_space("fusion_ptbxl")
    assert fusion.transfer.branches == {"signal": "gru1d", "image": "alexnet2d"}
    # The seed's grid: optimizer x lr x dropout x hidden size (late fusion two more hidden sizes).
    plan = {u.key: u for u in build_plan(spaces)}
    assert plan["fusion_ptbxl/finetune-fusion_early"].planned_trials == 2 * 4 * 3 * 3
    assert plan["fusion_ptbxl/finetune-fusion_late"].planned_trials == 2 * 4 * 3 * 5
    for way in ("early", "late", "joint"):
        unit = plan[f"fusion_ptbxl/finetune-fusion_{way}"]
        assert {(s.branch, s.name) for s in unit.sources} == {
            ("signal", "scratch-gru1d-4c94-ptbxl_superdiag4-ptbxl-folds"),
            ("image", "scratch-alexnet2d-4c94-ptbxl_superdiag4-ptbxl-folds")}
        assert set(unit.depends_on) == {"signal_ptbxl/scratch-gru1d", "image_ptbxl/scratch-alexnet2d"}
    # The smoke version is small: one configuration per fusion model.
    smoke = {u.key: u for u in build_plan(shape_search(spaces, smoke_test=True))}
    assert smoke["fusion_ptbxl-smoke/finetune-fusion_late"].planned_trials == 1


@pytest.mark.parametrize("branches,key,expected", [
    ({"signal": "alexnet2d", "image": "alexnet2d"}, "transfer.branches.signal", "taking the one input 'signal'"),
    ({"signal": "gru9d"}, "transfer.branches.signal", "one of"),
    ([], "transfer.branches", "a mapping"),
    ({"signal": "gru1d"}, "models[0].name", "a fusion model taking the branches' inputs ['signal']"),
])
def test_bad_transfer_branches_name_the_key(tmp_path, branches, key, expected):
    doc = yaml.safe_load((spaces_dir() / "fusion_ptbxl.yaml").read_text())
    doc["transfer"]["branches"] = branches
    path = _write(tmp_path, doc)
    with pytest.raises(EcgtuneError) as err:
        load_space(str(path))
    assert str(path) in str(err.value) and key in str(err.value) and expected in str(err.value)


def test_a_split_takes_options_and_a_wfdb_dataset_its_path(tmp_path):
    doc = _valid()
    doc["dataset"].update(split={"protocol": "random_records", "test": 0.3, "seed": 7})
    space = load_space(str(_write(tmp_path, doc)))
    assert (space.split, space.split_options) == ("random_records", {"test": 0.3, "seed": 7})
    assert space.resolved_split_options() == {"test": 0.3, "val": 0.2, "seed": 7}  # mitdb's default val kept
    assert space.with_split("per_patient").split_options == {}
    doc = _valid()
    doc["dataset"] = {"name": "wfdb", "path": "mydb", "split": "random_records",
                      "preprocessing": {"mode": "kachuee", "lead": "ECG1"}}
    assert load_space(str(_write(tmp_path, doc))).dataset_args == {"path": "mydb"}
    doc["dataset"].pop("path")
    with pytest.raises(EcgtuneError, match="dataset.path"):
        load_space(str(_write(tmp_path, doc)))
