"""How well one search fills a cluster: slot utilization and makespan. Prints figures; asserts nothing.

Slot utilization = sum of trial seconds / (slots x span), span from the first trial's start to the last
one's end, read from Ray Tune's own trial results (result.json: timestamp and time_total_s).

    # a real search on a real multi-node Ray cluster on this machine (Ray's fake multi-node autoscaler):
    # a CPU-less head and GPU workers of 8 CPUs and 1 logical GPU started from zero, 24 trial slots
    ECGTUNE_DATA_DIR=../shared/data python benchmarks/bench_scaling.py fake-cluster

    # measure real trial durations of the per-patient grid (full epochs), on the local Ray
    ECGTUNE_DATA_DIR=../shared/data python benchmarks/bench_scaling.py measure --patients 208,100

    # the driver's memory while the 29-patient smoke study (1,045 trials) runs on the local Ray
    ECGTUNE_DATA_DIR=../shared/data python benchmarks/bench_scaling.py memory

    # replay measured durations for the 29-patient study on 32 and 128 slots: the old schedule (units one
    # after another) against this one (ecgtune's own searcher, driven by a simulated clock), and the
    # lower bound (total work / slots, or the longest chain)
    python benchmarks/bench_scaling.py replay --durations benchmarks/trial_durations.json
    python benchmarks/bench_scaling.py replay --pretrain-s 0 --json   # [{"slots", "makespan_s", "bound_s"}, ...]
"""

from __future__ import annotations

import argparse
import glob
import heapq
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STUDY_PATIENTS = ["100", "102", "104", "105", "106", "108", "114", "116", "119", "200", "201", "202", "203", "205",
                  "208", "209", "210", "212", "213", "215", "217", "219", "220", "221", "222", "223", "228", "231", "233"]


def trial_intervals(storage: Path) -> list[dict]:
    """(start, end, seconds, unit, config) of every trial a search left under ``storage``."""
    out = []
    for path in glob.glob(str(storage / "**" / "trials" / "*" / "result.json"), recursive=True):
        lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        if lines:
            last = lines[-1]
            out.append({"start": last["timestamp"] - last["time_total_s"], "end": last["timestamp"],
                        "seconds": last["time_total_s"], "unit": last["config"]["unit"], "train": last["config"]["train"],
                        "patient": last["config"]["patient"], "node": last.get("node_id")})
    return out


def utilization(intervals: list[dict], slots: int) -> tuple[float, float]:
    span = max(i["end"] for i in intervals) - min(i["start"] for i in intervals)
    return sum(i["seconds"] for i in intervals) / (slots * span), span


def ecgtune(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("ecgtune")), *args]


