"""The Kaggle heartbeat CSV reader, on small files written in the Kaggle format (never the real data)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ecgtune import paths
from ecgtune.data import assign_split, get_dataset, list_datasets
from ecgtune.data import kaggle_csv
from ecgtune.data.kaggle_csv import KAGGLE_URL, KaggleHeartbeat
from ecgtune.errors import EcgtuneError

# Rows per class (N, S, V, F, Q) of the generated MIT-BIH files; F and Q are rare on purpose.
TRAIN_CLASS_COUNTS = (40, 20, 12, 5, 3)
TEST_CLASS_COUNTS = (8, 4, 3, 2, 1)
PTB_NORMAL_ROWS, PTB_ABNORMAL_ROWS = 23, 31


def make_beats(labels: np.ndarray, seed: int) -> np.ndarray:
    """Beat-like rows in [0, 1], zero-padded at the end like the Kaggle beats, shape (n, 187)."""
    rng = np.random.default_rng(seed)
    signals = rng.random((len(labels), 187))
    signals[:, 150:] = 0.0
    return signals


def write_kaggle_csv(path: Path, signals: np.ndarray, labels: np.ndarray) -> None:
    """One beat per line: 187 samples, then the label as a float; numpy's "%.18e", as in the Kaggle files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.column_stack([signals, np.asarray(labels, dtype=np.float64)]), delimiter=",")


def shuffled_labels(counts: tuple[int, ...], seed: int) -> np.ndarray:
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)


@pytest.fixture
def kaggle_files(tmp_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """All four files in <tmp_path>/data/kaggle_heartbeat/; returns {file name: (signals, labels)}."""
    contents = {
        "mitbih_train.csv": shuffled_labels(TRAIN_CLASS_COUNTS, seed=1),
        "mitbih_test.csv": shuffled_labels(TEST_CLASS_COUNTS, seed=2),
        "ptbdb_normal.csv": np.zeros(PTB_NORMAL_ROWS, np.int64),
        "ptbdb_abnormal.csv": np.ones(PTB_ABNORMAL_ROWS, np.int64),
    }
    written = {}
    for seed, (name, labels) in enumerate(contents.items()):
        signals = make_beats(labels, seed=10 + seed)
        write_kaggle_csv(folder_of(tmp_path) / name, signals, labels)
        written[name] = (signals, labels)
    return written


def folder_of(tmp_path: Path) -> Path:
    return tmp_path / "data" / "kaggle_heartbeat"


@pytest.fixture
def dataset(tmp_path: Path) -> KaggleHeartbeat:
    return KaggleHeartbeat(root=tmp_path / "data")


def cached_arrays() -> list[Path]:
    return sorted(paths.cache_dir().glob("*.npz"))


# ---------------------------------------------------------------- what prepare() returns


@pytest.mark.parametrize(
    ("task", "files", "label_names"),
    [
        ("aami", ("mitbih_train.csv", "mitbih_test.csv"), ("N", "S", "V", "F", "Q")),
        ("mi", ("ptbdb_normal.csv", "ptbdb_abnormal.csv"), ("normal", "MI")),
    ],
)
def test_prepare_returns_exactly_the_rows_of_the_files(dataset, kaggle_files, task, files, label_names):
    ex = dataset.prepare(task=task)

    signals = np.concatenate([kaggle_files[f][0] for f in files])
    labels = np.concatenate([kaggle_files[f][1] for f in files])
    stems = np.concatenate([np.full(len(kaggle_files[f][1]), Path(f).stem) for f in files])
    rows = np.concatenate([np.arange(len(kaggle_files[f][1])) for f in files])
    assert ex.x.shape == (len(labels), 1, 187) and ex.x.dtype == np.float32
    np.testing.assert_array_equal(ex.x[:, 0, :], signals.astype(np.float32))
    np.testing.assert_array_equal(ex.y, labels)
    assert ex.label_names == label_names
    np.testing.assert_array_equal(ex.records, stems)
    np.testing.assert_array_equal(ex.patients, stems)  # the files carry no patient ids
    np.testing.assert_array_equal(ex.positions, rows)


def test_only_the_files_of_the_task_are_needed(dataset, kaggle_files, tmp_path):
    (folder_of(tmp_path) / "ptbdb_normal.csv").unlink()
    assert len(dataset.prepare(task="aami")) == sum(TRAIN_CLASS_COUNTS) + sum(TEST_CLASS_COUNTS)


def test_trailing_blank_lines_and_windows_line_ends_are_accepted(dataset, kaggle_files, tmp_path):
    path = folder_of(tmp_path) / "mitbih_test.csv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n") + b"\r\n\r\n")
    ex = dataset.prepare(task="aami")
    signals, labels = kaggle_files["mitbih_test.csv"]
    test_rows = ex.records == "mitbih_test"
    np.testing.assert_array_equal(ex.y[test_rows], labels)
    np.testing.assert_array_equal(ex.x[test_rows, 0], signals.astype(np.float32))


