"""One Tune searcher and one trial scheduler for a whole schedule of units.

Every unit keeps its own search (its grid or random samples, or its own Optuna study) and its own ASHA
brackets; units never share them. The searcher hands Tune a configuration of a unit that is ready (what
it starts from exists) and has trials left, so the cluster's slots fill with trials of many units at once
instead of one unit after another. Of the ready units it picks, longest first (`ecgtune.tuning.durations`):
a unit others wait for, then the unit whose next trial is expected to take longest (plan order among
equals). A grid or random unit lists its own configurations longest first; an Optuna unit's next
configuration is whatever its study asks next, so its study sees its trials in the order it chose them.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
from typing import Callable

from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from ecgtune.spaces import Domain
from ecgtune.tuning.durations import Durations, expected_prior, prior
from ecgtune.tuning.plan import Unit


def deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def trial_seed(search_seed: int, unit_key: str, draw: int) -> int:
    """A trial's own seed (weights, batch order, augmentation), derived from the search's ``seed`` (the space's
    ``train.seed``), its unit and which of the unit's configurations it is (``draw``): distinct across the
    trials of a search, and the same whenever that configuration is drawn again (a rerun of the search)."""
    text = f"{search_seed}/{unit_key}/{draw}".encode()
    return int(hashlib.sha256(text).hexdigest()[:8], 16)  # 32 bits: what numpy's and torch's seeds take


def searched_values(unit: Unit, config: dict) -> tuple:
    """What a configuration chose where its unit searches (training values and model hyperparameters):
    trials alike in these ran alike in the measured studies (the same grid point on other patients)."""
    train = tuple(sorted((k, repr(config["train"].get(k))) for k in unit.stage.domains()))
    hparams = config["model"]["hparams"]
    model = tuple(sorted((k, repr(hparams.get(k))) for k, v in unit.model.hparams.items() if isinstance(v, Domain)))
    return (unit.space.experiment_name, unit.model.name, train, model)


class UnitTrials:
    """The configurations of one unit, asked for one at a time."""

    def __init__(self, unit: Unit, param_space: dict, examples: int | None = None):
        self.unit, self.param_space, self.examples = unit, param_space, examples
        self.suggested = 0
        self.in_flight = 0
        # Measured durations are pooled from the most specific of these that has some (durations.Durations).
        space, model = unit.space.experiment_name, unit.model.name
        self.groups = (unit.key, (space, unit.stage.stage, model), (space, model))

    @property
    def exhausted(self) -> bool:
        return self.suggested >= self.unit.planned_trials

    @property
    def max_concurrent(self) -> int:
        return self.unit.stage.search.concurrency or self.unit.planned_trials

    def can_suggest(self) -> bool:
        return not self.exhausted and self.in_flight < self.max_concurrent

    def expected_next(self, durations: Durations) -> float:
        """Seconds the trial this unit hands out next is expected to take: here, not known before it is
        asked for, the mean prior of the unit's values."""
        return durations.expected(self.groups, None, expected_prior(self.unit.stage.params, self.examples))

    def prior_of(self, config: dict) -> float:
        return prior(config["train"], self.examples)

    def next_config(self, trial_id: str) -> dict:
        raise NotImplementedError

    def draw(self) -> int:
        """Which of the unit's configurations ``next_config`` handed out last (its trial seed follows it)."""
        return self.suggested

    def suggest(self, trial_id: str, extra: dict) -> dict:
        # unit_trial numbers the unit's trials: selection breaks ties by it, the same way on every resume.
        # trial_seed travels in the trial's config, which Tune keeps: a resumed trial keeps its seed.
        config = self.next_config(trial_id)
        seed = trial_seed(int(config.get("train", {}).get("seed", 0)), self.unit.key, self.draw())
        config = deep_merge(config, {**extra, "unit_trial": self.suggested + 1, "trial_seed": seed})
        self.suggested += 1
        self.in_flight += 1
        return config

    def on_result(self, trial_id: str, result: dict) -> None:
        pass

    def on_complete(self, trial_id: str, result: dict | None, error: bool) -> None:
        self.in_flight -= 1


