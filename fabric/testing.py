"""Hypothesis strategies and invariant checkers for property-based suites.

Needs the ``test`` extra (hypothesis).  Strategies only generate valid
input; checkers raise AssertionError naming the flow, link and time.

Examples
--------
>>> from hypothesis import given, settings
>>> from fabric.engine import simulate_links
>>> @settings(max_examples=20, deadline=None)
... @given(link_scenarios())
... def test_engine_is_feasible(scn):
...     cap, lat, flows = scn
...     r = simulate_links(cap, lat, flows, record_links=True, record_rates=True)
...     assert_feasible(r)
...     assert_conserved(r)
...     assert_max_min_fair(r)
>>> test_engine_is_feasible()
"""

import dataclasses
import math

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover
    raise ImportError("fabric.testing needs hypothesis: pip install 'fabric[test]'") from exc

import topologies as _topologies

from . import _core
from .engine import Flow
from .routing import FAMILY_ROUTINGS

__all__ = [
    "link_networks", "explicit_flows", "link_scenarios",
    "fat_trees", "tori", "dragonflies", "topologies", "networks", "flow_sets", "collectives", "jobs",
    "bad_topology_params", "bad_flows",
    "assert_feasible", "assert_max_min_fair", "assert_conserved", "assert_matches_reference",
    "assert_collective_dataflow",
]

# Capacities and latencies on a coarse grid keep ties (the hard cases) likely.
# Rare options are drawn as "integers(0, n) == n" so that shrinking (towards 0)
# turns them off: a minimal failing case carries only what it needs.
CAPACITIES = (1e9, 2e9, 5e8, 4e9, 12.5e9, 50e9)
LATENCIES = (0.0, 1e-6, 5e-7, 1e-3)
SIZES = (0.0, 1.0, 1e6, 1e8, 1e9, 2.5e9, 1e12)


@st.composite
def link_networks(draw, max_links=6, latency=True):
    """(capacity, latency) arrays of 1..max_links directed links."""
    n = draw(st.integers(1, max_links))
    cap = draw(st.lists(st.sampled_from(CAPACITIES), min_size=n, max_size=n))
    if latency and draw(st.booleans()):
        lat = draw(st.lists(st.sampled_from(LATENCIES), min_size=n, max_size=n))
    else:
        lat = [0.0] * n
    return np.array(cap), np.array(lat)


@st.composite
def explicit_flows(draw, n_links, max_flows=8, dags=True, multipath=True, weights=True, caps=True,
                   starts=True):
    """Flows over explicit link paths on ``n_links`` links.

    Sizes include zero and very large; dependencies only point to earlier
    flows, so they never form a cycle.
    """
    path = st.lists(st.integers(0, n_links - 1), min_size=1, max_size=n_links, unique=True)

    @st.composite
    def one(draw):
        kw = {"size": draw(st.sampled_from(SIZES) | st.floats(1.0, 1e10))}
        if multipath and draw(st.integers(0, 3)) == 3:
            kw["paths"] = draw(st.lists(path, min_size=2, max_size=3))
            if draw(st.booleans()):
                kw["split"] = draw(st.lists(st.sampled_from((1.0, 2.0, 3.0)), min_size=len(kw["paths"]),
                                            max_size=len(kw["paths"])))
        else:
            kw["path"] = draw(path)
        return kw

    return _flow_list(draw, one(), max_flows, dags, weights, caps, starts)


