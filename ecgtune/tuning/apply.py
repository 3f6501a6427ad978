"""A registered champion applied to recordings it never saw: `ecgtune predict` (recordings in, a table of
class probabilities out) and `ecgtune evaluate` (external validation on another labelled database, logged
as an MLflow evaluation run linked to the model version). Neither selects anything: an external figure is
a final figure.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgtune.errors import EcgtuneError

TRAINING_RECORDS = "training/records.json"  # on the selected run: the data folder and its train/val records
EVALUATION_TAG = "ecgtune.evaluation"


@dataclass(frozen=True)
class Champion:
    """A registered version loaded for raw recordings: its predictor and the registry's facts about it."""

    predictor: object  # ecgtune.tuning.champion_model.ChampionPredictor
    name: str
    version: str
    run_id: str
    model_id: str | None


def load_champion(model_uri: str, tracking_uri: str) -> Champion:
    """``models:/<name>@<alias>`` or ``models:/<name>/<version>``, downloaded and loaded for raw recordings.

    Raises:
        EcgtuneError: an unknown model or version, or one registered before champions took raw recordings.
    """
    import mlflow
    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient

    from ecgtune.tuning.champion_model import DATA, LOADER, ChampionPredictor
    from ecgtune.tuning.promotion import use_uri

    use_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    if not model_uri.startswith("models:/"):
        raise EcgtuneError(f"--model {model_uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>")
    reference = model_uri[len("models:/"):]
    try:
        if "@" in reference:
            name, alias = reference.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = reference.rsplit("/", 1)
            version = client.get_model_version(name, number)
    except (mlflow.exceptions.MlflowException, ValueError) as err:
        raise EcgtuneError(f"--model {model_uri}: no such registered model version in {tracking_uri} "
                           f"({' '.join(str(err).split())[:200]})") from None
    folder = Path(download_artifacts(artifact_uri=f"models:/{name}/{version.version}",
                                     dst_path=tempfile.mkdtemp(prefix="ecgtune-champion-")))
    pyfunc = mlflow.models.Model.load(str(folder / "MLmodel")).flavors.get("python_function", {})
    if pyfunc.get("loader_module") != LOADER:
        raise EcgtuneError(f"--model {model_uri}: version {version.version} takes tensors only (registered by an "
                           "earlier ecgtune, or trained on beats already cut); search again to register one that "
                           "takes raw recordings")
    return Champion(ChampionPredictor(folder / DATA), name, str(version.version), version.run_id,
                    getattr(version, "model_id", None))