class VariantTrials(UnitTrials):
    """A grid (every combination ``num_samples`` times) or random samples, expanded once by Tune's own
    variant generator with the unit's seed: the same list on every resume. They are handed out longest
    first: the one expected to take longest (``expected_next``) of those not handed out yet, the prior's
    order (stable on Tune's) among equals. The unit's configurations are the same in any order."""

    def __init__(self, unit: Unit, param_space: dict, examples: int | None = None):
        super().__init__(unit, param_space, examples)
        import numpy as np
        from ray.tune.search.variant_generator import generate_variants

        rng = np.random.RandomState(unit.seed % 2**32)
        self.variants = [
            spec
            for _ in range(unit.stage.search.num_samples)
            for _, spec in generate_variants(copy.deepcopy(param_space), random_state=rng)
        ]
        self.priors = [self.prior_of(spec) for spec in self.variants]
        self.alike = [searched_values(unit, spec) for spec in self.variants]
        self.handed: list[int] = []  # indices into variants, in the order handed out
        self.left = sorted(range(len(self.variants)), key=lambda i: -self.priors[i])
        self._next: int | None = None  # what expected_next chose

    def expected_next(self, durations: Durations) -> float:
        best, self._next = -1.0, None
        for i in self.left:
            seconds = durations.expected(self.groups, self.alike[i], self.priors[i])
            if seconds > best:
                best, self._next = seconds, i
        return best

    def next_config(self, trial_id: str) -> dict:
        index = self._next if self._next in self.left else self.left[0]
        self.left.remove(index)
        self.handed.append(index)
        self._next = None
        return self.variants[index]

    def draw(self) -> int:
        # The configuration's place in the unit's fixed list, not the order handed out (which follows
        # measured durations): a grid point has the same seed in every run of the search.
        return self.handed[-1]

    def restore(self, handed: list[int] | None, suggested: int) -> None:
        # None: saved by an ecgtune that handed a grid out in Tune's order, so ``suggested`` counts in it.
        self.handed = list(range(suggested)) if handed is None else list(handed)
        gone = set(self.handed)
        self.left = [i for i in self.left if i not in gone]


class OptunaTrials(UnitTrials):
    """The unit's own Optuna study (TPE): random for its first ``n_startup_trials``, then modelled on the
    finished ones. It is told each trial's best validation value (``best_metric``), not its last."""

    def __init__(self, unit: Unit, param_space: dict, examples: int | None = None):
        super().__init__(unit, param_space, examples)
        import optuna
        from optuna.samplers import TPESampler
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per study created, dozens per search
        search = unit.stage.search
        self.optuna = OptunaSearch(
            space=OptunaSearch.convert_search_space(param_space), metric="best_metric", mode=unit.space.mode,
            sampler=TPESampler(seed=unit.seed % 2**32, n_startup_trials=search.startup_trials),
        )

    def next_config(self, trial_id: str) -> dict:
        return deep_merge(self.param_space, self.optuna.suggest(trial_id))

    def on_result(self, trial_id: str, result: dict) -> None:
        self.optuna.on_trial_result(trial_id, result)

    def on_complete(self, trial_id: str, result: dict | None, error: bool) -> None:
        super().on_complete(trial_id, result, error)
        self.optuna.on_trial_complete(trial_id, result=result, error=error)


def unit_trials(unit: Unit, param_space: dict, examples: int | None = None) -> UnitTrials:
    return (OptunaTrials if unit.stage.search.algorithm == "optuna" else VariantTrials)(unit, param_space, examples)


