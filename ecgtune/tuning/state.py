"""The resumable record of one `ecgtune search` invocation.

It names the invocation, its Ray storage folder, each space's MLflow parent run, the units already
selected, tested and promoted, and the starting weights written for fine-tuning, so that `--resume`
neither repeats a unit nor logs its test metrics twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ecgtune.errors import EcgtuneError
from ecgtune.paths import ecgtune_home, join_storage, storage_root


def state_path(name: str, splits: str | None = None) -> Path:
    """The state file of a schedule, keyed by its split protocol(s) too: an interrupted per_patient search
    and an interrupted chronological one of the same space are two searches, each resumable."""
    return ecgtune_home() / "searches" / (f"{name}@{splits}.json" if splits else f"{name}.json")


def splits_of(spaces: dict[str, dict]) -> str | None:
    """The split protocols of a state's spaces, joined ("per_patient", "folds+inter_patient")."""
    splits = sorted({s["split"] for s in spaces.values() if s.get("split")})
    return "+".join(splits) or None


# What a resumed search must share with the interrupted one, in the order a mismatch is reported: causes
# first (the patients a user gave differently), the data key (which follows from them) last.
RESUME_FIELDS = ("space_file", "space_digest", "split", "patients", "models", "budget", "data_key")


def what_ran(space, data_key: str) -> dict:
    """The identity of one space's part of a search: the space file (path and contents), the split, the
    prepared data, the models, the patients and the budget (epochs and samples per stage). --resume goes on
    only with the same, so a search never holds trials of two splits or two grids."""
    from ecgtune.spaces import max_epochs

    return {
        "space_file": str(space.path), "space_digest": hashlib.sha256(Path(space.path).read_bytes()).hexdigest(),
        "split": space.split, "data_key": data_key, "models": [m.name for m in space.models],
        "patients": list(space.patients),
        "budget": {st.stage: {"epochs": max_epochs(st.params), "num_samples": st.search.num_samples} for st in space.stages},
    }


def resume_mismatch(saved: dict[str, dict], now: dict[str, dict]) -> str | None:
    """What differs between the interrupted search (``saved``) and this one (``now``), both experiment ->
    what_ran(); None when they are the same search. Fields an older state file lacks are not compared."""
    if set(saved) != set(now):
        return f"it ran the spaces {sorted(saved)}, this one {sorted(now)}"
    for experiment in sorted(now):
        for key in RESUME_FIELDS:
            if key in saved[experiment] and saved[experiment][key] != now[experiment][key]:
                what = "the space file's contents changed" if key == "space_digest" else (
                    f"{key} {saved[experiment][key]!r}, this one {now[experiment][key]!r}")
                return f"{experiment}: {what}"
    return None


def new_invocation() -> str:
    """A timestamp people can read, and a random part: two searches started in one second differ."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


@dataclass
class SearchState:
    name: str  # the schedule: a space's experiment name, a suite's, or several joined by "+"
    invocation: str
    storage_path: str
    spaces: dict[str, dict]  # experiment -> what_ran(space) fields and its "parent_run_id"
    finished: dict[str, dict] = field(default_factory=dict)  # unit key -> its summary
    weights: dict[str, str] = field(default_factory=dict)  # registered name -> starting weights written
    # registered name -> the version those weights are (models:/<name>/<version>): what a fine-tuned run
    # records as its starting point, where its trials read a file
    versions: dict[str, str] = field(default_factory=dict)
    status: str = "running"

    @classmethod
    def new(cls, name: str, spaces: dict[str, dict], storage: str | None = None) -> "SearchState":
        """A new invocation; its Ray results go under ``storage`` (see `ecgtune.paths.storage_root`)."""
        invocation = new_invocation()
        return cls(name, invocation, join_storage(storage_root(storage), name, invocation), spaces)

    @classmethod
    def resume(cls, name: str, splits: str | None = None) -> "SearchState":
        """The interrupted search ``name`` under the split protocol(s) ``splits``; a state file written before
        states were keyed by split is found too (it is checked against this search all the same)."""
        path = state_path(name, splits)
        if not path.exists() and state_path(name).exists():
            path = state_path(name)
        if not path.exists():
            raise EcgtuneError(f"nothing to resume: no earlier search of {name!r}"
                               f"{f' under split {splits}' if splits else ''} ({path} does not exist)")
        try:
            state = cls(**json.loads(path.read_text()))
        except (TypeError, ValueError) as exc:
            raise EcgtuneError(f"{path}: not a search state this version of ecgtune can resume ({exc})") from None
        if state.status == "finished":
            raise EcgtuneError(
                f"nothing to resume: the last search of {name!r} ({state.invocation}) finished; "
                "run it again without --resume for a new search"
            )
        return state

    def save(self) -> None:
        path = state_path(self.name, splits_of(self.spaces))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)  # never a half-written state file

    def mark_unit(self, key: str, summary: dict) -> None:
        self.finished[key] = summary
        self.save()
