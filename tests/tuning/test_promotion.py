"""Promotion against a real SQLite MLflow registry: the alias moves only to a better model."""

import pytest
import torch

from ecgtune.models import create_model
from ecgtune.tuning import promotion, tracking


@pytest.fixture
def registry(tmp_path):
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    client = tracking.client(uri)
    exp = tracking.experiment_id(client, "promotion-test")
    return client, exp


def _promote(client, exp, value, mode="max"):
    run = client.create_run(exp)
    model = create_model("cnn1d_residual", inputs={"signal": (1, 128)}, num_outputs=1).eval()
    result = promotion.promote(
        client, name="ecgtune-test-model", run_id=run.info.run_id, model=model,
        example={"signal": torch.zeros(2, 1, 128).numpy()}, metric="val_balanced_accuracy", value=value, mode=mode,
        tags={"split": "per_patient"},
    )
    client.set_terminated(run.info.run_id)
    return result


def test_logging_the_model_leaves_the_runs_end_and_status_as_they_were(registry):
    """The selected run ended when its trial did; registering its model minutes later must not move its end
    (the UI's Duration) nor its status (an ASHA-stopped trial stays KILLED)."""
    client, exp = registry
    run = client.create_run(exp, start_time=1_000_000)
    client.set_terminated(run.info.run_id, "KILLED", end_time=1_060_000)
    model = create_model("cnn1d_residual", inputs={"signal": (1, 128)}, num_outputs=1).eval()
    promoted = promotion.promote(client, name="ended-model", run_id=run.info.run_id, model=model,
                                 example={"signal": torch.zeros(2, 1, 128).numpy()}, metric="val_balanced_accuracy",
                                 value=0.8, mode="max", tags={"split": "per_patient"}, model_name="scratch-cnn1d_residual-100")
    after = client.get_run(run.info.run_id).info
    assert (after.status, after.end_time) == ("KILLED", 1_060_000)
    version = client.get_model_version("ended-model", promoted.version)
    logged = client.get_logged_model(version.model_id or version.source[len("models:/"):])
    assert logged.name == "scratch-cnn1d_residual-100"  # named for its unit, not "model"
    promotion.describe_registered_model(client, "ended-model", version=promoted.version, description="what it is",
                                        tags={"task": "t", "dataset": "mitdb", "split": "per_patient", "stage": "scratch",
                                              "model": "cnn1d_residual", "patient": "100", "space": "b"})
    promotion.describe_registered_model(client, "ended-model", version=promoted.version, description="what it is now",
                                        tags={"task": "t", "dataset": "mitdb", "split": "per_patient", "stage": "scratch",
                                              "model": "cnn1d_residual", "patient": "100", "space": "a"})
    registered = client.get_registered_model("ended-model")
    assert registered.description == "what it is now" and registered.tags["patient"] == "100"
    assert registered.tags["space"] == "a,b"  # every space that registered a version of it


def test_champion_moves_only_when_beaten(registry):
    client, exp = registry
    first = _promote(client, exp, 0.80)
    assert first.champion and first.previous is None
    worse = _promote(client, exp, 0.70)
    assert not worse.champion and worse.previous == pytest.approx(0.80)
    assert str(client.get_model_version_by_alias("ecgtune-test-model", "champion").version) == first.version
    better = _promote(client, exp, 0.90)
    assert better.champion
    champion = client.get_model_version_by_alias("ecgtune-test-model", "champion")
    assert str(champion.version) == better.version and champion.tags["split"] == "per_patient"
    assert float(champion.tags["val_metric"]) == pytest.approx(0.90)


def test_champion_loads_as_a_model_that_takes_any_batch(registry, tmp_path):
    client, exp = registry
    _promote(client, exp, 0.5)
    model = promotion.load_champion("ecgtune-test-model", client.tracking_uri)
    assert model(torch.randn(5, 1, 128)).shape == (5, 1)


