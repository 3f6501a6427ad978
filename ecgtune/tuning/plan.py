"""A search as one schedule: the units of one or several spaces, and what each unit waits for.

A unit is (space, stage, model[, patient]): one hyperparameter search with its own search algorithm and
scheduler state, one selection on validation, one test evaluation, one promotion. A fine-tuning unit
starts from the weights of registered models (one; or one per branch of a fusion model); when a unit of
the same schedule trains such a model, it waits for that unit, otherwise it starts from the registry's
champion. Every unit whose inputs are ready
is in flight at the same time (see `ecgtune.tuning.searcher`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from ecgtune.errors import EcgtuneError
from ecgtune.spaces import Domain, ModelSpec, SearchSpace, StageSpec
from ecgtune.tuning import promotion


def registered_name(space: SearchSpace, stage: str, model: str, patient: str | None) -> str:
    return promotion.registered_name(
        task=space.task, dataset=space.dataset, split=space.split, stage=stage, model=model,
        patient=patient, smoke=space.smoke_test,
    )


@dataclass(frozen=True)
class Source:
    """Weights a finetune unit starts from: the champion ``name`` (trained on ``dataset`` under ``split``),
    loaded into the whole model (``branch`` None) or into one branch of a fusion model."""

    name: str
    dataset: str
    split: str
    branch: str | None = None


def sources_of(space: SearchSpace, model: str) -> tuple[Source, ...]:
    """Where a finetune stage of ``model`` starts: the space's own pre-training, the champion of the same
    model its ``transfer`` section names, or, for a fusion model, one champion per branch."""
    t = space.transfer
    if t is None:
        return (Source(registered_name(space, "pretrain", model, None), space.dataset, space.split),)

    def champion_of(source_model: str) -> str:
        return promotion.registered_name(task=t.task, dataset=t.dataset, split=t.split, stage=t.stage,
                                         model=source_model, smoke=space.smoke_test)

    if t.branches:
        return tuple(Source(champion_of(m), t.dataset, t.split, branch) for branch, m in t.branches.items())
    return (Source(champion_of(model), t.dataset, t.split),)


@dataclass(frozen=True)
class Unit:
    space: SearchSpace
    stage: StageSpec
    model: ModelSpec
    patient: str | None
    sources: tuple[Source, ...] = ()  # finetune: the registered models whose weights it starts from
    depends_on: tuple[str, ...] = ()  # the units of this schedule that train some of ``sources``

    @property
    def name(self) -> str:
        """Unique within a space: ``<stage>-<model>[-<patient>]``."""
        return "-".join([self.stage.stage, self.model.name] + ([self.patient] if self.patient else []))

    @property
    def key(self) -> str:
        """Unique within a schedule: ``<experiment>/<name>``."""
        return f"{self.space.experiment_name}/{self.name}"

    @property
    def registered_name(self) -> str:
        return registered_name(self.space, self.stage.stage, self.model.name, self.patient)

    @property
    def seed(self) -> int:
        """A stable seed for the unit's sampling (Python's hash() is salted per process)."""
        return int(hashlib.sha256(self.key.encode()).hexdigest()[:8], 16)

    @property
    def planned_trials(self) -> int:
        """Grid: every combination ``num_samples`` times (Tune's rule), the model's grids included (a fusion
        model's hidden size); random and Optuna: ``num_samples``."""
        searched = [*self.stage.domains().values(), *(v for v in self.model.hparams.values() if isinstance(v, Domain))]
        grid = [len(d.values) for d in searched if d.kind == "grid"]
        return math.prod(grid) * self.stage.search.num_samples


def units_of(space: SearchSpace) -> list[Unit]:
    """Whole-dataset stages model by model, then patient by patient every per-patient stage."""
    whole = [(s, m, None) for s in space.stages if not s.per_patient for m in space.models]
    per_patient = [(s, m, p) for p in space.patients for m in space.models for s in space.stages if s.per_patient]
    return [Unit(space, stage, model, patient, sources=sources_of(space, model.name) if stage.stage == "finetune" else ())
            for stage, model, patient in whole + per_patient]


# A unit's configurations are laid out when the search starts (0.2 ms each: 2 s for this many); a billion
# would take days and gigabytes before the first trial, deaf to Ctrl-C meanwhile.
MAX_TRIALS_PER_UNIT = 10_000


def build_plan(spaces: list[SearchSpace]) -> list[Unit]:
    """The units of ``spaces`` in the order their trials are asked for: first the units others wait for
    (they lie on the longest chain), then the rest in each space's own order.

    Raises:
        EcgtuneError: a space given twice, or two units that would register the same model (their
            champions would be compared on different validation sets).
    """
    names = [s.experiment_name for s in spaces]
    if len(set(names)) != len(names):
        raise EcgtuneError(f"--space: each space at most once in a search, got {names}")
    units = [u for space in spaces for u in units_of(space)]
    for unit in units:
        if unit.planned_trials > MAX_TRIALS_PER_UNIT:
            raise EcgtuneError(
                f"{unit.space.path}: stage {unit.stage.stage!r} plans {unit.planned_trials:,} trials for unit "
                f"{unit.name} (its grid times search.num_samples); at most {MAX_TRIALS_PER_UNIT:,} per unit: a search "
                "lays out its configurations when it starts. Sample fewer (num_samples, --num-samples) or split the grid"
            )
    trained_by: dict[str, Unit] = {}
    for unit in units:
        other = trained_by.setdefault(unit.registered_name, unit)
        if other is not unit:
            raise EcgtuneError(
                f"spaces {other.space.name!r} and {unit.space.name!r} both train {unit.registered_name!r}: "
                "run them in separate searches"
            )
    linked = [
        Unit(u.space, u.stage, u.model, u.patient, sources=u.sources,
             depends_on=tuple(trained_by[s.name].key for s in u.sources if s.name in trained_by))
        for u in units
    ]
    waited_for = {key for u in linked for key in u.depends_on}
    return sorted(linked, key=lambda u: u.key not in waited_for)  # stable: the spaces' order otherwise


def external_sources(plan: list[Unit]) -> dict[str, tuple[Unit, Source]]:
    """Registered models the plan starts from but does not train: their champions must exist already.
    One (unit, source) per registered model, to name the space in an error."""
    trained = {u.registered_name for u in plan}
    return {s.name: (u, s) for u in plan for s in u.sources if s.name not in trained}