def cmd_fake_cluster(args) -> None:
    from tests.cluster.fake_cluster import FakeCluster

    slots = args.workers * args.cpus
    root = Path(tempfile.mkdtemp(prefix="ecgb-", dir="/tmp"))
    try:
        with FakeCluster(root, worker={"CPU": args.cpus, "GPU": 1, "object_store_memory": 300 * 2**20},
                         max_workers=args.workers) as cluster:
            env = {**cluster.env, "ECGTUNE_HOME": str(root / "ecgtune"),
                   "ECGTUNE_DATA_DIR": os.environ.get("ECGTUNE_DATA_DIR", str(REPO.parent / "shared" / "data"))}
            start = time.monotonic()
            out = subprocess.run(
                ecgtune("search", "--space", args.space, "--smoke-test", "--patients", args.patients,
                        "--address", cluster.address, "--storage-path", str(root / "shared"), "--shared-storage"),
                env=env, capture_output=True, text=True, timeout=3600)
            wall = time.monotonic() - start
            if out.returncode != 0:
                print(out.stdout[-3000:], out.stderr[-3000:])
                raise SystemExit(f"the search failed with exit code {out.returncode}")
        intervals = trial_intervals(root / "shared")
        used, span = utilization(intervals, slots)
        nodes = sorted({i["node"][-5:] for i in intervals if i["node"]})
        print(f"{args.space} --smoke-test --patients {args.patients} on a fake cluster of {args.workers} x {args.cpus} "
              f"slots: {len(intervals)} trials on nodes {nodes}; trials span {span:.0f} s, slot utilization "
              f"{used:.3f}; whole command {wall:.0f} s (cluster start from zero, data, selection included)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def cmd_measure(args) -> None:
    root = Path(tempfile.mkdtemp(prefix="ecgb-", dir="/tmp"))
    try:
        env = {**os.environ, "ECGTUNE_HOME": str(root)}
        out = subprocess.run(ecgtune("search", "--space", "individuals_patients", "--patients", args.patients),
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
        intervals = trial_intervals(root / "ray_results")
        rows = [{"patient": i["patient"], "lr": i["train"]["lr"], "batch_size": i["train"]["batch_size"],
                 "weighted_sampling": i["train"]["weighted_sampling"], "seconds": round(i["seconds"], 2)} for i in intervals]
        Path(args.out).write_text(json.dumps({"command": f"ecgtune search --space individuals_patients --patients {args.patients}",
                                              "slots": 2, "trials": rows}, indent=1) + "\n")
        seconds = sorted(r["seconds"] for r in rows)
        print(f"{len(rows)} trials, {seconds[0]:.1f}-{seconds[-1]:.1f} s each, {sum(seconds):.0f} s in all -> {args.out}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cmd_memory(args) -> None:
    """The driver's resident memory while a study of about a thousand trials runs on the local Ray."""
    import threading

    root = Path(tempfile.mkdtemp(prefix="ecgb-", dir="/tmp"))
    try:
        env = {**os.environ, "ECGTUNE_HOME": str(root), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(ecgtune("search", "--space", "finetune_patients", "--smoke-test", "--patients",
                                        ",".join(STUDY_PATIENTS)), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        finished = [0]

        def count():
            for line in proc.stdout:
                finished[0] += " finished: " in line or " FAILED: " in line

        threading.Thread(target=count, daemon=True).start()
        samples, start, next_mark = [], time.monotonic(), 0
        while proc.poll() is None:
            samples.append((time.monotonic() - start, finished[0], rss_mib(proc.pid)))
            if finished[0] >= next_mark:
                print(f"{samples[-1][0]:7.0f} s  {finished[0]:5d} trials finished  driver RSS {samples[-1][2]:7.0f} MiB")
                next_mark += 100
            time.sleep(2)
        if proc.returncode != 0:
            raise SystemExit(f"the search failed with exit code {proc.returncode}")
        peak = max(s[2] for s in samples)
        after_100 = [s[2] for s in samples if s[1] >= 100]
        print(f"{finished[0]} trials in {samples[-1][0]:.0f} s; driver RSS peak {peak:.0f} MiB, "
              f"{after_100[0]:.0f} MiB at 100 trials, {after_100[-1]:.0f} MiB at the end")
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Replay:
    """The 29-patient study (pre-training, then per patient the 18-run grid from scratch and fine-tuned) with
    trial durations taken from a measured run: each configuration of a patient gets the measured duration
    of the same configuration on one of the measured patients, in turn."""

    def __init__(self, measured: dict, pretrain_s: float, finalize_s: float):
        from ecgtune.spaces import load_space
        from ecgtune.tuning.plan import build_plan

        self.space = load_space("finetune_patients").with_patients(STUDY_PATIENTS)
        self.plan = build_plan([self.space])
        self.pretrain_s, self.finalize_s = pretrain_s, finalize_s
        self.by_config: dict[tuple, dict[str, float]] = {}
        for row in measured["trials"]:
            key = (float(row["lr"]), int(row["batch_size"]), bool(row["weighted_sampling"]))
            self.by_config.setdefault(key, {})[row["patient"]] = row["seconds"]
        self.measured_patients = sorted({row["patient"] for row in measured["trials"]})

    def duration(self, config: dict) -> float:
        if config["stage"] == "pretrain":
            return self.pretrain_s
        t = config["train"]
        by_patient = self.by_config[(float(t["lr"]), int(t["batch_size"]), bool(t["weighted_sampling"]))]
        source = self.measured_patients[STUDY_PATIENTS.index(config["patient"]) % len(self.measured_patients)]
        return by_patient[source]

    def configs(self) -> dict[str, list[dict]]:
        """Every unit's configurations, as ecgtune's searcher hands them out."""
        searcher = self.searcher()
        out: dict[str, list[dict]] = {}
        n = 0
        while True:
            config = searcher.suggest(f"t{n}")
            if not isinstance(config, dict):
                return out
            out.setdefault(config["unit"], []).append(config)
            n += 1

    def searcher(self, ready=lambda unit: {"init_weights": "w"}):
        from ecgtune.tuning.searcher import UnitSearcher
        from ecgtune.tuning.tuner import param_space

        spaces = {u.key: param_space(u, "data", {"cpu": 1, "gpu": 0}) for u in self.plan}
        return UnitSearcher(self.plan, spaces, ready, lambda: False)

    def total_work(self) -> float:
        return sum(self.duration(c) for cs in self.configs().values() for c in cs)

    def lower_bound(self, slots: int) -> float:
        """No schedule is shorter than the work spread over every slot, nor than the pre-training followed
        by the fine-tuning work (which cannot start before it) spread over every slot, nor than the
        pre-training followed by the longest fine-tuning trial."""
        configs = self.configs()
        finetune = [self.duration(c) for k, cs in configs.items() if "/finetune-" in k for c in cs]
        after = self.pretrain_s + self.finalize_s
        return max(self.total_work() / slots, after + sum(finetune) / slots, after + max(finetune))

    def in_sequence(self, slots: int) -> float:
        """The old schedule: unit after unit (pre-training, then per patient scratch and fine-tuning), each
        with every slot, each waiting for its slowest trial and its selection."""
        clock = 0.0
        configs = self.configs()
        for unit in self.plan:
            free = [clock] * slots
            for config in configs[unit.key]:
                start = heapq.heappop(free)
                heapq.heappush(free, start + self.duration(config))
            clock = max(free) + self.finalize_s
        return clock

    def scheduled(self, slots: int) -> float:
        """ecgtune's schedule: its own searcher hands out trials as slots free; a unit is finalised
        ``finalize_s`` after its last trial, and a fine-tuning unit is ready once its pre-training is."""
        ready_sources: set[str] = set()
        searcher = self.searcher(ready=lambda u: None if any(s.name not in ready_sources for s in u.sources) else {"init_weights": {"model": "w"}})
        planned = {u.key: u.planned_trials for u in self.plan}
        units = {u.key: u for u in self.plan}
        finished: dict[str, int] = {}
        events: list[tuple[float, int, str, str]] = []  # (time, order, kind, id)
        clock, free, n, order, finalised = 0.0, slots, 0, 0, 0
        unit_of: dict[str, str] = {}
        durations: dict[str, float] = {}
        while finalised < len(self.plan):
            while free:
                config = searcher.suggest(f"t{n}")
                if not isinstance(config, dict):
                    break
                unit_of[f"t{n}"] = config["unit"]
                durations[f"t{n}"] = self.duration(config)
                heapq.heappush(events, (clock + durations[f"t{n}"], order, "trial", f"t{n}"))
                n, order, free = n + 1, order + 1, free - 1
            clock, _, kind, ident = heapq.heappop(events)
            if kind == "trial":
                free += 1
                # As Tune does: the finished trial's result with its own duration, which the searcher learns from.
                searcher.on_trial_complete(ident, {"best_metric": 0.5, "time_total_s": durations.pop(ident)})
                unit = unit_of.pop(ident)
                finished[unit] = finished.get(unit, 0) + 1
                if finished[unit] == planned[unit]:
                    heapq.heappush(events, (clock + self.finalize_s, order, "unit", unit))
                    order += 1
            else:
                finalised += 1
                ready_sources.add(units[ident].registered_name)
        return clock


def cmd_replay(args) -> None:
    replay = Replay(json.loads(Path(args.durations).read_text()), args.pretrain_s, args.finalize_s)
    if args.json:
        rows = [{"slots": slots, "makespan_s": round(replay.scheduled(slots), 1), "bound_s": round(replay.lower_bound(slots), 1)}
                for slots in args.slots]
        print(json.dumps(rows))
        return
    work = replay.total_work()
    n_trials = sum(len(cs) for cs in replay.configs().values())
    print(f"29-patient study: {len(replay.plan)} units, {n_trials} trials, {work:.0f} trial-seconds of work "
          f"(pre-training {args.pretrain_s:.0f} s, selection {args.finalize_s:.0f} s per unit); durations from "
          f"{args.durations}")
    print(f"{'slots':>6} {'schedule':>22} {'makespan s':>11} {'utilization':>12}")
    for slots in args.slots:
        bound = replay.lower_bound(slots)
        for name, makespan in (("units in sequence", replay.in_sequence(slots)),
                               ("one schedule (ecgtune)", replay.scheduled(slots)),
                               ("lower bound", bound)):
            print(f"{slots:>6} {name:>22} {makespan:>11.0f} {work / (slots * makespan):>12.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fake = sub.add_parser("fake-cluster", help="a real search on a fake multi-node cluster")
    fake.add_argument("--space", default="individuals_patients")
    fake.add_argument("--patients", default="100,105,119,201,208,233")
    fake.add_argument("--workers", type=int, default=3, help="worker nodes the autoscaler may start")
    fake.add_argument("--cpus", type=int, default=8, help="CPUs (= trial slots) of each worker")
    fake.set_defaults(func=cmd_fake_cluster)
    measure = sub.add_parser("measure", help="measure real trial durations of the per-patient grid")
    measure.add_argument("--patients", default="208,100")
    measure.add_argument("--out", default=str(REPO / "benchmarks" / "trial_durations.json"))
    measure.set_defaults(func=cmd_measure)
    memory = sub.add_parser("memory", help="the driver's memory over a 1,045-trial smoke study")
    memory.set_defaults(func=cmd_memory)
    replay = sub.add_parser("replay", help="replay measured durations for the 29-patient study")
    replay.add_argument("--durations", default=str(REPO / "benchmarks" / "trial_durations.json"))
    replay.add_argument("--slots", type=int, nargs="+", default=[32, 128])
    replay.add_argument("--pretrain-s", type=float, default=600.0, help="the pre-training trial's duration")
    replay.add_argument("--finalize-s", type=float, default=5.0, help="selection, test and promotion of a unit")
    replay.add_argument("--json", action="store_true",
                        help='only ecgtune\'s schedule: a JSON list of {"slots", "makespan_s", "bound_s"}')
    replay.set_defaults(func=cmd_replay)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