def test_a_single_input_champion_serves_through_pyfunc(registry):
    """`mlflow models serve` and pyfunc loaders hand the model one array: its signature takes it."""
    import mlflow
    import mlflow.pyfunc
    import numpy as np

    client, exp = registry
    _promote(client, exp, 0.5)
    mlflow.set_tracking_uri(client.tracking_uri)
    served = mlflow.pyfunc.load_model("models:/ecgtune-test-model@champion")
    out = served.predict(np.zeros((3, 1, 128), np.float32))
    assert np.asarray(out).shape == (3, 1)


def test_lower_is_better_for_min_metrics():
    assert promotion.beats(0.1, 0.2, "min") and not promotion.beats(0.3, 0.2, "min")
    assert promotion.beats(0.5, float("nan"), "max")


def test_registered_names_are_per_task_dataset_split_stage_model_patient():
    assert promotion.registered_name(
        task="abnormal_windows", dataset="mitdb", split="per_patient", stage="finetune", model="cnn1d_residual",
        patient="100",
    ) == "finetune-cnn1d_residual-100-ad9a-abnormal_windows-mitdb-per_patient"
    assert promotion.registered_name(
        task="aami_beats", dataset="mitdb", split="inter_patient", stage="scratch", model="cnet", smoke=True
    ) == "scratch-cnet-smoke-fe87-aami_beats-mitdb-inter_patient"


def _every_shipped_unit(smoke: bool):
    """(space, unit) of every shipped space's plan, per-patient stages over all 29 study patients."""
    from ecgtune.spaces import load_space, spaces_dir
    from ecgtune.tuning.plan import units_of

    study = ("100 101 103 105 106 108 109 111 112 113 114 115 116 117 118 119 121 122 123 124 200 201 202 203 "
             "205 207 208 209 210").split()
    for path in sorted(spaces_dir().glob("*.yaml")):
        try:
            space = load_space(path.stem)
        except Exception:  # a suite: its spaces are listed on their own
            continue
        if any(stage.per_patient for stage in space.stages):
            space = space.with_patients(study)
        for unit in units_of(space):
            yield space, unit


def test_registered_names_are_unique_within_their_first_40_characters():
    """The registry's list shows about 40 characters of a name: over every shipped space's plan (29 patients
    for the per-patient studies), smoke runs and real ones, two names of different champion lines never
    look alike there, and the stage, model and patient come first."""
    names = {}
    for smoke in (False, True):
        for space, unit in _every_shipped_unit(smoke):
            name = promotion.registered_name(task=space.task, dataset=space.dataset, split=space.split,
                                             stage=unit.stage.stage, model=unit.model.name, patient=unit.patient,
                                             smoke=smoke)
            names[name] = space.name
            unit_part = "-".join([unit.stage.stage, unit.model.name] + ([unit.patient] if unit.patient else []))
            assert name.startswith(unit_part)
    assert len(names) > 150  # every study patient, every model of every space
    by_prefix = {}
    for name in names:
        by_prefix.setdefault(name[:40], []).append(name)
    assert {prefix: group for prefix, group in by_prefix.items() if len(group) > 1} == {}
    # Spaces that are meant to compete share a line; quickstart (8 records) does not share pre-training's (29).
    quickstart = [n for n, s in names.items() if s == "quickstart"]
    assert quickstart and not any(names[n] == "pretrain_mitdb" for n in quickstart)


