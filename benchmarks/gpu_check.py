"""The GPU measurements of benchmarks/gpu_check.sh: P1, trials per GPU, mixed precision on and off.

Prints figures and writes them as one JSON and one Markdown table; asserts nothing. Synthetic windows of
the MIT-BIH study's shapes (1 lead x 128 samples; 29 records for pre-training, one for a per-patient
trial) and, for mixed precision, PTB-XL's 12 leads x 1,024 samples: a lent GPU machine holds no dataset.

1. P1: epoch time of the seed's pre-training in a Ray Tune trial of ecgtune's trainable against a bare
   loop of the same steps (same model, seed, optimizer and batches) in this process, on the same GPU.
2. Trials per GPU: k = 1, 2, 4, 8 per-patient trials at once on one GPU (gpu: 1/k each); the examples
   trained per second by all of them together, each trial's epoch time, and the GPU's utilization
   sampled from nvidia-smi while they ran.
3. Mixed precision: epoch time of a bare loop in fp32, fp16 (with loss scaling) and bf16, for the small
   CNN and for Ribeiro's ResNet at CPU size.

    python benchmarks/gpu_check.py --out DIR              # on a GPU machine (gpu_check.sh calls it)
    python benchmarks/gpu_check.py --out DIR --dry-run    # the same code path on the CPU, tiny sizes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Sizes on a GPU, chosen so that the whole script stays well under 8 minutes on one GPU (H100: minutes).
FULL = {"records": 29, "per_record": 1800, "p1_epochs": 6, "patient_windows": 1800, "pack_epochs": 30,
        "packs": (1, 2, 4, 8), "amp_epochs": 3, "amp_records": 2000, "amp_length": 1024}
DRY = {"records": 2, "per_record": 120, "p1_epochs": 3, "patient_windows": 120, "pack_epochs": 2,
       "packs": (1, 2), "amp_epochs": 1, "amp_records": 32, "amp_length": 256}


def windows(records: int, per_record: int, seed: int = 0):
    """Separable MIT-BIH-shaped windows and their per-patient split (records named 100, 101, ...)."""
    from ecgtune.data import assign_split
    from tests.conftest import synthetic_examples

    examples = synthetic_examples(n_per_record=per_record, records=tuple(str(100 + i) for i in range(records)), seed=seed)
    return examples, assign_split("per_patient", examples)


def train_config(**train) -> dict:
    from ecgtune.spaces import TRAIN_DEFAULTS

    return {
        # The seed's pre-training values (search_spaces/finetune_patients.yaml).
        "train": {**TRAIN_DEFAULTS, "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 32, **train},
        "model": {"name": "cnn1d_residual", "hparams": {}},
        "stage": "pretrain", "patient": None, "metric": "val_balanced_accuracy", "mode": "max",
        "data": "windows", "init_weights": None,
    }


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_epochs(examples, labels, config: dict, device) -> list[float]:
    """Seconds per epoch (train and validation) of the trainable's steps without Ray: the same seed, model,
    optimizer and epoch orders as ``train_fn`` draws them."""
    import torch

    from ecgtune.training.batches import TensorSplit, epoch_order, select
    from ecgtune.training.checkpoint import build_model, model_spec
    from ecgtune.training.loop import autocast_dtype, run_epoch
    from ecgtune.training.optim import build_optimizer

    cfg = config["train"]
    torch.manual_seed(cfg["seed"])
    generator = torch.Generator().manual_seed(cfg["seed"])
    train = TensorSplit.of(examples, select(examples, labels, "train", None), device)
    val = TensorSplit.of(examples, select(examples, labels, "val", None), device)
    model = build_model(model_spec(config, examples)).to(device)
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    precision = cfg["precision"]
    scaler = torch.amp.GradScaler("cuda") if autocast_dtype(device, precision) == torch.float16 else None
    seconds = []
    for _ in range(cfg["epochs"]):
        sync(device)
        start = time.perf_counter()
        order = epoch_order(train.y_numpy, cfg["weighted_sampling"], generator).to(device)
        run_epoch(model, train, "train", batch_size=cfg["batch_size"], optimizer=optimizer, scaler=scaler, order=order,
                  precision=precision)
        run_epoch(model, val, "val", batch_size=max(cfg["batch_size"], 256), precision=precision)
        sync(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def tune_trials(examples, labels, config: dict, resources: dict, storage: Path) -> list:
    """Run ``config`` (a grid over seeds runs several trials at once) through ecgtune's trainable."""
    import ray
    from ray import tune

    from ecgtune.training.trainable import train_fn

    datasets = {"windows": ray.put((examples, labels))}
    trainable = tune.with_resources(tune.with_parameters(train_fn, datasets=datasets), resources)
    grid = tune.Tuner(trainable, param_space=config,
                      run_config=tune.RunConfig(storage_path=str(storage), name=f"gpu-check-{time.time_ns()}",
                                                verbose=0)).fit()
    if grid.num_errors:
        raise SystemExit(f"{grid.num_errors} trial(s) failed: {grid.errors}")
    return list(grid)


