"""Optuna TPE + ASHA against the seed's 18-run grid, per patient: the epochs each spends and the best
validation value each reaches (issue 10: TPE must reach the grid's best with fewer epochs to be worth it).

Both searches run the same values (lr x batch size x weighted sampling) on the same patients, each in
its own MLflow store and Ray results folder, one after the other, with the same epoch cap:

    ECGTUNE_DATA_DIR=../shared/data python benchmarks/bench_tpe_vs_grid.py [--patients 100,119,208] [--epochs 15]

Prints figures; asserts nothing. "epochs" counts every epoch every trial trained (what a cluster pays);
"to reach" counts, in the order the trials started, the epochs spent until a trial first reached the
grid's best validation value of that patient (the grid's own figure is its total: a grid has no order).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACES = {"grid": "individuals_patients", "tpe+asha": "individuals_patients_tpe"}


def run_search(space: str, patients: str, epochs: int, folder: Path) -> tuple[str, float]:
    uri = f"sqlite:///{folder / f'{space}.db'}"
    command = [sys.executable, "-m", "ecgtune.cli", "search", "--space", space, "--patients", patients,
               "--epochs", str(epochs), "--mlflow-uri", uri, "--storage-path", str(folder / f"{space}-ray")]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return uri, time.perf_counter() - start


def trials_by_patient(uri: str, space: str, metric: str) -> dict[str, list[tuple[int, list[float]]]]:
    """patient -> [(trial start time, the metric per epoch)], every trial run of the search."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri, uri)
    exp = client.get_experiment_by_name(space)
    out: dict[str, list] = {}
    for run in client.search_runs([exp.experiment_id], filter_string="tags.`ecgtune.trial_id` != ''", max_results=10_000):
        history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
        out.setdefault(run.data.tags["ecgtune.patient"], []).append((run.info.start_time, [m.value for m in history]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", default="100,119,208")
    parser.add_argument("--epochs", type=int, default=15, help="the epoch cap of both searches")
    args = parser.parse_args()
    metric = "val_balanced_accuracy"
    results, walls = {}, {}
    with tempfile.TemporaryDirectory() as d:
        for label, space in SPACES.items():
            uri, walls[label] = run_search(space, args.patients, args.epochs, Path(d))
            results[label] = trials_by_patient(uri, space, metric)
    print(f"{metric} per patient, epochs capped at {args.epochs} (early stopping patience 5 in both)")
    print(f"{'patient':>8}  {'grid trials':>11}  {'grid epochs':>11}  {'grid best':>9}  {'tpe trials':>10}  "
          f"{'tpe epochs':>10}  {'tpe best':>8}  {'tpe epochs to reach grid best':>29}")
    totals = {"grid": 0, "tpe": 0, "reached": 0}
    for patient in sorted(results["grid"]):
        grid, tpe = results["grid"][patient], sorted(results["tpe+asha"].get(patient, []))
        grid_best = max(max(h) for _, h in grid if h)
        tpe_best = max((max(h) for _, h in tpe if h), default=float("nan"))
        spent, reach = 0, None
        for _, history in tpe:  # in start order: the epochs paid until the grid's best was first reached
            for value in history:
                spent += 1
                if reach is None and value >= grid_best:
                    reach = spent
        grid_epochs = sum(len(h) for _, h in grid)
        totals["grid"] += grid_epochs
        totals["tpe"] += spent
        totals["reached"] += reach is not None
        print(f"{patient:>8}  {len(grid):>11}  {grid_epochs:>11}  {grid_best:>9.4f}  {len(tpe):>10}  {spent:>10}  "
              f"{tpe_best:>8.4f}  {reach if reach is not None else 'not reached':>29}")
    print(f"epochs in all: grid {totals['grid']}, tpe+asha {totals['tpe']} ({totals['tpe'] / max(totals['grid'], 1):.0%}); "
          f"tpe reached the grid's best on {totals['reached']} of {len(results['grid'])} patients; "
          f"wall time grid {walls['grid']:.0f} s, tpe+asha {walls['tpe+asha']:.0f} s (2 CPU slots)")


if __name__ == "__main__":
    main()