def test_transfer_takes_the_champion_of_the_named_source_whatever_its_data(registry, tmp_path):
    """MI transfer: the AAMI champion of another dataset shares no patient, so its data key is not checked;
    the source name is the transfer section's task, dataset, split and stage, with the unit's model."""
    from ecgtune.spaces import load_space
    from ecgtune.training.checkpoint import save_state
    from ecgtune.tuning.plan import sources_of
    from ecgtune.tuning.starting_weights import pretrained_start

    client, exp = registry
    space = load_space("mi_transfer")
    (source,) = sources_of(space, "cnet")
    name = source.name
    assert (name, source.dataset, source.branch) == ("scratch-cnet-5619-aami_beats-mitdb-random_beats", "mitdb", None)
    model = create_model("cnet", inputs={"signal": (1, 187)}, num_outputs=5).eval()
    run = client.create_run(exp)
    (tmp_path / "ckpt").mkdir()
    save_state(tmp_path / "ckpt", {"model_state": model.state_dict(), "model_spec": {"name": "cnet"}})
    client.log_artifacts(run.info.run_id, str(tmp_path / "ckpt"), "checkpoint")
    promotion.promote(client, name=name, run_id=run.info.run_id, model=model, example={"signal": torch.zeros(2, 1, 187).numpy()},
                      metric="val_f1_macro", value=0.9, mode="max", tags={"data_key": "mitdb-beats"})
    start = pretrained_start(client, space, source, data_key="ptbxl-beats")
    assert all(torch.equal(start["model_state"][k], v) for k, v in model.state_dict().items())
    assert start["model_spec"] == {"name": "cnet"}
    with pytest.raises(Exception, match="seq2seq.*run the search that trains it first"):
        pretrained_start(client, space, sources_of(space, "seq2seq")[0], data_key="ptbxl-beats")


def test_finetuning_refuses_a_pretraining_champion_from_other_data(registry):
    """A champion pre-trained on another split or preprocessing may have seen a patient's test windows."""
    from ecgtune.errors import EcgtuneError
    from ecgtune.spaces import load_space
    from ecgtune.tuning.plan import sources_of
    from ecgtune.tuning.starting_weights import pretrained_start

    client, exp = registry
    space = load_space("finetune_patients")
    (source,) = sources_of(space, "cnn1d_residual")
    name = source.name
    run = client.create_run(exp)
    model = create_model("cnn1d_residual", inputs={"signal": (1, 128)}, num_outputs=1).eval()
    promotion.promote(client, name=name, run_id=run.info.run_id, model=model, example={"signal": torch.zeros(2, 1, 128).numpy()},
                      metric="val_balanced_accuracy", value=0.9, mode="max", tags={"data_key": "chronological-data"})
    with pytest.raises(EcgtuneError, match="leak"):
        pretrained_start(client, space, source, data_key="per-patient-data")
    # The search's pre-flight check refuses it too, before Ray starts or any run is opened (it did only once
    # the champion was missing; a leaking one was refused after Ray and the parent runs were up).
    from types import SimpleNamespace

    from ecgtune.tuning.plan import build_plan
    from ecgtune.tuning.starting_weights import check_external_sources

    finetune_only = [u for u in build_plan([space.with_patients(["100"])]) if u.stage.stage == "finetune"]
    with pytest.raises(EcgtuneError, match="could leak test windows"):
        check_external_sources(client, finetune_only, {space.experiment_name: SimpleNamespace(key="per-patient-data")})


def test_a_unit_finalised_again_reuses_the_version_it_registered(registry):
    """A search killed between registering a unit's model and recording it finalises the unit again on
    --resume: the version found by its tag is reused, not registered a second time."""
    client, exp = registry
    run = client.create_run(exp)
    model = create_model("cnn1d_residual", inputs={"signal": (1, 128)}, num_outputs=1).eval()
    kw = dict(name="ecgtune-test-model", run_id=run.info.run_id, model=model, example={"signal": torch.zeros(2, 1, 128).numpy()},
              metric="val_balanced_accuracy", value=0.8, mode="max",
              tags={promotion.INVOCATION_TAG: "20261122-000000-abcdef/space/scratch-cnn1d_residual-100"})
    first = promotion.promote(client, **kw)
    again = promotion.promote(client, **kw)
    assert again.version == first.version and again.champion
    assert len(client.search_model_versions("name='ecgtune-test-model'")) == 1
    other = promotion.promote(client, **{**kw, "tags": {promotion.INVOCATION_TAG: "another-search/unit"}})
    assert other.version != first.version


