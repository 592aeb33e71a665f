"""Peers of the fabric engine, run on the same flows: SimGrid (if installed).

SimGrid's Python package has no wheel; build it with Debian's libboost-dev
and ``pybind11<3`` (``pip install --no-build-isolation simgrid``), and point
LD_LIBRARY_PATH at the site-packages folder holding ``libsimgrid.so``.

SimGrid is configured as a pure max-min fluid model (CM02 with every
correction off, Full optimization).  CM02 still weights each flow by
1/(route latency), so comparisons are only exact when every route has the
same latency (or none).
"""

import os
import site

import numpy as np

SIMGRID_CONFIG = [
    "network/model:CM02", "network/crosstraffic:0", "network/TCP-gamma:0",
    "network/latency-factor:1", "network/bandwidth-factor:1", "network/weight-S:0",
    "network/optim:Full", "precision/timing:1e-13", "precision/work-amount:1e-9",
]


CONTROLLERS = 64


def simgrid_available():
    """(True, '') or (False, why)."""
    try:
        import simgrid  # noqa: F401
    except ImportError as exc:
        hint = ""
        for folder in site.getsitepackages():
            if os.path.exists(os.path.join(folder, "libsimgrid.so")):
                hint = f" (set LD_LIBRARY_PATH={folder})"
        return False, f"simgrid is not importable: {exc}{hint}"
    return True, ""


def simgrid_simulate(capacity, latency, fa):
    """Play a single-path FlowArrays with dependencies on SimGrid; finish times.

    A flow runs between a host named by its path's first link and one named
    by its last link, with the path as their route (a pair whose route is
    already another path gets hosts of its own).  SimGrid's full zone keeps
    a hosts x hosts route table, so a host pair per flow would need 136 GB
    at n = 256 all-to-all; per end link it needs 512 hosts.  A controller
    actor starts each flow (``Comm.sendto_async``) as soon
    as its dependencies have finished.  Start times must be 0, weights 1,
    no caps; sizes are rounded to whole bytes (SimGrid's unit).  SimGrid
    keeps one engine per process: call this once per process.
    """
    import simgrid

    if np.any(fa.start != 0) or np.any(fa.weight != 1) or np.any(np.isfinite(fa.cap)):
        raise ValueError("simgrid_simulate: only start=0, weight=1, no caps")
    if np.any(np.diff(fa.sub_ptr) != 1):
        raise ValueError("simgrid_simulate: single-path flows only")
    e = simgrid.Engine(["fabric-bench"] + [f"--cfg={c}" for c in SIMGRID_CONFIG] + ["--log=root.thres:critical"])
    zone = e.netzone_root.add_netzone_full("fabric")
    links = [zone.add_link(f"l{i}", float(c)).set_latency(float(lat)).seal()
             for i, (c, lat) in enumerate(zip(capacity, latency))]
    F = fa.n_flows
    ends = {}      # ("s" or "d", first or last link, or a whole path) -> host
    pairs = {}     # (source key, destination key) -> (index into hosts, path)
    hosts = []
    flow_pair = np.empty(F, dtype=np.int64)

    def host(key):
        if key not in ends:
            ends[key] = zone.add_host(f"h{len(ends)}", 1e9).seal()
        return ends[key]

    for f in range(F):
        path = tuple(fa.path_links[fa.path_ptr[f]:fa.path_ptr[f + 1]].tolist())
        keys = (("s", path[0]), ("d", path[-1]))
        if keys in pairs and pairs[keys][1] != path:   # these ends already route another path
            keys = (("s", path), ("d", path))
        if keys not in pairs:
            src, dst = host(keys[0]), host(keys[1])
            zone.add_route(src, dst, [links[l] for l in path])
            pairs[keys] = (len(hosts), path)
            hosts.append((src, dst))
        flow_pair[f] = pairs[keys][0]
    zone.seal()

    dep_ptr, dep_idx = fa.dep_ptr, fa.dep_idx
    pending = np.diff(dep_ptr).astype(np.int64)
    order = np.argsort(dep_idx, kind="stable")
    owner = np.repeat(np.arange(F), np.diff(dep_ptr))
    dependents = owner[order]
    dpt_ptr = np.zeros(F + 1, dtype=np.int64)
    np.cumsum(np.bincount(dep_idx, minlength=F), out=dpt_ptr[1:])
    sizes = np.rint(fa.size).astype(np.int64).tolist()
    finish = np.full(F, np.nan)

    def controller(first):
        active = simgrid.ActivitySet()
        which = {}

        def launch(f):
            src, dst = hosts[flow_pair[f]]
            c = simgrid.Comm.sendto_async(src, dst, sizes[f])
            which[c] = f
            active.push(c)

        for f in first:
            launch(f)
        while not active.empty():
            c = active.wait_any()
            f = which.pop(c)
            finish[f] = simgrid.Engine.clock
            for d in dependents[dpt_ptr[f]:dpt_ptr[f + 1]].tolist():
                pending[d] -= 1
                if pending[d] == 0:
                    launch(d)

    # Up to CONTROLLERS controller actors share the flows that start at once;
    # a flow's dependents are started (and then waited on) by the controller
    # that sees its last dependency finish.  wait_any scans every comm in the
    # controller's set, so one controller for all flows makes the harness
    # itself quadratic (65,280 at once in the n=256 all-to-all), while an
    # actor per source costs a thread each (1,024 for a k=16 permutation).
    first = np.flatnonzero(pending == 0)
    for j in range(min(CONTROLLERS, len(first))):
        mine = first[j::CONTROLLERS].tolist()
        hosts[flow_pair[mine[0]]][0].add_actor(f"controller-{j}", lambda mine=mine: controller(mine))
    e.run()
    return finish


def main():
    """Worker mode for tests and benchmarks: ``python peers.py IN.npz OUT.npy``.

    IN.npz holds capacity, latency and a single-path FlowArrays (size,
    dep_ptr, dep_idx, path_ptr, path_links); OUT.npy gets SimGrid's finish
    times.  One SimGrid engine per process, hence a process per run.
    """
    import sys

    from fabric import FlowArrays

    data = np.load(sys.argv[1])
    fa = FlowArrays.single_path(data["size"], data["path_ptr"], data["path_links"],
                                dep_ptr=data["dep_ptr"], dep_idx=data["dep_idx"])
    np.save(sys.argv[2], simgrid_simulate(data["capacity"], data["latency"], fa))


if __name__ == "__main__":
    main()
