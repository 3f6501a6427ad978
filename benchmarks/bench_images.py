"""Seed 000's images: the time to encode one record (3 leads x GAF, MTF, RP at 1,000 x 1,000, resized to
256 x 256), and the time and cache size of preparing the PTB-XL records with them.

Prints figures; asserts nothing. Run on the real data:

    ECGTUNE_DATA_DIR=../shared/data python benchmarks/bench_images.py [--records N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
import time

import numpy as np
import torch

SEED000 = {"task": "records", "labels": "superdiagnostic4", "leads": ["I", "II", "V2"], "bandpass": [1, 45],
           "bandpass_causal": True, "bandpass_order": 2, "images": ["gaf", "mtf", "rp"], "image_size": 256}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=None, help="prepare at most this many records (default: all)")
    parser.add_argument("--repeat", type=int, default=20, help="records encoded to time one")
    args = parser.parse_args()
    torch.set_num_threads(1)  # what a Ray worker with one CPU has

    from ecgtune.transforms.images import record_image

    signal = np.random.default_rng(0).standard_normal((3, 1000))
    start = time.perf_counter()
    record_image(signal)
    print(f"first record (pyts compiles its numba kernels): {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    for _ in range(args.repeat):
        image = record_image(signal)
    per_record = (time.perf_counter() - start) / args.repeat
    print(f"one record, 9 x 256 x 256 uint8: {per_record:.3f} s, {image.nbytes / 1e6:.2f} MB")

    from ecgtune.data import get_dataset

    with tempfile.TemporaryDirectory() as home:
        os.environ["ECGTUNE_HOME"] = home  # an empty cache: the preparation is timed, not read back
        params = dict(SEED000, **({"max_records": args.records} if args.records else {}))
        start = time.perf_counter()
        examples = get_dataset("ptbxl").prepare(**params)
        seconds = time.perf_counter() - start
        size = sum(f.stat().st_size for f in Path(home).rglob("*.npz"))
    n = len(examples)
    print(f"prepared {n} PTB-XL records with images in {seconds:.1f} s ({seconds / max(n, 1):.3f} s a record); "
          f"cache {size / 1e6:.1f} MB ({size / max(n, 1) / 1e6:.2f} MB a record)")
    print(f"projected for PTB-XL's 21,799 records on one core: {21799 * per_record / 60:.0f} min, "
          f"{21799 * image.nbytes / 1e9:.1f} GB")


if __name__ == "__main__":
    main()