def test_git_revision_is_the_checkout_or_the_one_an_image_was_built_from(monkeypatch):
    import re

    from ecgtune.tuning.promotion import git_revision

    monkeypatch.delenv("ECGTUNE_GIT_REVISION", raising=False)
    assert re.fullmatch(r"[0-9a-f]{40}", git_revision())  # this checkout
    monkeypatch.setenv("ECGTUNE_GIT_REVISION", "0123abc")
    assert git_revision() == "0123abc"  # the node image has no .git


def _promote_data(client, exp, value, data_key, score_champion=None):
    run = client.create_run(exp)
    model = create_model("cnn1d_residual", inputs={"signal": (1, 128)}, num_outputs=1).eval()
    result = promotion.promote(
        client, name="ecgtune-gate", run_id=run.info.run_id, model=model, example={"signal": torch.zeros(2, 1, 128).numpy()},
        metric="val_balanced_accuracy", value=value, mode="max", tags={"data_key": data_key},
        score_champion=score_champion,
    )
    client.set_terminated(run.info.run_id)
    return result, client.get_model_version("ecgtune-gate", result.version).tags


def test_the_gate_compares_a_champion_of_other_data_on_the_challengers_validation_set(registry):
    """Issue 10: a champion prepared differently is scored on the challenger's validation data first; the
    comparison is kept on the new version (gate.* tags)."""
    client, exp = registry
    first, tags = _promote_data(client, exp, 0.95, "quickstart-data")
    assert first.champion and tags["gate.decision"] == "champion: the first version"
    # Same data: the recorded values compare, both best-of-search on the same validation set.
    same, tags = _promote_data(client, exp, 0.90, "quickstart-data", score_champion=lambda v: pytest.fail("not needed"))
    assert not same.champion and tags["gate.basis"] == promotion.SAME_DATA
    assert tags["gate.champion_value"] == repr(0.95) and tags["gate.decision"].startswith("kept version 1")
    # Other data: 0.95 on its own 8 records means nothing here; scored on this validation set it gets 0.70.
    scored = []
    other, tags = _promote_data(client, exp, 0.80, "pretrain-data", score_champion=lambda v: (scored.append(v.version) or 0.70, None))
    assert other.champion and [str(v) for v in scored] == ["1"] and other.previous == pytest.approx(0.70)
    assert tags["gate.champion_value"] == repr(0.70) and tags["gate.basis"] == promotion.RESCORED
    assert tags["gate.data_key"] == "pretrain-data" and tags["gate.decision"] == "champion: beats version 1"
    assert str(client.get_model_version_by_alias("ecgtune-gate", "champion").version) == other.version


def test_the_alias_stays_where_the_champion_cannot_be_scored_fairly(registry):
    client, exp = registry
    _promote_data(client, exp, 0.60, "a")
    kept, tags = _promote_data(client, exp, 0.99, "b", score_champion=lambda v: (None, "it may have trained on these examples"))
    assert not kept.champion and kept.kept_because == "it may have trained on these examples"
    assert tags["gate.decision"] == "kept version 1: it may have trained on these examples"
    assert "gate.champion_value" not in tags
    assert str(client.get_model_version_by_alias("ecgtune-gate", "champion").version) == "1"
    # Without a scorer another preparation is never compared on its own figures.
    unscored, tags = _promote_data(client, exp, 0.99, "c")
    assert not unscored.champion and "prepared differently (data_key 'a')" in tags["gate.decision"]


def test_the_names_the_readme_and_docs_give_are_names_ecgtune_registers():
    """Every registered model name written in README.md, docs/ and the search spaces' comments carries the
    champion line of its own task, dataset and split (a hand-written name would not be found)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    texts = [root / "README.md", root / "docs" / "results.md", root / "docs" / "screenshots.sh"]
    pattern = re.compile(r"\b(?:pretrain|scratch|finetune)-[A-Za-z0-9_{}-]+?-([0-9a-f]{4})-([a-z0-9_]+)-([a-z0-9_]+)-([a-z_]+)\b")
    found = [m for path in texts for m in pattern.finditer(path.read_text())]
    assert len(found) >= 5
    for m in found:
        line, task, dataset, split = m.groups()
        assert promotion.champion_line(task, dataset, split) == line, m.group(0)
