"""The schedule's searcher and scheduler, driven by hand: which unit's trials Tune gets, and when."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from ecgtune.spaces import load_search, load_space, shape_search
from ecgtune.tuning.completion import UnitCompletion
from ecgtune.tuning.plan import build_plan
from ecgtune.tuning.searcher import UnitSchedulers, UnitSearcher
from ecgtune.tuning.selection import TrialOutcome, select_best
from ecgtune.tuning.tuner import param_space, unit_scheduler


def make_searcher(plan, ready=lambda unit: {"init_weights": None}, aborted=lambda: False, done=frozenset()):
    spaces = {u.key: param_space(u, "data-key", {"cpu": 1, "gpu": 0}) for u in plan}
    return UnitSearcher(plan, spaces, ready, aborted, done=set(done))


def drain(searcher, prefix="t"):
    """Ask for trials until the searcher has none to give now; returns {trial id: config}."""
    out = {}
    while True:
        trial_id = f"{prefix}{len(out)}"
        config = searcher.suggest(trial_id)
        if config is None or config == Searcher.FINISHED:
            return out, config
        out[trial_id] = config


def test_every_ready_unit_hands_out_trials_at_once_and_a_dependant_waits():
    space = load_space("finetune_patients").with_patients(["100", "208"]).shrunk(patients_given=True)
    plan = build_plan([space])
    weights = {}
    searcher = make_searcher(plan, ready=lambda u: None if any(s.name not in weights for s in u.sources) else {"init_weights": {"model": weights[s.name] for s in u.sources} or None})
    configs, last = drain(searcher)
    units = [c["unit"] for c in configs.values()]
    # The pre-training and both patients' scratch grids are in flight together; fine-tuning waits.
    assert units.count("finetune_patients-smoke/pretrain-cnn1d_residual") == 1
    assert units.count("finetune_patients-smoke/scratch-cnn1d_residual-100") == 18
    assert units.count("finetune_patients-smoke/scratch-cnn1d_residual-208") == 18
    assert not any("finetune-" in u for u in units) and last is None
    weights[plan[0].registered_name] = "/storage/starting_weights/pretrain.pt"  # the pre-training is promoted
    more, last = drain(searcher, prefix="u")
    assert {c["unit"] for c in more.values()} == {
        "finetune_patients-smoke/finetune-cnn1d_residual-100", "finetune_patients-smoke/finetune-cnn1d_residual-208"}
    assert all(c["init_weights"] == {"model": "/storage/starting_weights/pretrain.pt"} for c in more.values())
    assert last == Searcher.FINISHED
    # A grid unit's configurations are its whole grid, each once, numbered for selection.
    grid = [c["train"] for c in more.values() if c["unit"].endswith("-100")]
    assert len({(g["lr"], g["batch_size"], g["weighted_sampling"]) for g in grid}) == 18
    assert sorted(c["unit_trial"] for c in more.values() if c["unit"].endswith("-100")) == list(range(1, 19))


def test_an_optuna_unit_keeps_to_its_startup_concurrency_and_learns_from_best_values():
    space = load_space("quickstart")  # 6 trials, TPE starts with max(2, 6 // 3) = 2 random ones
    plan = build_plan([space])
    searcher = make_searcher(plan)
    first, last = drain(searcher)
    assert len(first) == 2 and last is None  # the rest waits for results to learn from
    trial_id = next(iter(first))
    searcher.on_trial_complete(trial_id, {"best_metric": 0.9, "val_balanced_accuracy": 0.1})
    study = searcher.units[plan[0].key].optuna._ot_study
    assert study.trials[0].value == 0.9  # told the trial's best epoch, not its last
    second, _ = drain(searcher, prefix="u")
    assert len(second) == 1


def test_done_units_get_no_trials_and_an_abort_finishes_the_search():
    space = load_space("individuals_patients").with_patients(["100", "208"]).shrunk(patients_given=True)
    plan = build_plan([space])
    searcher = make_searcher(plan, done={plan[0].key})
    configs, _ = drain(searcher)
    assert {c["unit"] for c in configs.values()} == {plan[1].key}
    stop = make_searcher(plan, aborted=lambda: True)
    assert stop.suggest("x") == Searcher.FINISHED


def test_the_searcher_state_survives_a_restart(tmp_path):
    plan = build_plan([load_space("quickstart"), load_space("individuals_patients").with_patients(["100"])])
    searcher = make_searcher(plan)
    handed, _ = drain(searcher)
    searcher.on_trial_complete(next(t for t, c in handed.items() if c["unit"] == plan[0].key), {"best_metric": 0.5})
    searcher.save(str(tmp_path / "searcher.pkl"))
    restarted = make_searcher(plan)
    restarted.restore(str(tmp_path / "searcher.pkl"))
    again, _ = drain(restarted, prefix="r")
    # Nothing handed out before the restart is handed out again: one more Optuna trial (one finished).
    assert [c["unit"] for c in again.values()] == [plan[0].key]


def test_grid_and_random_units_expand_the_same_way_every_time():
    plan = build_plan([load_space("individuals_patients").with_patients(["100"])])
    a, _ = drain(make_searcher(plan))
    b, _ = drain(make_searcher(plan))
    assert [c["train"] for c in a.values()] == [c["train"] for c in b.values()]


class FakeTrial(SimpleNamespace):
    pass


def test_each_unit_has_its_own_asha_brackets():
    space = load_space("heartbeat_aami").with_models(["cnet", "bigru"])
    plan = build_plan([space])
    units = {u.key: u for u in plan}
    schedulers = UnitSchedulers(lambda key: unit_scheduler(units[key].space, units[key].stage))
    trials = {key: [FakeTrial(trial_id=f"{key}-{i}", config={"unit": key}) for i in range(4)] for key in units}
    for ts in trials.values():
        for t in ts:
            schedulers.on_trial_add(None, t)
    assert len(schedulers.schedulers) == 2
    assert schedulers.schedulers[plan[0].key] is not schedulers.schedulers[plan[1].key]
    # The first unit's trials set its rung at epoch 4 (its grace period); the other unit's stay untouched.
    cnet, bigru = trials[plan[0].key], trials[plan[1].key]
    decisions = [schedulers.on_trial_result(None, t, {"training_iteration": 4, "val_f1_macro": v})
                 for t, v in zip(cnet, (0.9, 0.8, 0.7, 0.1))]
    assert decisions[-1] == TrialScheduler.STOP
    assert schedulers.on_trial_result(None, bigru[0], {"training_iteration": 4, "val_f1_macro": 0.2}) == TrialScheduler.CONTINUE


def test_selection_takes_the_best_value_and_the_earliest_of_equals():
    outcomes = [TrialOutcome(f"t{i}", v, object(), {"unit_trial": i}) for i, v in enumerate([0.7, 0.9, 0.9, float("nan")])]
    assert select_best(outcomes, "max", "u").trial_id == "t1"
    assert select_best(outcomes, "min", "u").trial_id == "t0"
    failed = [TrialOutcome("t", float("nan"), None, {}, error="CUDA out of memory")]
    with pytest.raises(Exception, match="1 of 1 failed.*out of memory"):
        select_best(failed, "max", "u")


def test_a_unit_is_handed_on_once_every_planned_trial_finished_or_failed_in_trial_order(tmp_path):
    handed = []
    completion = UnitCompletion({"u": 3, "v": 1}, done={"v"}, on_unit_complete=lambda k, o: handed.append((k, o)))

    # The driver's copy of a failed trial's error file: the traceback, whose last line is kept.
    error_file = tmp_path / "error.txt"
    error_file.write_text("Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom\n")

    def trial(tid, n, status="TERMINATED", unit="u"):
        return FakeTrial(trial_id=tid, status=status, config={"unit": unit, "unit_trial": n}, checkpoint=None,
                         last_result={"best_metric": 0.5}, error_file=str(error_file) if status == "ERROR" else None,
                         get_error=lambda: None)

    # --resume: the finished trials Tune restored are read at the first step.
    completion.on_step_begin(0, [trial("b", 2), trial("c", 3, status="RUNNING"), trial("v1", 1, unit="v")])
    assert handed == []
    completion.on_trial_error(1, [], trial("a", 1, status="ERROR"))
    assert handed == []
    completion.on_trial_complete(2, [], trial("c", 3))
    assert [k for k, _ in handed] == ["u"]  # v was done before: never handed on again
    assert [o.trial_id for o in handed[0][1]] == ["a", "b", "c"] and handed[0][1][0].error == "ValueError: boom"


def test_all_pairs_smoke_plan_is_one_search_that_runs_each_unit_its_planned_trials():
    spaces = shape_search(load_search(["all_pairs"])[0], smoke_test=True)
    plan = build_plan(spaces)
    assert {u.space.name for u in plan} == {s.name for s in spaces}
    # The smoke version keeps each grid whole and samples at most smoke_test.num_samples configurations.
    for u in plan:
        assert u.stage.search.num_samples <= u.space.smoke.num_samples or u.stage.search.algorithm == "grid"
    # Every unit ready at once (its sources given): the searcher hands out exactly each unit's planned trials
    # (Optuna's as its finished trials let it), then finishes; the snapshot tests count against the same plan.
    searcher = make_searcher(plan)
    # A grid or random unit's list, expanded by Tune's own variant generator, is exactly its planned trials.
    assert all(len(t.variants) == t.unit.planned_trials for t in searcher.units.values() if hasattr(t, "variants"))
    handed: dict[str, int] = {}
    for round_ in range(100):
        configs, last = drain(searcher, prefix=f"r{round_}-")
        for trial_id, config in configs.items():
            handed[config["unit"]] = handed.get(config["unit"], 0) + 1
            searcher.on_trial_complete(trial_id, {"best_metric": 0.5, "time_total_s": 1.0})
        if last == Searcher.FINISHED:
            break
    assert last == Searcher.FINISHED
    assert handed == {u.key: u.planned_trials for u in plan} and all(n >= 1 for n in handed.values())


def test_a_fusion_unit_is_ready_once_both_branch_champions_are_written():
    from ecgtune.tuning.finalize import Readiness

    plan = {u.key: u for u in build_plan(load_search(["image_encodings"])[0])}
    fusion = plan["fusion_ptbxl/finetune-fusion_late"]
    readiness = Readiness({})
    assert readiness.starting_point(plan["signal_ptbxl/scratch-gru1d"]) == {"init_weights": None}
    assert readiness.starting_point(fusion) is None
    gru, alexnet = "scratch-gru1d-4c94-ptbxl_superdiag4-ptbxl-folds", "scratch-alexnet2d-4c94-ptbxl_superdiag4-ptbxl-folds"
    readiness.provide(gru, "/s/gru.pt", f"models:/{gru}/3")
    assert readiness.starting_point(fusion) is None  # the image champion is still missing
    readiness.provide(alexnet, "/s/alexnet.pt", f"models:/{alexnet}/1")
    # Trials read the files; their runs record the registered versions the files are (not the paths).
    assert readiness.starting_point(fusion) == {"init_weights": {"signal": "/s/gru.pt", "image": "/s/alexnet.pt"},
                                                "starts_from": {"signal": f"models:/{gru}/3",
                                                                "image": f"models:/{alexnet}/1"}}


def key_of(config) -> tuple:
    t = config["train"]
    return (t["lr"], t["batch_size"], t["weighted_sampling"])


def test_ready_trials_start_longest_first_and_units_others_wait_for_before_them():
    space = load_space("finetune_patients").with_patients(["100", "208"])
    plan = build_plan([space])
    pretrain, scratch_100, scratch_208 = (f"finetune_patients/{n}-cnn1d_residual{p}"
                                          for n, p in (("pretrain", ""), ("scratch", "-100"), ("scratch", "-208")))
    # The pre-training holds few examples here, yet goes first: fine-tuning waits for it.
    sizes = {pretrain: 10, scratch_100: 100, scratch_208: 1000}
    spaces = {u.key: param_space(u, "data-key", {"cpu": 1, "gpu": 0}) for u in plan}
    searcher = UnitSearcher(plan, spaces, lambda u: None if u.sources else {"init_weights": None}, lambda: False,
                            train_examples=sizes)
    configs, _ = drain(searcher)
    order = [(c["unit"], c["train"]["batch_size"]) for c in configs.values()]
    assert order[0] == (pretrain, 32)
    # Ten times the examples: all of patient 208's grid (even batch 32: 30 x 1000 x (1/32 + 1/13) = 3,245)
    # before patient 100's batch 4 (30 x 100 x (1/4 + 1/13) = 981); batch 4, then 16, then 32 within a unit.
    assert order[1:] == [(scratch_208, b) for b in (4,) * 6 + (16,) * 6 + (32,) * 6] + \
        [(scratch_100, b) for b in (4,) * 6 + (16,) * 6 + (32,) * 6]
    # Each unit still hands out its whole grid, once, numbered in the order handed out.
    assert len({key_of(c) for c in configs.values() if c["unit"] == scratch_100}) == 18
    assert [c["unit_trial"] for c in configs.values() if c["unit"] == scratch_100] == list(range(1, 19))


def test_durations_measured_in_the_search_reorder_what_starts_next(tmp_path):
    plan = build_plan([load_space("individuals_patients").with_patients(["100", "208"])])
    first, second = plan[0].key, plan[1].key
    searcher = make_searcher(plan)
    # Equal priors: the first unit's batch-4 trials come first, in plan order.
    a, b = searcher.suggest("a"), searcher.suggest("b")
    assert (a["unit"], b["unit"], a["train"]["batch_size"], b["train"]["batch_size"]) == (first, first, 4, 4)
    # Its first configuration ran ten times as long as its second: on the other patient that same grid point
    # is now expected to take longest, and starts next, ahead of the first unit's untried batch-4 trials.
    searcher.on_trial_complete("a", {"best_metric": 0.5, "time_total_s": 100.0})
    searcher.on_trial_complete("b", {"best_metric": 0.5, "time_total_s": 10.0})
    c = searcher.suggest("c")
    assert (c["unit"], key_of(c)) == (second, key_of(a))
    # The same grid point measured short goes last among the batch-4 trials of its unit.
    rest, _ = drain(searcher, prefix="r")
    second_b4 = [key_of(x) for x in rest.values() if x["unit"] == second and x["train"]["batch_size"] == 4]
    assert second_b4[-1] == key_of(b) and len(second_b4) == 5
    # Measured durations and what was handed out survive a restart: nothing repeats, nothing is skipped.
    searcher.save(str(tmp_path / "searcher.pkl"))
    restarted = make_searcher(plan)
    restarted.restore(str(tmp_path / "searcher.pkl"))
    assert restarted.durations.sums == searcher.durations.sums
    assert drain(restarted, prefix="x")[1] == Searcher.FINISHED


def test_a_grid_restored_from_a_search_that_handed_it_out_in_tunes_order_goes_on_in_that_order():
    plan = build_plan([load_space("individuals_patients").with_patients(["100"])])
    searcher = make_searcher(plan)
    tunes_order = [searcher.units[plan[0].key].variants[i]["train"] for i in range(18)]
    state = searcher.get_state()
    state["units"][plan[0].key].update(suggested=5, in_flight=0)
    del state["units"][plan[0].key]["handed"]  # what an earlier ecgtune saved
    searcher.set_state(state)
    rest, _ = drain(searcher)
    assert sorted(map(str, (c["train"] for c in rest.values()))) == sorted(map(str, tunes_order[5:]))


def test_an_optuna_unit_is_asked_in_turn_its_study_sees_its_own_trials_in_order():
    plan = build_plan([load_space("quickstart"), load_space("individuals_patients").with_patients(["100"])])
    searcher = make_searcher(plan)
    configs, _ = drain(searcher)
    mine = [c for c in configs.values() if c["unit"] == plan[0].key]
    study = searcher.units[plan[0].key].optuna._ot_study
    # Its study's trials, in the study's order, are the unit's trials 1, 2, ...
    assert [c["unit_trial"] for c in mine] == [t.number + 1 for t in study.trials]
    assert [c["train"]["lr"] for c in mine] == [t.params["train/lr"] for t in study.trials]


def test_longest_first_shortens_a_small_schedule():
    """Four slots, grids whose long trials Tune lists among short ones: started first, no slot idles at the end."""
    plan = build_plan([load_space("individuals_patients").with_patients(["100", "208"])])
    lengths = {4: 8.0, 16: 2.0, 32: 1.0}

    def makespan(searcher, slots=4):
        import heapq

        clock, running, n = 0.0, [], 0
        while True:
            while len(running) < slots and isinstance(config := searcher.suggest(f"t{n}"), dict):
                heapq.heappush(running, (clock + lengths[config["train"]["batch_size"]], f"t{n}"))
                n += 1
            if not running:
                return clock
            clock, trial_id = heapq.heappop(running)
            searcher.on_trial_complete(trial_id, {"time_total_s": lengths[4]})

    ordered = makespan(make_searcher(plan))
    work = 2 * 6 * sum(lengths.values())
    assert ordered == work / 4  # no slot idles: the batch-4 trials fill the first waves


def test_every_trial_gets_its_own_seed_from_the_search_seed_whatever_order_it_starts_in(tmp_path):
    from ecgtune.tuning.searcher import trial_seed

    plan = build_plan([load_space("quickstart"), load_space("individuals_patients").with_patients(["100", "208"])])
    searcher = make_searcher(plan)
    first, _ = drain(searcher)
    searcher.save(str(tmp_path / "searcher.pkl"))
    restarted = make_searcher(plan)
    restarted.restore(str(tmp_path / "searcher.pkl"))
    restarted.on_trial_complete(next(t for t, c in first.items() if c["unit"] == plan[0].key), {"best_metric": 0.5})
    later, _ = drain(restarted, prefix="r")  # the Optuna unit's next trial, after a restart
    seeds = [c["trial_seed"] for c in [*first.values(), *later.values()]]
    assert len(seeds) == 2 + 18 * 2 + 1 and len(set(seeds)) == len(seeds)  # distinct across units and trials
    assert all(c["train"]["seed"] == 0 for c in first.values())  # the search's seed stays in the config
    # A grid point has its seed whatever order the measured durations hand the grid out in.
    other = make_searcher(plan)
    a, b = other.suggest("a"), other.suggest("b")
    other.on_trial_complete("a", {"best_metric": 0.5, "time_total_s": 100.0})
    other.on_trial_complete("b", {"best_metric": 0.5, "time_total_s": 1.0})
    reordered, _ = drain(other, prefix="o")
    grid = {(c["unit"], key_of(c)): c["trial_seed"] for c in first.values() if "individuals" in c["unit"]}
    grid_again = {(c["unit"], key_of(c)): c["trial_seed"] for c in [a, b, *reordered.values()] if "individuals" in c["unit"]}
    assert list(grid_again) != list(grid) and grid_again == grid  # another order, the same seeds
    # Another search seed (the space's train.seed): other trial seeds.
    spaces = {u.key: param_space(u, "data-key", {"cpu": 1, "gpu": 0}) for u in plan}
    for space in spaces.values():
        space["train"]["seed"] = 1
    reseeded, _ = drain(UnitSearcher(plan, spaces, lambda unit: {"init_weights": None}, lambda: False))
    assert not {c["trial_seed"] for c in reseeded.values()} & set(seeds)
    optuna = [c["trial_seed"] for c in reseeded.values() if c["unit"] == plan[0].key]  # drawn in turn: 0, 1, ...
    assert optuna == [trial_seed(1, plan[0].key, i) for i in range(len(optuna))]
