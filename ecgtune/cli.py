"""The `ecgtune` command: parse, call the library, print. No logic lives here."""

from __future__ import annotations

import argparse
import os
import sys

from ecgtune.errors import EcgtuneError


def cmd_search(args) -> int:
    """Run named search spaces on a Ray cluster (local Ray by default), tracked in MLflow: every unit of
    every space in one schedule."""
    from ecgtune.reporting.summary_tables import format_summary
    from ecgtune.spaces import load_search, shape_search
    from ecgtune.tuning.resources import parse_resources

    spaces, suite = load_search(args.space)
    spaces = shape_search(
        spaces, patients=_csv(args.patients, "--patients"), split=args.split, models=_csv(args.models, "--models"),
        epochs=args.epochs, num_samples=args.num_samples, smoke_test=args.smoke_test,
    )
    resources = parse_resources(args.resources)
    from ecgtune.tuning.search import run_search

    summaries = run_search(
        spaces, suite=suite, address=args.address, mlflow_uri=args.mlflow_uri, data_dir=args.data_dir,
        storage_path=args.storage_path, shared_storage=args.shared_storage, resources=resources, resume=args.resume,
        ui_url=args.mlflow_ui_url,
    )
    for space in spaces:
        if len(spaces) > 1:
            print(f"\n== {space.experiment_name}")
        print(format_summary([s for s in summaries if s.space == space.experiment_name], space.metric))
    return 0


def cmd_by_value(args) -> int:
    """After a search: per value of one hyperparameter (freeze_blocks, say), the trial best on validation
    among those that had it, scored once on test with bootstrap intervals (95 percent). It describes; the
    champion stays the one selection on validation picked."""
    from ecgtune.spaces import load_space
    from ecgtune.reporting.summary_tables import format_by_value
    from ecgtune.tuning.by_value import evaluate_by_value, searched_space

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per checkpoint drowns the table
    space, note = searched_space(load_space(args.space), args.smoke_test, _store(args))
    if note:
        print(note)
    rows, labels = evaluate_by_value(space, args.stage, args.param, mlflow_uri=_store(args), data_dir=args.data_dir)
    print(f"{space.experiment_name} / {args.stage}: the best trial on validation per {args.param}")
    print(format_by_value(rows, args.param, space.metric, labels))
    return 0


def cmd_report(args) -> int:
    """Read the searches in MLflow and write one static HTML page with PNG figures (per experiment: the
    selected model of every unit with its test figures and 95 percent intervals, scratch vs fine-tuned
    per patient, learning curves, confusion matrices) and trials.parquet, one row per trial run."""
    from pathlib import Path

    from ecgtune.reporting.output_folder import check_output_folder, removed_on_error
    from ecgtune.reporting.page import write_report
    from ecgtune.tuning import tracking
    from ecgtune.tuning.space_experiment import experiment_of

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per downloaded figure
    out = Path(args.out)
    check_output_folder(out, "--out")
    mlf = tracking.client(_store(args))
    found = [experiment_of(mlf, name, args.smoke_test) for name in (args.space or [])]
    for _, note in found:
        if note:
            print(note)
    experiments = [*(args.experiment or []), *(name for name, _ in found)]
    ui_url = args.mlflow_ui_url
    if ui_url is None:
        ui_url = mlf.tracking_uri if mlf.tracking_uri.startswith(("http://", "https://")) else tracking.LOCAL_UI
    with removed_on_error(out):
        counts = write_report(mlf, experiments or None, out, ui_url=ui_url or None)
    print(f"report: {out / 'index.html'} ({counts['experiments']} experiment(s), {counts['units']} units); "
          f"{out / 'trials.parquet'} ({counts['trials']} trial runs)")
    return 0


def cmd_predict(args) -> int:
    """Apply a registered champion to recordings (WFDB records, a folder of them, or .npy/.csv signals with
    --fs and --leads): one row per beat or recording with a probability p_<class> per class and the label,
    written to --out (.parquet or .csv). A recording the model cannot take is refused by name; the others
    are predicted (exit 1 when any was refused)."""
    from ecgtune.tuning.apply import predict_files

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    fs = _positive(args.fs, "--fs")
    refused = predict_files(args.model, args.recordings, args.out, tracking_uri=_store(args),
                            fs=fs, leads=_csv(args.leads, "--leads"), annotator=args.annotator, lead=args.lead)
    return 1 if refused else 0


def cmd_evaluate(args) -> int:
    """External validation: score a registered champion once on another labelled database (a dataset block as
    in a space, in a YAML file) through its own preparation of the raw recordings; print per-class
    sensitivity, PPV and F1 with record-bootstrap 95 percent intervals, log an MLflow evaluation run and tag
    the version external.<dataset>.<measure>. Data overlapping the model's training records are refused."""
    from ecgtune.tuning.apply import evaluate_external

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    evaluate_external(args.model, args.dataset, tracking_uri=_store(args), data_dir=args.data_dir)
    return 0