def steady(seconds: list[float]) -> float:
    """The median epoch after the first (which holds CUDA's and cuDNN's warm-up)."""
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def check_p1(sizes: dict, device, gpu: float, storage: Path) -> dict:
    import torch

    examples, labels = windows(sizes["records"], sizes["per_record"])
    config = train_config(epochs=sizes["p1_epochs"])
    torch.set_num_threads(1)  # what the trial gets with cpu: 1
    bare = bare_epochs(examples, labels, config, device)
    [trial] = tune_trials(examples, labels, config, {"cpu": 1, "gpu": gpu}, storage)
    in_trial = list(trial.metrics_dataframe["time_this_iter_s"])
    row = {"windows_train": int((labels == "train").sum()), "epochs": sizes["p1_epochs"], "batch_size": 32,
           "bare_epoch_s": round(steady(bare), 4), "trial_epoch_s": round(steady(in_trial), 4),
           "trial_device": trial.metrics["device"]}
    row["trial_over_bare"] = round(row["trial_epoch_s"] / row["bare_epoch_s"], 3)
    print(f"P1: pre-training epoch {row['bare_epoch_s']:.3f} s in a bare loop, {row['trial_epoch_s']:.3f} s in a "
          f"trial ({row['trial_device']}): x{row['trial_over_bare']:.2f}")
    return row


class GpuSampler:
    """nvidia-smi's utilization and memory of the GPU, every 200 ms, while a block runs (None: no nvidia-smi)."""

    def __init__(self, enabled: bool):
        self.enabled, self.samples, self._proc = enabled, [], None

    def __enter__(self):
        if self.enabled:
            self._proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-lms", "200"],
                stdout=subprocess.PIPE, text=True)
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        return self

    def _read(self):
        for line in self._proc.stdout:
            parts = [p.strip() for p in line.split(",")]
            if len(parts) >= 2 and parts[0].isdigit():
                self.samples.append((int(parts[0]), int(parts[1])))

    def __exit__(self, *exc):
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._reader.join(timeout=5)

    def summary(self) -> dict:
        if not self.samples:
            return {"gpu_util_mean": None, "gpu_util_max": None, "gpu_mem_max_mib": None}
        util = [u for u, _ in self.samples]
        return {"gpu_util_mean": round(statistics.mean(util), 1), "gpu_util_max": max(util),
                "gpu_mem_max_mib": max(m for _, m in self.samples)}


def check_packing(sizes: dict, on_gpu: bool, storage: Path) -> list[dict]:
    from ray import tune

    examples, labels = windows(1, sizes["patient_windows"], seed=1)
    rows = []
    for k in sizes["packs"]:
        config = train_config(epochs=sizes["pack_epochs"], batch_size=16, seed=tune.grid_search(list(range(k))))
        with GpuSampler(on_gpu) as sampler:
            wall = time.perf_counter()
            results = tune_trials(examples, labels, config, {"cpu": 1, "gpu": 1 / k if on_gpu else 0}, storage)
            wall = time.perf_counter() - wall
        # The trials' own spans (start-up excluded), from their last report back by their training time.
        spans = [(r.metrics["reported_at"] - r.metrics["time_total_s"], r.metrics["reported_at"]) for r in results]
        span = max(e for _, e in spans) - min(s for s, _ in spans)
        trained = k * sizes["pack_epochs"] * int((labels == "train").sum())
        row = {"trials_per_gpu": k, "gpu_each": round(1 / k, 3) if on_gpu else 0, "wall_s": round(wall, 2),
               "span_s": round(span, 2), "examples_per_s": round(trained / span, 1),
               "trial_epoch_s": round(statistics.mean(steady(list(r.metrics_dataframe["time_this_iter_s"])) for r in results), 4),
               "devices": sorted({r.metrics["device"] for r in results}), **sampler.summary()}
        rows.append(row)
        print(f"{k} trial(s) per GPU: {row['examples_per_s']:.0f} examples/s together, epoch {row['trial_epoch_s']:.3f} s "
              f"each, GPU utilization {'mean %s %%' % row['gpu_util_mean'] if on_gpu else 'not sampled (no GPU)'} "
              f"(span {row['span_s']:.1f} s, wall {row['wall_s']:.1f} s)")
    return rows


