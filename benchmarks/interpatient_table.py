"""The inter-patient heartbeat table (issue 14) from MLflow, after searches of heartbeat_interpatient and
heartbeat_interpatient_patientnorm: per selected model (the latest selection of each unit) its validation
macro F1 on the DS1 validation records, its configuration, and on DS2 the test macro F1 with its bootstrap
interval and the S and V sensitivity and PPV, as the search logged them (nothing is re-scored).

    python benchmarks/interpatient_table.py [--mlflow-uri URI]
"""

from __future__ import annotations

import argparse

SPACES = ("heartbeat_interpatient", "heartbeat_interpatient_patientnorm")


def main() -> None:
    from ecgtune.tuning.tracking import client, tracking_uri

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mlflow-uri", default=None)
    args = parser.parse_args()
    mlf = client(tracking_uri(args.mlflow_uri))
    print("| space | model | selected (class weights, focal gamma, lr, batch) | epochs | val macro F1 | "
          "test macro F1 [95 % CI] | S sens | S PPV | V sens | V PPV |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for space in SPACES:
        exp = mlf.get_experiment_by_name(space)
        if exp is None:
            continue
        latest = {}
        for run in mlf.search_runs([exp.experiment_id], "tags.`ecgtune.selected` = 'true'", order_by=["start_time DESC"]):
            latest.setdefault(run.data.tags["ecgtune.unit"], run)
        for unit, run in sorted(latest.items()):
            p, m = run.data.params, run.data.metrics
            config = (f"{p.get('train.class_weights')}, {float(p.get('train.focal_gamma', 0)):g}, "
                      f"{float(p['train.lr']):.2g}, {p['train.batch_size']}")
            print(f"| {space} | `{run.data.tags['ecgtune.model']}` | {config} | {int(m.get('epoch', 0))} | "
                  f"{m.get('best_metric', float('nan')):.4f} | {m['test_f1_macro']:.4f} "
                  f"[{m.get('test_f1_macro_ci_low', float('nan')):.4f}, {m.get('test_f1_macro_ci_high', float('nan')):.4f}] | "
                  + " | ".join(f"{m.get(f'test_{k}_{c}', float('nan')):.3f}" for c in ("S", "V") for k in ("recall", "precision"))
                  + " |")


if __name__ == "__main__":
    main()
