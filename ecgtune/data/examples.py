"""`Examples`: the arrays a prepared dataset hands to training, one row per example."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ecgtune.transforms import FIXED  # noqa: F401  (datasets name the layout of inputs made once by it)

# The per-example fields besides the inputs, in the order they are stored in the prepared-array cache.
ARRAY_FIELDS = ("y", "records", "patients", "positions", "folds")
INPUT_PREFIX = "input."  # cache keys of the inputs: "input.signal", "input.spectrogram", ...
SIGNAL = "signal"  # the name of the one input of a plain signal dataset: (N, leads, samples)


@dataclass(frozen=True)
class Examples:
    """Prepared examples of one dataset, aligned row by row.

    Attributes:
        inputs: The model inputs, by name, in the order a model takes them: each an array of shape
            (N, ...). Float inputs are float32; uint8 inputs stand for [0, 1] in steps of 1/255 (images
            cached compactly) and reach a model as float32. A plain signal dataset has one input,
            ``signal`` (N, leads, samples); ECG-DualNet's has ``windows`` (N, 80, 256) and
            ``spectrogram`` (N, 1, 563, 33).
        y: Class index of each example (N,) int64, indexing `label_names`; or, for multi-label
            tasks, (N, K) float32 of 0/1 per label.
        records: Record name of each example, shape (N,), str (e.g. "100").
        patients: Patient id of each example, shape (N,), str. Equal to the record name
            except where a dataset has several records of one patient (MIT-BIH 201/202).
        positions: Sample index in the raw record where the example starts (windows) or
            its R-peak (beats), shape (N,), int64; chronological splits sort on it.
        label_names: Name of each class index (or label).
        folds: The dataset's own fold of each example (PTB-XL's strat_fold, 1-10), shape (N,),
            int64; -1 everywhere for datasets without folds. The "folds" split protocol reads it.
        layout: How the inputs relate to the raw signal (`ecgtune.transforms.layouts`): "signal"
            for one signal input; augmentations use it to change the signal under every input alike.
        scores: Task scores computed beside the generic metrics (`ecgtune.training.metrics.SCORES`),
            e.g. the PhysioNet/CinC 2017 challenge score.
        notes: What preparation read and left out, JSON-able (a `wfdb` dataset's lead per record, the
            records and annotations it dropped and why): printed by a search and logged with the dataset.
    """

    inputs: dict[str, np.ndarray]
    y: np.ndarray
    records: np.ndarray
    patients: np.ndarray
    positions: np.ndarray
    label_names: tuple[str, ...]
    folds: np.ndarray | None = None
    layout: str = SIGNAL
    scores: tuple[str, ...] = field(default_factory=tuple)
    notes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Coerce once here so every consumer can rely on the dtypes of the contract.
        if not isinstance(self.inputs, dict) or not self.inputs:
            raise ValueError(f"inputs must be a non-empty mapping of name -> array, got {type(self.inputs).__name__}")
        inputs = {str(k): v if np.asarray(v).dtype == np.uint8 else np.asarray(v, dtype=np.float32)
                  for k, v in self.inputs.items()}
        object.__setattr__(self, "inputs", {k: np.asarray(v) for k, v in inputs.items()})
        y = np.asarray(self.y)
        object.__setattr__(self, "y", y.astype(np.float32) if y.ndim == 2 else y.astype(np.int64))
        object.__setattr__(self, "records", np.asarray(self.records, dtype=str))
        object.__setattr__(self, "patients", np.asarray(self.patients, dtype=str))
        object.__setattr__(self, "positions", np.asarray(self.positions, dtype=np.int64))
        folds = np.full(len(self.y), -1) if self.folds is None else self.folds
        object.__setattr__(self, "folds", np.asarray(folds, dtype=np.int64))
        object.__setattr__(self, "label_names", tuple(str(n) for n in self.label_names))
        object.__setattr__(self, "scores", tuple(str(s) for s in self.scores))
        n = len(self.y)
        for name, array in self.inputs.items():
            if array.ndim < 2 or len(array) != n:
                raise ValueError(f"input {name!r} must have shape ({n}, ...) to match y, got {array.shape}")
        if self.y.ndim == 2 and self.y.shape[1] != len(self.label_names):
            raise ValueError(f"multi-label y must have one column per label ({len(self.label_names)}), got {self.y.shape}")
        for name in ARRAY_FIELDS[1:]:
            shape = getattr(self, name).shape
            if shape != (n,):
                raise ValueError(f"{name} must have shape ({n},) to match y, got {shape}")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def x(self) -> np.ndarray:
        """The input of single-input examples (a plain signal dataset's ``signal``)."""
        if len(self.inputs) != 1:
            raise ValueError(f"these examples have several inputs ({', '.join(self.inputs)}): use .inputs")
        return next(iter(self.inputs.values()))

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of one example of each input, by name: what a model is built for."""
        return {name: tuple(int(d) for d in array.shape[1:]) for name, array in self.inputs.items()}

    def with_inputs(self, names: Sequence[str]) -> Examples:
        """The same examples holding only the inputs ``names``, in that order: what a model that takes them
        is given. Examples may carry more inputs than one model takes (a fusion study's signal and image
        serve its signal and image branches too).

        Raises:
            EcgtuneError: an input these examples do not have, naming the ones they have.
        """
        from ecgtune.errors import EcgtuneError

        missing = [n for n in names if n not in self.inputs]
        if missing or not names:
            raise EcgtuneError(f"the model takes the inputs {list(names)}; these examples have {list(self.inputs)}")
        if list(names) == list(self.inputs):
            return self
        return self._with(inputs={n: self.inputs[n] for n in names})

    @property
    def multi_label(self) -> bool:
        return self.y.ndim == 2

    @property
    def groups(self) -> np.ndarray:
        """Patient id per example (the DESIGN's name for grouping in patient-wise splits)."""
        return self.patients

    def _with(self, **fields) -> Examples:
        return Examples(**{"inputs": self.inputs, **{f: getattr(self, f) for f in ARRAY_FIELDS},
                           "label_names": self.label_names, "layout": self.layout, "scores": self.scores,
                           "notes": self.notes, **fields})

    def subset(self, mask_or_indices: np.ndarray | Sequence[int] | Sequence[bool]) -> Examples:
        """The examples selected by a boolean mask of length N or by integer indices."""
        sel = np.asarray(mask_or_indices)
        if sel.dtype == bool and sel.shape != (len(self),):
            raise ValueError(f"a boolean mask must have shape ({len(self)},), got {sel.shape}")
        if sel.dtype != bool:
            # An empty list arrives as float64; it still means "no rows".
            sel = sel.astype(np.int64) if sel.size == 0 else sel
            if not np.issubdtype(sel.dtype, np.integer):
                raise ValueError(f"indices must be integers or a boolean mask, got dtype {sel.dtype}")
        return self._with(inputs={k: v[sel] for k, v in self.inputs.items()},
                          **{f: getattr(self, f)[sel] for f in ARRAY_FIELDS})

    @classmethod
    def concatenate(cls, parts: Sequence[Examples], *, label_names: Sequence[str], empty_inputs: dict[str, tuple],
                    layout: str = SIGNAL, scores: Sequence[str] = (), notes: dict | None = None) -> Examples:
        """Join examples row-wise (e.g. one part per record).

        Args:
            parts: Examples sharing `label_names` and inputs; may be empty.
            label_names: The class names (needed when `parts` is empty).
            empty_inputs: The per-example shape of each input (the shape of empty inputs).
        """
        if not parts:
            return cls(
                inputs={name: np.zeros((0, *shape), np.float32) for name, shape in empty_inputs.items()},
                y=np.zeros(0, np.int64), records=np.zeros(0, dtype=str), patients=np.zeros(0, dtype=str),
                positions=np.zeros(0, np.int64), folds=np.zeros(0, np.int64), label_names=tuple(label_names),
                layout=layout, scores=tuple(scores), notes=dict(notes or {}),
            )
        return cls(
            inputs={name: np.concatenate([p.inputs[name] for p in parts]) for name in parts[0].inputs},
            **{f: np.concatenate([getattr(p, f) for p in parts]) for f in ARRAY_FIELDS},
            label_names=tuple(label_names), layout=layout, scores=tuple(scores), notes=dict(notes or {}),
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (no pickled objects) for an .npz file."""
        arrays = {f"{INPUT_PREFIX}{name}": array for name, array in self.inputs.items()}
        arrays.update({f: getattr(self, f) for f in ARRAY_FIELDS})
        arrays["label_names"] = np.asarray(self.label_names, dtype=str)
        arrays["layout"] = np.asarray(self.layout, dtype=str)
        arrays["scores"] = np.asarray(self.scores, dtype=str)
        if self.notes:
            arrays["notes"] = np.asarray(json.dumps(self.notes, sort_keys=True), dtype=str)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Examples:
        """Inverse of `to_arrays`."""
        # The inputs in the order they were stored (np.savez keeps it).
        inputs = {k[len(INPUT_PREFIX):]: v for k, v in arrays.items() if k.startswith(INPUT_PREFIX)}
        if not inputs and "x" in arrays:  # caches written before inputs were named held one array x
            inputs = {SIGNAL: arrays["x"]}
        return cls(
            inputs=inputs,
            # Caches written before `folds` existed lack it: those datasets have no folds.
            **{f: arrays[f] for f in ARRAY_FIELDS if f in arrays},
            label_names=tuple(arrays["label_names"].tolist()),
            layout=str(arrays["layout"]) if "layout" in arrays else SIGNAL,
            scores=tuple(arrays["scores"].tolist()) if "scores" in arrays else (),
            notes=json.loads(str(arrays["notes"])) if "notes" in arrays else {},
        )