def test_the_line_by_line_reader_gives_what_pandas_gives(dataset, kaggle_files, monkeypatch):
    with_pandas = dataset.prepare(task="aami")
    shutil.rmtree(paths.cache_dir())
    monkeypatch.setattr(kaggle_csv, "_read_with_pandas", lambda path: None)  # as if pandas were missing
    without = dataset.prepare(task="aami")
    for field in ("x", "y", "records", "positions", "folds"):
        np.testing.assert_array_equal(getattr(with_pandas, field), getattr(without, field))


# ---------------------------------------------------------------- folds


def assert_each_class_spread_evenly(folds: np.ndarray, labels: np.ndarray, fold_values: range) -> None:
    for label in np.unique(labels):
        per_fold = np.array([np.sum(folds[labels == label] == f) for f in fold_values])
        # As even as the class size allows: a class of 5 fills 5 folds once, one of 40 each fold 4-5 times.
        assert per_fold.max() - per_fold.min() <= 1, (label, per_fold)


def test_aami_folds_keep_the_test_file_and_deal_the_train_file_over_1_to_9(dataset, kaggle_files):
    ex = dataset.prepare(task="aami")
    from_test_file = ex.records == "mitbih_test"

    assert np.all(ex.folds[from_test_file] == 10)
    train_folds = ex.folds[~from_test_file]
    assert set(train_folds.tolist()) == set(range(1, 10))
    assert_each_class_spread_evenly(train_folds, ex.y[~from_test_file], range(1, 10))

    split = assign_split("folds", ex)
    np.testing.assert_array_equal(split == "test", from_test_file)
    assert set(split[~from_test_file].tolist()) == {"train", "val"}
    # About a ninth of the training file is validation.
    assert np.sum(split == "val") in (sum(TRAIN_CLASS_COUNTS) // 9, sum(TRAIN_CLASS_COUNTS) // 9 + 1)


def test_mi_folds_deal_both_files_over_1_to_10(dataset, kaggle_files):
    ex = dataset.prepare(task="mi")
    assert set(ex.folds.tolist()) == set(range(1, 11))
    for stem in ("ptbdb_normal", "ptbdb_abnormal"):
        rows = ex.records == stem
        assert_each_class_spread_evenly(ex.folds[rows], ex.y[rows], range(1, 11))
    split = assign_split("folds", ex)
    assert {"train", "val", "test"} <= set(split.tolist())
    assert set(ex.y[split == "test"].tolist()) == {0, 1}


def test_folds_are_the_same_on_every_call_and_after_clearing_the_cache(dataset, kaggle_files, tmp_path):
    first = dataset.prepare(task="aami")
    second = KaggleHeartbeat(root=tmp_path / "data").prepare(task="aami")
    shutil.rmtree(paths.cache_dir())
    rebuilt = dataset.prepare(task="aami")
    np.testing.assert_array_equal(first.folds, second.folds)
    np.testing.assert_array_equal(first.folds, rebuilt.folds)


def test_deal_stratified_folds_balances_classes_and_fold_sizes():
    labels = np.repeat([0, 1, 2], [31, 7, 1])
    folds = kaggle_csv.deal_stratified_folds(labels, (1, 2, 3, 4), np.random.default_rng(0))
    assert_each_class_spread_evenly(folds, labels, range(1, 5))
    sizes = np.bincount(folds)[1:]
    assert sizes.max() - sizes.min() <= 1
    assert len(kaggle_csv.deal_stratified_folds(np.zeros(0), (1,), np.random.default_rng(0))) == 0


# ---------------------------------------------------------------- the prepared-array cache


def test_a_second_prepare_reads_the_cache_not_the_files(dataset, kaggle_files, monkeypatch):
    first = dataset.prepare(task="aami")
    assert len(cached_arrays()) == 1

    def fail(path):
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(kaggle_csv, "read_beats_csv", fail)
    again = dataset.prepare(task="aami")
    np.testing.assert_array_equal(first.x, again.x)
    np.testing.assert_array_equal(first.folds, again.folds)


def test_a_rewritten_file_is_read_again(dataset, kaggle_files, tmp_path):
    before = dataset.prepare(task="aami")
    key_before = dataset.prepared_key(task="aami")
    labels = np.array([4, 3, 2])
    write_kaggle_csv(folder_of(tmp_path) / "mitbih_test.csv", make_beats(labels, seed=99), labels)

    after = dataset.prepare(task="aami")
    assert dataset.prepared_key(task="aami") != key_before
    assert np.sum(before.records == "mitbih_test") == sum(TEST_CLASS_COUNTS)
    np.testing.assert_array_equal(after.y[after.records == "mitbih_test"], labels)


def test_prepared_key_fills_defaults_and_sees_real_differences(dataset, kaggle_files):
    base = dataset.prepared_key()
    assert dataset.prepared_key(task="aami", max_per_record=None) == base
    assert dataset.prepared_key(task="aami", max_per_record=10) != base
    assert dataset.prepared_key(task="mi") != base


# ---------------------------------------------------------------- bad input


def rewrite_line(path: Path, line_number: int, new_line: str | None) -> None:
    """Replace one line (1-based) of a file; None deletes its content, leaving a blank line."""
    lines = path.read_text().splitlines()
    lines[line_number - 1] = "" if new_line is None else new_line
    path.write_text("\n".join(lines) + "\n")


def row_text(values: list[str]) -> str:
    return ",".join(values)


def good_row(label: str = "0.000000000000000000e+00") -> list[str]:
    return ["5.000000000000000000e-01"] * 187 + [label]


def with_value(column: int, value: str, label: str = "0.000000000000000000e+00") -> str:
    row = good_row(label)
    row[column - 1] = value
    return row_text(row)


BAD_LINES = {
    "short row": (3, row_text(good_row()[:-1]), r"line 3: expected 188 comma-separated numbers .*got 187 values"),
    "long row": (5, row_text(good_row() + ["0"]), r"line 5: expected 188 .*got 189 values"),
    "short first row": (1, row_text(good_row()[1:]), r"line 1: expected 188 .*got 187 values"),
    "text": (4, with_value(7, "abc"), r"line 4: column 7: 'abc' is not a number"),
    "empty value": (2, with_value(9, ""), r"line 2: column 9: '' is not a number"),
    "nan": (6, with_value(30, "nan"), r"line 6: column 30: 'nan' is not a finite number"),
    "infinite label": (2, with_value(188, "inf"), r"line 2: column 188 \(the label\): 'inf' is not a finite number"),
    "blank line": (4, None, r"line 4: the line is blank; expected 188"),
    "label too large": (7, row_text(good_row("5.0e+00")), r"line 7: column 188 \(the label\): label 5 is not one of"),
    "negative label": (8, row_text(good_row("-1.0")), r"line 8: .*label -1 is not one of"),
    "fractional label": (9, row_text(good_row("1.5")), r"line 9: .*label 1.5 is not one of"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_a_bad_line_names_file_line_and_column_and_caches_nothing(dataset, kaggle_files, tmp_path, case):
    line_number, new_line, message = BAD_LINES[case]
    path = folder_of(tmp_path) / "mitbih_train.csv"
    rewrite_line(path, line_number, new_line)

    with pytest.raises(EcgtuneError, match=message) as caught:
        dataset.prepare(task="aami")
    assert str(path) in str(caught.value)
    assert cached_arrays() == []


def test_a_label_outside_the_task_lists_the_allowed_classes(dataset, kaggle_files, tmp_path):
    path = folder_of(tmp_path) / "ptbdb_abnormal.csv"
    rewrite_line(path, 3, row_text(good_row("2.000000000000000000e+00")))
    with pytest.raises(EcgtuneError, match=r"ptbdb_abnormal.csv, line 3: .*label 2 .*0 \(normal\), 1 \(MI\)"):
        dataset.prepare(task="mi")
    assert cached_arrays() == []


@pytest.mark.parametrize("content", [b"", b"\n\n"], ids=["zero bytes", "blank lines only"])
def test_an_empty_file_is_an_error(dataset, kaggle_files, tmp_path, content):
    path = folder_of(tmp_path) / "mitbih_test.csv"
    path.write_bytes(content)
    with pytest.raises(EcgtuneError, match="is empty") as caught:
        dataset.prepare(task="aami")
    assert str(path) in str(caught.value)
    assert cached_arrays() == []


def test_a_missing_file_names_it_the_folder_and_where_to_get_it(dataset, kaggle_files, tmp_path):
    (folder_of(tmp_path) / "mitbih_test.csv").unlink()
    with pytest.raises(EcgtuneError) as caught:
        dataset.prepare(task="aami")
    message = str(caught.value)
    for expected in ("mitbih_test.csv", str(folder_of(tmp_path)), KAGGLE_URL, "ECGTUNE_DATA_DIR", "--data-dir"):
        assert expected in message
    assert "mitbih_train.csv" not in message  # only what is missing
    assert cached_arrays() == []


def test_download_without_a_task_checks_every_file(dataset, tmp_path):
    with pytest.raises(EcgtuneError, match="mitbih_train.csv, mitbih_test.csv, ptbdb_normal.csv, ptbdb_abnormal.csv"):
        dataset.download()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "arrhythmia"}, r"unknown task 'arrhythmia'; expected one of aami, mi"),
        ({"task": ["aami"]}, r"unknown task \['aami'\]"),
        ({"mode": "beats"}, r"unknown prepare\(\) parameter 'mode'; accepted: task, max_per_record"),
        ({"max_per_record": 0}, r"max_per_record must be a positive integer or None, got 0"),
        ({"max_per_record": "10"}, r"max_per_record must be .* got '10'"),
        ({"max_per_record": True}, r"max_per_record must be .* got True"),
    ],
)
def test_bad_arguments_are_refused_before_reading(dataset, kaggle_files, kwargs, message):
    with pytest.raises(EcgtuneError, match=message):
        dataset.prepare(**kwargs)
    assert cached_arrays() == []


