"""ecgtune's fixed cost per trial against Ray Tune's own. Prints figures; asserts nothing.

The same trials, one epoch each of a tiny model (a one-block residual CNN of 4 channels on the 300
windows of MIT-BIH record 100, learning rates drawn at random), on the same local Ray, with the same
concurrency (one CPU per trial):

- ecgtune: `run_search` of that space: its Tune run (its searcher and schedulers, an MLflow run per
  trial in a SQLite store, the progress lines), and, once per search, its setup (the MLflow store,
  experiment and parent run, the checks of the space against the data) and the unit's selection, test
  evaluation and promotion: ``ecgtune_s_per_trial`` is the Tune run's wall time per trial,
  ``ecgtune_whole_search_s_per_trial`` the whole search's;
- bare Tune: `tune.run` of the same training function over the same configurations, nothing else,
  with the same actor reuse as ecgtune's run (`reuse_actors=True`); with `--fresh-actors` also with
  Tune's default, a fresh actor (process: torch and Ray Tune imported again) per trial.

Wall time per trial is the run's wall time over its trials (data prepared and cached beforehand, Ray
started once for all the runs; the runs alternate, ``--repeat`` times each, and the medians are printed).

    ECGTUNE_DATA_DIR=../shared/data python benchmarks/bench_overhead.py --trials 200 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPACE = """\
description: bench_overhead - one-epoch trials of a tiny model, to measure the cost of a trial itself
task: overhead
dataset:
  name: mitdb
  split: per_patient
  preprocessing: {{mode: windows, labels: binary, records: [100], max_per_record: 300}}
model: {{name: cnn1d_residual, num_blocks: 1, block_channels: 4, kernel_size: 3}}
metric: val_balanced_accuracy
mode: max
resources: {{cpu: 1, gpu: 0}}
stages:
  - stage: pretrain
    search: {{algorithm: random, num_samples: {trials}}}
    params:
      lr: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
      batch_size: 64
      epochs: 1
"""


def bare_tune(space, data, trials: int, storage: Path, reuse_actors: bool) -> float:
    """Seconds of a bare `tune.run` of ecgtune's training function over the unit's configurations."""
    import ray
    from ray import tune

    from ecgtune.training.trainable import train_fn
    from ecgtune.tuning.plan import build_plan
    from ecgtune.tuning.tuner import param_space

    [unit] = build_plan([space])
    config = param_space(unit, data.key, {"cpu": 1, "gpu": 0})
    datasets = {data.key: ray.put((data.examples, data.split_labels))}
    trainable = tune.with_resources(tune.with_parameters(train_fn, datasets=datasets), {"cpu": 1, "gpu": 0})
    start = time.perf_counter()
    analysis = tune.run(trainable, config=config, num_samples=trials, storage_path=str(storage),
                        name=f"bare-{int(reuse_actors)}", reuse_actors=reuse_actors, verbose=0,
                        raise_on_failed_trial=True)
    seconds = time.perf_counter() - start
    assert len(analysis.trials) == trials
    return seconds


def ecgtune_search(space, trials: int, root: Path) -> tuple[float, float]:
    """Seconds of the whole `run_search`, and of its Tune run (its trials with their searcher, schedulers
    and callbacks, MLflow writes flushed), without the search's own setup and the unit's selection."""
    from ecgtune.tuning import tuner
    from ecgtune.tuning.search import run_search

    spans = []
    run_trials = tuner.run_trials

    def timed(**kwargs):
        start = time.perf_counter()
        try:
            return run_trials(**kwargs)
        finally:
            spans.append(time.perf_counter() - start)

    tuner.run_trials = timed  # run_search looks it up when it runs
    try:
        start = time.perf_counter()
        root.mkdir(parents=True, exist_ok=True)
        summaries = run_search([space], mlflow_uri=f"sqlite:///{root / 'mlflow.db'}", storage_path=str(root / "ray"),
                               echo=lambda *a, **k: None)
        seconds = time.perf_counter() - start
    finally:
        tuner.run_trials = run_trials
    assert len(summaries) == 1 and summaries[0].failed_trials == 0, summaries
    return seconds, spans[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2, help="CPUs of the local Ray: trials at once")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs of each; medians are printed")
    parser.add_argument("--fresh-actors", action="store_true",
                        help="also a bare run with Tune's default, a fresh actor per trial (seconds per trial)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="ecgtune-overhead-", dir="/tmp"))
    os.environ["ECGTUNE_HOME"] = str(root / "home")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        import ray

        from ecgtune.spaces import load_space
        from ecgtune.tuning.prepared import prepare_data

        path = root / "overhead.yaml"
        path.write_text(SPACE.format(trials=args.trials))
        space = load_space(str(path))
        data = prepare_data(space, None)  # prepared once here: every run below reads the cached arrays
        ray.init(num_cpus=args.concurrency, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        try:
            fresh = None
            if args.fresh_actors:
                fresh = bare_tune(space, data, args.trials, root / "fresh", reuse_actors=False)
                print(f"bare tune.run, a fresh actor per trial: {fresh:.1f} s", file=sys.stderr)
            # Another developer's work shares this machine's cores: the runs alternate, and each figure is
            # the median of its repeats.
            bare, ours, whole = [], [], []
            for repeat in range(args.repeat):
                bare.append(bare_tune(space, data, args.trials, root / f"bare{repeat}", reuse_actors=True))
                print(f"bare tune.run, actors reused: {bare[-1]:.1f} s", file=sys.stderr)
                with contextlib.redirect_stdout(sys.stderr):  # its progress lines: stdout is the figures'
                    w, t = ecgtune_search(space, args.trials, root / f"ecgtune{repeat}")
                whole.append(w)
                ours.append(t)
                print(f"ecgtune: {t:.1f} s its Tune run, {w:.1f} s the whole search", file=sys.stderr)
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    median = statistics.median
    out = {"trials": args.trials, "concurrency": args.concurrency, "repeats": args.repeat,
           "ecgtune_s_per_trial": round(median(ours) / args.trials, 4),
           "ecgtune_whole_search_s_per_trial": round(median(whole) / args.trials, 4),
           "bare_tune_s_per_trial": round(median(bare) / args.trials, 4)}
    if fresh is not None:
        out["bare_tune_fresh_actors_s_per_trial"] = round(fresh / args.trials, 4)
    out["ecgtune_over_bare"] = round(out["ecgtune_s_per_trial"] / out["bare_tune_s_per_trial"], 3)
    out["whole_search_over_bare"] = round(out["ecgtune_whole_search_s_per_trial"] / out["bare_tune_s_per_trial"], 3)
    if args.json:
        print(json.dumps(out))
        return
    print(f"{args.trials} one-epoch trials, {args.concurrency} at once: ecgtune {out['ecgtune_s_per_trial']:.3f} s per "
          f"trial in its Tune run ({out['ecgtune_whole_search_s_per_trial']:.3f} s with the search's setup, selection, "
          f"test and promotion), bare tune.run {out['bare_tune_s_per_trial']:.3f} s (actors reused as ecgtune's): "
          f"x{out['ecgtune_over_bare']:.2f}"
          + (f"; bare with a fresh actor per trial (Tune's default) {fresh / args.trials:.3f} s" if fresh else ""))


if __name__ == "__main__":
    main()