def _positive(value: str | None, flag: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0:
        raise EcgtuneError(f"{flag}: expected a sampling rate in Hz such as 360, got {value!r}")
    return number


def _csv(text: str | None, flag: str) -> list[str] | None:
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise EcgtuneError(f"{flag}: expected a comma-separated list of names, got {text!r}")
    spaced = next((item for item in items if any(c.isspace() for c in item)), None)
    if spaced is not None:  # "100 208": two names, not one record called "100 208"
        raise EcgtuneError(f"{flag}: expected names separated by commas, got {spaced!r} (a name holds no space); "
                           f"e.g. {','.join(spaced.split())}")
    return items


def _store(args) -> str:
    """The MLflow store a command reads (--mlflow-uri, else as `ecgtune search`), checked before use: a URI
    without a scheme or a server that does not answer is one line, not MLflow's traceback minutes later."""
    from ecgtune.tuning.targets import check_tracking_uri
    from ecgtune.tuning.tracking import tracking_uri

    uri = tracking_uri(args.mlflow_uri)
    check_tracking_uri(uri)
    return uri


def cmd_spaces(args) -> int:
    """List the named search spaces with their one-line descriptions."""
    from ecgtune.spaces import list_spaces

    spaces = list_spaces()
    width = max(map(len, spaces), default=0)
    for name, description in spaces.items():
        print(f"{name:{width}}  {description}")
    return 0


def cmd_data_prepare(args) -> int:
    """Download (if missing) and prepare a dataset once, so that searches start from the cache."""
    from ecgtune.data import describe_notes, get_dataset

    params = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EcgtuneError(f"--param {item!r}: expected KEY=VALUE, e.g. records=[100,101] or mode=beats")
        params[key.strip()] = _parse_scalar(value, item)
    extra = {"path": args.path} if args.path else {}
    examples = get_dataset(args.dataset, root=args.data_dir, **extra).prepare(**params)
    for line in describe_notes(examples.notes):
        print(line)
    counts = {name: int(examples.y[:, i].sum() if examples.multi_label else (examples.y == i).sum())
              for i, name in enumerate(examples.label_names)}
    shapes = ", ".join(f"{name} {shape}" for name, shape in examples.input_shapes.items())
    print(f"{args.dataset}: {len(examples)} examples ({shapes}) from "
          f"{len(set(examples.records))} records; classes {counts}")
    return 0


def _parse_scalar(text: str, item: str):
    """A --param value as YAML reads it (numbers, true/false, [lists])."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise EcgtuneError(f"--param {item!r}: the value is not valid YAML ({problem}); e.g. records=[100,101]") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecgtune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help=cmd_search.__doc__, description=cmd_search.__doc__)
    search.add_argument(
        "--space", required=True, action="append",
        help="a name from `ecgtune spaces` (a space or a suite such as all_pairs), or a path to a YAML file; "
        "repeat it to run several spaces in one schedule",
    )
    search.add_argument("--address", help="a running Ray cluster (auto, or host:6379 of its head); default: start a local Ray")
    search.add_argument(
        "--resources", metavar="cpu=N,gpu=M",
        help="what each trial asks for, instead of the spaces' own (e.g. gpu=0 on a cluster without GPUs)",
    )
    search.add_argument(
        "--shared-storage", action="store_true",
        help="the --storage-path folder is mounted on every node of the cluster (NFS and the like)",
    )
    search.add_argument("--mlflow-uri", help="MLflow tracking URI; default: MLFLOW_TRACKING_URI or a SQLite file in ~/.ecgtune")
    search.add_argument(
        "--storage-path",
        help="where Ray keeps checkpoints: a path or s3://... every node reaches; "
        "default: ECGTUNE_STORAGE_PATH or ~/.ecgtune/ray_results",
    )
    search.add_argument("--data-dir", help="folder holding the datasets; default: ECGTUNE_DATA_DIR or ~/.ecgtune/data")
    search.add_argument("--patients", help="comma-separated records for per-patient stages, e.g. 100,208")
    search.add_argument("--split", help="another split protocol than the space's (e.g. inter_patient, chronological)")
    search.add_argument("--models", help="comma-separated subset of the space's models, e.g. cnet,bigru")
    search.add_argument("--epochs", type=int, help="cap every stage at this many epochs (a smaller budget)")
    search.add_argument("--num-samples", type=int, help="configurations sampled per unit (random/optuna searches)")
    search.add_argument("--smoke-test", action="store_true", help="shrink to a CI-sized run, keeping the grid")
    search.add_argument("--resume", action="store_true", help="continue the last interrupted search of this space")
    search.add_argument("--mlflow-ui-url", help="where the MLflow UI shows this store, for the link printed at the end; "
                        "default: the tracking server, or `mlflow ui --port 5000`'s http://127.0.0.1:5000 for a local store")
    search.set_defaults(func=cmd_search)

    by_value = sub.add_parser("by-value", help=cmd_by_value.__doc__, description=cmd_by_value.__doc__)
    by_value.add_argument("--space", required=True, help="the space the search ran (a name or a YAML path)")
    by_value.add_argument("--stage", required=True, help="one of the space's stages, e.g. finetune")
    by_value.add_argument("--param", required=True, help="a trial parameter, e.g. freeze_blocks or lr")
    by_value.add_argument("--smoke-test", action="store_true", help="the smoke-test search of the space (read "
                          "anyway where the space has only smoke-test searches)")
    by_value.add_argument("--mlflow-uri", help="MLflow tracking URI; default: as `ecgtune search`")
    by_value.add_argument("--data-dir", help="folder holding the datasets; default: ECGTUNE_DATA_DIR")
    by_value.set_defaults(func=cmd_by_value)

    report = sub.add_parser("report", help=cmd_report.__doc__, description=cmd_report.__doc__)
    report.add_argument("--space", action="append", help="a space whose experiment to report (repeatable); "
                        "default: every experiment holding an ecgtune search")
    report.add_argument("--experiment", action="append", help="an MLflow experiment by name (repeatable)")
    report.add_argument("--smoke-test", action="store_true", help="the --space's smoke-test experiment (read "
                        "anyway where a space has only smoke-test searches)")
    report.add_argument("--out", default="ecgtune-report", help="folder to write into; default: ./ecgtune-report")
    report.add_argument("--mlflow-uri", help="MLflow tracking URI; default: as `ecgtune search`")
    report.add_argument("--mlflow-ui-url",
                        help="where the MLflow UI shows this store, for the links to runs ('' for none); default: "
                        "the tracking server, or `mlflow ui`'s http://127.0.0.1:5000 for a local store")
    report.set_defaults(func=cmd_report)

    predict = sub.add_parser("predict", help=cmd_predict.__doc__, description=cmd_predict.__doc__)
    predict.add_argument("recordings", nargs="+", help="WFDB records (path without extension, or .hea), folders of "
                         "them, or .npy/.csv signals")
    predict.add_argument("--model", required=True, help="models:/<name>@champion (or models:/<name>/<version>)")
    predict.add_argument("--out", required=True, help="the table to write: predictions.parquet or .csv")
    predict.add_argument("--fs", help="sampling rate in Hz of .npy/.csv signals")
    predict.add_argument("--leads", help="comma-separated lead names of .npy/.csv signals, e.g. I,II,V1")
    predict.add_argument("--annotator", help="beat annotations of WFDB records to take R-peaks from (e.g. atr); "
                         "without it a beat champion detects them")
    predict.add_argument("--lead", help="the recordings' lead a one-lead model reads, whatever the model calls it "
                         "(e.g. ECG1 for a model of MIT-BIH's MLII)")
    predict.add_argument("--mlflow-uri", help="MLflow tracking URI; default: as `ecgtune search`")
    predict.set_defaults(func=cmd_predict)

    evaluate = sub.add_parser("evaluate", help=cmd_evaluate.__doc__, description=cmd_evaluate.__doc__)
    evaluate.add_argument("--model", required=True, help="models:/<name>@champion (or models:/<name>/<version>)")
    evaluate.add_argument("--dataset", required=True, help="a YAML file holding a dataset block as in a space")
    evaluate.add_argument("--data-dir", help="folder holding the datasets; default: ECGTUNE_DATA_DIR")
    evaluate.add_argument("--mlflow-uri", help="MLflow tracking URI; default: as `ecgtune search`")
    evaluate.set_defaults(func=cmd_evaluate)

    spaces = sub.add_parser("spaces", help=cmd_spaces.__doc__, description=cmd_spaces.__doc__)
    spaces.set_defaults(func=cmd_spaces)

    data = sub.add_parser("data", help="dataset commands")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    prepare = data_sub.add_parser("prepare", help=cmd_data_prepare.__doc__, description=cmd_data_prepare.__doc__)
    prepare.add_argument("dataset", help="a dataset name, e.g. mitdb")
    prepare.add_argument("--data-dir", help="folder holding the datasets")
    prepare.add_argument("--path", help="the database folder of dataset wfdb (absolute, or below the data folder)")
    prepare.add_argument("--param", action="append", metavar="KEY=VALUE", help="a preprocessing parameter, repeatable")
    prepare.set_defaults(func=cmd_data_prepare)
    return parser


INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C


def quiet_store_creation() -> None:
    """"Creating initial MLflow database tables..." at every new SQLite store is MLflow talking to itself; an
    error line of ecgtune's should be the only line a refused command prints. Process-wide, so set here
    (the library leaves a caller's log levels alone)."""
    import logging

    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_store_creation()
    try:
        return args.func(args)
    except EcgtuneError as exc:
        print(f"ecgtune: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        detail = f" ({exc})" if str(exc) else ""
        print(f"ecgtune: interrupted{detail}; a search that had started goes on with --resume", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
