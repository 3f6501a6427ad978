"""The identity of prepared data: what fine-tuning compares before reusing a pre-trained model."""

from ecgtune.data import get_dataset


def test_prepared_key_ignores_spelling_and_sees_real_differences(tmp_path):
    ds = get_dataset("mitdb", root=tmp_path)  # resolving parameters reads no record
    base = ds.prepared_key(mode="windows", labels="binary", records=[100, 208])
    assert ds.prepared_key(mode="windows", labels="binary", records=["208", "100"]) == base
    assert ds.prepared_key(mode="windows", records=[100, 208], target_length=128) == base  # defaults filled
    assert ds.prepared_key(mode="windows", records=[100, 208], target_length=64) != base
    assert ds.prepared_key(mode="windows", records=[100]) != base