def check_amp(sizes: dict, device) -> list[dict]:
    import numpy as np
    import torch

    from ecgtune.models import create_model
    from ecgtune.training.batches import TensorSplit
    from ecgtune.training.loop import autocast_dtype, run_epoch

    rng = np.random.default_rng(2)
    cases = [
        ("cnn1d_residual", {}, windows(sizes["records"], sizes["per_record"])[0].inputs["signal"], 32),
        # The 100 Hz spaces' network: half the published widths (ribeiro_ptbxl_*_100hz).
        ("ribeiro_resnet", {"filters": [32, 64, 98, 128, 160]},
         rng.normal(size=(sizes["amp_records"], 12, sizes["amp_length"])).astype(np.float32), 64),
    ]
    rows = []
    for name, hparams, x, batch in cases:
        y = rng.integers(0, 2, len(x))
        split = TensorSplit({"signal": x}, y, ("normal", "abnormal"), device)
        baseline = None
        for precision in ("fp32", "fp16", "bf16"):
            dtype = autocast_dtype(device, precision)
            if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
                continue  # emulated bf16 says nothing about what a search would use
            torch.manual_seed(0)
            model = create_model(name, inputs={"signal": x.shape[1:]}, num_outputs=1, **hparams).to(device)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
            seconds = []
            for _ in range(sizes["amp_epochs"] + 1):  # one more: the first warms up
                sync(device)
                start = time.perf_counter()
                run_epoch(model, split, "train", batch_size=batch, optimizer=optimizer, scaler=scaler, precision=precision)
                sync(device)
                seconds.append(time.perf_counter() - start)
            epoch = steady(seconds)
            baseline = baseline or epoch
            rows.append({"model": name, "examples": len(x), "batch_size": batch, "precision": precision,
                         "autocast": str(dtype).replace("torch.", "") if dtype else "none",
                         "epoch_s": round(epoch, 4), "speedup_vs_fp32": round(baseline / epoch, 3)})
            print(f"{name} {precision} (autocast {rows[-1]['autocast']}): epoch {epoch:.3f} s, x{baseline / epoch:.2f} vs fp32")
    return rows


def gpu_tests(junit: Path) -> dict:
    """Counts of the gpu-marked tests from pytest's JUnit file (written by gpu_check.sh)."""
    if not junit.exists():
        return {"ran": False}
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    reasons = sorted({s.get("message", "") for s in suite.iter("skipped")})
    return {"ran": True, **counts, "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "skip_reasons": reasons}


def machine(device) -> dict:
    import ray
    import torch

    out = {"host": platform.node(), "cpus": os.cpu_count(), "torch": torch.__version__, "ray": ray.__version__,
           "device": str(device), "cuda": torch.version.cuda}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["bf16_native"] = torch.cuda.is_bf16_supported(including_emulation=False)
    return out


def markdown(report: dict) -> str:
    m, t = report["machine"], report["gpu_tests"]
    lines = [f"# benchmarks/gpu_check.sh{' --dry-run' if report['dry_run'] else ''}", "",
             f"{m.get('gpu', 'no GPU (CPU)')}; torch {m['torch']}, CUDA {m['cuda']}, Ray {m['ray']}, {m['cpus']} CPUs; "
             f"{report['seconds']:.0f} s in all.", ""]
    if t.get("ran"):
        lines += [f"gpu tests: {t['passed']} passed, {t['failures'] + t['errors']} failed, {t['skipped']} skipped"
                  + (f" ({'; '.join(t['skip_reasons'])})" if t["skip_reasons"] else ""), ""]
    p = report["p1"]
    lines += ["| P1 | bare loop epoch s | in-trial epoch s | trial / bare |", "| --- | --- | --- | --- |",
              f"| pre-training, {p['windows_train']:,} windows, batch {p['batch_size']} ({p['trial_device']}) | "
              f"{p['bare_epoch_s']} | {p['trial_epoch_s']} | {p['trial_over_bare']} |", ""]
    lines += ["| trials per GPU | examples/s (all) | epoch s (each) | GPU util. mean % | max % | GPU memory MiB |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join("-" if r[k] is None else str(r[k]) for k in (
        "trials_per_gpu", "examples_per_s", "trial_epoch_s", "gpu_util_mean", "gpu_util_max", "gpu_mem_max_mib")) + " |"
        for r in report["packing"]]
    lines += ["", "| model | precision (autocast) | batch | epoch s | vs fp32 |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['precision']} ({r['autocast']}) | {r['batch_size']} | {r['epoch_s']} | "
              f"x{r['speedup_vs_fp32']} |" for r in report["amp"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--dry-run", action="store_true", help="the CPU and tiny sizes: checks the script, measures nothing")
    parser.add_argument("--junit", help="pytest's JUnit file of the gpu tests")
    args = parser.parse_args()
    import ray
    import torch

    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    on_gpu = torch.cuda.is_available() and not args.dry_run
    if not on_gpu and not args.dry_run:
        raise SystemExit("no GPU: torch finds no CUDA device here (use --dry-run to check the script on a CPU)")
    device = torch.device("cuda" if on_gpu else "cpu")
    sizes = DRY if args.dry_run else FULL
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Eight trials of one CPU each share the GPU in the largest packing; a dry run takes what there is.
    ray.init(num_cpus=max(os.cpu_count() or 1, 2) if on_gpu else 2, include_dashboard=False,
             logging_level="WARNING", log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="ecgtune-gpu-check-") as storage:
            report = {"dry_run": args.dry_run, "machine": machine(device),
                      "gpu_tests": gpu_tests(Path(args.junit)) if args.junit else {"ran": False},
                      "p1": check_p1(sizes, device, 1 if on_gpu else 0, Path(storage)),
                      "packing": check_packing(sizes, on_gpu, Path(storage)),
                      "amp": check_amp(sizes, device)}
    finally:
        ray.shutdown()
    report["seconds"] = round(time.perf_counter() - start, 1)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))
    print(f"-> {out / 'gpu_check.json'}, {out / 'gpu_check.md'} ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
