"""`wfdb`: any folder of WFDB records, declared in a space with no Python.

    dataset:
      name: wfdb
      path: /data/mydb          # absolute, or relative to the data folder (--data-dir, ECGTUNE_DATA_DIR)
      split: random_records
      preprocessing: {mode: kachuee, labels: aami, lead: ECG1}

Beat tasks (``mode: windows | beats | kachuee``, the preprocessing of `ecgtune.data.beat_task`, MIT-BIH's)
read one lead by name and the beat annotations of ``annotator``; whole-record tasks (``task: records``)
read ``leads`` by name and take their labels from a table or from the headers' ``# Dx:`` codes. Every task's
rate is the task's own, whatever the database's. What was read and left out is counted in the examples'
notes, which a search prints.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ecgtune import paths
from ecgtune.data import beat_task, cache, progress, ptbxl_records
from ecgtune.data._registry import register_dataset
from ecgtune.data.beat_task import BEAT_SYMBOLS, BeatLabels
from ecgtune.data.examples import FIXED, SIGNAL, Examples
from ecgtune.data.record_table import RecordTable, read_table
from ecgtune.data.splits import GIVEN_FOLDS, PATIENT_FRACTIONS, load_part
from ecgtune.data.wfdb_folder import Header, choose_leads, find_records, read_annotations, read_header, read_leads
from ecgtune.errors import EcgtuneError

NAME = "wfdb"
# Bump when prepare() output changes for the same parameters; it is part of the cache key.
FORMAT_VERSION = 1
RECORDS_TASK = "records"
# Beat tasks: the dataset's own parameters beside beat_task's.
_BEAT_EXTRA = {"annotator": "atr", "lead_fallback": [], "symbol_map": None, "table": None}
# Whole records: ptbxl_records' preparation of the leads, labels from a table or the headers.
_RECORD_DEFAULTS: dict[str, Any] = {
    "labels": None, "leads": None, "target_rate": None, "length": None, "bandpass": None, "bandpass_causal": False,
    "bandpass_order": 3, "standardize": True, "images": None, "image_size": 256, "max_records": None,
    "table": None, "multi_label": None,
}
_PATIENT_PROTOCOLS = {"random_records": dict(PATIENT_FRACTIONS), "stratified_records": {}, "given": {}}
_WITHIN_RECORD_PROTOCOLS = {"per_patient": {}, "chronological": {}, "random_beats": {}}
LEFT_OUT, DROPPED = "left_out", "dropped"


@register_dataset(NAME)
class WfdbDatabase:
    """A user's folder of WFDB records (any rate, lead names and format wfdb reads).

    Args:
        root: The data folder a relative ``path`` is below; None means `paths.data_root()`.
        path: The database folder (the space's ``dataset.path``).
    """

    name = NAME
    space_keys = ("path",)  # what a space's dataset section may say beside name, split and preprocessing

    def __init__(self, root: str | os.PathLike | None = None, *, path: str | os.PathLike | None = None) -> None:
        if path is None or not str(path).strip():
            raise EcgtuneError("dataset wfdb needs path: the folder of WFDB records (dataset.path in a space)")
        self.root = paths.data_root(root)
        folder = Path(os.path.expanduser(str(path)))
        self.folder = (folder if folder.is_absolute() else self.root / folder).resolve()
        # A search resolves the same parameters three times (prepare, its key, the champion's preparation):
        # each header is read once per dataset object, not once per call.
        self._headers: dict[str, Header] = {}

    def __repr__(self) -> str:
        return f"WfdbDatabase(path={str(self.folder)!r})"

    @staticmethod
    def protocols(preprocessing: dict) -> dict[str, dict]:
        """Whole patients for any task (random_records, stratified_records, the table's given split); the seeds'
        protocols within a record only where a record holds many examples (beat and window tasks)."""
        if preprocessing.get("task") == RECORDS_TASK:
            return dict(_PATIENT_PROTOCOLS)
        return {**_PATIENT_PROTOCOLS, **_WITHIN_RECORD_PROTOCOLS}

    def download(self) -> None:
        """Nothing to fetch: the records are the user's own. A missing folder is said now, by its path."""
        if not self.folder.is_dir():
            raise EcgtuneError(f"dataset wfdb: no folder {self.folder} (dataset.path names the folder of WFDB records)")

    # ---------------------------------------------------------------- prepare

    def prepare(self, **preprocessing: Any) -> Examples:
        """Read, cut and label the records once; later calls with the same parameters and files read the cache.

        Raises:
            EcgtuneError: a missing folder, no records, an unknown parameter or value, a lead a record lacks,
                a table naming unknown or duplicate records, a label map that matches nothing, a patient under
                two splits: each naming the file, record or key.
        """
        resolved, headers = self._resolve(preprocessing)
        build = self._build_records if resolved["task"] == RECORDS_TASK else self._build_beats
        arrays = cache.get_or_build(f"{self.name}-{resolved['task']}", self._cache_params(resolved),
                                    lambda: build(resolved, headers).to_arrays(), sources=lambda: self._sources(resolved))
        return Examples.from_arrays(arrays)

    def prepared_key(self, **preprocessing: Any) -> str:
        """The identity of what `prepare()` returns: the folder, its records, the parameters and the table."""
        return cache.params_key(self._cache_params(self._resolve(preprocessing)[0]))

    def preparation(self, **preprocessing: Any) -> dict:
        """How a raw recording becomes the inputs of these examples (`ecgtune.data.recordings`)."""
        resolved, headers = self._resolve(preprocessing)
        params = {k: v for k, v in resolved.items() if k not in ("records", "table")}
        if resolved["task"] != RECORDS_TASK:
            return {"kind": "beats", "params": params}
        first = headers[resolved["records"][0]]
        return {"kind": "records", "params": params, "leads": resolved["leads"] or list(first.leads),
                "rate": min(h.fs for h in headers.values())}

    def recording(self, record: str):
        """The raw recording (every lead, physical units, its rate, lead names) of ``record``."""
        from ecgtune.data.recordings import Recording

        header = read_header(self.folder, record)
        return Recording(read_leads(self.folder, header, list(header.leads)).T, header.fs, header.leads, name=record)

    def load(self, split: str, *, protocol: str = "random_records", seed: int = 42, **preprocessing: Any) -> Examples:
        """The examples of one split (the protocol with this dataset's default options)."""
        return load_part(self, split, protocol, seed, preprocessing)

    def _cache_params(self, resolved: dict[str, Any]) -> dict[str, Any]:
        tables = sorted({t for t in (resolved.get("table"), _label_table(resolved.get("labels"))) if t})
        return {"dataset": self.name, "format_version": FORMAT_VERSION, "path": str(self.folder), **resolved,
                "table_sha256": [cache.sha256_file(self._table_path(t)) for t in tables]}

    def _sources(self, resolved: dict[str, Any]) -> list[Path]:
        files = [self.folder / f"{r}.hea" for r in resolved["records"]]
        # The signal files each header names (read by every task): the data key follows their bytes too.
        files += sorted({(self.folder / r).parent / name for r in resolved["records"]
                         for name in (self._headers[r].raw.file_name or [])})
        if resolved["task"] != RECORDS_TASK:
            files += [self.folder / f"{r}.{resolved['annotator']}" for r in resolved["records"]]
        return files

    def _table_path(self, table: str) -> Path:
        path = Path(os.path.expanduser(table))
        return path if path.is_absolute() else self.folder / path

    def _resolve(self, preprocessing: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Header]]:
        """Fill defaults, check every parameter against the records' headers; return the JSON-able dict the
        cache key hashes, and the headers read."""
        params = dict(preprocessing)
        task = params.pop("task", None)
        if task not in (None, RECORDS_TASK):
            raise EcgtuneError(f"{self.name}: task must be {RECORDS_TASK!r} (whole records) or left out for beat and "
                               f"window tasks (mode: ...), got {task!r}")
        records = self._records(params.pop("records", None))
        for record in records:
            if record not in self._headers:
                self._headers[record] = read_header(self.folder, record)
        headers = {r: self._headers[r] for r in records}
        nyquist = min(h.fs for h in headers.values()) / 2
        if task == RECORDS_TASK:
            p = self._resolve_records(params, nyquist)
        else:
            p = self._resolve_beats(params, nyquist)
        p["records"] = records
        return p, headers

    def _records(self, wanted: Any) -> list[str]:
        found = find_records(self.folder)
        if wanted is None:
            return found
        names = sorted({str(r).strip() for r in (wanted if isinstance(wanted, list) else [wanted])})
        unknown = [r for r in names if r not in set(found)]
        if unknown or not names:
            raise EcgtuneError(f"{self.name}: records {unknown or names} are not records of {self.folder} "
                               f"(e.g. {', '.join(found[:5])})")
        return names

    def _resolve_beats(self, params: dict[str, Any], nyquist: float) -> dict[str, Any]:
        mode = params.pop("mode", "beats")
        symbol_map = params.pop("symbol_map", None)
        if symbol_map is not None:
            if "labels" in params:
                raise EcgtuneError(f"{self.name}: give labels (binary, aami) or symbol_map, not both")
            if mode == "windows":
                raise EcgtuneError(f"{self.name}: symbol_map labels beats (mode beats or kachuee); windows take labels "
                                   "binary or aami, which rank the classes a window holds")
            if (not isinstance(symbol_map, dict) or not symbol_map
                    or not all(isinstance(v, list) and v and all(isinstance(s, str) for s in v) for v in symbol_map.values())):
                raise EcgtuneError(f"{self.name}: symbol_map must map class names to lists of annotation symbols, "
                                   f"e.g. {{N: [N, L, R], S: [A, a, J, S], V: [V, E]}}; got {symbol_map!r}")
            claimed = [s for v in symbol_map.values() for s in v]
            if len(set(claimed)) != len(claimed):
                raise EcgtuneError(f"{self.name}: symbol_map gives a symbol to two classes: {symbol_map!r}")
        p = beat_task.check_params(self.name, mode, params, nyquist=nyquist, extra_defaults=_BEAT_EXTRA)
        if symbol_map is not None:
            p["symbol_map"] = {str(k): list(v) for k, v in symbol_map.items()}
            p["labels"] = "symbol_map"
        fallback = p["lead_fallback"]
        if not isinstance(fallback, list) or not all(isinstance(s, str) and s for s in fallback):
            raise EcgtuneError(f"{self.name}: lead_fallback must be a list of lead names, got {fallback!r}")
        if not isinstance(p["annotator"], str) or not p["annotator"].isalnum():
            raise EcgtuneError(f"{self.name}: annotator must be an annotation file extension such as atr, got {p['annotator']!r}")
        _check_table_key(self.name, p["table"])
        return {"task": mode, "mode": mode, **p}

    def _resolve_records(self, params: dict[str, Any], nyquist: float) -> dict[str, Any]:
        unknown = sorted(set(params) - set(_RECORD_DEFAULTS))
        if unknown:
            raise EcgtuneError(f"{self.name}: unknown parameter {unknown[0]!r} for task records; accepted: "
                               f"{', '.join(['task', 'records', *sorted(_RECORD_DEFAULTS)])}")
        p = {**_RECORD_DEFAULTS, **params}
        labels = p["labels"]
        if not (isinstance(labels, dict) and len(labels) == 1 and set(labels) <= {"table", "header_dx"}):
            raise EcgtuneError(f"{self.name}: task records needs labels: {{table: labels.csv}} or "
                               f"{{header_dx: {{AF: [164889003], ...}}}}, got {labels!r}")
        if "table" in labels:
            _check_table_key(self.name, labels["table"], key="labels.table")
        else:
            dx = labels["header_dx"]
            if (not isinstance(dx, dict) or not dx
                    or not all(isinstance(v, list) and v and all(isinstance(c, (str, int)) for c in v) for v in dx.values())):
                raise EcgtuneError(f"{self.name}: labels.header_dx must map label names to lists of Dx codes, e.g. "
                                   f"{{AF: [164889003], RBBB: [59118001, 713427006]}}; got {dx!r}")
            p["labels"] = {"header_dx": {str(k): [str(c) for c in v] for k, v in dx.items()}}
        if p["leads"] is not None:
            leads = p["leads"] if isinstance(p["leads"], list) else [p["leads"]]
            if not leads or not all(isinstance(x, str) and x for x in leads) or len({x.upper() for x in leads}) != len(leads):
                raise EcgtuneError(f"{self.name}: leads must be a list of distinct lead names, got {p['leads']!r}")
            p["leads"] = list(leads)
        if p["multi_label"] not in (None, True, False):
            raise EcgtuneError(f"{self.name}: multi_label must be true, false or null (decided by the labels), got {p['multi_label']!r}")
        _check_table_key(self.name, p["table"])
        ptbxl_records.check_signal_params(self.name, p, nyquist=nyquist)
        return {"task": RECORDS_TASK, **dict(sorted(p.items()))}

    def _table(self, p: dict[str, Any], records: list[str]) -> RecordTable | None:
        label_table, table = _label_table(p.get("labels")), p.get("table")
        if label_table and table and self._table_path(label_table) != self._table_path(table):
            raise EcgtuneError(f"{self.name}: table {table!r} and labels.table {label_table!r} differ; name one table "
                               "holding the records' labels, patients and splits")
        chosen = label_table or table
        return read_table(self._table_path(chosen), records) if chosen else None

    # ---------------------------------------------------------------- beat tasks

    def _build_beats(self, p: dict[str, Any], headers: dict[str, Header]) -> Examples:
        table = self._table(p, p["records"])
        leads = {r: read[0] for r, read in choose_leads([headers[r] for r in p["records"]], [p["lead"]],
                                                          p["lead_fallback"]).items()}  # all, up front
        labels = BeatLabels(p["labels"] if p["labels"] != "symbol_map" else "aami", p.get("symbol_map"))
        left_out: dict[str, list[str]] = {}
        past_end, unmapped, matched = 0, Counter(), 0
        parts = []
        for record in progress.steps(p["records"], what=f"{self.name}: preparing {self.folder.name}"):
            header = headers[record]
            annotations = read_annotations(self.folder, record, p["annotator"])
            if annotations is None:
                left_out.setdefault(f"no annotation file .{p['annotator']}", []).append(record)
                continue
            samples, symbols = annotations
            on_signal = (samples >= 0) & (samples < header.length)
            past_end += int((~on_signal).sum())
            samples, symbols = samples[on_signal], symbols[on_signal]
            codes = labels.codes(symbols, p["mode"])
            is_beat = np.isin(symbols, list(BEAT_SYMBOLS))
            unmapped.update(symbols[is_beat & (codes < 0)].tolist())
            matched += int((codes >= 0).sum())
            signal = read_leads(self.folder, header, [leads[record]])[:, 0]
            patient = table.patients.get(record, record) if table else record
            part = beat_task.record_examples(signal, header.fs, samples, symbols, p, labels, record=record,
                                             patient=patient, what=f"{self.name} record {record} ({self.folder / record})")
            parts.append(_with_given_split(part, table, record))
        if not matched:
            raise EcgtuneError(f"{self.name}: the labels {labels.names} match no annotation of .{p['annotator']} in "
                               f"{self.folder}; the beat symbols there: {dict(unmapped.most_common(10)) or 'none'}")
        dropped = {}
        if past_end:
            dropped["annotations past the signal's end"] = past_end
        if unmapped:
            dropped["beats with a symbol outside the label map"] = dict(sorted(unmapped.items()))
        notes = {"database": str(self.folder), "leads": {r: leads[r] for r in p["records"]
                                                         if r not in {x for v in left_out.values() for x in v}},
                 LEFT_OUT: left_out, DROPPED: dropped}
        return Examples.concatenate(parts, label_names=labels.names, empty_inputs=beat_task.empty_inputs(p),
                                    layout=beat_task.layout(p), notes=notes)

    # ---------------------------------------------------------------- whole records

    def _build_records(self, p: dict[str, Any], headers: dict[str, Header]) -> Examples:
        table = self._table(p, p["records"])
        names, targets = self._record_labels(p, headers, table)
        kept = [r for r in p["records"] if targets[r]]
        left_out = {"none of the labels": [r for r in p["records"] if not targets[r]]} if len(kept) < len(p["records"]) else {}
        if not kept:
            raise EcgtuneError(f"{self.name}: the labels {list(names)} match no record of {self.folder}")
        multi = p["multi_label"] if p["multi_label"] is not None else any(len(targets[r]) > 1 for r in kept)
        if not multi:
            several = [r for r in kept if len(targets[r]) > 1]
            if several:
                raise EcgtuneError(f"{self.name}: multi_label is false but record {several[0]} holds the labels "
                                   f"{list(targets[several[0]])}")
        if p["max_records"] is not None:
            kept = _classes_in_turn(kept, [targets[r][0] for r in kept])[: p["max_records"]]
        wanted = p["leads"] or list(headers[kept[0]].leads)
        read = choose_leads([headers[r] for r in kept], wanted)  # every record, up front
        rates = {headers[r].fs for r in kept}
        if p["target_rate"] is None and len(rates) > 1:
            raise EcgtuneError(f"{self.name}: the records have the rates {sorted(rates)} Hz; set target_rate so that "
                               "every record reaches the model at one rate")
        prepared = []
        for record in progress.steps(kept, what=f"{self.name}: preparing {self.folder.name}"):
            header = headers[record]
            inputs = ptbxl_records.prepare_record(read_leads(self.folder, header, read[record]), header.fs, p)
            if prepared and inputs[SIGNAL].shape != prepared[0][SIGNAL].shape:
                raise EcgtuneError(f"{self.name} record {record}: {inputs[SIGNAL].shape[1]} samples after preparation, "
                                   f"record {kept[0]} {prepared[0][SIGNAL].shape[1]}; set length to cut or pad every "
                                   "record to one length")
            prepared.append(inputs)
        if multi:
            y = np.array([[name in targets[r] for name in names] for r in kept], np.float32)
        else:
            y = np.array([names.index(targets[r][0]) for r in kept], np.int64)
        patients = [table.patients.get(r, r) if table else r for r in kept]
        folds = [GIVEN_FOLDS[table.splits[r]] if table and r in table.splits else -1 for r in kept]
        inputs = {name: np.stack([x[name] for x in prepared]) for name in prepared[0]}
        notes = {"database": str(self.folder), "leads": {r: ",".join(read[r]) for r in kept}, LEFT_OUT: left_out,
                 DROPPED: {}}
        return Examples(inputs=inputs, layout=FIXED if ptbxl_records.IMAGE in inputs else SIGNAL, y=y, records=kept,
                        patients=patients, positions=np.zeros(len(kept), np.int64), folds=folds, label_names=names,
                        notes=notes)

    def _record_labels(self, p, headers, table) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        """(label names, each record's labels) from the table or the headers' Dx codes."""
        if "table" in p["labels"]:
            return table.label_names, {r: table.labels.get(r, ()) for r in p["records"]}
        mapping = p["labels"]["header_dx"]
        by_code = {c: name for name, codes in mapping.items() for c in codes}
        targets = {r: tuple(n for n in mapping if n in {by_code.get(c) for c in headers[r].dx_codes()})
                   for r in p["records"]}
        if not any(targets.values()):
            seen = Counter(c for h in headers.values() for c in h.dx_codes())
            raise EcgtuneError(f"{self.name}: labels.header_dx matches no record of {self.folder}; the headers' Dx "
                               f"codes: {dict(seen.most_common(10)) or 'none (no # Dx: line)'}")
        return tuple(mapping), targets


def _label_table(labels: Any) -> str | None:
    return labels.get("table") if isinstance(labels, dict) else None


def _check_table_key(name: str, table: Any, key: str = "table") -> None:
    if table is not None and (not isinstance(table, str) or not table.strip()):
        raise EcgtuneError(f"{name}: {key} must be the path of a CSV file (relative to the database folder), got {table!r}")


def _with_given_split(part: Examples, table: RecordTable | None, record: str) -> Examples:
    """The record's examples carrying the table's split for the `given` protocol (in `folds`)."""
    if table is None or record not in table.splits:
        return part
    return part._with(folds=np.full(len(part), GIVEN_FOLDS[table.splits[record]]))


def _classes_in_turn(records: list[str], classes: list[str]) -> list[str]:
    """The records reordered so that the k-th record of every class comes together: a cap keeps every class."""
    seen: Counter = Counter()
    rank = []
    for c in classes:
        rank.append(seen[c])
        seen[c] += 1
    return [records[i] for i in np.argsort(rank, kind="stable")]


def describe_notes(notes: dict) -> list[str]:
    """The lines a search prints about what preparation read and left out (nothing for datasets without notes)."""
    if not notes:
        return []
    leads = Counter(notes.get("leads", {}).values())
    lines = [f"{notes.get('database', 'data')}: {sum(leads.values())} records read, lead(s) "
             + ", ".join(f"{lead} in {n}" for lead, n in leads.most_common())]
    for why, records in notes.get(LEFT_OUT, {}).items():
        if records:
            shown = ", ".join(records[:10]) + (" ..." if len(records) > 10 else "")
            lines.append(f"  left out {len(records)} record(s) with {why}: {shown}")
    for why, count in notes.get(DROPPED, {}).items():
        lines.append(f"  dropped {why}: {count}")
    return lines
