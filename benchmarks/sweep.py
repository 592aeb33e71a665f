"""Sweep executors side by side: 1 vs 2 local workers, and local vs Dask.

    python benchmarks/sweep.py [--points 32]

1. Speed-up of 2 local worker processes over 1 on the same 32-point sweep
   (points of about half a second; on a 2-core machine expect close to 2x).
2. Per-point overhead of the Dask path (a LocalCluster of 2 worker
   processes on loopback, started here) against 2 local processes, on
   points that do almost nothing, so what remains is the executor's cost.

Needs the dask extra (pip install '.[dask]') for part 2.
"""

import argparse
import os
import tempfile
import time

from fabric.sweeps import load_sweep, run_sweep

SWEEP = """
[sweep]
mode = "random"
samples = {points}
seed = 1

[axes]
"topology.oversub" = [1, 2, 3]
routing = ["ecmp", "spray"]
"jobs[*].placement" = ["packed", "spread", "random"]

[base.topology]
spec = "fat-tree:k=4,bw=100Gbps"

[[base.jobs]]
name = "a"
accelerators = 8
iterations = {iterations}
compute = "1ms"
grad_size = "64MiB"

[[base.jobs]]
name = "b"
accelerators = 8
iterations = {iterations}
grad_size = "32MiB"
"""


def timed(sw, **executor):
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        rows = run_sweep(sw, out, **executor)
        elapsed = time.perf_counter() - t
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows if r["status"] != "ok"]
    return elapsed


def sweep_file(directory, points, iterations):
    path = os.path.join(directory, f"sweep-{points}-{iterations}.toml")
    with open(path, "w") as fh:
        fh.write(SWEEP.format(points=points, iterations=iterations))
    return load_sweep(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        heavy = sweep_file(tmp, args.points, 200)
        one, two = timed(heavy, workers=1), timed(heavy, workers=2)
        print(f"{args.points} points of ~{one / args.points:.2f} s: 1 worker {one:.1f} s, 2 workers {two:.1f} s, "
              f"speed-up {one / two:.2f}x (on {os.cpu_count()} CPUs)")
        try:
            import distributed
        except ImportError:
            print("Dask: not installed (pip install '.[dask]'); skipped")
            return
        light = sweep_file(tmp, args.points, 1)
        local = min(timed(light, workers=2) for _ in range(3))
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None) as cluster:
            timed(light, scheduler=cluster.scheduler_address)   # warm the workers' imports
            dask = min(timed(light, scheduler=cluster.scheduler_address) for _ in range(3))
        print(f"{args.points} near-empty points on 2 workers: local {local:.2f} s ({1e3 * local / args.points:.0f} ms "
              f"per point), Dask {dask:.2f} s ({1e3 * dask / args.points:.0f} ms per point); Dask costs "
              f"{1e3 * (dask - local) / args.points:+.0f} ms per point, {dask / local:.2f}x the local time")


if __name__ == "__main__":
    main()