def _flow_list(draw, endpoints, max_flows, dags, weights, caps, starts):
    """A list of Flows: each flow's own keywords from ``endpoints`` plus the
    knobs every flow strategy shares (start, dependencies with delay,
    weight, cap).  Dependencies are drawn as offsets back to earlier flows,
    so they never form a cycle and any flow can be deleted while shrinking."""

    @st.composite
    def one(draw):
        kw = draw(endpoints)
        if starts:
            kw["start"] = draw(st.sampled_from((0.0, 0.0, 1e-4, 0.25, 1.0)))
        if dags and draw(st.booleans()):
            kw["deps"] = draw(st.lists(st.integers(1, max_flows), min_size=1, max_size=2, unique=True))
            kw["delay"] = draw(st.sampled_from((0.0, 0.0, 1e-3, 0.5)))
        if weights:
            kw["weight"] = draw(st.sampled_from((1.0, 1.0, 2.0, 3.0, 0.5)))
        if caps and draw(st.integers(0, 4)) == 4:
            kw["cap"] = draw(st.sampled_from((1e8, 3e8, 1e9, 1e10)))
        return kw

    flows = []
    for i, kw in enumerate(draw(st.lists(one(), min_size=1, max_size=max_flows))):
        kw["deps"] = sorted(i - back for back in kw.get("deps", ()) if back <= i)
        flows.append(Flow(**kw))
    return flows


@st.composite
def link_scenarios(draw, max_links=6, max_flows=8, **flow_options):
    """(capacity, latency, flows): a whole engine input over explicit paths."""
    cap, lat = draw(link_networks(max_links))
    return cap, lat, draw(explicit_flows(len(cap), max_flows=max_flows, **flow_options))


# ------------------------------------------------------------ topologies and networks

BANDWIDTHS = (1e9, 12.5e9, 50e9, 100e9)


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def _links(draw, prefix=""):
    """Builder keywords for one tier's bandwidth/latency (or the defaults)."""
    out = {}
    if draw(st.booleans()):
        out[prefix + "bandwidth"] = draw(st.sampled_from(BANDWIDTHS))
    if draw(st.booleans()):
        out[prefix + "latency"] = draw(st.sampled_from(LATENCIES))
    return out


@st.composite
def _pod(draw, sizes):
    """No pod, or a Pod of one of the given sizes (> 1)."""
    sizes = [d for d in sizes if d > 1]
    if not sizes or draw(st.booleans()):
        return None
    return _topologies.Pod(draw(st.sampled_from(sizes)), bandwidth=draw(st.sampled_from((100e9, 450e9, 900e9))),
                           latency=draw(st.sampled_from((0.0, 2.5e-7))))


@st.composite
def fat_trees(draw, k=st.sampled_from((2, 4, 6)), oversubscription=st.sampled_from((1, 1, 2, 3)),
              max_accelerators=64):
    """k-ary fat-trees with oversubscription, pods (some rail-optimized) and
    per-tier link variety; never more than ``max_accelerators``."""
    k = draw(k)
    r = draw(oversubscription)
    while r > 1 and (r * k * k * k // 4 > max_accelerators):
        r -= 1
    if k ** 3 // 4 * r > max_accelerators:
        k = 2
    hosts = r * k // 2
    pod = draw(_pod(_divisors(hosts)))
    rail = pod is not None and (k * k // 2) % pod.size == 0 and draw(st.booleans())
    kw = draw(_links())
    for tier in ("host_", "leaf_", "spine_"):
        if draw(st.integers(0, 3)) == 3:
            kw.update(draw(_links(tier)))
    return _topologies.fat_tree(k, oversubscription=r, rail_optimized=rail, pod=pod, **kw)


@st.composite
def tori(draw, dims=None, max_accelerators=64):
    """1-3 dimensional tori (sizes 1..6), optionally in pods of blocks."""
    if dims is None:
        shape = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3).filter(
            lambda d: int(np.prod(d)) <= max_accelerators))
    else:
        shape = draw(dims)
    shape = tuple(shape)
    pod_shape, pod = None, None
    if draw(st.booleans()):
        pod_shape = tuple(draw(st.sampled_from(_divisors(d))) for d in shape)
        if int(np.prod(pod_shape)) > 1 and draw(st.booleans()):
            pod = _topologies.Pod(int(np.prod(pod_shape)), bandwidth=draw(st.sampled_from((100e9, 450e9))))
    return _topologies.torus(shape, pod_shape=pod_shape, pod=pod, **draw(_links()))


