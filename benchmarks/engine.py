"""Engine speed: fabric beside the pure-Python reference and SimGrid, as ratios.

Every (implementation, case) runs in its own process with a time limit, so a
slow peer cannot stall the table and peak memory is measured per run.

    python benchmarks/engine.py                 # the full table (SimGrid if importable)
    python benchmarks/engine.py --quick         # small sizes, short limits
    python benchmarks/engine.py --cases ring:1024,a2a:256 --peers fabric

Cases (all on a non-blocking star: link 2i = rank i -> switch, 2i+1 =
switch -> rank i, 50 GB/s, 0.5 us each way, so every route has latency 1 us):

* ``ring:n``: ring all-reduce of 1 GiB, 2(n-1) dependent steps of n flows.
* ``a2a:n``: all-to-all, n(n-1) flows of 1-100 MB (seeded), all at once.
* ``perm:k:ROUTING`` / ``incast:k:ROUTING``: a random permutation (100 MB
  per pair) or a 64-to-1 incast (64 MB each) on a k-ary fat-tree, routed
  with ``ecmp`` hashing or ``spray`` (SimGrid plays single paths only).
* ``mem:n``: n flows (default 1M) on 6-hop random paths over 20k links with
  random starts; fabric only, for peak memory.

Every peer gets the same flows (built and routed by fabric, not timed);
times and ratios are for the simulation itself.  ``fabric e2e`` adds
building the flows (vectorised numpy, routing included).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BW, HOP_LAT = 50e9, 0.5e-6


def star(n):
    return np.full(2 * n, BW), np.full(2 * n, HOP_LAT)


def ring_flows(n, size=2**30):
    from fabric import FlowArrays

    steps = 2 * (n - 1)
    F = n * steps
    # int32 ids, as the engine keeps them: int64 would be narrowed in a copy
    rank = np.tile(np.arange(n, dtype=np.int32), steps)
    links = np.empty(2 * F, np.int32)
    links[0::2] = 2 * rank
    links[1::2] = 2 * ((rank + 1) % n) + 1
    # every flow after the first step waits for the one its sender got in the
    # step before: flow j - n - 1 (rank 0: j - 1, from rank n - 1)
    dep_ptr = np.zeros(F + 1, np.int64)
    dep_ptr[n + 1:] = np.arange(1, F - n + 1)
    dep_idx = np.arange(-1, F - n - 1, dtype=np.int32)
    dep_idx[rank[n:] == 0] += n
    return FlowArrays.single_path(np.full(F, size / n), np.arange(0, 2 * F + 1, 2), links,
                                  dep_ptr=dep_ptr, dep_idx=dep_idx)


def a2a_flows(n, seed=1):
    from fabric import FlowArrays

    src, dst = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    off = src != dst
    src, dst = src[off], dst[off]
    F = len(src)
    links = np.empty(2 * F, np.int64)
    links[0::2] = 2 * src
    links[1::2] = 2 * dst + 1
    sizes = np.random.default_rng(seed).integers(10**6, 10**8, F).astype(np.float64)
    return FlowArrays.single_path(sizes, np.arange(0, 2 * F + 1, 2), links)


def mem_flows(n, n_links=20000, hops=6, seed=2):
    from fabric import FlowArrays

    rng = np.random.default_rng(seed)
    # distinct links per path: a random offset walk modulo n_links
    first = rng.integers(0, n_links, n)
    steps = np.cumsum(rng.integers(1, 50, (n, hops)), axis=1)
    links = ((first[:, None] + steps) % n_links).ravel()
    starts = rng.uniform(0, 0.1, n)   # about 30% mean link load: busy, not overloaded
    sizes = rng.integers(10**4, 10**7, n).astype(np.float64)
    fa = FlowArrays.single_path(sizes, np.arange(0, hops * n + 1, hops), links, start=starts)
    return fa, np.full(n_links, BW), np.full(n_links, HOP_LAT)


def fat_tree_flows(kind, k, routing):
    """A random permutation (100 MB per pair) or a 64-to-1 incast (64 MB each)
    on a k-ary fat-tree with 400 Gbps links.  Zero latency: routes of 2, 4
    and 6 hops would otherwise differ in latency, and SimGrid's CM02 weights
    flows by 1/route latency, so the peers would solve different problems."""
    import topologies
    from fabric import Network

    net = Network(topologies.fat_tree(k, bandwidth=BW, latency=0.0), routing=routing, seed=1)
    accs = net.accelerators
    rng = np.random.default_rng(4)
    if kind == "perm":
        dst = accs[rng.permutation(len(accs))]
        keep = dst != accs
        src, dst, size = accs[keep], dst[keep], 1e8
    else:
        src = rng.choice(accs[1:], 64, replace=False)
        dst, size = np.full(64, accs[0]), 64e6
    fa = net.flow_arrays(src, dst, np.full(len(src), size))
    return fa, net.capacity, net.latency


def build(case):
    kind, n, *rest = case.split(":")
    n = int(n)
    if kind in ("perm", "incast"):
        return fat_tree_flows(kind, n, rest[0] if rest else "ecmp")
    if kind == "ring":
        cap, lat = star(n)
        return ring_flows(n), cap, lat
    if kind == "a2a":
        cap, lat = star(n)
        return a2a_flows(n), cap, lat
    if kind == "mem":
        fa, cap, lat = mem_flows(n)
        return fa, cap, lat
    raise SystemExit(f"unknown case {case!r}")


def peak_rss_mb():
    """This process's peak resident memory since it started, in MB.  On
    Linux the address space's high-water mark (VmHWM): ru_maxrss survives
    exec, so a worker would report its parent's peak if that was higher
    (the memory probe's 300 MB hid every smaller run)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(impl, case):
    t0 = time.perf_counter()
    fa, cap, lat = build(case)   # imports fabric: counted end to end
    if impl == "fabric":
        from fabric import simulate_links as play
    elif impl == "reference":
        from fabric import reference

        def play(cap, lat, fa):
            return reference.simulate(cap, lat, fa)["finish"]
    elif impl == "simgrid":
        sys.path.insert(0, HERE)
        from peers import simgrid_simulate as play
    else:
        raise SystemExit(f"unknown implementation {impl!r}")
    t_sim = time.perf_counter()   # a peer's own imports are not its simulation time
    out = play(cap, lat, fa)
    t_end = time.perf_counter()
    finish, counters = (out.finish, out.counters) if impl == "fabric" else (out, {})
    print(json.dumps({
        "seconds": t_end - t_sim, "end_to_end": t_end - t0, "flows": int(fa.n_flows),
        "peak_rss_mb": peak_rss_mb(),
        "makespan": float(np.max(finish)), "finish_sample": finish[:: max(1, len(finish) // 1000)].tolist(),
        "counters": counters,
    }))


def memory_probe(sizes_mib=(4, 256), reads=1 << 22):
    """Nanoseconds per random 8-byte read from an array of each size (best
    of three; here 4 MiB stays in cache and 256 MiB does not, and reads
    from 16 MiB already cost about what they do from memory).  The engine's
    large cases wait on such reads, and this VM's memory speed drifts
    between days: read a table beside its probe."""
    rng = np.random.default_rng(0)
    out = {}
    for mib in sizes_mib:
        a = np.ones((mib << 20) // 8)
        idx = rng.integers(0, len(a), reads)
        buf = np.empty(reads)
        best = np.inf
        for _ in range(3):
            t = time.perf_counter()
            np.take(a, idx, out=buf)
            best = min(best, time.perf_counter() - t)
        out[f"{mib} MiB"] = best / reads * 1e9
    return out


def run_one(impl, case, limit):
    env = dict(os.environ)
    if impl == "simgrid":
        import site

        extra = [p for p in site.getsitepackages() if os.path.exists(os.path.join(p, "libsimgrid.so"))]
        env["LD_LIBRARY_PATH"] = ":".join(extra + [env.get("LD_LIBRARY_PATH", "")])
    try:
        p = subprocess.run([sys.executable, __file__, "--worker", impl, case], capture_output=True, text=True,
                           timeout=limit, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"> {limit:.0f} s"}
    if p.returncode:
        why = "killed (out of memory?)" if p.returncode in (-9, 137) else f"exit {p.returncode}"
        return {"error": f"failed: {why}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def ratio(peer, fab):
    """peer time / fabric time; a timed-out peer gives a lower bound."""
    if "error" in fab:
        return ""
    if "error" in peer:
        if peer["error"].startswith(">"):
            return f"> {float(peer['error'].split()[1]) / fab['seconds']:.0f}x"
        return "failed"
    return f"{peer['seconds'] / fab['seconds']:.1f}x"


def fmt_time(r):
    return r["error"] if "error" in r else f"{r['seconds']:.3g} s"


def table(rows):
    """One line per case and implementation: time, throughput, memory, and
    how it compares with fabric (time ratio, largest relative finish-time gap)."""
    header = ["case", "impl", "flows", "time", "end to end", "flows/s", "peak MB", "x fabric time", "max rel diff"]
    lines = ["  ".join(f"{h:>13}" for h in header)]
    for case, res in rows:
        fab = res.get("fabric", {"error": "not run"})   # --peers without fabric: no ratios
        for impl, r in res.items():
            ok = "error" not in r
            diff = ""
            if impl != "fabric" and ok and "error" not in fab:
                a, b = np.array(fab["finish_sample"]), np.array(r["finish_sample"])
                diff = f"{np.max(np.abs(a - b) / np.abs(b)):.1e}"
            cells = [case, impl, str(r.get("flows", "")), fmt_time(r),
                     f"{r['end_to_end']:.3g} s" if ok and impl == "fabric" else "",
                     f"{r['flows'] / r['seconds']:.3g}" if ok else "", f"{r['peak_rss_mb']:.0f}" if ok else "",
                     "" if impl == "fabric" else ratio(r, fab), diff]
            lines.append("  ".join(f"{c:>13}" for c in cells))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "CASE"), help=argparse.SUPPRESS)
    ap.add_argument("--cases", default="ring:64,ring:256,ring:1024,a2a:64,a2a:256,perm:16:ecmp,perm:16:spray,"
                                       "incast:16:ecmp,incast:16:spray,mem:1000000")
    ap.add_argument("--peers", default="fabric,reference,simgrid")
    ap.add_argument("--ref-timeout", type=float, default=600.0, help="seconds allowed to the reference")
    ap.add_argument("--simgrid-timeout", type=float, default=900.0, help="seconds allowed to SimGrid")
    ap.add_argument("--quick", action="store_true", help="small cases and short limits")
    ap.add_argument("--json", metavar="FILE", help="also write every run's raw measurements here")
    args = ap.parse_args()
    if args.worker:
        return worker(*args.worker)
    if args.quick:
        args.cases, args.ref_timeout, args.simgrid_timeout = "ring:64,a2a:32,perm:8:ecmp,perm:8:spray,mem:100000", 60.0, 60.0
    peers = args.peers.split(",")
    if "simgrid" in peers:
        sys.path.insert(0, HERE)
        from peers import simgrid_available

        ok, why = simgrid_available()
        if not ok and "LD_LIBRARY_PATH" not in why:  # run_one sets the library path itself
            print(f"SimGrid skipped: {why}")
            peers.remove("simgrid")
    limits = {"fabric": 1800.0, "reference": args.ref_timeout, "simgrid": args.simgrid_timeout}
    probe = memory_probe()   # before the runs, on an idle machine
    rows = []
    for case in args.cases.split(","):
        res = {}
        for impl in peers:
            if (case.startswith("mem:") and impl != "fabric") or (case.endswith(":spray") and impl == "simgrid"):
                continue
            res[impl] = run_one(impl, case, limits[impl])
            print(f"  {case:<12} {impl:<10} {fmt_time(res[impl])}", file=sys.stderr, flush=True)
        rows.append((case, res))
    print(table(rows))
    print("memory probe, ns per random 8-byte read from: " + ", ".join(f"{k} {v:.1f}" for k, v in probe.items()))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"memory_probe_ns": probe, **dict(rows)}, fh, indent=1)

if __name__ == "__main__":
    main()
