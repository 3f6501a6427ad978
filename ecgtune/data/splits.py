"""Split protocols as data: each maps prepared examples to "train" / "val" / "test" / "".

"" means the example takes no part in that protocol (e.g. a paced record in the
inter-patient protocol). Every protocol is deterministic: the same examples and seed give
the same assignment, on any machine and in any phase (pre-training, scratch, fine-tune).

Assign on the examples exactly as `prepare()` returned them (all records, before any
subset): the protocols look at record names, labels and positions, not at row order, but
taking a subset first changes which examples exist to be split.
"""

from __future__ import annotations

import zlib
from typing import Callable

import numpy as np

from ecgtune.data.examples import Examples
from ecgtune.errors import EcgtuneError

SPLIT_NAMES = ("train", "val", "test")

# de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG
# morphology and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206 (2004).
# The four paced records (102, 104, 107, 217) are in neither set.
DS1 = (
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
    "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230",
)  # fmt: skip
DS2 = (
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
    "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234",
)  # fmt: skip

# Validation records held out of DS1. Together they hold all four beat classes of interest
# (N; S: 118, 124; V: 118, 124, 205; F: 124, 205) while the bulk of each minority class stays
# in training (S in 209, F in 208, V in 106/119/208/223). All are distinct patients.
INTER_PATIENT_VAL = ("101", "118", "124", "205")

# Records 201 and 202 come from one patient (MIT-BIH directory). 201 is in DS1 and 202 in
# DS2, so scoring on 202 would test on a patient seen in training: 202 is left out.
INTER_PATIENT_EXCLUDED = ("202",)

_TEST_FRACTION = 0.2  # per_patient: of each record and class
_VAL_FRACTION = 0.2  # per_patient: of what is left after the test part
_CHRONO_TRAIN_END = 0.64  # chronological: first 64 % train ...
_CHRONO_VAL_END = 0.80  # ... next 16 % val, last 20 % test


def _record_seed(record: str) -> int:
    """A stable integer for a record name (Python's hash() is salted per process)."""
    return zlib.crc32(record.encode())


def _round_half_up(x: float) -> int:
    # Python's round() rounds half to even; a split size should not depend on parity.
    return int(np.floor(x + 0.5))


def _per_patient(examples: Examples, seed: int) -> np.ndarray:
    """The seed study's protocol: a stratified random 20 % test / 16 % val / 64 % train in each record.

    Windows of one patient sit in train and in test; that is the point of a per-patient
    study (a model tuned to one patient), not a patient-level generalisation estimate.
    Each record has its own RNG seeded from (seed, record name), so its test examples do not
    depend on which other records were prepared with it.
    """
    out = np.full(len(examples), "", dtype=object)
    for record in np.unique(examples.records):
        rng = np.random.default_rng([seed, _record_seed(str(record))])
        in_record = np.flatnonzero(examples.records == record)
        # Time order, so the assignment does not depend on how rows were ordered.
        in_record = in_record[np.argsort(examples.positions[in_record], kind="stable")]
        _deal_by_class(out, in_record, examples.y, rng, _TEST_FRACTION, _VAL_FRACTION)
    return out


def _deal_by_class(out, candidates, y, rng, test_fraction: float, val_fraction: float) -> None:
    """Per class of ``candidates`` (visited in their given order), a random ``test_fraction`` to test, then
    ``val_fraction`` of the rest to val, the rest to train; a class of one example goes to train."""
    for label in np.unique(y[candidates]):
        members = rng.permutation(candidates[y[candidates] == label])
        n_test = _round_half_up(test_fraction * len(members))
        n_val = _round_half_up(val_fraction * (len(members) - n_test))
        out[members[:n_test]] = "test"
        out[members[n_test : n_test + n_val]] = "val"
        out[members[n_test + n_val :]] = "train"


