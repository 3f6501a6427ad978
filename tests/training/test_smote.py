"""SMOTE touches the training split only: validation and test examples never reach it."""

import numpy as np
import torch

from ecgtune.data import Examples, assign_split
from ecgtune.spaces import TRAIN_DEFAULTS
from ecgtune.training import trainable
from ecgtune.training.trainable import training_split
from ecgtune.transforms.resampling import smote


def _imbalanced(n_major=200, n_minor=20, seed=0) -> Examples:
    rng = np.random.default_rng(seed)
    y = np.array([0] * n_major + [1] * n_minor + [2] * (n_minor // 2))
    x = rng.uniform(0.0, 1.0, size=(len(y), 1, 16)) + y[:, None, None]
    return Examples(inputs={"signal": x}, y=y, records=np.full(len(y), "100"), patients=np.full(len(y), "100"),
                    positions=np.arange(len(y)) * 360, label_names=("N", "S", "V"))


def test_smote_balances_classes_and_keeps_the_originals_first():
    ex = _imbalanced()
    x, y = smote(ex.x, ex.y, seed=0)
    assert np.bincount(y).tolist() == [200, 200, 200]
    np.testing.assert_array_equal(x[: len(ex)], ex.x)
    # Synthetic examples lie between same-class neighbours: inside that class's range.
    for cls in (1, 2):
        synthetic = x[len(ex):][y[len(ex):] == cls]
        assert synthetic.min() >= ex.x[ex.y == cls].min() and synthetic.max() <= ex.x[ex.y == cls].max()


def test_smote_leaves_a_single_example_class_alone():
    x = np.arange(12, dtype=np.float32).reshape(6, 1, 2)
    y = np.array([0, 0, 0, 0, 1, 2])
    _, y_new = smote(x, y, seed=0)
    assert np.bincount(y_new).tolist() == [4, 1, 1]


def test_training_split_with_smote_never_sees_validation_or_test_examples(monkeypatch):
    ex = _imbalanced()
    labels = assign_split("per_patient", ex)
    # Mark held-out examples: far outside the training range, so any interpolation with them would show.
    held_out = labels != "train"
    x = ex.x.copy()
    x[held_out] += 1000.0
    ex = Examples(inputs={"signal": x}, y=ex.y, records=ex.records, patients=ex.patients, positions=ex.positions,
                  label_names=ex.label_names)
    seen = {}
    real_smote = trainable.smote

    def spy(x_in, y_in, seed):
        seen["n"] = len(x_in)
        return real_smote(x_in, y_in, seed)

    monkeypatch.setattr(trainable, "smote", spy)
    cfg = dict(TRAIN_DEFAULTS, smote=True)
    train = training_split(ex, labels, None, cfg, torch.device("cpu"))
    assert seen["n"] == (labels == "train").sum()  # SMOTE got the training examples, nothing else
    assert train.inputs["signal"].max().item() < 1000.0  # no synthetic example was made from a held-out one
    assert np.bincount(train.y_numpy).tolist() == [np.bincount(ex.y[labels == "train"]).max()] * 3
    without = training_split(ex, labels, None, dict(TRAIN_DEFAULTS), torch.device("cpu"))
    assert len(without) == (labels == "train").sum()
