"""The data of a search, prepared once on the driver: examples, their split, and the key that names them.

The key follows the preprocessing, the split and the bytes preparation read (`ecgtune.data.cache`), so a
search resumed, gated or fine-tuned on other data is told apart from one on the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ecgtune.errors import EcgtuneError
from ecgtune.paths import data_root
from ecgtune.spaces import SearchSpace
from ecgtune.tuning.plan import Unit


@dataclass(frozen=True)
class PreparedData:
    examples: object
    split_labels: np.ndarray
    key: str  # identifies dataset, preprocessing and split: a pre-trained model is reused only on the same key
    has_test: bool = True  # the split protocol (with its options) holds a test part
    preparation: dict | None = None  # how a raw recording becomes these inputs (ecgtune.data.recordings)
    source: str = ""  # the folder the raw records are in: an external validation must not overlap its records

def prepare_data(space: SearchSpace, data_dir: str | None) -> PreparedData:
    """Once per search, on the driver: trials get these arrays through the Ray object store."""
    import json

    from ecgtune.data import assign_split, cache, get_dataset, split_has_test

    try:
        dataset = get_dataset(space.dataset, root=data_dir, **space.dataset_args)
        with cache.recording_sources() as read:
            examples = dataset.prepare(**space.preprocessing)
        prepared_key = dataset.prepared_key(**space.preprocessing)
        options = space.resolved_split_options()
        labels = assign_split(space.split, examples, **options)
    except EcgtuneError as exc:
        raise EcgtuneError(f"{space.path}: dataset {space.dataset!r}: {exc}") from exc
    # The dataset's own key already has defaults filled and records normalised; add the split (and the options
    # the space sets: without them the key is the one it always was).
    split = f"{space.split}{json.dumps(space.split_options, sort_keys=True) if space.split_options else ''}"
    # The bytes preparation read (sizes and SHA-256 of the raw files, not their folder's name): a search
    # killed on an edited copy of the data does not resume, nor gate a champion, as if on the original.
    content = "+".join(read)
    key = hashlib.sha256(f"{prepared_key}/{split}/{content}".encode()).hexdigest()[:16]
    prepared_records = set(examples.records.tolist())
    per_patient = any(s.per_patient for s in space.stages)
    missing = [p for p in space.patients if p not in prepared_records] if per_patient else []
    if missing:
        raise EcgtuneError(
            f"{space.path}: patients {', '.join(map(str, missing))} are not among the prepared records "
            f"{', '.join(sorted(prepared_records))}"
        )
    try:
        preparation = dataset.preparation(**space.preprocessing)
    except EcgtuneError:  # beats already cut (the Kaggle files): a champion of them takes tensors only
        preparation = None
    source = str(getattr(dataset, "folder", "")) and str(dataset.folder.resolve())
    return PreparedData(examples, labels, key, split_has_test(space.split, options), preparation, source)

def data_source(data: PreparedData, data_dir: str | None) -> str:
    """Where the examples came from: a `wfdb` database's own folder, else the data folder."""
    return str(data.examples.notes.get("database") or data_root(data_dir))

def train_examples(plan: list[Unit], data: dict[str, PreparedData]) -> dict[str, int]:
    """Each unit's training examples (its patient's, or the whole dataset's): the size its trials' expected
    durations scale with, so that a pre-training on 29 records ranks above one patient's trials."""
    out = {}
    for unit in plan:
        prepared = data[unit.space.experiment_name]
        train = prepared.split_labels == "train"
        if unit.patient is not None:
            train &= prepared.examples.records == unit.patient
        out[unit.key] = int(train.sum())
    return out