def _chronological(examples: Examples, seed: int) -> np.ndarray:
    """In each record, by time: the first 64 % train, the next 16 % val, the last 20 % test."""
    del seed  # deterministic by construction
    out = np.full(len(examples), "", dtype=object)
    for record in np.unique(examples.records):
        in_record = np.flatnonzero(examples.records == record)
        in_record = in_record[np.argsort(examples.positions[in_record], kind="stable")]
        n = len(in_record)
        train_end = _round_half_up(_CHRONO_TRAIN_END * n)
        val_end = _round_half_up(_CHRONO_VAL_END * n)
        out[in_record[:train_end]] = "train"
        out[in_record[train_end:val_end]] = "val"
        out[in_record[val_end:]] = "test"
    return out


def _inter_patient(examples: Examples, seed: int) -> np.ndarray:
    """de Chazal's DS1 (train, less the validation records) / DS2 (test); other records ""."""
    del seed  # fixed record lists
    out = np.full(len(examples), "", dtype=object)
    out[np.isin(examples.records, DS1)] = "train"
    out[np.isin(examples.records, INTER_PATIENT_VAL)] = "val"
    out[np.isin(examples.records, DS2)] = "test"
    out[np.isin(examples.records, INTER_PATIENT_EXCLUDED)] = ""
    return out


_RANDOM_TEST_FRACTION = 0.2  # random_beats: Kaggle's mitbih_test.csv is 20 % of the beats
_RANDOM_VAL_FRACTION = 0.1  # random_beats: of what is left after the test part

# folds: PTB-XL's recommended use of strat_fold (Wagner et al. 2020): 1-8 train, 9 val, 10 test.
# Its folds are patient-wise: all records of a patient share one fold.
FOLD_VAL, FOLD_TEST = 9, 10


def _random_beats(examples: Examples, seed: int) -> np.ndarray:
    """The seed's own protocol (Kachuee et al., the Kaggle CSVs): beats drawn at random, stratified by class,
    20 % test, then 10 % of the rest val, whatever their record. A patient's beats sit in train and in test,
    so this measures recognition of beats of known patients; report it beside inter_patient."""
    out = np.full(len(examples), "", dtype=object)
    rng = np.random.default_rng(seed)
    # Row order must not matter: visit beats sorted by (record, position).
    order = np.lexsort((examples.positions, examples.records))
    _deal_by_class(out, order, examples.y, rng, _RANDOM_TEST_FRACTION, _RANDOM_VAL_FRACTION)
    return out


def _folds(examples: Examples, seed: int) -> np.ndarray:
    """The dataset's own folds: 1-8 train, 9 val, 10 test; examples without a fold take no part."""
    del seed  # fixed folds
    if not np.any(examples.folds > 0):
        raise EcgtuneError(
            "split protocol 'folds' needs a dataset with folds (ptbxl's strat_fold, the Kaggle CSV files); "
            "these examples have none"
        )
    out = np.full(len(examples), "", dtype=object)
    out[(examples.folds >= 1) & (examples.folds < FOLD_VAL)] = "train"
    out[examples.folds == FOLD_VAL] = "val"
    out[examples.folds == FOLD_TEST] = "test"
    return out


# random_records without options: ECG-DualNet's split of the PhysioNet/CinC 2017 set, 7,000 / 1,528
# recordings at random and no test part (the dataset declares these defaults, ecgtune.data.cinc2017).
_DUALNET_VAL_FRACTION = 1528 / 8528
_RECORD_TEST_FRACTION, _RECORD_VAL_FRACTION = 0.2, 0.2  # of the patients; val of what test leaves, as per_patient
# random_records' options where a dataset deals its patients to all three parts (every dataset but CinC 2017).
PATIENT_FRACTIONS = {"test": _RECORD_TEST_FRACTION, "val": _RECORD_VAL_FRACTION}
# Protocols placing whole patients, and the options a space may set for them (`dataset.split` as a mapping):
# test, the fraction of the patients in test; val, the fraction of the rest in validation; seed.
_FRACTION_OPTIONS = ("test", "val", "seed")
OPTIONS: dict[str, tuple[str, ...]] = {
    "random_records": _FRACTION_OPTIONS, "stratified_records": _FRACTION_OPTIONS,
    "per_patient": ("seed",), "random_beats": ("seed",),
}
# given: the split a dataset's own table gives each record, carried in `folds` as the folds protocol reads them.
GIVEN_FOLDS = {"train": 1, "val": FOLD_VAL, "test": FOLD_TEST}


