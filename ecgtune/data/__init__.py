"""Datasets: a registry of dataset classes, the `Examples` they produce, and split protocols.

Importing this package registers every dataset module below; wfdb and scipy are imported
only when a dataset actually reads or filters records.
"""

from ecgtune.data import cinc2017 as _cinc2017  # noqa: F401  (registers "cinc2017")
from ecgtune.data import kaggle_csv as _kaggle_csv  # noqa: F401  (registers "kaggle_heartbeat")
from ecgtune.data import mitdb as _mitdb  # noqa: F401  (registers "mitdb")
from ecgtune.data import ptbxl as _ptbxl  # noqa: F401  (registers "ptbxl")
from ecgtune.data import wfdb_dataset as _wfdb_dataset  # noqa: F401  (registers "wfdb")
from ecgtune.data._registry import dataset_class, get_dataset, list_datasets, protocol_options, register_dataset
from ecgtune.data.examples import Examples
from ecgtune.data.protocol import Dataset, RawRecordings
from ecgtune.data.splits import PATIENT_WISE, assign_split, list_splits, split_by_record, split_has_test
from ecgtune.data.wfdb_dataset import describe_notes

__all__ = ["PATIENT_WISE", "Dataset", "Examples", "RawRecordings", "assign_split", "dataset_class", "describe_notes", "get_dataset", "list_datasets",
           "list_splits", "protocol_options", "register_dataset", "split_by_record", "split_has_test"]
