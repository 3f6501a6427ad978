"""Throughput of the pieces a search repeats: preparing MIT-BIH, one training epoch, one evaluation.

Prints figures; asserts nothing. Run on the real data:

    ECGTUNE_DATA_DIR=../shared/data python benchmarks/bench_training.py [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch


def timed(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a Ray trial with cpu: 1 gets one)")
    parser.add_argument("--epochs", type=int, default=1, help="consecutive pre-training epochs to time")
    parser.add_argument("--keep-denormals", action="store_true", help="do not flush denormals (as before the fix)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(not args.keep_denormals)

    from ecgtune.data import assign_split, get_dataset
    from ecgtune.models import create_model
    from ecgtune.spaces import TRAIN_DEFAULTS
    from ecgtune.training.batches import TensorSplit, epoch_order, select
    from ecgtune.training.loop import run_epoch
    from ecgtune.training.optim import build_optimizer

    os.environ.setdefault("ECGTUNE_HOME", tempfile.mkdtemp(prefix="ecgtune-bench-"))
    dataset = get_dataset("mitdb")
    records = list(dataset.SEED_PATIENT_RECORDS)
    params = dict(mode="windows", labels="binary", records=records)
    first = timed(lambda: dataset.prepare(**params))
    cached = timed(lambda: dataset.prepare(**params), repeat=3)
    examples = dataset.prepare(**params)
    labels = assign_split("per_patient", examples)
    print(f"prepare mitdb windows, {len(records)} records, {len(examples)} windows: first {first:.2f} s, cached {cached:.3f} s")

    device = torch.device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, denormals flushed: {not args.keep_denormals}")

    # 1. Consecutive epochs of the seed's pre-training (batch 32, Adam, lr 1e-3, weight decay 1e-4):
    #    shows whether epochs slow down as the weights train (denormal floats on the CPU).
    torch.manual_seed(0)
    model = create_model("cnn1d_residual", in_channels=1, num_classes=2, input_length=128).to(device)
    train = TensorSplit.of(examples, select(examples, labels, "train", None), device)
    optimizer = build_optimizer(model.parameters(), dict(TRAIN_DEFAULTS, lr=1e-3, weight_decay=1e-4))
    generator = torch.Generator().manual_seed(0)
    for epoch in range(1, args.epochs + 1):
        order = epoch_order(train.y_numpy, False, generator).to(device)
        seconds = timed(lambda: run_epoch(model, train, "train", batch_size=32, optimizer=optimizer, order=order))
        print(f"pre-training epoch {epoch}: {seconds:.1f} s ({len(train) / seconds:,.0f} windows/s)")

    # 2. One epoch per batch size, from fresh weights.
    model = create_model("cnn1d_residual", in_channels=1, num_classes=2, input_length=128).to(device)
    for patient, name in ((None, "pre-training (all train windows)"), ("208", "one patient (record 208)")):
        train = TensorSplit.of(examples, select(examples, labels, "train", patient), device)
        val = TensorSplit.of(examples, select(examples, labels, "val", patient), device)
        for batch_size in (4, 16, 32, 128):
            if patient is None and batch_size == 4:
                continue  # the seed pre-trains with batch 32; batch 4 over 32k windows says nothing new
            optimizer = build_optimizer(model.parameters(), dict(TRAIN_DEFAULTS, lr=1e-3))
            order = epoch_order(train.y_numpy, False, torch.Generator().manual_seed(0)).to(device)
            seconds = timed(lambda: run_epoch(model, train, "train", batch_size=batch_size, optimizer=optimizer, order=order))
            print(f"{name}: train epoch, batch {batch_size:>3}: {seconds:.2f} s, "
                  f"{len(train) / seconds:,.0f} windows/s ({len(train)} windows)")
        seconds = timed(lambda: run_epoch(model, val, "val", batch_size=256))
        print(f"{name}: validation pass: {seconds:.3f} s, {len(val) / seconds:,.0f} windows/s ({len(val)} windows)")


if __name__ == "__main__":
    main()