def predict_files(model_uri: str, items: list[str], out: str, *, tracking_uri: str, fs: float | None = None,
                  leads: list[str] | None = None, annotator: str | None = None, lead: str | None = None,
                  echo=print) -> list[tuple[str, str]]:
    """Predict every recording of ``items`` and write the rows to ``out`` (.parquet or .csv); with ``lead``,
    each recording's lead of that name is what a one-lead model reads (ECG1 for a model of MLII).

    Returns:
        (recording, why) of each recording refused (a lead it lacks, a rate it cannot convert): the others
        are predicted all the same.
    """
    import pandas as pd

    from ecgtune.data import progress
    from ecgtune.data.recording_files import read_recording, recording_paths

    target = Path(out)
    if target.suffix not in (".parquet", ".csv"):
        raise EcgtuneError(f"--out {out}: expected a .parquet or .csv file")
    paths = recording_paths(items)
    if not paths:
        raise EcgtuneError(f"no recordings in {', '.join(items)}")
    champion = load_champion(model_uri, tracking_uri)
    frames, refused = [], []
    for path in progress.steps(paths, what="predicting"):
        try:
            recording = one_lead(read_recording(path, fs=fs, leads=leads, annotator=annotator), lead)
            frames.append(champion.predictor.predict_recording(recording))
        except EcgtuneError as err:
            refused.append((str(path), str(err)))
            echo(f"refused {path}: {err}")
    if not frames:
        raise EcgtuneError(f"no recording could be predicted ({len(refused)} refused; first: {refused[0][1]})")
    table = pd.concat(frames, ignore_index=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(target, index=False) if target.suffix == ".parquet" else table.to_csv(target, index=False)
    echo(f"{len(table)} rows from {len(frames)} recording(s) -> {target}"
         + (f"; {len(refused)} refused" if refused else ""))
    return refused


# ---------------------------------------------------------------- external validation


def read_dataset_file(path: str) -> dict:
    """A ``dataset:`` block as in a space (name, path, preprocessing, and optionally split: then only the test
    part of that protocol is scored), from a YAML file.

    Raises:
        EcgtuneError: an unreadable file or a block without a dataset name.
    """
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise EcgtuneError(f"--dataset {path}: not a readable YAML file ({' '.join(str(err).split())[:200]})") from None
    block = raw.get("dataset", raw) if isinstance(raw, dict) else None
    if not isinstance(block, dict) or not isinstance(block.get("name"), str):
        raise EcgtuneError(f"--dataset {path}: expected a dataset block (name, path, preprocessing) as in a space")
    unknown = sorted(set(block) - {"name", "path", "preprocessing", "split"})
    if unknown:
        raise EcgtuneError(f"--dataset {path}: key {unknown[0]!r}: expected name, path, preprocessing")
    return block


def evaluate_external(model_uri: str, dataset_file: str, *, tracking_uri: str, data_dir: str | None = None,
                      echo=print) -> dict[str, float]:
    """Score a champion once on every labelled example of another database, through its own preparation of
    the raw recordings (the external dataset gives the recordings, the labels and, for beats, the R-peaks).

    Returns:
        ``external_<measure>`` figures and their ``_ci_low`` / ``_ci_high``.

    Raises:
        EcgtuneError: a dataset that overlaps the model's training records, or whose classes the model lacks.
    """
    from mlflow.tracking import MlflowClient

    from ecgtune.data import describe_notes, get_dataset, progress
    from ecgtune.data.recordings import Recording, recording_inputs
    from ecgtune.training.bootstrap import record_bootstrap
    from ecgtune.training.metrics import classification_metrics

    block = read_dataset_file(dataset_file)
    champion = load_champion(model_uri, tracking_uri)
    predictor = champion.predictor
    dataset = get_dataset(block["name"], root=data_dir, **({"path": block["path"]} if "path" in block else {}))
    preprocessing = block.get("preprocessing") or {}
    examples = dataset.prepare(**preprocessing)
    for line in describe_notes(examples.notes):
        echo(line)
    if "split" in block:  # the test part of a protocol: the model's own test set, scored through raw recordings
        from ecgtune.data import assign_split, protocol_options

        options = protocol_options(block["name"], preprocessing, block["split"], where=f"--dataset {dataset_file}")
        examples = examples.subset(assign_split(block["split"], examples, **options) == "test")
    client = MlflowClient(tracking_uri)
    _refuse_overlap(client, champion, dataset, examples)
    y = _model_targets(examples, predictor.label_names, dataset_file)
    beats = predictor.spec["preparation"]["kind"] in ("beats", "detected_beats")
    logits = np.full((len(examples), predictor.spec["model_spec"]["num_outputs"]), np.nan, np.float32)
    for record in progress.steps(list(dict.fromkeys(examples.records.tolist())), what="evaluating"):
        rows = np.flatnonzero(examples.records == record)
        raw = one_lead(dataset.recording(record), examples.notes.get("leads", {}).get(record)) if beats else \
            dataset.recording(record)
        rpeaks = examples.positions[rows] if beats else None
        prepared = recording_inputs(predictor.spec["preparation"], Recording(raw.signal, raw.fs, raw.leads, rpeaks, record))
        out = predictor.logits(prepared.inputs)
        if beats:  # each labelled beat's logits, where the champion's preparation kept the beat
            found = _matched_beats(examples.positions[rows], prepared.positions, raw.fs, prepared.rpeaks)
            logits[rows[found >= 0]] = out[found[found >= 0]]
        else:
            logits[rows] = out[0]
    scored = np.flatnonzero(np.isfinite(logits).all(axis=1))
    if not len(scored):
        raise EcgtuneError(f"--dataset {dataset_file}: the champion's preparation kept none of its examples")
    logits, y, records = logits[scored], y[scored], examples.records[scored]
    thresholds = predictor.thresholds
    names = predictor.label_names
    scores = tuple(predictor.spec.get("scores", ()))
    with warnings.catch_warnings():  # classes absent from a database (or a draw) are expected, and shown as "-"
        warnings.simplefilter("ignore", UserWarning)
        figures = classification_metrics(logits, y, "external", names, scores, thresholds=thresholds)
        measures = [k for k in figures if k.split("_", 1)[1].startswith(("f1", "recall", "precision", "balanced_accuracy",
                                                                          "auroc_macro", *scores))]
        spread = record_bootstrap(lambda rows: {k: v for k, v in classification_metrics(
            logits[rows], y[rows], "external", names, scores, thresholds=thresholds).items() if k in measures}, records)
    for key, (low, high) in spread.items():
        figures[f"{key}_ci_low"], figures[f"{key}_ci_high"] = low, high
    label = f"{block['name']}_{Path(block['path']).name}" if "path" in block else block["name"]
    confusion = _confusion(logits, y, names, thresholds)
    _log_evaluation(client, champion, label, block, figures, confusion, len(scored), len(set(records)))
    heading = f"test part of {block['split']}" if "split" in block else "external validation"
    for line in external_table(figures, names, len(scored), len(examples), len(set(records)), heading):
        echo(line)
    return figures


MATCH_SECONDS = 0.15  # a detected R-peak stands for the labelled beat this close (Kachuee's matching tolerance)


def _matched_beats(labelled: np.ndarray, predicted: np.ndarray, fs: float, source: str) -> np.ndarray:
    """For each labelled beat, the row of the champion's beats at the same R-peak, -1 where it has none. A
    champion that detects its own R-peaks (PTB-XL's MI task) is matched to the nearest within MATCH_SECONDS."""
    from ecgtune.data.kachuee import match_peaks
    from ecgtune.data.recordings import DETECTED

    if source == DETECTED:
        return match_peaks(labelled, predicted, int(round(MATCH_SECONDS * fs)))
    where = {int(p): i for i, p in enumerate(predicted)}
    return np.asarray([where.get(int(p), -1) for p in labelled], np.int64)


def one_lead(recording, lead: str | None):
    """The recording reduced to ``lead``, unnamed: the lead a one-lead model is given whatever its name there
    (another database's ECG1 for a model of MIT-BIH's MLII); the recording itself without a lead named."""
    from ecgtune.data.recordings import Recording

    if not lead:
        return recording
    names = [n.upper() for n in recording.leads]
    if lead.upper() not in names:
        raise EcgtuneError(f"{recording.name}: no lead {lead!r}; its leads: {list(recording.leads)}")
    row = names.index(lead.upper())
    return Recording(recording.signal[row:row + 1], recording.fs, (), recording.rpeaks, recording.name)


def _model_targets(examples, model_names: list[str], where: str) -> np.ndarray:
    """The external labels as the model's class indices (single-label) or label columns (multi-label)."""
    theirs = list(examples.label_names)
    unknown = [n for n in theirs if n not in model_names]
    if unknown:
        raise EcgtuneError(f"--dataset {where}: its classes {theirs} include {unknown}, which the champion does not "
                           f"predict ({model_names}); map the database's labels to the champion's classes")
    if examples.multi_label:
        y = np.zeros((len(examples), len(model_names)), np.float32)
        for j, name in enumerate(theirs):
            y[:, model_names.index(name)] = examples.y[:, j]
        return y
    return np.asarray([model_names.index(theirs[c]) for c in examples.y], np.int64)


def _refuse_overlap(client, champion: Champion, dataset, examples) -> None:
    """An external figure must come from recordings the model never trained or was selected on."""
    from mlflow.artifacts import download_artifacts

    try:
        with tempfile.TemporaryDirectory() as d:
            trained = json.loads(Path(download_artifacts(run_id=champion.run_id, artifact_path=TRAINING_RECORDS,
                                                         dst_path=d, tracking_uri=client.tracking_uri)).read_text())
    except Exception:  # noqa: BLE001 - a version registered before its records were kept
        raise EcgtuneError(f"{champion.name} version {champion.version}: its training records are not on its run "
                           f"({TRAINING_RECORDS}), so no overlap can be ruled out; search again to register one") from None
    source = str(Path(getattr(dataset, "folder", "")).resolve())
    if trained.get("source") != source:
        return
    overlap = sorted(set(examples.records.tolist()) & set(trained.get("records", [])))
    if overlap:
        raise EcgtuneError(f"{champion.name} version {champion.version} trained or was selected on {len(overlap)} of "
                           f"these records ({', '.join(overlap[:5])}{' ...' if len(overlap) > 5 else ''}) of {source}; "
                           "an external figure needs recordings it never saw")


def _confusion(logits, y, names, thresholds) -> np.ndarray:
    from sklearn.metrics import confusion_matrix

    from ecgtune.training.metrics import predictions

    if thresholds is not None:
        from ecgtune.training.multilabel import label_counts, sigmoid

        return label_counts(sigmoid(logits), y, thresholds)
    return confusion_matrix(y, predictions(logits), labels=np.arange(len(names)))


def _log_evaluation(client, champion: Champion, label: str, block: dict, figures: dict, confusion, n_examples: int,
                    n_records: int) -> None:
    """An MLflow evaluation run beside the version's training run, its figures linked to the logged model, and
    ``external.<dataset>.<measure>`` tags on the version."""
    run = client.get_run(champion.run_id)
    evaluation = client.create_run(run.info.experiment_id, run_name=f"external {label} {champion.name} v{champion.version}",
                                   tags={EVALUATION_TAG: "external", "ecgtune.model_version": f"{champion.name}/{champion.version}",
                                         "mlflow.parentRunId": run.data.tags.get("mlflow.parentRunId", champion.run_id)})
    run_id = evaluation.info.run_id
    try:
        client.log_param(run_id, "dataset", json.dumps(block, sort_keys=True)[:6000])
        client.log_param(run_id, "examples", n_examples)
        client.log_param(run_id, "records", n_records)
        for key, value in figures.items():
            if np.isfinite(value):
                client.log_metric(run_id, key, float(value), model_id=champion.model_id)
        client.log_dict(run_id, {"labels": list(champion.predictor.label_names), "counts": np.asarray(confusion).tolist()},
                        "confusion/external.json")
        for key in ("f1_macro", "balanced_accuracy", "auroc_macro", *champion.predictor.spec.get("scores", ())):
            if f"external_{key}" in figures and np.isfinite(figures[f"external_{key}"]):
                text = f"{figures[f'external_{key}']:.4f}"
                if f"external_{key}_ci_low" in figures:
                    text += f" [{figures[f'external_{key}_ci_low']:.4f}, {figures[f'external_{key}_ci_high']:.4f}]"
                client.set_model_version_tag(champion.name, champion.version, f"external.{label}.{key}", text)
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise


def external_table(figures: dict, names: list[str], n_examples: int, n_all: int, n_records: int,
                   heading: str = "external validation") -> list[str]:
    """Per class sensitivity, PPV and F1 with their intervals, then the macro figures."""
    def cell(key: str) -> str:
        value = figures.get(key)
        if value is None or not np.isfinite(value):
            return "-"
        low, high = figures.get(f"{key}_ci_low"), figures.get(f"{key}_ci_high")
        return f"{value:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None else "")

    lines = [f"{heading}: {n_examples} of {n_all} examples scored, {n_records} records"
             + ("" if n_records >= 20 else " (fewer than 20 records: no intervals)"),
             f"{'class':>8}  {'sensitivity':>24}  {'PPV':>24}  {'F1':>24}"]
    for name in names:
        lines.append(f"{name:>8}  {cell(f'external_recall_{name}'):>24}  {cell(f'external_precision_{name}'):>24}  "
                     f"{cell(f'external_f1_{name}'):>24}")
    for key in ("f1_macro", "balanced_accuracy", "auroc_macro", "cinc_f1"):
        if f"external_{key}" in figures:
            lines.append(f"{key:>18}  {cell(f'external_{key}')}")
    return lines
