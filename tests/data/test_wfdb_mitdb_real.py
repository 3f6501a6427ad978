"""MIT-BIH read through the `wfdb` dataset gives exactly the examples of the `mitdb` dataset for the same
preprocessing: the generic reader and the hard-coded one share every step after the read."""

from __future__ import annotations

import numpy as np
import pytest

from ecgtune.data import get_dataset

pytestmark = pytest.mark.integration

RECORDS = ["100", "119"]  # normal beats and ventricular ones, MLII in both


@pytest.mark.parametrize("preprocessing", [
    {"mode": "windows", "labels": "binary"},
    {"mode": "beats", "labels": "aami", "target_rate": 250},
    {"mode": "kachuee", "labels": "aami", "rhythm": True},
], ids=["windows", "beats", "kachuee"])
def test_mitdb_through_wfdb_equals_mitdb(real_data_dir, preprocessing):
    mitdb = get_dataset("mitdb", root=real_data_dir, base_url="http://127.0.0.1:9/").prepare(records=RECORDS, **preprocessing)
    wfdb = get_dataset("wfdb", root=real_data_dir, path="mitdb").prepare(records=RECORDS, lead="MLII", **preprocessing)
    assert len(mitdb) > 1000 and wfdb.label_names == mitdb.label_names
    assert list(wfdb.inputs) == list(mitdb.inputs)
    for name in mitdb.inputs:
        np.testing.assert_array_equal(wfdb.inputs[name], mitdb.inputs[name])
    for field in ("y", "records", "patients", "positions"):
        np.testing.assert_array_equal(getattr(wfdb, field), getattr(mitdb, field))
    assert wfdb.notes["leads"] == {"100": "MLII", "119": "MLII"}
