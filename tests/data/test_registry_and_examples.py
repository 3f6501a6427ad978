"""The dataset registry and the Examples container."""

from __future__ import annotations

import numpy as np
import pytest

from ecgtune.data import Examples, get_dataset, list_datasets, register_dataset
from ecgtune.data import _registry
from ecgtune.data.mitdb import MitBih
from ecgtune.errors import EcgtuneError


def test_mitdb_is_registered():
    assert "mitdb" in list_datasets()
    assert get_dataset("mitdb", root="/tmp/x").name == "mitdb"


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(EcgtuneError, match=r"unknown dataset 'mitbih'.*known datasets: .*mitdb"):
        get_dataset("mitbih")


def test_duplicate_registration_raises(monkeypatch):
    monkeypatch.setattr(_registry, "_DATASETS", dict(_registry._DATASETS))
    with pytest.raises(ValueError, match="'mitdb' is already registered"):
        register_dataset("mitdb")(type("Other", (), {}))


def test_root_is_absolute_and_defaults_to_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ECGTUNE_DATA_DIR", str(tmp_path / "shared"))
    assert get_dataset("mitdb").folder == tmp_path / "shared" / "mitdb"
    monkeypatch.chdir(tmp_path)
    ds = get_dataset("mitdb", root="relative")
    assert ds.folder == tmp_path / "relative" / "mitdb" and ds.folder.is_absolute()


def test_importing_the_data_package_does_not_import_wfdb_or_scipy():
    import subprocess
    import sys

    code = "import sys, ecgtune.data; print('wfdb' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _examples(n: int = 5) -> Examples:
    return Examples(
        inputs={"signal": np.arange(n * 4, dtype=np.float64).reshape(n, 1, 4)},
        y=[0, 1, 0, 1, 1][:n],
        records=["100", "100", "201", "202", "202"][:n],
        patients=[MitBih.patient_of(r) for r in ["100", "100", "201", "202", "202"][:n]],
        positions=[0, 360, 0, 360, 720][:n],
        label_names=["normal", "abnormal"],
    )


def test_examples_coerces_dtypes_and_has_len():
    ex = _examples()
    assert len(ex) == 5
    assert ex.x.dtype == np.float32 and ex.y.dtype == np.int64 and ex.positions.dtype == np.int64
    assert ex.records.dtype.kind == "U" and ex.label_names == ("normal", "abnormal")
    np.testing.assert_array_equal(ex.groups, ["100", "100", "201", "201", "201"])


def test_examples_subset_by_mask_and_indices():
    ex = _examples()
    by_mask = ex.subset(ex.records == "202")
    by_idx = ex.subset([3, 4])
    empty = ex.subset([])

    for sub in (by_mask, by_idx):
        assert len(sub) == 2 and sub.positions.tolist() == [360, 720] and sub.x.shape == (2, 1, 4)
    assert len(empty) == 0 and empty.x.shape == (0, 1, 4)
    with pytest.raises(ValueError, match="boolean mask must have shape"):
        ex.subset(np.array([True, False]))


def test_examples_rejects_misaligned_fields():
    with pytest.raises(ValueError, match=r"input 'signal' must have shape \(1, ...\)"):
        Examples({"signal": np.zeros((2, 1, 3))}, [0], ["100", "100"], ["100", "100"], [0, 1], ("a",))
    with pytest.raises(ValueError, match=r"records must have shape \(2,\)"):
        Examples({"signal": np.zeros((2, 3))}, [0, 0], ["1"], ["1", "1"], [0, 1], ("a",))
    with pytest.raises(ValueError, match="one column per label"):
        Examples({"signal": np.zeros((2, 3))}, np.zeros((2, 3)), ["1", "1"], ["1", "1"], [0, 1], ("a", "b"))


def test_examples_with_several_named_inputs_keep_their_order_and_round_trip():
    n = 3
    ex = Examples(inputs={"windows": np.ones((n, 4, 8)), "spectrogram": np.zeros((n, 1, 5, 3)),
                          "image": np.full((n, 2, 4, 4), 255, np.uint8)},
                  y=[0, 1, 2], records=["a", "b", "c"], patients=["a", "b", "c"], positions=[0, 0, 0],
                  label_names=("N", "O", "A"), layout="dualnet", scores=("cinc_f1",))
    assert list(ex.input_shapes) == ["windows", "spectrogram", "image"]
    assert ex.input_shapes["spectrogram"] == (1, 5, 3) and ex.inputs["image"].dtype == np.uint8
    with pytest.raises(ValueError, match="several inputs"):
        ex.x
    back = Examples.from_arrays(ex.to_arrays())
    assert list(back.inputs) == list(ex.inputs) and back.layout == "dualnet" and back.scores == ("cinc_f1",)
    sub = back.subset([2])
    assert sub.inputs["windows"].shape == (1, 4, 8) and sub.records.tolist() == ["c"]
    # A cache written before inputs were named (one array "x") reads as one signal input.
    old = {k: v for k, v in _examples().to_arrays().items() if not k.startswith("input.")}
    old["x"] = _examples().x
    assert list(Examples.from_arrays(old).inputs) == ["signal"]


def test_examples_array_round_trip_and_frozen():
    ex = _examples()
    back = Examples.from_arrays(ex.to_arrays())
    for field in ("x", "y", "records", "patients", "positions"):  # x: the one input
        np.testing.assert_array_equal(getattr(ex, field), getattr(back, field))
    assert back.label_names == ex.label_names
    with pytest.raises(AttributeError):
        ex.y = np.zeros(5)  # type: ignore[misc]


def test_a_model_is_given_the_inputs_it_takes_in_its_order():
    import numpy as np
    import pytest

    from ecgtune.data.examples import Examples
    from ecgtune.errors import EcgtuneError

    n = 3
    ex = Examples(inputs={"signal": np.zeros((n, 3, 10), np.float32), "image": np.ones((n, 9, 4, 4), np.uint8)},
                  y=np.zeros(n, np.int64), records=["1", "2", "3"], patients=["1", "2", "3"],
                  positions=np.zeros(n, np.int64), label_names=("a", "b"))
    assert list(ex.with_inputs(["image"]).inputs) == ["image"] and ex.with_inputs(["image"]).inputs["image"].dtype == np.uint8
    assert list(ex.with_inputs(["image", "signal"]).inputs) == ["image", "signal"]
    assert ex.with_inputs(["signal", "image"]) is ex
    with pytest.raises(EcgtuneError, match=r"takes the inputs \['windows'\]; these examples have \['signal', 'image'\]"):
        ex.with_inputs(["windows"])