# ---------------------------------------------------------------- max_per_record


def test_max_per_record_caps_each_file_and_keeps_rare_classes(dataset, kaggle_files):
    full = dataset.prepare(task="aami")
    capped = dataset.prepare(task="aami", max_per_record=20)

    for name in ("mitbih_train.csv", "mitbih_test.csv"):
        signals, labels = kaggle_files[name]
        rows = capped.records == Path(name).stem
        assert rows.sum() == min(20, len(labels))
        assert set(capped.y[rows].tolist()) == set(labels.tolist())  # F and Q survive the cap
        kept = capped.positions[rows]
        np.testing.assert_array_equal(capped.y[rows], labels[kept])
        np.testing.assert_array_equal(capped.x[rows, 0], signals[kept].astype(np.float32))
    assert len(full) == sum(TRAIN_CLASS_COUNTS) + sum(TEST_CLASS_COUNTS)
    np.testing.assert_array_equal(dataset.prepare(task="aami", max_per_record=20).positions, capped.positions)


# ---------------------------------------------------------------- registry and load


def test_registered_and_built_by_get_dataset(kaggle_files, tmp_path):
    assert "kaggle_heartbeat" in list_datasets()
    ds = get_dataset("kaggle_heartbeat", root=tmp_path / "data")
    assert isinstance(ds, KaggleHeartbeat) and ds.folder == folder_of(tmp_path)
    assert len(ds.prepare(task="mi")) == PTB_NORMAL_ROWS + PTB_ABNORMAL_ROWS


