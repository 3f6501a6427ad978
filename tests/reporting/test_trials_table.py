"""trials.parquet is typed: booleans are booleans, whole numbers ints, an absent value null (never the
texts 'True', 'False' or 'none'); a test figure shows its interval or why it has none."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from ecgtune.reporting.summary_tables import with_interval
from ecgtune.reporting.trials_table import combined, trials_frame, typed_value, write_parquet


def test_mlflow_texts_become_the_values_they_were():
    assert [typed_value(t) for t in ("True", "False", "None", "none", "", "32", "0.001", "1e-3", "adam")] == [
        True, False, None, None, None, 32, 0.001, 0.001, "adam"]


def test_the_parquet_columns_are_bool_int_float_or_null(tmp_path):
    rows = [
        {"run_id": "a", "selected": True, "train.weighted_sampling": True, "train.batch_size": 16, "train.lr": 0.01,
         "epochs": 3, "gpu_ids": "0", "train.class_weights": "balanced", "test_f1_macro": 0.8},
        {"run_id": "b", "selected": False, "train.weighted_sampling": False, "train.batch_size": 32, "train.lr": 1,
         "epochs": None, "gpu_ids": None, "train.class_weights": 2.0},
    ]
    frame = trials_frame(rows)
    path = tmp_path / "trials.parquet"
    # A second experiment without some columns: its rows leave them null, the columns keep their type.
    write_parquet(combined([frame, trials_frame([{"run_id": "c", "selected": False}])]), path)
    back = pd.read_parquet(path)
    assert back["selected"].dtype == bool and back["selected"].tolist() == [True, False, False]
    assert back["train.weighted_sampling"].dtype == "boolean"
    assert back["train.weighted_sampling"].tolist()[:2] == [True, False] and back["train.weighted_sampling"].isna()[2]
    assert back["train.batch_size"].dtype == "Int64" and back["epochs"].dtype == "Int64"
    assert back["train.lr"].dtype.kind == "f" and back["test_f1_macro"].dtype.kind == "f"
    assert back["gpu_ids"].iloc[0] == "0" and back["gpu_ids"].iloc[1:].isna().all()  # no GPU: null, not "none"
    # A name in one run, a number in another: text.
    assert back["train.class_weights"].iloc[:2].tolist() == ["balanced", "2.0"]
    schema = pq.read_schema(path)
    assert str(schema.field("selected").type) == "bool" and str(schema.field("train.batch_size").type) == "int64"
    assert str(schema.field("patient").type) == "null"  # a column no run has
    assert pq.read_table(path).column("gpu_ids").null_count == 2


def test_a_test_figure_shows_its_interval_or_how_few_records_it_had():
    drawn = {"test_f1_macro": 0.8, "test_f1_macro_ci_low": 0.7, "test_f1_macro_ci_high": 0.9}
    assert with_interval(drawn, "f1_macro", 12) == "0.8000 [0.7000, 0.9000]"
    assert with_interval({"test_f1_macro": 0.8}, "f1_macro", 1) == "0.8000 (no interval: 1 test record)"
    assert with_interval({"test_f1_macro": 0.8}, "f1_macro", 3) == "0.8000 (no interval: 3 test records)"
    assert with_interval({"test_f1_macro": 0.8}, "f1_macro") == "0.8000"
    assert with_interval({}, "f1_macro", 1).strip() == "-"  # no figure: nothing to explain


def test_a_figure_title_promises_an_interval_only_where_one_is_drawn():
    from ecgtune.reporting.figures import interval_title

    note = "no interval: 1 test record"
    assert interval_title("t", [True, True], note) == "t (test)\nbars: bootstrap 95 % CI"
    assert interval_title("t", [True, False], note).endswith("where drawn; elsewhere no interval: 1 test record")
    assert interval_title("t", [False], note) == "t (test)\nno interval: 1 test record"
    assert "95 %" not in interval_title("t", [], note)