@st.composite
def dragonflies(draw, max_accelerators=64):
    """Dragonflies (p, a, h, groups, arrangement) with per-layer link variety."""
    p = draw(st.integers(1, 2))
    a = draw(st.integers(1, 4))
    h = draw(st.integers(1, 2))
    most = min(a * h + 1, max(2, max_accelerators // (p * a)))
    g = draw(st.integers(2, max(2, most)))
    while p * a * g > max_accelerators and a > 1:
        a -= 1
        g = min(g, a * h + 1)
    pod = draw(_pod([s for s in range(2, p * a + 1) if p % s == 0 or (s % p == 0 and (p * a * g) % s == 0)]))
    kw = draw(_links())
    for layer in ("host_", "local_", "global_"):
        if draw(st.integers(0, 3)) == 3:
            kw.update(draw(_links(layer)))
    return _topologies.dragonfly(p, a, h, g, arrangement=draw(st.sampled_from(_topologies.ARRANGEMENTS)),
                                 pod=pod, **kw)


FAMILIES = {"fat_tree": fat_trees, "torus": tori, "dragonfly": dragonflies}


def topologies(families=("fat_tree", "torus", "dragonfly"), max_accelerators=64, storage=True):
    """Valid topology graphs of the given families, at most ``max_accelerators``
    accelerators, sometimes with storage nodes attached.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10, deadline=None)
    ... @given(topologies(max_accelerators=16))
    ... def test_valid(G):
    ...     assert _topologies.validate(G) is G
    >>> test_valid()
    """
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"families: unknown {unknown[0]!r} (expected {', '.join(FAMILIES)})")
    base = st.one_of([FAMILIES[f](max_accelerators=max_accelerators) for f in families])
    if not storage:
        return base
    return st.tuples(base, st.integers(0, 2), st.sampled_from(BANDWIDTHS)).map(
        lambda x: _topologies.attach_storage(x[0], x[1], bandwidth=x[2]) if x[1] else x[0])




@st.composite
def networks(draw, graphs=None, routings=("shortest", "ecmp", "spray")):
    """Compiled :class:`fabric.Network` objects with a routing policy that
    fits their family (dimension order on tori, minimal/Valiant/UGAL on
    dragonflies, or any of ``routings``)."""
    from .network import Network

    G = draw(graphs if graphs is not None else topologies())
    family = G.graph.get("family")
    options = tuple(routings) + tuple(r for r, needs in FAMILY_ROUTINGS.items() if needs == family)
    return Network(G, routing=draw(st.sampled_from(options)), seed=draw(st.integers(0, 2**16)))


def _endpoints(net):
    return [net.nodes[i] for i in range(net.n_nodes) if net.kind[i] in ("accelerator", "storage")]


@st.composite
def flow_sets(draw, net, max_flows=8, dags=True, multipath=True, weights=True, caps=True, starts=True):
    """Lists of :class:`fabric.Flow` between a network's accelerators and
    storage nodes (routed by the network, or over several equal-cost paths
    when ``multipath``): sizes from zero to very large, start times,
    dependency DAGs (only on earlier flows, so never a cycle) with delays,
    weights and caps.

    Examples
    --------
    >>> import topologies, fabric
    >>> from hypothesis import given, settings
    >>> net = fabric.Network(topologies.fat_tree(4))
    >>> @settings(max_examples=10, deadline=None)
    ... @given(flow_sets(net))
    ... def test_feasible(flows):
    ...     assert_feasible(fabric.simulate(net, flows, record_links=True))
    >>> test_feasible()
    """
    ends = _endpoints(net)

    @st.composite
    def one(draw):
        src = draw(st.sampled_from(ends))
        dst = draw(st.sampled_from(ends))
        kw = {"src": src, "dst": dst, "size": draw(st.sampled_from(SIZES) | st.floats(1.0, 1e10))}
        if multipath and src != dst and draw(st.integers(0, 3)) == 3:
            paths = net.equal_cost_paths(src, dst, limit=3)
            if len(paths) > 1:
                kw["paths"] = paths
        return kw

    return _flow_list(draw, one(), max_flows, dags, weights, caps, starts)


@st.composite
def collectives(draw, net, max_size=1e9):
    """Keyword arguments for :func:`fabric.collective` on ``net`` that the
    library supports: op, algorithm, ranks (>= 1 accelerators), size,
    chunks and the op's own options (root, perm).

    Examples
    --------
    >>> import topologies, fabric
    >>> from hypothesis import given, settings
    >>> net = fabric.Network(topologies.fat_tree(4))
    >>> @settings(max_examples=10, deadline=None)
    ... @given(collectives(net))
    ... def test_runs(kw):
    ...     assert fabric.collective(net, **kw).time >= 0
    >>> test_runs()
    """
    from .workloads.collectives import ALGORITHMS

    accs = [net.nodes[v] for v in net.accelerators]
    op = draw(st.sampled_from(list(ALGORITHMS)))
    options = list(ALGORITHMS[op])
    if "multi_ring" in options and net.graph.graph.get("family") != "torus":
        options.remove("multi_ring")
    algorithm = draw(st.sampled_from(options))
    if algorithm == "multi_ring":
        ranks = accs
    elif algorithm == "hierarchical":   # whole pods, the same number of ranks from each
        pods = {}
        for a in accs:
            pods.setdefault(int(net.pod[net.node_id[a]]), []).append(a)
        chosen = draw(st.lists(st.sampled_from(sorted(pods)), min_size=1, unique=True))
        m = min(len(pods[p]) for p in chosen)
        m = draw(st.integers(1, m))
        ranks = [a for p in chosen for a in pods[p][:m]]
    else:
        ranks = draw(st.lists(st.sampled_from(accs), min_size=1, max_size=len(accs), unique=True))
        if algorithm == "halving_doubling" and op != "all_reduce":
            ranks = ranks[:1 << (len(ranks).bit_length() - 1)]
    kw = {"op": op, "algorithm": algorithm, "ranks": ranks,
          "size": draw(st.sampled_from((0.0, 1.0, 4096.0, 1e6)) | st.floats(1.0, max_size)),
          "chunks": draw(st.integers(1, 3))}
    if op in ("broadcast", "reduce"):
        kw["root"] = draw(st.integers(0, len(ranks) - 1))
    if op == "sendrecv":
        kw["perm"] = draw(st.permutations(range(len(ranks))))
    return kw


@st.composite
def jobs(draw, net, max_jobs=3, max_ranks=16, max_iterations=3, placements=("packed", "spread", "random", "list")):
    """Lists of :class:`fabric.Job` that fit ``net`` together: at most as
    many ranks as accelerators, explicit placements disjoint, ``tp * pp``
    dividing every job's size (and ``tp = 1`` when the pods left free cannot
    hold the TP groups), collective algorithms that need no particular
    topology (one reduce-scatter has, for a sharded job), interleaved
    pipelines only where the microbatches are a multiple of ``pp`` and the
    chunks split the units evenly, data loading only where the topology has
    storage.  Shrinks towards one small job with nothing optional.

    Examples
    --------
    >>> import topologies, fabric
    >>> from hypothesis import given, settings
    >>> net = fabric.Network(topologies.fat_tree(4))
    >>> @settings(max_examples=10, deadline=None)
    ... @given(jobs(net))
    ... def test_they_fit(js):
    ...     assert sum(len(p) for p in fabric.place(net, js)) == sum(j.accelerators for j in js)
    >>> test_they_fit()
    """
    from .errors import FabricError
    from .workloads.jobs import CP_COMMS, SCHEDULES, SHARDING, Job, place

    accs = [net.nodes[v] for v in net.accelerators]
    storage = bool(np.any(net.kind == "storage"))
    left, taken, out = len(accs), set(), []
    for i in range(draw(st.integers(1, max_jobs))):
        if left == 0:
            break
        n = draw(st.integers(1, min(left, max_ranks)))
        tp = draw(st.sampled_from([d for d in _divisors(n) if d <= 4]))
        pp = draw(st.sampled_from([d for d in _divisors(n // tp) if d <= 3]))
        placement = draw(st.sampled_from(placements))
        if placement == "list":
            free = [a for a in accs if a not in taken]
            if len(free) < n:
                placement = "packed"
            else:
                placement = draw(st.lists(st.sampled_from(free), min_size=n, max_size=n, unique=True))
                taken.update(placement)
        left -= n
        rare = lambda: draw(st.integers(0, 3)) == 3   # noqa: E731  (shrinks to off)
        sharding = draw(st.sampled_from(SHARDING))
        algorithms = ["ring", "direct", "halving_doubling"]
        if sharding == "none":
            shard_size = 0
            algorithms.append("tree")
        else:   # reduce-scatter has no tree, and halves and doubles only over a power of two
            shard_size = draw(st.sampled_from([0] + _divisors(n // (tp * pp))))
            shard = shard_size or n // (tp * pp)
            if shard & (shard - 1):
                algorithms.remove("halving_doubling")
        cp = draw(st.sampled_from(_divisors(n // (tp * pp))))   # context parallelism: any divisor of dp
        microbatches, schedule = draw(st.integers(1, 3)), draw(st.sampled_from(SCHEDULES))
        overlap, buckets = rare(), draw(st.integers(1, 3))
        # interleaving: microbatches a multiple of pp, each chunk whole units of the model
        chunkings = [v for v in (2, 3) if schedule != "gpipe" and pp > 1 and microbatches % pp == 0
                     and (buckets % v == 0 or not (overlap or sharding != "none"))]
        out.append(Job(
            name=f"job{i}", accelerators=n, placement=placement, iterations=draw(st.integers(1, max_iterations)),
            compute=draw(st.sampled_from((0.0, 1e-4, 1e-3))), grad_size=draw(st.sampled_from((0.0, 1e6, 1e8))),
            algorithm=draw(st.sampled_from(algorithms)), sharding=sharding, shard_size=shard_size,
            chunks=draw(st.integers(1, 2)), buckets=buckets, overlap=overlap,
            sample_bytes=1e5 if storage and rare() else 0.0, samples=draw(st.integers(0, 4)),
            tp=tp, pp=pp, microbatches=microbatches, schedule=schedule,
            weight_grad_fraction=draw(st.sampled_from((0.5, 0.25))),
            virtual_stages=draw(st.sampled_from([1] + chunkings)), tp_bytes=1e6 if tp > 1 and rare() else 0.0,
            activation_bytes=1e6 if pp > 1 and rare() else 0.0, cp=cp, cp_bytes=1e5 if cp > 1 and rare() else 0.0,
            cp_comm=draw(st.sampled_from(list(CP_COMMS))),
            optimizer=1e-4 if rare() else 0.0,
            start=1e-3 if rare() else 0.0, seed=draw(st.integers(0, 3)),
        ))
    try:   # TP groups are placed within pods: fragmentation may leave no room for them
        place(net, out)
    except FabricError:
        out = [_without_tp(j) for j in out]
    return out


def _without_tp(job):
    """``job`` with its TP ranks turned to DP ranks.  A sharded job keeps
    its shard as drawn: sharding over the grown DP size could break what its
    algorithm needs (halving-doubling, a power of two)."""
    shard_size = job.shard if job.sharding != "none" else 0
    return dataclasses.replace(job, tp=1, tp_bytes=0.0, shard_size=shard_size)


# ------------------------------------------------------------ invalid input, for error handling

def bad_topology_params():
    """(builder name, keyword arguments) that the builders must reject with a
    :class:`topologies.TopologyError` naming the parameter.

    Examples
    --------
    >>> import topologies
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=20, deadline=None)
    ... @given(bad_topology_params())
    ... def test_rejected(case):
    ...     family, kw = case
    ...     try:
    ...         topologies.BUILDERS[family](**kw)
    ...     except topologies.TopologyError:
    ...         return
    ...     raise AssertionError(f"{family}({kw}) was accepted")
    >>> test_rejected()
    """
    bad_number = st.sampled_from((0, -1, -2.5, math.nan, math.inf, "8", None))
    bad_rate = st.sampled_from((0.0, -1e9, math.nan, math.inf, "fast"))
    bad_latency = st.sampled_from((-1e-6, math.nan, math.inf, "slow"))
    return st.one_of(
        st.tuples(st.just("fat_tree"), st.fixed_dictionaries({"k": st.sampled_from((0, 1, 3, 5, -4, 2.5, "4"))})),
        st.tuples(st.just("fat_tree"), st.fixed_dictionaries({"k": st.just(4), "oversubscription": bad_number})),
        st.tuples(st.just("fat_tree"), st.fixed_dictionaries({"k": st.just(4), "bandwidth": bad_rate})),
        st.tuples(st.just("fat_tree"), st.fixed_dictionaries({"k": st.just(4), "spine_latency": bad_latency})),
        st.tuples(st.just("fat_tree"), st.fixed_dictionaries({"k": st.just(4), "pod": st.sampled_from((0, -2, 3, 5))})),
        st.tuples(st.just("torus"), st.fixed_dictionaries({"dims": st.sampled_from(((), (0,), (4, -1), "4x4", (2.5,)))})),
        st.tuples(st.just("torus"), st.fixed_dictionaries({"dims": st.just((4, 4)),
                                                           "pod_shape": st.sampled_from(((3, 4), (4,), (0, 4)))})),
        st.tuples(st.just("dragonfly"), st.fixed_dictionaries({"p": bad_number, "a": st.just(2), "h": st.just(1)})),
        st.tuples(st.just("dragonfly"), st.fixed_dictionaries({"p": st.just(1), "a": st.just(2), "h": st.just(1),
                                                               "groups": st.sampled_from((1, 4, 0))})),
        st.tuples(st.just("dragonfly"), st.fixed_dictionaries({"p": st.just(1), "a": st.just(2), "h": st.just(1),
                                                               "arrangement": st.sampled_from(("random", ""))})),
    )


@st.composite
def bad_flows(draw, n_links=4):
    """(capacity, latency, flows) with exactly one defect that
    :func:`fabric.simulate_links` must reject with a ValidationError: a bad
    size, start, weight, cap or delay, a link that does not exist, a path
    crossing a link twice, a dependency cycle or self-dependency, or a bad
    capacity."""
    cap = [1e9] * n_links
    lat = [0.0] * n_links
    flows = [Flow(size=1e6, path=[0]), Flow(size=1e6, path=[1], deps=[0])]
    defect = draw(st.sampled_from(("size", "start", "weight", "cap", "delay", "link", "twice", "cycle", "self",
                                   "capacity")))
    victim = flows[draw(st.integers(0, 1))]
    if defect in ("size", "start", "delay"):
        setattr(victim, defect, draw(st.sampled_from((-1.0, math.nan, math.inf))))
    elif defect in ("weight", "cap"):
        setattr(victim, defect, draw(st.sampled_from((0.0, -1.0, math.nan))))
    elif defect == "link":
        victim.path = [draw(st.sampled_from((n_links, -1, n_links + 7)))]
    elif defect == "twice":
        victim.path = [0, 1, 0]
    elif defect == "cycle":
        flows[0].deps = (1,)
    elif defect == "self":
        victim.deps = (flows.index(victim),)
    else:
        cap[draw(st.integers(0, n_links - 1))] = draw(st.sampled_from((0.0, -1e9, math.nan)))
    return cap, lat, flows


def _sub_paths(result):
    fa = result.flows
    return [fa.path_links[fa.path_ptr[s]:fa.path_ptr[s + 1]] for s in range(len(fa.path_ptr) - 1)]


def _sub_owner(result):
    fa = result.flows
    return np.repeat(np.arange(fa.n_flows), np.diff(fa.sub_ptr))


def assert_feasible(result, rtol=1e-9):
    """No directed link carries more than its capacity at any time.

    Needs a result from ``simulate(..., record_links=True)`` (which names
    the time) or ``link_summary=True`` (each link's peak: what
    :func:`fabric.run_jobs` keeps).
    """
    if result.link_log is None:
        if result.link_summary is None:
            raise ValueError("assert_feasible needs simulate(..., record_links=True) or link_summary=True")
        peak = result.link_summary["peak"]
        if np.any(peak > 1 + rtol):
            l = int(np.argmax(peak))
            raise AssertionError(f"link {l} reaches {peak[l]:.9g} of its capacity {result.capacity[l]:.6g}")
        return
    t, ids, load = result.link_log
    over = load > result.capacity[ids] * (1 + rtol)
    if over.any():
        k = int(np.flatnonzero(over)[0])
        raise AssertionError(
            f"link {ids[k]} carries {load[k]:.6g} B/s > capacity {result.capacity[ids[k]]:.6g} at t={t[k]:.9g}"
        )


def _rate_states(result):
    """Yield (time, {subflow: rate}) after every batch of rate changes."""
    t, ids, v = result.rate_log
    fin = result.sub_finish
    rates = {}
    k = 0
    while k < len(t):
        now = t[k]
        while k < len(t) and t[k] == now:
            rates[int(ids[k])] = v[k]
            k += 1
        for s in [s for s in rates if fin[s] <= now]:
            del rates[s]
        yield now, rates


def assert_max_min_fair(result, rtol=1e-9):
    """The (weighted) max-min bottleneck condition holds after every rate change.

    Every sending subflow is at its cap or crosses a saturated link on which
    no subflow has a higher rate/weight.  Needs ``record_rates=True``.
    """
    paths = _sub_paths(result)
    w, cap = result.sub_weight, result.sub_cap
    owner = _sub_owner(result)
    for now, rates in _rate_states(result):
        load, top = {}, {}
        for s, r in rates.items():
            for l in paths[s]:
                load[l] = load.get(l, 0.0) + r
                top[l] = max(top.get(l, 0.0), r / w[s])
        for s, r in rates.items():
            if not len(paths[s]) or r >= cap[s] * (1 - rtol):
                continue
            lv = r / w[s]
            if not any(load[l] >= result.capacity[l] * (1 - rtol) and lv >= top[l] * (1 - rtol) for l in paths[s]):
                raise AssertionError(
                    f"flow {owner[s]} (subflow {s}) at t={now:.9g} has rate {r:.6g} but no bottleneck: "
                    + ", ".join(f"link {l} load {load[l]:.6g}/{result.capacity[l]:.6g}, top level {top[l]:.6g}"
                                for l in paths[s])
                )


def _integrated_link_bytes(result):
    """Bytes per link as the integral of its recorded load step function."""
    t, ids, load = result.link_log
    carried = np.zeros(len(result.capacity))
    for l in np.unique(ids):
        sel = ids == l
        tl, vl = t[sel], load[sel]
        carried[l] = np.sum(vl[:-1] * np.diff(tl))
        if vl[-1] != 0:
            carried[l] = np.inf  # a link still loaded after its last change
    return carried


def assert_conserved(result, rtol=1e-9):
    """Bytes carried per link equal the sizes of the subflows crossing it, and
    every flow finishes after its release, its dependencies and its latency.

    With ``record_links=True`` the bytes are integrated from the recorded link
    loads (so the rates themselves are checked), to within what the engine's
    batching of near-simultaneous events allows; otherwise ``link_bytes``
    (bytes each subflow sent) is used.
    """
    paths = _sub_paths(result)
    expect = np.zeros(len(result.capacity))
    for s, p in enumerate(paths):
        expect[p] += result.sub_size[s]
    # rates are exact to rounding; integrating them over many steps loses a
    # few ulps per step, hence half a byte of absolute slack
    slack = np.full(len(expect), 0.5)
    if result.link_log is not None:
        carried = _integrated_link_bytes(result)
        # events within EVENT_REL_TOL of each other (relative) are one batch,
        # logged at its latest time: each logged change of a link may come
        # that late, at up to its capacity (a byte where a 1e12-byte flow
        # ends on one link and a 1-byte flow after it on another)
        t, ids, _ = result.link_log
        np.add.at(slack, ids, result.capacity[ids] * _core.EVENT_REL_TOL * np.abs(t))
    else:
        carried = result.link_bytes
    bad = ~(np.abs(carried - expect) <= slack + rtol * np.abs(expect))
    if bad.any():
        l = int(np.flatnonzero(bad)[0])
        raise AssertionError(f"link {l} carried {carried[l]:.9g} bytes, flows crossing it sent {expect[l]:.9g}")
    fa = result.flows
    owner = _sub_owner(result)
    lat = result.latency
    for s, p in enumerate(paths):
        f = owner[s]
        need = result.release[f] + lat[p].sum()
        if not len(p) or not result.sub_size[s]:
            drain = result.sub_size[s] / result.sub_cap[s] if len(p) == 0 and result.sub_size[s] else 0.0
        else:
            drain = result.sub_size[s] / min(result.capacity[p].min(), result.sub_cap[s])
        if result.sub_finish[s] < (need + drain) * (1 - rtol) - 1e-15:
            raise AssertionError(
                f"flow {f} (subflow {s}) finished at t={result.sub_finish[s]:.9g}, before release + latency + "
                f"size/bottleneck = {need + drain:.9g}"
            )
    for f in range(fa.n_flows):
        deps = fa.dep_idx[fa.dep_ptr[f]:fa.dep_ptr[f + 1]]
        delay = fa.delay[f] if fa.delay is not None else 0.0
        earliest = max([fa.start[f]] + [result.finish[d] + delay for d in deps])
        if not math.isclose(result.release[f], earliest, rel_tol=rtol, abs_tol=1e-15):
            raise AssertionError(f"flow {f} released at t={result.release[f]:.9g}, expected {earliest:.9g}")


def assert_matches_reference(capacity, latency, flows, rtol=1e-9, result=None):
    """The engine's finish times equal the shipped reference's, to ``rtol``."""
    from . import reference
    from .engine import simulate_links

    r = result if result is not None else simulate_links(capacity, latency, flows)
    ref = reference.simulate(capacity, latency, flows)
    for name in ("release", "first_byte", "finish"):
        a, b = getattr(r, name), ref[name]
        bad = ~np.isclose(a, b, rtol=rtol, atol=0)
        if bad.any():
            f = int(np.flatnonzero(bad)[0])
            raise AssertionError(f"flow {f}: engine {name}={a[f]!r}, reference {name}={b[f]!r}")
    return r


def assert_collective_dataflow(schedule):
    """Every rank ends with the operation's result and no transfer races
    (see :func:`fabric.workloads.check_dataflow`)."""
    from .workloads.collectives import check_dataflow

    problems = check_dataflow(schedule)
    if problems:
        raise AssertionError(f"{schedule.op}/{schedule.algorithm} on {schedule.n_ranks} ranks: "
                             + "; ".join(problems))
