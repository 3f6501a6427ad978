"""Which MLflow experiment holds the searches of a space: ``<space>``, or ``<space>-smoke`` for its
smoke-test searches. The README's first search is a smoke test: a newcomer who then asks `report` or
`by-value` for the space is given its smoke-test experiment, told so, instead of a refusal."""

from __future__ import annotations

from ecgtune.errors import EcgtuneError
from ecgtune.tuning.tracking import search_parents

SMOKE_SUFFIX = "-smoke"


def has_search(client, experiment_name: str) -> bool:
    """Whether ``experiment_name`` exists and holds a parent run an ecgtune search opened."""
    experiment = client.get_experiment_by_name(experiment_name)
    return experiment is not None and bool(search_parents(client, experiment.experiment_id, max_results=1))


def searched_experiments(client) -> list[str]:
    """The experiments holding an ecgtune search, by name."""
    return sorted(e.name for e in client.search_experiments(max_results=1000) if has_search(client, e.name))


def experiment_of(client, space: str, smoke_test: bool) -> tuple[str, str | None]:
    """The experiment holding the searches of ``space`` (its name) and a note to print where that is the
    smoke-test experiment though ``smoke_test`` was not asked for; refuses, in one line, a space with no
    search in either experiment."""
    full, smoke = space, f"{space}{SMOKE_SUFFIX}"
    if smoke_test and has_search(client, smoke):
        return smoke, None
    if not smoke_test and has_search(client, full):
        return full, None
    if not smoke_test and has_search(client, smoke):
        return smoke, (f"note: {full!r} has only smoke-test searches: reading experiment {smoke!r} "
                       "(as --smoke-test would)")
    known = ", ".join(searched_experiments(client)) or "none"
    if smoke_test:
        other = f"; its full search is in {full!r}: leave out --smoke-test" if has_search(client, full) else ""
        raise EcgtuneError(f"--space {space} --smoke-test: no search in experiment {smoke!r} of {client.tracking_uri}"
                           f"{other} (experiments with searches: {known})")
    raise EcgtuneError(f"--space {space}: no search in experiment {full!r} nor {smoke!r} of {client.tracking_uri}; "
                       f"run `ecgtune search --space {space}` first (experiments with searches: {known})")
