import numpy as np
import torch

from ecgtune.data import Examples
from ecgtune.training.batches import TensorSplit, epoch_order, select


def _examples():
    n = 12
    return Examples(
        inputs={"signal": np.arange(n * 4, dtype=np.float32).reshape(n, 1, 4)},
        y=np.array([0] * 9 + [1] * 3),
        records=np.array(["100"] * 6 + ["208"] * 6),
        patients=np.array(["100"] * 6 + ["208"] * 6),
        positions=np.arange(n),
        label_names=("normal", "abnormal"),
    )


def test_select_filters_split_and_patient():
    ex = _examples()
    labels = np.array(["train", "val", "test"] * 4)
    assert select(ex, labels, "test", None).tolist() == [2, 5, 8, 11]
    assert select(ex, labels, "test", "208").tolist() == [8, 11]


def test_weighted_order_balances_classes():
    labels = np.array([0] * 90 + [1] * 10)
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([epoch_order(labels, True, g) for _ in range(50)]).numpy()
    share = (labels[draws] == 1).mean()
    assert 0.45 < share < 0.55
    plain = epoch_order(labels, False, g).numpy()
    assert sorted(plain.tolist()) == list(range(100))


def test_batches_cover_every_example_once():
    ex = _examples()
    split = TensorSplit.of(ex, np.arange(12), torch.device("cpu"))
    ys = torch.cat([yb for _, yb in split.batches(5)])
    assert ys.tolist() == ex.y.tolist()
