"""SMOTE (Chawla et al. 2002) on a training split: synthetic minority examples interpolated between
neighbouring examples of the same class.

Only ever called on the training split of a trial: a synthetic example made from a validation or test
example would carry it into training.
"""

from __future__ import annotations

import numpy as np

SMOTE_NEIGHBOURS = 5  # imbalanced-learn's default and the seed's


def smote(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Oversample every class but the largest up to the largest's count.

    Args:
        x: Training examples, shape (N, leads, samples).
        y: Their classes, shape (N,).
        seed: Seeds the neighbour choice and the interpolation.

    Returns:
        (x, y): the original examples first, in their order, then the synthetic ones.
        A class with a single example cannot be interpolated and stays as it is.
    """
    from imblearn.over_sampling import SMOTE

    classes, counts = np.unique(y, return_counts=True)
    grow = {int(c): int(counts.max()) for c, n in zip(classes, counts) if 1 < n < counts.max()}
    if not grow:
        return x, y
    # SMOTE needs more examples than neighbours in every class it grows.
    neighbours = min(SMOTE_NEIGHBOURS, min(int(n) for c, n in zip(classes, counts) if int(c) in grow) - 1)
    sampler = SMOTE(sampling_strategy=grow, k_neighbors=neighbours, random_state=seed)
    flat, y_new = sampler.fit_resample(x.reshape(len(x), -1), y)
    return flat.reshape(-1, *x.shape[1:]).astype(np.float32, copy=False), y_new.astype(np.int64)
