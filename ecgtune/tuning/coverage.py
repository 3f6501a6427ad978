"""Units that cannot be selected fairly, found before any trial starts.

A per-patient split can leave a patient's validation or test windows all of one class (MIT-BIH 102 has no
normal validation window under the chronological split). Balanced accuracy or macro F1 on one class then
rewards a model that always answers that class: selection, early stopping and ASHA would all follow it,
silently. Such a unit is skipped, and so is every unit that would start from its champion.
"""

from __future__ import annotations

import numpy as np

from ecgtune.training.batches import select


def coverage_gap(examples, split_labels: np.ndarray, patient: str | None, with_test: bool) -> str | None:
    """Why a unit on these examples cannot be selected fairly (its validation or test part holds fewer than
    two classes), or None. Multi-label examples are not checked: each label is its own binary task."""
    if examples.multi_label:
        return None
    for part in ("val", "test") if with_test else ("val",):
        rows = select(examples, split_labels, part, patient)
        present = np.unique(examples.y[rows])
        if len(present) < 2:
            held = f"only class {examples.label_names[int(present[0])]}" if len(present) else "no example"
            what = "validation" if part == "val" else "test"
            return f"its {what} part holds {held} ({len(rows)} examples): a selection measure on one class is not fair"
    return None


def skipped_units(plan: list, data: dict) -> dict[str, str]:
    """unit key -> why it is skipped: its own coverage gap, or a skipped unit it starts from.

    Args:
        plan: The schedule's units.
        data: experiment name -> PreparedData (examples, split labels).
    """
    skipped = {}
    for unit in plan:
        prepared = data[unit.space.experiment_name]
        gap = coverage_gap(prepared.examples, prepared.split_labels, unit.patient, prepared.has_test)
        if gap:
            skipped[unit.key] = gap
    by_name = {u.registered_name: u.key for u in plan}
    changed = True
    while changed:  # a unit starting from a skipped one is skipped too, and so on down the chain
        changed = False
        for unit in plan:
            blocked = [by_name[s.name] for s in unit.sources if by_name.get(s.name) in skipped]
            if unit.key not in skipped and blocked:
                skipped[unit.key] = f"it starts from {blocked[0]}, which is skipped"
                changed = True
    return skipped
