"""What a search refuses before Ray starts: fine-tuning that could have seen test examples, a selection
metric the examples do not report, resampling by class on multi-label examples."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ecgtune.data.examples import Examples
from ecgtune.errors import EcgtuneError
from ecgtune.spaces import load_space
from ecgtune.data.splits import leak_free
from ecgtune.tuning.fit_checks import check_fit
from ecgtune.tuning.prepared import PreparedData


def test_weights_are_reused_only_where_they_never_saw_a_test_example():
    assert leak_free("mitdb", "random_beats", "k1", "ptbxl", "folds", "k2")  # another dataset: other patients
    assert leak_free("mitdb", "per_patient", "k1", "mitdb", "per_patient", "k1")  # the same examples and split
    assert not leak_free("mitdb", "per_patient", "k1", "mitdb", "per_patient", "k2")  # other windows, same records
    # PTB-XL's folds place a record by its fold alone: beats or whole records, MI or superdiagnostic labels.
    assert leak_free("ptbxl", "folds", "k1", "ptbxl", "folds", "k2")
    assert not leak_free("mitdb", "random_beats", "k1", "mitdb", "inter_patient", "k2")


def _multilabel_records(n: int = 12) -> PreparedData:
    rng = np.random.default_rng(0)
    y = (rng.random((n, 5)) < 0.4).astype(np.float32)
    examples = Examples(inputs={"signal": rng.standard_normal((n, 12, 1024)).astype(np.float32)}, y=y,
                        records=[str(i) for i in range(n)], patients=[str(i) for i in range(n)],
                        positions=np.zeros(n, np.int64), folds=[1 + i % 10 for i in range(n)],
                        label_names=("NORM", "MI", "STTC", "CD", "HYP"))
    return PreparedData(examples, np.array(["train"] * n), "key")


def test_a_metric_the_examples_do_not_report_is_refused_naming_the_key():
    space = load_space("ribeiro_ptbxl_superdiagnostic_100hz")
    data = _multilabel_records()
    check_fit(space, data)  # val_auroc_macro: reported for multi-label examples
    with pytest.raises(EcgtuneError, match=r"key 'metric': 'val_cinc_f1' is not a validation metric.*val_auroc_macro"):
        check_fit(dataclasses.replace(space, metric="val_cinc_f1"), data)


def test_resampling_by_class_is_refused_for_examples_with_several_labels():
    space = load_space("ribeiro_ptbxl_superdiagnostic_100hz")
    stage = dataclasses.replace(space.stages[0], params={**space.stages[0].params, "weighted_sampling": True})
    with pytest.raises(EcgtuneError, match=r"stages.pretrain.params.weighted_sampling': resamples by class"):
        check_fit(dataclasses.replace(space, stages=(stage,)), _multilabel_records())


def test_more_frozen_blocks_than_the_model_has_are_refused():
    space = load_space("ribeiro_ptbxl_superdiagnostic_100hz")
    stage = dataclasses.replace(space.stages[0], params={**space.stages[0].params, "freeze_blocks": 7})
    with pytest.raises(EcgtuneError, match=r"key 'model': freeze_blocks=7: RibeiroResNet has only 5 feature blocks"):
        check_fit(dataclasses.replace(space, stages=(stage,)), _multilabel_records())


def test_the_metric_check_names_every_metric_without_a_warning():
    """The check scores made-up examples of every class: before, it scored a record's first examples, often
    of one class only, and sklearn warned "A single label was found" at the start of every search."""
    import warnings

    from ecgtune.tuning.fit_checks import metric_names

    n = 12
    y = np.zeros(n, np.int64)  # the first examples all normal, as a record's first windows often are
    y[-1] = 1
    windows = Examples(inputs={"signal": np.zeros((n, 1, 128), np.float32)}, y=y, records=["100"] * n,
                       patients=["100"] * n, positions=np.arange(n), label_names=("normal", "abnormal"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        single = metric_names(windows)
        multi = metric_names(_multilabel_records().examples)
    assert {"val_balanced_accuracy", "val_auroc", "val_recall_abnormal", "val_loss"} <= single
    assert {"val_auroc_macro", "val_auroc_MI", "val_f1_macro"} <= multi
