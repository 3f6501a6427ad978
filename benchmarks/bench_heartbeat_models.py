"""Training throughput of the heartbeat models on Kachuee beats (187 samples, 5 AAMI classes), and what SMOTE
costs: seconds per epoch of the seed's training set, from the median of timed batches.

Prints figures; asserts nothing. Run on the real data:

    ECGTUNE_DATA_DIR=../shared/data python benchmarks/bench_heartbeat_models.py [--threads 2] [--batches 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

MODELS = [("cnet", {}), ("seq2seq", {}), ("bilstm", {"frame_size": 4}), ("bigru", {"frame_size": 4}),
          ("bilstm", {}), ("bigru", {})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a Ray trial with cpu: N gets N)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per model (after 2 warm-up ones)")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as in every trial

    from ecgtune.data import assign_split, get_dataset
    from ecgtune.models import create_model
    from ecgtune.transforms.resampling import smote

    os.environ.setdefault("ECGTUNE_HOME", tempfile.mkdtemp(prefix="ecgtune-bench-"))
    start = time.perf_counter()
    beats = get_dataset("mitdb").prepare(mode="kachuee")
    print(f"prepare mitdb kachuee beats: {len(beats)} beats in {time.perf_counter() - start:.1f} s")
    train = beats.subset(assign_split("random_beats", beats) == "train")
    start = time.perf_counter()
    _, y_smote = smote(train.x, train.y, seed=0)
    print(f"SMOTE on the random_beats training split: {len(train)} -> {len(y_smote)} beats "
          f"({len(y_smote) / len(train):.1f}x the epoch) in {time.perf_counter() - start:.1f} s")

    device = torch.device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch_size}")
    rng = np.random.default_rng(0)
    for name, hparams in MODELS:
        torch.manual_seed(0)
        model = create_model(name, in_channels=1, num_classes=5, input_length=187, **hparams).to(device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        times = []
        for _ in range(2 + args.batches):
            idx = rng.integers(0, len(train), args.batch_size)
            x = torch.from_numpy(train.x[idx]).to(device)
            y = torch.from_numpy(train.y[idx]).to(device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        per_batch = float(np.median(times[2:]))
        epoch = per_batch * -(-len(train) // args.batch_size)
        params = sum(p.numel() for p in model.parameters())
        print(f"{name:8s} {str(hparams):18s} {params:7d} params  {per_batch * 1000:7.1f} ms/batch  "
              f"{epoch:6.0f} s/epoch  {epoch * len(y_smote) / len(train):6.0f} s/epoch with SMOTE")


if __name__ == "__main__":
    main()
