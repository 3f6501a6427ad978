"""The units of a search and what each waits for."""

from __future__ import annotations

import pytest

from ecgtune.errors import EcgtuneError
from ecgtune.spaces import load_search, load_space, shape_search
from ecgtune.tuning.plan import build_plan, external_sources


def test_a_study_is_one_unit_per_stage_model_and_patient_fine_tuning_waits_for_its_pretraining():
    space = load_space("finetune_patients").with_patients(["100", "208"])
    plan = build_plan([space])
    keys = [u.key for u in plan]
    assert keys[0] == "finetune_patients/pretrain-cnn1d_residual"  # what others wait for comes first
    assert set(keys) == {"finetune_patients/pretrain-cnn1d_residual"} | {
        f"finetune_patients/{stage}-cnn1d_residual-{p}" for stage in ("scratch", "finetune") for p in ("100", "208")}
    by_key = {u.key: u for u in plan}
    finetune = by_key["finetune_patients/finetune-cnn1d_residual-208"]
    assert finetune.depends_on == ("finetune_patients/pretrain-cnn1d_residual",)
    assert [s.name for s in finetune.sources] == [by_key[finetune.depends_on[0]].registered_name]
    assert by_key["finetune_patients/scratch-cnn1d_residual-208"].depends_on == ()
    assert finetune.planned_trials == 18 and by_key[finetune.depends_on[0]].planned_trials == 1
    assert external_sources(plan) == {}


def test_a_transfer_space_waits_for_its_source_in_the_same_search_or_needs_a_champion():
    spaces, _ = load_search(["all_pairs"])
    plan = build_plan(spaces)
    by_key = {u.key: u for u in plan}
    mi = by_key["mi_transfer/finetune-bigru"]
    assert mi.depends_on == ("heartbeat_aami/scratch-bigru",)
    assert [(s.name, s.branch) for s in mi.sources] == [("scratch-bigru-5619-aami_beats-mitdb-random_beats", None)]
    # Alone, the transfer space starts from champions trained by an earlier search.
    alone = build_plan([load_space("mi_transfer")])
    assert all(u.depends_on == () for u in alone)
    assert set(external_sources(alone)) == {f"scratch-{m}-5619-aami_beats-mitdb-random_beats"
                                            for m in ("cnet", "seq2seq", "bilstm", "bigru")}


def test_the_planned_trials_of_a_unit_follow_tunes_rules():
    grid = load_space("individuals_patients")
    assert build_plan([grid])[0].planned_trials == 18  # every combination once
    optuna = load_space("heartbeat_aami")
    assert build_plan([optuna])[0].planned_trials == 8  # num_samples


def test_two_spaces_training_the_same_registered_model_are_refused():
    # finetune_patients and pretrain_mitdb pre-train the same model on the same data: one champion line.
    with pytest.raises(EcgtuneError, match="pretrain_mitdb.*finetune_patients|finetune_patients.*pretrain_mitdb"):
        build_plan([load_space("finetune_patients"), load_space("pretrain_mitdb")])
    # quickstart's 8 records are a line of their own: it never competes with pre-training on 29 (issue 26).
    plan = build_plan([load_space("quickstart"), load_space("pretrain_mitdb")])
    assert len({u.registered_name for u in plan}) == 2
    with pytest.raises(EcgtuneError, match="at most once"):
        build_plan([load_space("quickstart"), load_space("quickstart")])


def test_smoke_units_depend_on_smoke_units():
    spaces = shape_search(load_search(["all_pairs"])[0], smoke_test=True)
    plan = build_plan(spaces)
    assert all("smoke" in s.name.split("-") for u in plan for s in u.sources)
    assert all(len(u.depends_on) == len(u.sources) for u in plan)