def test_root_defaults_to_ecgtune_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ECGTUNE_DATA_DIR", str(tmp_path / "shared"))
    assert KaggleHeartbeat().folder == tmp_path / "shared" / "kaggle_heartbeat"


def test_load_returns_one_split(dataset, kaggle_files):
    test = dataset.load("test", task="aami")
    _, labels = kaggle_files["mitbih_test.csv"]
    assert set(test.records.tolist()) == {"mitbih_test"}
    np.testing.assert_array_equal(test.y, labels)
    train = dataset.load("train", task="aami")
    val = dataset.load("val", task="aami")
    assert len(train) + len(val) == sum(TRAIN_CLASS_COUNTS)
    random_test = dataset.load("test", protocol="random_beats", seed=3, task="aami")
    assert 0 < len(random_test) < len(dataset.prepare(task="aami"))
    with pytest.raises(EcgtuneError, match="unknown split 'validation'"):
        dataset.load("validation")


def test_an_unreadable_file_is_reported(dataset, kaggle_files, monkeypatch):
    # chmod cannot make a file unreadable to root (CI containers), so the read itself fails.
    def permission_denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(kaggle_csv, "_read_with_pandas", permission_denied)
    with pytest.raises(EcgtuneError, match=r"cannot read .*mitbih_train.csv \(Permission denied\)"):
        dataset.prepare(task="aami")
    assert cached_arrays() == []
