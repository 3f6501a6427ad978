"""Which searched parameters live on a log scale, for the report's axes and the importance study.

The search space says so (``{type: float, low, high, log: true}``): the copy of the space file the search
logged on its parent run (``space/<name>.yaml``) is read first, as the search saw it; a store without it
(an older search, a copied database) falls back to the space file of that name in search_spaces/. A grid
has no scale in the file: a grid of positive numbers that spans two decades or more (``lr: {grid: [1e-3,
1e-2, 1e-1]}``) is drawn on a log axis too, and said to be inferred.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ecgtune.errors import EcgtuneError
from ecgtune.reporting.trials_table import value_kind
from ecgtune.spaces import Domain, SearchSpace, load_space

LOG_SPAN = 100.0  # a grid whose largest value is this many times its smallest is drawn on a log axis


@dataclass
class LogScales:
    """Per trial-table column (``train.lr``) on a log scale, why; and where the space was read from."""

    columns: dict[str, str] = field(default_factory=dict)
    source: str = "no space file found: log axes inferred from the values"

    def __contains__(self, column: str) -> bool:
        return column in self.columns


def _log_columns(space: SearchSpace, where: str) -> dict[str, str]:
    domains: dict[str, Domain] = {}
    for stage in space.stages:
        domains.update({f"train.{k}": v for k, v in stage.domains().items()})
    domains.update({f"train.{k}": v for k, v in space.smoke.params.items() if isinstance(v, Domain)})
    for model in space.models:
        domains.update({f"model.hparams.{k}": v for k, v in model.hparams.items() if isinstance(v, Domain)})
    columns = {c: f"log: true in {where}" for c, d in domains.items() if d.log}
    for column, domain in domains.items():
        if domain.kind == "grid" and spans_decades(domain.values):
            columns[column] = f"a grid spanning {LOG_SPAN:g}x or more in {where} (inferred)"
    return columns


def spans_decades(values) -> bool:
    """Positive numbers whose largest is at least LOG_SPAN times their smallest."""
    found = [float(v) for v in values if value_kind(v) in (int, float)]
    return len(found) == len(values) > 1 and min(found) > 0 and max(found) / min(found) >= LOG_SPAN


def _logged_space(client, parent_run_id: str, folder: str) -> Path | None:
    try:
        found = [a.path for a in client.list_artifacts(parent_run_id, "space") if a.path.endswith((".yaml", ".yml"))]
        return Path(client.download_artifacts(parent_run_id, found[0], folder)) if found else None
    except Exception:  # an artifact store this machine cannot reach: the space file of that name instead
        return None


def log_scales(client, parent_run_ids: list[str], space_name: str | None) -> LogScales:
    """The log-scaled columns of an experiment's searches, from the space its latest parent run logged,
    else from search_spaces/<space_name>.yaml."""
    with tempfile.TemporaryDirectory() as folder:
        for run_id in parent_run_ids:
            path = _logged_space(client, run_id, folder)
            if path is None:
                continue
            try:
                space = load_space(str(path))
            except EcgtuneError:  # logged by an older ecgtune whose files this one no longer reads
                continue
            where = f"the space the search logged (space/{path.name})"
            return LogScales(_log_columns(space, where), where)
    if space_name:
        try:
            space = load_space(space_name.removesuffix("-smoke"))
        except EcgtuneError:
            return LogScales()
        where = f"search_spaces/{space.path.name} (the search logged no space file)"
        return LogScales(_log_columns(space, where), where)
    return LogScales()


def with_inferred(scales: LogScales, trials, columns: list[str]) -> LogScales:
    """``scales`` plus, where no space file was read, the columns whose values span two decades."""
    if scales.columns or "no space file" not in scales.source:
        return scales
    inferred = {c: f"values spanning {LOG_SPAN:g}x or more (inferred)" for c in columns
                if spans_decades(list(trials[c].dropna().unique()))}
    return LogScales(inferred, scales.source)