def _patient_classes(examples: Examples) -> tuple[np.ndarray, np.ndarray]:
    """(patient ids sorted, a class per patient to stratify on): the class of the patient's first example, or
    for multi-label examples the index of its combination of labels."""
    names, first = np.unique(examples.patients, return_index=True)
    y = examples.y[first]
    if y.ndim == 2:  # several labels per example: each distinct combination is one stratum
        y = np.unique(y, axis=0, return_inverse=True)[1].reshape(-1)
    return names, y


def _fractions(options: dict, *, test: float, val: float) -> tuple[float, float]:
    return float(options.get("test", test)), float(options.get("val", val))


def _check_parts(protocol: str, dealt: np.ndarray, test: float, val: float) -> None:
    """A part the fractions ask for must hold a patient: a protocol that silently drops validation or test
    would select on nothing or test on nothing."""
    wanted = {"train": True, "val": val > 0, "test": test > 0}
    empty = [part for part, asked in wanted.items() if asked and not np.any(dealt == part)]
    if empty:
        raise EcgtuneError(
            f"split {protocol}: {len(dealt)} patient(s) leave the {' and '.join(empty)} part empty (test {test:g}, "
            f"val {val:g} of the rest); add records or set other fractions (dataset.split: "
            f"{{protocol: {protocol}, test: ..., val: ...}})"
        )


def _random_records(examples: Examples, seed: int, **options) -> np.ndarray:
    """Whole patients at random: a fraction ``test`` to test, then ``val`` of the rest to validation, the rest to
    train. Without options, ECG-DualNet's own protocol (the seed selected and reported on the same validation
    recordings, 82 % / 18 % and no test part): report it beside stratified_records."""
    names = np.unique(examples.patients)
    test, val = _fractions(options, test=0.0, val=_DUALNET_VAL_FRACTION)
    order = np.random.default_rng(seed).permutation(names)
    n_test = _round_half_up(test * len(names))
    n_val = _round_half_up(val * (len(names) - n_test))
    dealt = np.full(len(names), "train", dtype=object)
    position = {name: i for i, name in enumerate(names)}
    dealt[[position[n] for n in order[:n_test]]] = "test"
    dealt[[position[n] for n in order[n_test : n_test + n_val]]] = "val"
    _check_parts("random_records", dealt, test, val)
    return dealt[np.searchsorted(names, examples.patients)]


def _stratified_records(examples: Examples, seed: int, **options) -> np.ndarray:
    """Whole patients, stratified by class: a fraction ``test`` (0.2) to test, ``val`` (0.2) of the rest to
    validation, the rest train. A patient's examples stay together (datasets without patient ids: each
    recording is its own patient)."""
    names, classes = _patient_classes(examples)
    test, val = _fractions(options, test=_RECORD_TEST_FRACTION, val=_RECORD_VAL_FRACTION)
    dealt = np.full(len(names), "", dtype=object)
    _deal_by_class(dealt, np.arange(len(names)), classes, np.random.default_rng(seed), test, val)
    _check_parts("stratified_records", dealt, test, val)
    return dealt[np.searchsorted(names, examples.patients)]


def _given(examples: Examples, seed: int) -> np.ndarray:
    """The split a dataset's table gives each record (its `split` column: train, val, test)."""
    del seed
    if not np.isin(examples.folds, list(GIVEN_FOLDS.values())).any():
        raise EcgtuneError("split protocol 'given' needs a table with a split column (train, val, test) for the "
                           "records: dataset preprocessing table: or labels: {table: ...}")
    out = np.full(len(examples), "", dtype=object)
    for part, fold in GIVEN_FOLDS.items():
        out[examples.folds == fold] = part
    return out