class UnitSearcher(Searcher):
    """Tune's searcher for a schedule.

    Args:
        plan: the units, in the order their trials are asked for.
        param_spaces: each unit's param space (Tune domains and fixed values), by unit key.
        starting_point: ``starting_point(unit)`` is the config a unit's trials add (where its weights come
            from), or None while what it starts from does not exist yet.
        aborted: true once the search must stop asking for trials (a unit's selection failed).
        done: units already selected and promoted.
        train_examples: each unit's number of training examples, by unit key (the prior's size; units
            left out count as equal).
    """

    def __init__(self, plan: list[Unit], param_spaces: dict[str, dict], starting_point: Callable[[Unit], dict | None],
                 aborted: Callable[[], bool], done: set[str] = frozenset(), train_examples: dict[str, int] | None = None):
        super().__init__(metric=None, mode=None)
        sizes = train_examples or {}
        # A unit already selected and promoted (--resume) is never asked for trials again.
        self.units = {u.key: unit_trials(u, param_spaces[u.key], sizes.get(u.key)) for u in plan if u.key not in done}
        # Units others wait for start first: they lie on the longest chain (plan.build_plan).
        self.waited_for = {key for u in plan for key in u.depends_on}
        self.starting_point, self.aborted = starting_point, aborted
        self.unit_of: dict[str, str] = {}  # trial id -> unit key, while the trial is in flight
        self.started: dict[str, tuple] = {}  # trial id -> (its prior, its searched values), while in flight
        self.durations = Durations()

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # every unit has its own metric, mode and space

    def suggest(self, trial_id: str):
        if self.aborted() or all(u.exhausted for u in self.units.values()):
            return Searcher.FINISHED
        best = None  # ((waited for first, longest first, plan order), key, starting point)
        for rank, (key, trials) in enumerate(self.units.items()):
            if not trials.can_suggest():
                continue
            extra = self.starting_point(trials.unit)
            if extra is None:
                continue  # waits for the champion it starts from
            order = (key not in self.waited_for, -trials.expected_next(self.durations), rank)
            if best is None or order < best[0]:
                best = (order, key, extra)
        if best is None:
            return None  # every unit with trials left is waiting or at its concurrency limit
        _, key, extra = best
        trials = self.units[key]
        config = trials.suggest(trial_id, extra)  # a grid's: the one its expected_next just chose
        self.unit_of[trial_id] = key
        self.started[trial_id] = (trials.prior_of(config), searched_values(trials.unit, config))
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.unit_of.get(trial_id) in self.units:
            self.units[self.unit_of[trial_id]].on_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        key = self.unit_of.pop(trial_id, None)
        started = self.started.pop(trial_id, None)
        if key in self.units:
            self.units[key].on_complete(trial_id, result, error)
            # Tune's result carries the trial's own training time (time_total_s), start-up excluded.
            seconds = (result or {}).get("time_total_s")
            if isinstance(seconds, (int, float)) and started is not None:
                prior_value, alike = started
                self.durations.observe(self.units[key].groups, alike, float(seconds), prior_value)

    def planned(self, key: str) -> int:
        return self.units[key].unit.planned_trials

    # Tune saves the searcher beside its trials and restores both on --resume, so a resumed search
    # neither repeats nor skips a configuration. Only the progress is saved: the plan is rebuilt.
    def get_state(self) -> dict:
        return {
            "unit_of": self.unit_of,
            "started": self.started,
            "durations": self.durations.sums,
            "units": {
                key: {"suggested": t.suggested, "in_flight": t.in_flight,
                      "handed": t.handed if isinstance(t, VariantTrials) else None,
                      "optuna": t.optuna if isinstance(t, OptunaTrials) else None}
                for key, t in self.units.items()
            },
        }

    def set_state(self, state: dict) -> None:
        self.unit_of = state["unit_of"]
        self.started = state.get("started", {})
        self.durations.sums = state.get("durations", {})
        for key, saved in state["units"].items():
            trials = self.units.get(key)
            if trials is None:
                continue  # resume refuses another plan before Tune starts; this is belt and braces
            trials.suggested, trials.in_flight = saved["suggested"], saved["in_flight"]
            if isinstance(trials, VariantTrials):
                trials.restore(saved.get("handed"), saved["suggested"])
            if saved["optuna"] is not None:
                trials.optuna = saved["optuna"]

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))


class UnitSchedulers(FIFOScheduler):
    """ASHA brackets of its own for every unit that asks for ASHA; first come, first served otherwise.

    Args:
        make: ``make(unit_key)`` builds the unit's scheduler (None for FIFO); called once per unit.
    """

    def __init__(self, make: Callable[[str], TrialScheduler | None]):
        super().__init__()
        self.make = make
        self.schedulers: dict[str, TrialScheduler | None] = {}
        self.added: set[str] = set()  # trials their unit's scheduler knows (a restart forgets the old ones)

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True

    def _of(self, trial) -> TrialScheduler | None:
        key = trial.config["unit"]
        if key not in self.schedulers:
            self.schedulers[key] = self.make(key)
        return self.schedulers[key]

    def on_trial_add(self, tune_controller, trial):
        if (s := self._of(trial)) is not None:
            s.on_trial_add(tune_controller, trial)
            self.added.add(trial.trial_id)

    def on_trial_result(self, tune_controller, trial, result) -> str:
        if trial.trial_id not in self.added:
            return TrialScheduler.CONTINUE
        return self._of(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result):
        if trial.trial_id in self.added:
            self.added.discard(trial.trial_id)
            self._of(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        if trial.trial_id in self.added:
            self.added.discard(trial.trial_id)
            self._of(trial).on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        if trial.trial_id in self.added:
            self._of(trial).on_trial_error(tune_controller, trial)

    def debug_string(self) -> str:
        return f"ASHA or FIFO per unit ({len(self.schedulers)} units started)"
