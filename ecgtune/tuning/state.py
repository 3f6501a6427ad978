"""The resumable record of one `ecgtune search` invocation, kept beside the Ray results.

It names the invocation's MLflow parent run and Ray storage folder, and the units (a stage, or a stage
for one patient) already selected, tested and promoted, so `--resume` neither repeats them nor logs
their test metrics twice.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ecgtune.errors import EcgtuneError
from ecgtune.paths import ecgtune_home, join_storage, storage_root


def state_path(experiment: str) -> Path:
    return ecgtune_home() / "searches" / f"{experiment}.json"


@dataclass
class SearchState:
    experiment: str
    invocation: str
    storage_path: str
    space_file: str
    patients: list[str]
    parent_run_id: str | None = None
    finished: dict[str, dict] = field(default_factory=dict)
    status: str = "running"

    @classmethod
    def new(cls, experiment: str, space_file: str, patients: list[str], storage: str | None = None) -> "SearchState":
        """A new invocation; its Ray results go under ``storage`` (see `ecgtune.paths.storage_root`)."""
        invocation = time.strftime("%Y%m%d-%H%M%S")
        path = join_storage(storage_root(storage), experiment, invocation)
        return cls(experiment, invocation, path, space_file, list(patients))

    @classmethod
    def resume(cls, experiment: str) -> "SearchState":
        path = state_path(experiment)
        if not path.exists():
            raise EcgtuneError(f"nothing to resume: no earlier search of {experiment!r} ({path} does not exist)")
        state = cls(**json.loads(path.read_text()))
        if state.status == "finished":
            raise EcgtuneError(
                f"nothing to resume: the last search of {experiment!r} ({state.invocation}) finished; "
                "run it again without --resume for a new search"
            )
        return state

    def save(self) -> None:
        path = state_path(self.experiment)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)  # never a half-written state file

    def mark_unit(self, key: str, summary: dict) -> None:
        self.finished[key] = summary
        self.save()