_PROTOCOLS: dict[str, Callable[[Examples, int], np.ndarray]] = {
    "chronological": _chronological,
    "folds": _folds,
    "given": _given,
    "inter_patient": _inter_patient,
    "per_patient": _per_patient,
    "random_beats": _random_beats,
    "random_records": _random_records,
    "stratified_records": _stratified_records,
}
# Protocols that deal whole patients: no patient's examples sit in two parts. The others are the seeds'
# own protocols within records (per_patient, chronological, random_beats), reported beside these.
PATIENT_WISE = frozenset({"folds", "given", "inter_patient", "random_records", "stratified_records"})
# Protocols that place each record by its identity alone (its fold, its record list), whatever was
# prepared from it: a model trained under one of them, on any preparation of the same records, never saw
# another preparation's test records under the same protocol.
_BY_RECORD = frozenset({"folds", "given", "inter_patient"})


def split_by_record(protocol: str) -> bool:
    return protocol in _BY_RECORD


def leak_free(source_dataset, source_split, source_key, dataset: str, split: str, key: str) -> bool:
    """Whether weights trained on (source_dataset, source_split, source_key) never saw a test example of
    (dataset, split, key): another dataset (no shared patient); the same examples and split; or the same
    records under a split that places each record by its identity alone (PTB-XL's folds), whatever was
    prepared from them (beats, whole records, other labels, images)."""
    if source_dataset != dataset:
        return True
    return source_key == key or (source_split == split and split_by_record(split))


def split_has_test(protocol: str, options: dict | None = None) -> bool:
    """Whether the protocol with these (resolved) options has a test part: random_records has none unless its
    ``test`` fraction says so (ECG-DualNet's protocol)."""
    if protocol == "random_records":
        return float((options or {}).get("test", 0.0)) > 0
    return True


def check_options(protocol: str, options: dict, where: str) -> dict:
    """The options of ``protocol`` checked: known keys, fractions in [0, 1) leaving training patients, an
    integer seed. Returns them with floats and ints as such.

    Raises:
        EcgtuneError: naming ``where`` (the file and key) and what was expected.
    """
    allowed = OPTIONS.get(protocol, ())
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise EcgtuneError(f"{where}: split {protocol} takes {'the options ' + ', '.join(allowed) if allowed else 'no options'}"
                           f", got {unknown[0]!r}")
    out = dict(options)
    for key in ("test", "val"):
        if key in out:
            value = out[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise EcgtuneError(f"{where}: split option {key} must be a fraction from 0 to below 1, got {value!r}")
            out[key] = float(value)
    if "seed" in out and (isinstance(out["seed"], bool) or not isinstance(out["seed"], int)):
        raise EcgtuneError(f"{where}: split option seed must be an integer, got {out['seed']!r}")
    return out


def list_splits() -> list[str]:
    """Names of the split protocols, sorted."""
    return sorted(_PROTOCOLS)


def assign_split(protocol: str, examples: Examples, *, seed: int = 42, **options) -> np.ndarray:
    """Assign every example to "train", "val", "test" or "" (not used) under a protocol.

    Args:
        protocol: One of `list_splits()`.
        examples: The prepared examples (all of them; see the module docstring).
        seed: Seeds the random protocols (per_patient); ignored by the fixed ones.
        **options: The protocol's options (`OPTIONS`): random_records' and stratified_records' fractions.

    Returns:
        Shape (N,) array of str.

    Raises:
        EcgtuneError: If the protocol is unknown.
    """
    try:
        assign = _PROTOCOLS[protocol]
    except KeyError:
        known = ", ".join(list_splits())
        raise EcgtuneError(f"unknown split protocol {protocol!r}; known protocols: {known}") from None
    options = dict(options)
    seed = int(options.pop("seed", seed))
    return (assign(examples, seed, **options) if options else assign(examples, seed)).astype(str)


def load_part(dataset, split: str, protocol: str, seed: int, preprocessing: dict) -> Examples:
    """One part (train, val or test) of ``protocol`` on ``dataset``'s prepared examples, with the options the
    dataset declares for that protocol: what a dataset's ``load`` returns (`ecgtune.data.protocol`)."""
    if split not in SPLIT_NAMES:
        raise EcgtuneError(f"{dataset.name}: unknown split {split!r}; expected one of {', '.join(SPLIT_NAMES)}")
    examples = dataset.prepare(**preprocessing)
    options = dataset.protocols(preprocessing).get(protocol, {})
    return examples.subset(assign_split(protocol, examples, seed=seed, **options) == split)
