"""`Examples`: the arrays a prepared dataset hands to training, one row per example."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# The array fields, in the order they are stored in the prepared-array cache.
ARRAY_FIELDS = ("x", "y", "records", "patients", "positions", "folds")


@dataclass(frozen=True)
class Examples:
    """Prepared examples of one dataset, aligned row by row.

    Attributes:
        x: Signals, shape (N, channels, length), float32.
        y: Class index of each example, shape (N,), int64; indexes `label_names`.
        records: Record name of each example, shape (N,), str (e.g. "100").
        patients: Patient id of each example, shape (N,), str. Equal to the record name
            except where a dataset has several records of one patient (MIT-BIH 201/202).
        positions: Sample index in the raw record where the example starts (windows) or
            its R-peak (beats), shape (N,), int64; chronological splits sort on it.
        label_names: Name of each class index.
        folds: The dataset's own fold of each example (PTB-XL's strat_fold, 1-10), shape (N,),
            int64; -1 everywhere for datasets without folds. The "folds" split protocol reads it.
    """

    x: np.ndarray
    y: np.ndarray
    records: np.ndarray
    patients: np.ndarray
    positions: np.ndarray
    label_names: tuple[str, ...]
    folds: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Coerce once here so every consumer can rely on the dtypes of the contract.
        object.__setattr__(self, "x", np.asarray(self.x, dtype=np.float32))
        object.__setattr__(self, "y", np.asarray(self.y, dtype=np.int64))
        object.__setattr__(self, "records", np.asarray(self.records, dtype=str))
        object.__setattr__(self, "patients", np.asarray(self.patients, dtype=str))
        object.__setattr__(self, "positions", np.asarray(self.positions, dtype=np.int64))
        folds = np.full(len(self.y), -1) if self.folds is None else self.folds
        object.__setattr__(self, "folds", np.asarray(folds, dtype=np.int64))
        object.__setattr__(self, "label_names", tuple(str(n) for n in self.label_names))
        if self.x.ndim != 3:
            raise ValueError(f"x must have shape (N, channels, length), got {self.x.shape}")
        n = len(self.x)
        for field in ARRAY_FIELDS[1:]:
            shape = getattr(self, field).shape
            if shape != (n,):
                raise ValueError(f"{field} must have shape ({n},) to match x, got {shape}")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def groups(self) -> np.ndarray:
        """Patient id per example (the DESIGN's name for grouping in patient-wise splits)."""
        return self.patients

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
        return Examples(
            **{field: getattr(self, field)[sel] for field in ARRAY_FIELDS},
            label_names=self.label_names,
        )

    @classmethod
    def concatenate(cls, parts: Sequence[Examples], *, label_names: Sequence[str], length: int) -> Examples:
        """Join examples row-wise (e.g. one part per record).

        Args:
            parts: Examples sharing `label_names`; may be empty.
            label_names: The class names (needed when `parts` is empty).
            length: Samples per example (the shape of an empty `x`).
        """
        if not parts:
            return cls(
                x=np.zeros((0, 1, length), np.float32),
                y=np.zeros(0, np.int64),
                records=np.zeros(0, dtype=str),
                patients=np.zeros(0, dtype=str),
                positions=np.zeros(0, np.int64),
                folds=np.zeros(0, np.int64),
                label_names=tuple(label_names),
            )
        return cls(
            **{field: np.concatenate([getattr(p, field) for p in parts]) for field in ARRAY_FIELDS},
            label_names=tuple(label_names),
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (no pickled objects) for an .npz file."""
        arrays = {field: getattr(self, field) for field in ARRAY_FIELDS}
        arrays["label_names"] = np.asarray(self.label_names, dtype=str)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Examples:
        """Inverse of `to_arrays`."""
        # Caches written before `folds` existed lack it: those datasets have no folds.
        return cls(
            **{field: arrays[field] for field in ARRAY_FIELDS if field in arrays},
            label_names=tuple(arrays["label_names"].tolist()),
        )
