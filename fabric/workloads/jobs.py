"""Training jobs as flow DAGs: placement, compute, gradient sync, pipelines.

A :class:`Job` is data-parallel training, optionally with tensor (TP),
pipeline (PP) and expert (EP, mixture-of-experts) parallel groups.  Its
ranks are laid out ``(stage, dp, tp)`` with TP innermost, so packed
placement keeps a TP group inside a pod; an EP group is ``ep`` consecutive
DP ranks with the same stage and TP index (experts sharded over data
parallelism, as Megatron-LM and DeepSpeed-MoE do).  One iteration, for
every rank:

1. its batch is read from storage (``sample_bytes * samples``, sharded over
   the storage nodes), prefetched one iteration ahead: the reads for
   iteration i+1 start once iteration i started and batch i arrived;
2. forward compute, ``compute * forward_fraction`` split over
   ``microbatches``; with PP, stage s sends each microbatch's activations
   (``activation_bytes``) to stage s+1, which waits for them; a stage
   runs its passes in ``schedule`` order (GPipe, 1F1B, or interleaved
   1F1B over ``virtual_stages`` model chunks);
   with EP, each microbatch's forward is ``moe_layers`` equal pieces, each
   followed by the token dispatch and the combine: two all-to-alls of
   ``ep_bytes`` per rank (direct, as NCCL plays them) in every EP group,
   even or, with ``ep_skew``, crowding towards one member per layer;
   with CP, keys and values go round each CP group beside the compute;
3. backward compute (the rest of ``compute``), gradients flowing back
   between stages, with the same two all-to-alls after each of the
   ``moe_layers`` pieces; TP groups all-reduce ``tp_bytes`` after every
   microbatch's forward and backward;
4. gradient synchronization: ``grad_size`` bytes all-reduced among the
   ranks of each DP group in ``buckets`` equal buckets, one after the other
   (one communication stream).  With ``overlap`` bucket j starts as soon as
   the j-th slice of the last microbatch's backward is done (PyTorch DDP);
   otherwise after the whole backward;
5. the optimizer step (``optimizer`` seconds), then the next iteration.

With ``sharding`` the DP group shards the model instead of replicating it
(PyTorch FSDP's strategies; DeepSpeed ZeRO).  The model is ``buckets``
units of ``grad_size / buckets`` parameter bytes; gradient buckets become
reduce-scatters (the same cuts, ``overlap`` as above), and each unit's
parameters are all-gathered over the DP group before its compute, on a
stream of their own: unit u+1's gather is issued when unit u's compute
starts (one unit of prefetch, as FSDP's ``forward_prefetch`` and
``BACKWARD_PRE``), the first after the previous optimizer step.

* ``"shard_grad_op"`` (ZeRO-2; Megatron's distributed optimizer with
  overlapped parameter gathers): gathered once per iteration, before the
  first microbatch's forward, and kept until the step;
* ``"full_shard"`` (ZeRO-3): gathered before every microbatch's forward
  and again, last unit first, before its backward (freed after each use).

``shard_size`` below the DP size is hybrid sharding (PyTorch's HSDP): the
model is sharded within runs of ``shard_size`` consecutive DP ranks and
replicated across them, so gathers and reduce-scatters stay in the run and
each bucket's reduced shard is then all-reduced across the replicas.

Compute is modelled by zero-byte *marker* flows from a rank to itself whose
``delay`` is the compute time: a marker finishes ``delay`` seconds after
its dependencies, so the engine plays compute and communication together.
A collective's transfers wait for the readiness of the ranks they touch
(NCCL kernels start per rank: a rank neither sends nor receives before its
own kernel runs); a per-rank marker records when the rank is done with it.
"""

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional, Sequence, Union

import numpy as np

from ..engine import _ptr
from ..errors import FabricError
from ..memory import check_flow_count, flow_budget
from .collectives import BUSBW_FACTOR, _algorithm, _fewest_transfers, schedule, topology_context
from .pipeline import nodes_of_kind
from .traffic import Traffic

__all__ = ["CP_COMMS", "Job", "PLACEMENTS", "SCHEDULES", "SHARDING", "TRAFFIC_KINDS", "build_job", "place"]

PLACEMENTS = ("packed", "spread", "random")

#: the kinds of a job's transfers (tagged ``job:kind``; compute markers are ``job:compute``)
TRAFFIC_KINDS = {"sync": "gradient sync", "params": "parameter gather", "tp": "tensor parallel", "pp": "pipeline",
                 "ep": "expert all-to-all", "cp": "context parallel", "data": "data loading"}

#: values of ``Job.sharding``: PyTorch FSDP's sharding strategies (ZeRO stages)
SHARDING = ("none", "shard_grad_op", "full_shard")

#: values of ``Job.schedule``: the order of a pipeline stage's microbatch passes
SCHEDULES = ("gpipe", "1f1b", "zb_h1")

#: values of ``Job.cp_comm``, Megatron-LM's ``--cp-comm-type``: per forward and
#: backward, (when, collective, algorithm, share of ``cp_bytes``) in order;
#: "beside" plays beside the pass's compute, "before" and "after" in series
CP_COMMS = {
    "p2p": {"F": [("beside", "all_gather", "ring", 1.0)], "B": [("beside", "all_gather", "ring", 2.0)]},
    "all_gather": {"F": [("before", "all_gather", "ring", 1.0)],
                   "B": [("before", "all_gather", "ring", 1.0), ("after", "reduce_scatter", "ring", 1.0)]},
    "a2a": {"F": [("before", "all_to_all", "direct", 0.75), ("after", "all_to_all", "direct", 0.25)],
            "B": [("before", "all_to_all", "direct", 0.25), ("after", "all_to_all", "direct", 0.75)]},
}


@dataclass
class Job:
    """One training job.

    Parameters
    ----------
    name : str
    accelerators : int
        Ranks; must equal ``tp * pp * dp`` for some whole ``dp``.
    placement : {"packed", "spread", "random"} or list of node names
        ``packed``: the first free accelerators in rank order (contiguous);
        ``spread``: round robin over top-level domains (fat-tree blocks,
        dragonfly groups, torus slices) and their racks (leaf switches,
        routers); ``random``: a seeded random choice; a list: exactly those.
    iterations : int
    compute : float
        Forward + backward seconds per iteration (per rank, its share).
    forward_fraction : float
        Share of ``compute`` that is forward (the rest is backward).
    grad_size : float
        Gradient bytes each rank all-reduces per iteration (its DP group's).
    algorithm, chunks
        Collective algorithm and pipelining of the gradient all-reduce
        (see :func:`fabric.workloads.schedule`).
    buckets : int
        Gradient buckets (separate all-reduces of ``grad_size / buckets``).
    overlap : bool
        Start bucket j when its gradients are ready during backward.
    sharding : {"none", "shard_grad_op", "full_shard"}
        Replicate the model over the DP group (DDP: gradients all-reduced),
        or shard it (gradients reduce-scattered, parameters all-gathered
        per unit of ``grad_size / buckets`` bytes): once per iteration
        (ZeRO-2) or before every forward and backward (FSDP's full shard,
        ZeRO-3).  ``algorithm`` must then be one reduce-scatter and
        all-gather have: ring, halving_doubling or direct.
    shard_size : int
        With sharding: the DP ranks one copy of the model is sharded over
        (a divisor of dp; 0: all of them).  Smaller is hybrid sharding
        (HSDP): sharded within, replicated across such runs of ranks.
    sample_bytes, samples : float, int
        Data loading per rank per iteration (0: no data loading).
    storage : list of node names, optional
        Storage nodes to read from (default: all).
    tp, pp, microbatches : int
        Tensor-parallel group size, pipeline stages, microbatches per iteration.
    schedule : {"gpipe", "1f1b", "zb_h1"}
        The order of a stage's microbatch passes: every forward, then every
        backward (GPipe); or one-forward-one-backward (PipeDream-flush, as
        Megatron-LM and DeepSpeed run it): stage s runs ``pp - 1 - s``
        forwards ahead, then alternates a forward and a backward, then runs
        the backwards left.  The same bubble; 1F1B sends gradients back
        while activations still flow forward, and its last stage finishes
        (and syncs its gradients) earlier.  ``zb_h1``: zero-bubble
        pipelining's ZB-H1 (Qi et al., ICLR 2024), in the order of PyTorch's
        ``ScheduleInterleavedZeroBubble``: each backward splits into B
        (input gradients, sent back at once) and W (weight gradients,
        ``weight_grad_fraction`` of it); forwards and Bs run in 1F1B's
        order, and stage s runs each W ``s`` backwards late and the last
        ones at the end, where they fill 1F1B's bubble at the same
        activation memory: with equal F, B and W and microbatches >= pp,
        the bubble shrinks from (pp - 1)(F + B + W) to (pp - 1)(F + B - W).
        The gradients a bucket syncs are ready when the Ws are done;
        sharded, a W uses the parameters its B gathered.  What each order
        costs in memory: :attr:`activations_held`.
    weight_grad_fraction : float
        With ``schedule="zb_h1"``: the share of the backward that computes
        weight gradients (W); about half in a transformer layer.
    virtual_stages : int
        With ``schedule="1f1b"`` or ``"zb_h1"``: model chunks per stage
        (Megatron-LM's interleaved schedule, its virtual pipeline size v;
        under zb_h1 PyTorch's interleaved zero bubble, which runs
        ``(v - 1) * pp + pp - 1 - s`` forwards ahead on stage s where
        Megatron runs ``(v - 1) * pp + 2 (pp - 1 - s)``).  The layers are
        dealt to ``pp * v`` virtual stages, virtual stage ``c * pp + s`` on
        stage s, so activations go round the stages v times (the last stage
        sending to the first between chunks): the bubble shrinks v-fold,
        to (pp - 1) / v passes, and pipeline traffic grows about v-fold.
        Needs ``microbatches`` a multiple of ``pp``, and ``buckets`` (with
        ``overlap`` or sharding) and ``moe_layers`` (with EP) multiples of v:
        each chunk holds its share of the stage's units and layers.  Sharded,
        a chunk's first pass gathers its first unit once the stage's last
        pass is done (the first chunk's, after the previous step).
    tp_bytes : float
        Bytes each TP group all-reduces after every microbatch's forward and
        backward (after each chunk's, its share, when interleaved).
    activation_bytes : float
        Bytes a stage sends to the next per microbatch (and gradients back).
    ep, ep_bytes, moe_layers : int, float, int
        Expert-parallel group size (divides the DP size), the bytes each
        rank sends in one all-to-all (nccl-tests' size: ``ep_bytes / ep`` to
        each member), and the MoE layers (two all-to-alls each, forward and
        backward, per microbatch).
    cp, cp_bytes, cp_comm : int, float, str
        Context-parallel group size (divides the DP size; Megatron-LM's
        context parallelism), the bytes its attention exchanges per
        microbatch forward (nccl-tests' size) and how (``--cp-comm-type``):

        * ``p2p`` (ring attention): the keys and values go round the group,
          a ring all-gather of ``cp_bytes`` (``cp_bytes / cp`` from each
          rank) beside the forward's compute, the pass ending when both
          are done; the backward passes twice as much (keys and values,
          then their gradients).
        * ``all_gather``: the keys and values are all-gathered before the
          forward's compute, and again before the backward's, whose key and
          value gradients are reduce-scattered after it (``cp_bytes`` each).
        * ``a2a`` (DeepSpeed-Ulysses): all-to-alls swap the sequence split
          for a split of the attention heads and back, in series with the
          compute: of ``cp_bytes``, 3/4 (queries, keys, values) before the
          forward's compute and 1/4 (its output) after; the backward the
          other way round.

        Interleaved, each chunk exchanges its share.  A CP group is ``cp``
        consecutive DP ranks with the same stage and TP index; gradients
        are synced over every DP rank, CP ranks included.
    ep_skew : float
        Expert load imbalance: the members' shares of every rank's tokens
        follow Zipf's law with this exponent (0: even), the most popular
        member being member ``layer % ep`` (hot experts differ by layer);
        the combine sends the results back the same way.
    optimizer : float
        Seconds of optimizer step after gradient sync.
    start : float
        When the job starts.
    seed : int, optional
        Seed of ``random`` placement (default: the run's seed + job index).
    """

    name: str
    accelerators: int
    placement: Union[str, Sequence] = "packed"
    iterations: int = 1
    compute: float = 0.0
    forward_fraction: float = 1 / 3
    grad_size: float = 0.0
    algorithm: Optional[str] = None
    chunks: int = 1
    buckets: int = 1
    overlap: bool = False
    sharding: str = "none"
    shard_size: int = 0
    sample_bytes: float = 0.0
    samples: int = 0
    storage: Optional[Sequence] = None
    tp: int = 1
    pp: int = 1
    microbatches: int = 1
    schedule: str = "gpipe"
    weight_grad_fraction: float = 0.5
    virtual_stages: int = 1
    tp_bytes: float = 0.0
    activation_bytes: float = 0.0
    ep: int = 1
    ep_bytes: float = 0.0
    moe_layers: int = 1
    ep_skew: float = 0.0
    cp: int = 1
    cp_bytes: float = 0.0
    cp_comm: str = "p2p"
    optimizer: float = 0.0
    start: float = 0.0
    seed: Optional[int] = None

    def __post_init__(self):
        def bad(name, expected):
            return FabricError(f"job {self.name!r}: {name}={getattr(self, name)!r}: expected {expected}")

        for name in ("accelerators", "iterations", "chunks", "buckets", "tp", "pp", "microbatches",
                     "virtual_stages", "ep", "moe_layers", "cp"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise bad(name, "a positive integer")
        for name in ("samples", "shard_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise bad(name, "an integer >= 0")
        for name in ("compute", "grad_size", "sample_bytes", "tp_bytes", "activation_bytes", "ep_bytes", "ep_skew",
                     "cp_bytes", "optimizer", "start"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v) and v >= 0):
                raise bad(name, "a finite number >= 0")
        for name in ("forward_fraction", "weight_grad_fraction"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v <= 1):
                raise bad(name, "a number in [0, 1]")
        if self.accelerators % (self.tp * self.pp):
            raise FabricError(f"job {self.name!r}: accelerators={self.accelerators} is not a multiple of "
                              f"tp*pp={self.tp * self.pp}")
        for name in ("ep", "cp"):
            if self.dp % getattr(self, name):
                raise FabricError(f"job {self.name!r}: {name}={getattr(self, name)} does not divide the data-parallel "
                                  f"size dp={self.dp} (accelerators / (tp*pp))")
        if isinstance(self.placement, str) and self.placement not in PLACEMENTS:
            raise FabricError(f"job {self.name!r}: unknown placement {self.placement!r} "
                              f"(expected packed, spread, random, or a list)")
        if self.sharding not in SHARDING:
            raise bad("sharding", ", ".join(SHARDING))
        if self.schedule not in SCHEDULES:
            raise bad("schedule", ", ".join(SCHEDULES))
        if self.cp_comm not in CP_COMMS:
            raise bad("cp_comm", ", ".join(CP_COMMS))
        v, why = self.virtual_stages, None
        if v > 1 and self.schedule == "gpipe":
            why = "needs schedule='1f1b' or 'zb_h1'"
        elif v > 1 and self.pp == 1:
            why = "needs pp > 1"
        elif v > 1 and self.microbatches % self.pp:
            why = f"needs microbatches (={self.microbatches}) a multiple of pp={self.pp}"
        elif self.buckets % v and (self.overlap or self.sharding != "none"):
            why = f"needs buckets (={self.buckets}) a multiple of it: each chunk syncs or gathers its own units"
        elif self.moe_layers % v and self.ep > 1 and self.ep_bytes > 0:
            why = f"needs moe_layers (={self.moe_layers}) a multiple of it"
        if why:
            raise FabricError(f"job {self.name!r}: virtual_stages={v} {why}")
        try:
            self.algorithm = _algorithm(self.sync_op, self.algorithm)
        except FabricError as exc:
            why = f" (sharding={self.sharding!r} reduce-scatters gradients)" if self.sharding != "none" else ""
            raise FabricError(f"job {self.name!r}: {exc}{why}") from None
        if self.shard_size and self.sharding == "none":
            raise FabricError(f"job {self.name!r}: shard_size={self.shard_size} needs sharding "
                              f"(shard_grad_op or full_shard)")
        if self.shard_size and self.dp % self.shard_size:
            raise FabricError(f"job {self.name!r}: shard_size={self.shard_size} does not divide the data-parallel "
                              f"size dp={self.dp}")
        if self.sharding != "none" and self.algorithm == "halving_doubling" and self.shard & (self.shard - 1):
            raise FabricError(f"job {self.name!r}: algorithm='halving_doubling': a sharded job's reduce-scatter "
                              f"and all-gather need a power-of-two shard size, got {self.shard}")

    @property
    def dp(self):
        return self.accelerators // (self.tp * self.pp)

    @property
    def activations_held(self):
        """The most microbatches' activations a pipeline stage holds at once,
        the memory side of the schedule's bubble: each forward's, from its
        start until its backward is done (under zb_h1, until its W), in
        microbatches through the whole stage (one chunk's counts 1 /
        virtual_stages).  GPipe holds them all, 1F1B min(pp, microbatches)
        (on its first stage), Megatron's interleaving pp + (pp - 1) / v with
        microbatches >= 2 pp, and zero bubble as many as 1F1B.

        >>> Job("a", 4, pp=4, microbatches=8, schedule="gpipe").activations_held
        8.0
        >>> Job("a", 4, pp=4, microbatches=8, schedule="1f1b", virtual_stages=2).activations_held
        5.5
        """
        freed_by = "W" if self.schedule == "zb_h1" else "B"
        peak = 0
        for s in range(self.pp):
            held = 0
            for kind, _, _ in _stage_passes(self.schedule, self.pp, self.microbatches, s, self.virtual_stages):
                held += (kind == "F") - (kind == freed_by)
                peak = max(peak, held)
        return peak / self.virtual_stages

    @property
    def sync_op(self):
        """The collective of a gradient bucket (in its shard, when sharded)."""
        return "all_reduce" if self.sharding == "none" else "reduce_scatter"

    @property
    def shard(self):
        """The DP ranks one copy of the model is spread over."""
        return self.shard_size if self.sharding != "none" and self.shard_size else self.dp

    @property
    def bus_factor(self):
        """Bytes each rank sends per byte of a gradient bucket (nccl-tests'
        busbw factor): 2(n-1)/n all-reduced, (n-1)/n reduce-scattered, and
        with hybrid sharding the shard's all-reduce across the replicas on top."""
        if self.sharding == "none":
            return BUSBW_FACTOR["all_reduce"](self.dp)
        g, r = self.shard, self.dp // self.shard
        return BUSBW_FACTOR["reduce_scatter"](g) + BUSBW_FACTOR["all_reduce"](r) / g


# ------------------------------------------------------------ placement

def _domains(net):
    """(top, rack) locality labels of every accelerator, in rank order."""
    G = net.graph
    top, rack = [], []
    for v in net.accelerators.tolist():
        name = net.nodes[v]
        switches = [u for u in G.neighbors(name)
                    if G.nodes[u]["kind"] == "switch" and G.nodes[u].get("tier") != "scaleup"]
        if switches:
            sw = min(switches, key=net.node_id.get)
            rack.append(net.node_id[sw])
            attrs = G.nodes[sw]
            top.append(attrs.get("block", attrs.get("group", 0)))
        else:   # a direct network: the node is its own rack, slices of the first dimension are domains
            rack.append(v)
            coords = G.nodes[name].get("coords")
            top.append(coords[0] if coords else 0)
    return np.array(top, np.int64), np.array(rack, np.int64)


def _spread_order(domains, free):
    """Free accelerators (positions in rank order) in spreading order;
    ``domains``: :func:`_domains` of the network."""
    top, rack = domains[0][free], domains[1][free]
    # i-th free accelerator of its rack, j-th rack of its domain: sort by (i, j, domain)
    order = np.lexsort((free, rack))
    pos_in_rack = np.empty(len(free), np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(rack[order])) + 1]
    pos_in_rack[order] = np.arange(len(free)) - np.repeat(starts, np.diff(np.r_[starts, len(free)]))
    racks = np.unique(np.stack([top, rack]), axis=1)   # sorted by (top, rack)
    rank_of_rack = {}
    for t in np.unique(racks[0]):
        for j, r in enumerate(racks[1][racks[0] == t].tolist()):
            rank_of_rack[r] = j
    rack_pos = np.array([rank_of_rack[r] for r in rack.tolist()], np.int64)
    return free[np.lexsort((top, rack_pos, pos_in_rack))]


def _units(net, free, size):
    """Free accelerators (positions in rank order) cut into units of ``size``
    (a TP group), as a (units, size) array in rank order: within one pod when
    every pod holds ``size`` accelerators, else consecutive free ones."""
    if size == 1:
        return free[:, None]
    pods = net.pod[net.accelerators]
    if np.unique(pods, return_counts=True)[1].min() < size:
        k = len(free) // size
        return free[:k * size].reshape(k, size)
    pod = pods[free]
    order = np.lexsort((free, pod))
    members, pod = free[order], pod[order]
    first = np.r_[0, np.flatnonzero(np.diff(pod)) + 1]
    count = np.diff(np.r_[first, len(pod)])
    rank = np.arange(len(pod)) - np.repeat(first, count)
    keep = rank < np.repeat(count // size * size, count)
    units = members[keep].reshape(-1, size)
    return units[np.argsort(units[:, 0], kind="stable")]


def place(net, jobs, seed=0):
    """Node ids of every job's ranks, in job order.

    Explicit lists are placed first, then the others in order, each from
    the accelerators still free.  A job with ``tp > 1`` is placed in units
    of ``tp`` accelerators of one pod (when pods are that large), so its TP
    groups stay on the scale-up domain whatever the placement.

    Examples
    --------
    >>> import topologies, fabric
    >>> net = fabric.Network(topologies.fat_tree(4))
    >>> a, b = place(net, [Job("a", 4), Job("b", 4, placement="spread")])
    >>> [net.nodes[v] for v in a], [net.nodes[v] for v in b]
    (['acc0', 'acc1', 'acc2', 'acc3'], ['acc4', 'acc8', 'acc12', 'acc6'])
    """
    acc = net.accelerators
    owner = np.full(len(acc), -1, np.int64)
    position = {int(v): i for i, v in enumerate(acc.tolist())}
    out = [None] * len(jobs)
    domains = _domains(net) if any(j.placement == "spread" for j in jobs) else None
    explicit = [i for i, j in enumerate(jobs) if not isinstance(j.placement, str)]
    for i in explicit + [i for i in range(len(jobs)) if i not in explicit]:
        job = jobs[i]
        where = f"jobs[{i}].placement"
        if i in explicit:
            names = list(job.placement)
            if len(names) != job.accelerators:
                raise FabricError(f"{where}: lists {len(names)} accelerators, the job has {job.accelerators}")
            pos = []
            for name in names:
                v = net.node_id.get(name) if isinstance(name, str) else None
                if v is None or int(v) not in position:
                    raise FabricError(f"{where}: {name!r} is not an accelerator")
                p = position[int(v)]
                if owner[p] >= 0 or p in pos:
                    other = jobs[owner[p]].name if owner[p] >= 0 else job.name
                    raise FabricError(f"{where}: {name!r} is already used by job {other!r}")
                pos.append(p)
            pos = np.array(pos, np.int64)
        else:
            free = np.flatnonzero(owner < 0)
            if len(free) < job.accelerators:
                raise FabricError(f"{where}: job {job.name!r} needs {job.accelerators} accelerators, only "
                                  f"{len(free)} of {len(acc)} are free")
            units = _units(net, free, job.tp)   # a TP group is never split
            need = job.accelerators // job.tp
            if len(units) < need:
                raise FabricError(f"{where}: job {job.name!r} needs {need} groups of tp={job.tp} accelerators "
                                  f"in one pod, only {len(units)} are free")
            if job.placement == "packed":
                pick = np.arange(need)
            elif job.placement == "spread":
                leaders = _spread_order(domains, units[:, 0])[:need]
                pick = np.searchsorted(units[:, 0], leaders)
            else:
                rng = np.random.default_rng(seed + i if job.seed is None else job.seed)
                pick = rng.choice(len(units), need, replace=False)
            pos = units[pick].ravel()
        owner[pos] = i
        out[i] = acc[pos].astype(np.int32)
    return out


# ------------------------------------------------------------ the DAG

class _Dag:
    """Flows being built, as column chunks with global ids; dependencies
    are given as columns of flow ids (-1: none) or in CSR form."""

    def __init__(self, fid_base=0, what="flows"):
        self.parts, self.n = [], 0
        self.fid_base = fid_base
        self.iter_base = 0   # flows of iteration i are labelled as their twin in iteration 0
        self.what, self.budget = what, flow_budget()   # what to blame when they outgrow the memory

    def add(self, src, dst, size, tag, *, delay=0.0, deps=(), dep_ptr=None, dep_idx=None):
        src = np.asarray(src, np.int32).ravel()
        k = len(src)
        if dep_ptr is None:
            cols = [np.broadcast_to(np.asarray(d, np.int64).ravel(), (k,)) for d in deps if d is not None]
            cols = np.stack(cols, 1) if cols else np.zeros((k, 0), np.int64)
            ok = cols >= 0
            dep_ptr, dep_idx = _ptr(ok.sum(1)), cols[ok]
        check_flow_count(self.n + k, self.what, self.budget)
        ids = np.arange(self.n, self.n + k)
        counts = np.diff(dep_ptr)
        # the engine counts delay from the last dependency; without one, from the start
        lead = np.where(counts == 0, float(delay), 0.0)
        self.parts.append((src, np.asarray(dst, np.int32).ravel(), np.broadcast_to(np.asarray(size, float), (k,)),
                           np.broadcast_to(float(delay), (k,)), counts, dep_idx, tag,
                           ids - self.iter_base + self.fid_base, lead))
        self.n += k
        return ids

    def markers(self, nodes, delay, tag, deps=(), **csr):
        """Zero-byte flows node -> node finishing ``delay`` after their deps."""
        nodes = np.asarray(nodes)
        return self.add(nodes, nodes, 0.0, tag, delay=delay, deps=deps, **csr).reshape(nodes.shape)

    def traffic(self, start):
        cat = np.concatenate
        tags = list(dict.fromkeys(p[6] for p in self.parts))
        return Traffic(
            src=cat([p[0] for p in self.parts]), dst=cat([p[1] for p in self.parts]),
            size=cat([p[2] for p in self.parts]).astype(np.float64, copy=False),
            start=float(start) + cat([p[8] for p in self.parts]),
            delay=cat([p[3] for p in self.parts]).astype(np.float64, copy=False),
            dep_ptr=_ptr(cat([p[4] for p in self.parts])),
            dep_idx=cat([p[5] for p in self.parts]).astype(np.int64, copy=False),
            tag=cat([np.full(len(p[0]), tags.index(p[6]), np.int16) for p in self.parts]), tags=tuple(tags),
            flow_id=cat([p[7] for p in self.parts]).astype(np.int64, copy=False),
        )


def _merge_csr(n, *relations):
    """CSR over n rows from (rows, values) pairs, rows' order kept."""
    rows = np.concatenate([r for r, _ in relations]).astype(np.int64, copy=False)
    vals = np.concatenate([v for _, v in relations]).astype(np.int64, copy=False)
    order = np.argsort(rows, kind="stable")
    return _ptr(np.bincount(rows, minlength=n)), vals[order]


@dataclass
class _Plan:
    """What one collective schedule needs to be laid over many groups."""
    sched: object
    wait_src: np.ndarray      # transfers that must wait for their sender's readiness
    wait_dst: np.ndarray      # ... for their receiver's
    sink_ptr: np.ndarray      # per rank: transfers it must see finish before it is done
    sink_idx: np.ndarray


def _plan(sched):
    n, T = sched.n_ranks, sched.n_transfers
    dependent = np.repeat(np.arange(T), np.diff(sched.dep_ptr))
    dep = sched.dep_idx
    # a rank's transfer waits for the rank to be ready unless it already waits
    # for an earlier transfer of that rank on the same side (by induction all do)
    chained_src = np.zeros(T, bool)
    chained_dst = np.zeros(T, bool)
    chained_src[dependent[sched.src[dependent] == sched.src[dep]]] = True
    chained_dst[dependent[sched.dst[dependent] == sched.dst[dep]]] = True
    # a transfer touching rank r that a later send of r depends on is covered by that send
    covered_src = np.zeros(T, bool)
    covered_dst = np.zeros(T, bool)
    covered_src[dep[sched.src[dependent] == sched.src[dep]]] = True
    covered_dst[dep[sched.src[dependent] == sched.dst[dep]]] = True
    t = np.arange(T)
    sink_ptr, sink_idx = _merge_csr(n, (sched.src[~covered_src], t[~covered_src]),
                                    (sched.dst[~covered_dst], t[~covered_dst]))
    return _Plan(sched, np.flatnonzero(~chained_src), np.flatnonzero(~chained_dst), sink_ptr, sink_idx)


def _collective(dag, plan, nodes, ready, tag):
    """Lay ``plan`` over groups ``nodes`` (G, n): rank r's transfers wait
    for ``ready[g, r]`` (flow ids, -1: none).  Returns per-rank done
    markers (G, n) and the transfers' ids (G, T)."""
    s = plan.sched
    G, n = nodes.shape
    T = s.n_transfers
    if T == 0:
        return dag.markers(nodes, 0.0, tag + ":done", deps=[ready]), np.zeros((G, 0), np.int64)
    base = dag.n
    offs = (base + np.arange(G) * T)[:, None]
    rows = [(np.tile(np.repeat(np.arange(T), np.diff(s.dep_ptr)), G) + np.repeat(np.arange(G) * T, len(s.dep_idx)),
             (s.dep_idx[None, :] + offs).ravel())]
    for waiting, rank in ((plan.wait_src, s.src), (plan.wait_dst, s.dst)):
        r = ready[:, rank[waiting]]
        ok = r >= 0
        rows.append(((waiting[None, :] + np.arange(G)[:, None] * T)[ok], r[ok]))
    dep_ptr, dep_idx = _merge_csr(G * T, *rows)
    ids = dag.add(nodes[:, s.src], nodes[:, s.dst], np.tile(s.nbytes, G), tag, dep_ptr=dep_ptr, dep_idx=dep_idx)
    ids = ids.reshape(G, T)
    # done markers: after the rank's sinks, and its readiness (a rank may have no transfers)
    sink_rank = np.repeat(np.arange(n), np.diff(plan.sink_ptr))
    ok = ready.ravel() >= 0
    ptr, idx = _merge_csr(G * n, ((np.arange(G)[:, None] * n + sink_rank).ravel(), (offs + plan.sink_idx).ravel()),
                          (np.flatnonzero(ok), ready.ravel()[ok]))
    done = dag.markers(nodes, 0.0, tag + ":done", dep_ptr=ptr, dep_idx=idx)
    return done, ids


def _plans(net, nodes, op, size, algorithm, chunks, cache, where, matrix=None):
    """One plan of ``op`` per distinct pod pattern of the groups (usually one)."""
    G, n = nodes.shape
    keys = []
    try:
        for g in range(G):
            ctx = topology_context(net, nodes[g], algorithm)
            if "pods" in ctx:   # relabel pods by first appearance: same pattern, same schedule
                first = {}
                ctx["pods"] = [first.setdefault(p, len(first)) for p in ctx["pods"]]
            key = (op, n, size, algorithm, chunks, repr(ctx), None if matrix is None else matrix.tobytes())
            if key not in cache:
                cache[key] = _plan(schedule(op, n, size, algorithm=algorithm, chunks=chunks, matrix=matrix, **ctx))
            keys.append(key)
    except FabricError as exc:
        raise FabricError(f"{where}: {exc}") from None
    return [(cache[k], np.array([g for g in range(G) if keys[g] == k])) for k in dict.fromkeys(keys)]


def _in_groups(dag, net, nodes, ready, op, size, algorithm, chunks, tag, cache, record=None, matrix=None):
    """Collective ``op`` of ``size`` bytes (or all_to_all's ``matrix``) in each
    group of ``nodes`` (G, n); per-rank done markers."""
    done = np.empty(nodes.shape, np.int64)
    for plan, groups in _plans(net, nodes, op, size, algorithm, chunks, cache, tag, matrix):
        d, ids = _collective(dag, plan, nodes[groups], ready[groups], tag)
        done[groups] = d
        if record is not None:
            record.append(ids.ravel())
    return done


@dataclass
class JobFlows:
    """A job's flows and where to find its parts (ids index ``traffic``)."""
    job: Job
    ranks: np.ndarray                 # node ids, rank order
    traffic: Traffic
    iteration_end: list = field(default_factory=list)   # per iteration: end markers of every rank
    syncs: list = field(default_factory=list)           # per iteration: per bucket, transfer ids
    compute: list = field(default_factory=list)         # rank 0's compute markers (id, seconds)
    data: list = field(default_factory=list)            # per iteration: rank 0's batch-arrived marker
    _kind: Optional[np.ndarray] = field(default=None, repr=False)   # per flow: its TRAFFIC_KINDS index, or -1

    def transfers(self, kinds, rank=None):
        """Ids of the job's transfers of ``kinds`` (keys of
        :data:`TRAFFIC_KINDS`), only those into or out of node ``rank`` if
        given.  Compute and readiness markers (node to itself) are none."""
        t = self.traffic
        if self._kind is None:   # once per job: its shared and isolated runs both ask
            names = list(TRAFFIC_KINDS)
            of_tag = np.array([names.index(tag.split(":")[1]) if tag.count(":") == 1 and tag.split(":")[1] in names
                               else -1 for tag in t.tags], np.int8)
            self._kind = np.where(t.src != t.dst, of_tag[t.tag], -1).astype(np.int8)
        sel = np.isin(self._kind, [list(TRAFFIC_KINDS).index(k) for k in kinds])
        if rank is not None:
            sel &= (t.src == rank) | (t.dst == rank)
        return np.flatnonzero(sel)


def build_job(net, job, ranks, *, label=0):
    """The flow DAG of ``job`` on node ids ``ranks``; ``label`` keeps its
    routing labels apart from other jobs'.

    Examples
    --------
    Two ranks, 1 s of compute, a 1 GB all-reduce over 1 GB/s links (2 steps
    of 0.5 GB): 2 s per iteration.

    >>> import topologies, fabric
    >>> net = fabric.Network(topologies.fat_tree(4, bandwidth=1e9, latency=0.0))
    >>> job = Job("a", 2, iterations=3, compute=1.0, grad_size=1e9)
    >>> jf = build_job(net, job, net.accelerators[:2])
    >>> r = fabric.simulate(net, jf.traffic)
    >>> [float(r.finish[ids].max()) for ids in jf.iteration_end]
    [2.0, 4.0, 6.0]
    """
    ranks = np.asarray(ranks, np.int32)
    if len(ranks) != job.accelerators:
        raise FabricError(f"job {job.name!r}: {len(ranks)} ranks for {job.accelerators} accelerators")
    pp, tp, dp, m, ep = job.pp, job.tp, job.dp, job.microbatches, job.ep
    moe = ep > 1 and job.ep_bytes > 0
    layers = job.moe_layers if moe else 1
    R = ranks.reshape(pp, dp, tp)
    name = job.name
    dag = _Dag(fid_base=int(label) << 40, what=f"job {job.name!r} (iterations={job.iterations}, "
               f"buckets={job.buckets}, chunks={job.chunks}, microbatches={job.microbatches})")
    out = JobFlows(job, ranks, None)
    cache = {}
    stores = nodes_of_kind(net, "storage", job.storage) if job.samples and job.sample_bytes else None
    fwd_t = job.compute * job.forward_fraction / m
    bwd_t = job.compute * (1 - job.forward_fraction) / m
    split = job.schedule == "zb_h1"   # backwards split into B (input gradients) and W (weight gradients)
    bwd_w_t = bwd_t * job.weight_grad_fraction if split else 0.0
    bwd_in_t = bwd_t - bwd_w_t
    dp_groups = _dp_groups(R, dp)
    sharded = job.sharding != "none" and dp > 1 and job.grad_size > 0
    units = job.buckets
    v, V = job.virtual_stages, pp * job.virtual_stages   # model chunks per stage, virtual stages
    chunk_units = units // v   # each chunk's share of the stage's units and MoE layers
    chunk_layers = [list(range(c * layers // v, (c + 1) * layers // v)) for c in range(v)] if moe else [[0]] * v
    none = np.full(R.shape, -1, np.int64)
    prev_end, data, started = none, none, none
    if dp > 1 and job.grad_size > 0:
        # the gradient all-reduces alone, counted before any is built: a job
        # too big to play is refused at once, not after minutes of building
        if sharded:   # reduce-scatters and gathers in the shards, all-reduces across the replicas
            g, shards = job.shard, pp * tp * (dp // job.shard)
            per_sync = shards * _fewest_transfers("reduce_scatter", job.algorithm, g, None, None) + \
                pp * tp * g * _fewest_transfers("all_reduce", job.algorithm, dp // g, None, None)
            per_gather = shards * _fewest_transfers("all_gather", job.algorithm, g, None, None)
        else:
            pods = [net.pod[g] if job.algorithm == "hierarchical" else None for g in dp_groups]
            per_sync = sum(_fewest_transfers("all_reduce", job.algorithm, dp, None, p) for p in pods)
            per_gather = 0
        passes = 2 * m if job.sharding == "full_shard" else 1   # forward (and backward) passes that gather
        check_flow_count(job.iterations * job.buckets * job.chunks * (per_sync + passes * per_gather),
                         dag.what, dag.budget)
    if moe:   # two all-to-alls per MoE layer, forward and backward, per microbatch, in every EP group
        per_pass = 2 * layers * pp * tp * (dp // ep) * _fewest_transfers("all_to_all", "direct", ep, None, None)
        check_flow_count(job.iterations * m * 2 * per_pass, dag.what, dag.budget)
    cp_steps = CP_COMMS[job.cp_comm] if job.cp > 1 and job.cp_bytes > 0 else {"F": [], "B": []}
    if cp_steps["F"]:   # the CP collectives of every chunk's forward and backward, per microbatch, in every CP group
        per_mb = sum(_fewest_transfers(op, algorithm, job.cp, None, None)
                     for steps in cp_steps.values() for _, op, algorithm, _ in steps)
        check_flow_count(job.iterations * m * v * pp * tp * (dp // job.cp) * per_mb, dag.what, dag.budget)

    def compute(s, seconds, deps):
        ids = dag.markers(R[s], seconds, f"{name}:compute", deps=deps)
        if s == 0 and seconds > 0:
            out.compute.append((int(ids.flat[0]), seconds))
        return ids

    def tensor_parallel(s, ready):   # stage s's TP groups are the rows of R[s]; a chunk's share of its layers
        if tp == 1 or not job.tp_bytes:
            return ready
        return _in_groups(dag, net, R[s], ready, "all_reduce", job.tp_bytes / v, "ring", 1, f"{name}:tp", cache)

    def in_dp_groups(s, ready, size, ops):
        """Collectives one after the other in stage s's groups of ``size``
        consecutive DP ranks (shards, EP or CP groups), from ``ready``;
        ``ops``: (op, bytes, algorithm, chunks, kind, matrix) each.
        Returns when each rank is done with the last."""
        groups, ready = _dp_groups(R[s][None], size), _dp_groups(ready[None], size)
        for op, nbytes, algorithm, chunks, kind, matrix in ops:
            ready = _in_groups(dag, net, groups, ready, op, nbytes, algorithm, chunks, f"{name}:{kind}", cache,
                               matrix=matrix)
        return _from_groups(ready, (1, dp, tp), size)[0]

    def gather(s, ready):   # one unit's parameters, all-gathered in stage s's shards
        return in_dp_groups(s, ready, job.shard,
                            [("all_gather", job.grad_size / units, job.algorithm, job.chunks, "params", None)])

    def one_pass(s, seconds, deps, n_units, gathers, gate, layer_order, unit_ends=None):
        """A microbatch's forward or backward on stage s, from ``cur[s]``:
        ``seconds`` of compute in ``n_units`` units, cut further where an
        MoE layer ends (its exchanges follow, layers in ``layer_order``;
        none for a zero-bubble W, which exchanges nothing).  With
        ``gathers``, each unit waits for its parameters, gathered one unit
        ahead: the first after ``gate``, the next issued as this one's
        compute may start.  ``unit_ends`` collects the markers of each
        unit's end (its gradients are ready)."""
        n_layers, layer_order, ags, u, starts = len(layer_order) or 1, iter(layer_order), [], 0, True
        for share, unit_end, layer_end in _pieces(n_units, n_layers):
            if gathers and starts:   # unit u starts
                if u == 0:
                    ags.append(gather(s, gate))
                if u + 1 < n_units:
                    ags.append(gather(s, dag.markers(R[s], 0.0, f"{name}:params", deps=[ags[u], cur[s]])))
                deps.append(ags[u])
            cur[s] = compute(s, seconds * share.numerator / share.denominator, deps)
            deps = [cur[s]]
            if unit_end and unit_ends is not None:
                unit_ends.append(cur[s].copy())
            if layer_end:
                cur[s] = expert_parallel(s, cur[s], next(layer_order, None))
            u, starts = u + unit_end, unit_end

    def context_parallel(s, kind, when, ready):
        """Stage s's CP collectives of a forward or backward (``kind``) that
        play ``when`` ("before", "beside", "after") its compute, one after
        the other in its CP groups from ``ready``; None if there are none."""
        ops = [(op, job.cp_bytes * share / v, algorithm, 1, "cp", None)
               for at, op, algorithm, share in cp_steps[kind] if at == when]
        return in_dp_groups(s, ready, job.cp, ops) if ops else None

    def cp_pass(s, kind, deps, play):
        """A pass (``play(deps)`` builds it from ``cur[s]``) with its CP
        exchanges: what goes before it waits for ``deps``; what goes beside
        it starts with it, the pass ending when both are done."""
        beside = before = None
        if cp_steps[kind]:
            start = dag.markers(R[s], 0.0, f"{name}:compute", deps=deps)
            beside = context_parallel(s, kind, "beside", start)
            before = context_parallel(s, kind, "before", start)
        play(deps if before is None else [before])
        cur[s] = tensor_parallel(s, cur[s])
        if beside is not None:
            cur[s] = dag.markers(R[s], 0.0, f"{name}:compute", deps=[cur[s], beside])
        after = context_parallel(s, kind, "after", cur[s])
        cur[s] = cur[s] if after is None else after

    def expert_parallel(s, ready, layer):   # token dispatch and combine in stage s's EP groups
        if not moe or layer is None:
            return ready
        dispatch = _token_matrix(ep, job.ep_bytes, job.ep_skew, layer)
        return in_dp_groups(s, ready, ep, [("all_to_all", job.ep_bytes, "direct", 1, "ep", matrix)
                                           for matrix in (dispatch, None if dispatch is None else dispatch.T)])

    for _ in range(job.iterations):
        dag.iter_base = dag.n
        gate = prev_end
        if stores is not None:
            batch = job.sample_bytes * job.samples / len(stores)
            dst = np.repeat(R.ravel(), len(stores))
            after = [np.repeat(data.ravel(), len(stores)), np.repeat(started.ravel(), len(stores))]
            reads = dag.add(np.tile(stores, R.size), dst, batch, f"{name}:data", deps=after)
            data = dag.markers(R, 0.0, f"{name}:data", dep_ptr=_ptr(np.full(R.size, len(stores))),
                               dep_idx=reads).reshape(R.shape)
            started = gate = dag.markers(R, 0.0, f"{name}:compute", deps=[prev_end, data])
            out.data.append(int(data.flat[0]))
        cur = gate.copy()
        # act[w][k] / grad[w][k]: the transfers virtual stage w (chunk w // pp on
        # stage w % pp) waits for before microbatch k's forward / backward
        # (-1: none to wait for, None: not built yet)
        act = [[-1 if w == 0 else None] * m for w in range(V)]
        grad = [[-1 if w == V - 1 else None] * m for w in range(V)]
        bucket_ready = [[] for _ in range(pp)]

        def forward(s, k, c):
            w = c * pp + s
            gathers = sharded and (k == 0 or job.sharding == "full_shard")
            # a pass's first gather waits for the stage's last pass; the very first, for the last step
            cp_pass(s, "F", [cur[s], act[w][k]], lambda deps: one_pass(
                s, fwd_t / v, deps, chunk_units if gathers else 1, gathers,
                prev_end[s] if k == 0 and c == 0 else cur[s], chunk_layers[c]))
            if w < V - 1:
                act[w + 1][k] = dag.add(R[s], R[(s + 1) % pp], job.activation_bytes, f"{name}:pp", deps=[cur[s]])

        def backward(s, k, c):
            w = c * pp + s
            gathers = sharded and job.sharding == "full_shard"
            # the backward meets the units and the MoE layers last to first;
            # split (zero bubble), its gradients are ready after its W
            last = k == m - 1 and not split
            cp_pass(s, "B", [cur[s], grad[w][k]], lambda deps: one_pass(
                s, bwd_in_t / v, deps, chunk_units if gathers or (job.overlap and last) else 1, gathers,
                cur[s], chunk_layers[c][::-1], bucket_ready[s] if last else None))
            if w > 0:
                grad[w - 1][k] = dag.add(R[s], R[(s - 1) % pp], job.activation_bytes, f"{name}:pp", deps=[cur[s]])

        def weight(s, k, c):   # the W of a split backward: compute only, in units where buckets wait for it
            last = k == m - 1
            one_pass(s, bwd_w_t / v, [cur[s]], chunk_units if job.overlap and last else 1, False, None, [],
                     bucket_ready[s] if last else None)

        _in_schedule_order(job.schedule, pp, m, v, act, grad, forward, backward, weight)
        syncs = []
        if dp > 1 and job.grad_size > 0:
            after = none
            for j in range(job.buckets):
                ready = np.stack([bucket_ready[s][j] for s in range(pp)]) if job.overlap else cur
                record = []
                after = _bucket(dag, net, R, ready, after, job, name, cache, record)
                syncs.append(np.concatenate(record))
            end = dag.markers(R, job.optimizer, f"{name}:compute", deps=[after, cur])
        else:
            end = dag.markers(R, job.optimizer, f"{name}:compute", deps=[cur])
        out.syncs.append(syncs)
        out.iteration_end.append(end.ravel())
        prev_end = end
    out.traffic = dag.traffic(job.start)
    return out


def _stage_passes(schedule, pp, m, s, v=1):
    """Stage s's microbatch passes in order: ("F", k, c) the forward of
    microbatch k through model chunk c, ("B", k, c) its backward (under
    zb_h1 its input gradients, and ("W", k, c) its weight gradients)."""
    if schedule == "gpipe":
        return [("F", k, 0) for k in range(m)] + [("B", k, 0) for k in range(m)]
    if schedule == "zb_h1":   # PyTorch's zero bubble: one forward more per later stage, not two
        ahead = min(pp - 1 - s + (v - 1) * pp, m * v)
    elif v == 1:
        ahead = min(pp - 1 - s, m)   # 1F1B: forwards in flight before the first backward
    else:   # Megatron-LM's interleaved 1F1B: pp microbatches through each chunk in turn
        ahead = m * v if m == pp else min((pp - 1 - s) * 2 + (v - 1) * pp, m * v)

    def nth(i, kind):   # the i-th forward or backward of the stage
        group, j = divmod(i, pp * v)
        c = j // pp if kind == "F" else v - 1 - j // pp
        return kind, group * pp + j % pp, c

    passes = [nth(i, "F") for i in range(ahead)]
    for i in range(m * v - ahead):
        passes += [nth(ahead + i, "F"), nth(i, "B")]
    passes += [nth(i, "B") for i in range(m * v - ahead, m * v)]
    if schedule != "zb_h1":
        return passes
    # zero bubble: the t-th backward is followed by the W of backward t - s; the last s come at the end
    out, bs = [], []
    for p in passes:
        out.append(p)
        if p[0] == "B":
            bs.append(p)
            if len(bs) > s:
                out.append(("W",) + bs[-1 - s][1:])
    return out + [("W",) + b[1:] for b in bs[max(0, len(bs) - s):]]


def _in_schedule_order(schedule, pp, m, v, act, grad, forward, backward, weight):
    """Build every stage's passes in its schedule's order, each once the
    transfer it waits for (``act`` / ``grad`` by virtual stage, None until
    built) exists: stage by stage, each as far as it can go, until all are
    built.  Under GPipe that is every forward stage by stage, then every
    backward last stage first.  A W waits for nothing from other stages."""
    todo = [_stage_passes(schedule, pp, m, s, v) for s in range(pp)]
    at = [0] * pp
    while True:
        moved = False
        for s in range(pp):
            while at[s] < len(todo[s]):
                kind, k, c = todo[s][at[s]]
                if kind == "W":
                    weight(s, k, c)
                elif (act if kind == "F" else grad)[c * pp + s][k] is None:
                    break
                else:
                    (forward if kind == "F" else backward)(s, k, c)
                at[s] += 1
                moved = True
        if not moved:
            break
    assert all(a == len(t) for a, t in zip(at, todo)), "a pipeline schedule that waits on itself"


def _dp_groups(a, size, across=False):
    """Groups of the DP ranks of a (pp, dp, tp) array, each within one stage
    and TP index: runs of ``size`` consecutive DP indices (EP groups,
    shards), rows of (pp * dp/size * tp, size); with ``across``, the ranks
    at one place of every run (replicas), rows of (pp * size * tp, dp/size)."""
    pp, dp, tp = a.shape
    b = a.reshape(pp, dp // size, size, tp)
    if across:
        return b.transpose(0, 2, 3, 1).reshape(-1, dp // size)
    return b.transpose(0, 1, 3, 2).reshape(-1, size)


def _from_groups(groups, shape, size, across=False):
    """:func:`_dp_groups` undone: the groups' entries back in ``shape``."""
    where = _dp_groups(np.arange(math.prod(shape)).reshape(shape), size, across)
    out = np.empty(math.prod(shape), groups.dtype)
    out[where.ravel()] = groups.ravel()
    return out.reshape(shape)


def _token_matrix(ep, size, skew, layer):
    """Bytes member i sends member j in an MoE layer's dispatch: row i is
    ``size`` split by Zipf's law over the members, member ``layer % ep``
    the most popular (None when even: the plain all-to-all)."""
    if skew == 0:
        return None
    share = np.roll(1.0 / np.arange(1, ep + 1) ** skew, layer % ep)
    return np.tile(size * share / share.sum(), (ep, 1))


def _pieces(units, layers):
    """A microbatch's forward or backward cut where a unit ends (a gradient
    bucket is ready, the next unit's parameters are needed: every 1/units)
    and where an MoE layer ends (every 1/layers): (share of the pass, a unit
    ends, a layer ends) per piece, in order."""
    ends = sorted({Fraction(j, units) for j in range(1, units + 1)} |
                  {Fraction(j, layers) for j in range(1, layers + 1)})
    return [(e - b, (e * units).denominator == 1, (e * layers).denominator == 1)
            for b, e in zip([Fraction(0)] + ends, ends)]


def _bucket(dag, net, R, ready, after, job, name, cache, record):
    """One gradient bucket: waits for ``ready`` and the previous bucket
    (``after``) on every rank; returns per-rank done markers (R's shape).
    All-reduced, or reduce-scattered in each shard and, with hybrid
    sharding, the shard all-reduced across the replicas."""
    g, size = job.shard, job.grad_size / job.buckets
    if (after >= 0).any():   # two conditions per rank: join them in a marker
        ready = dag.markers(R, 0.0, f"{name}:sync", deps=[ready, after])
    done = _in_groups(dag, net, _dp_groups(R, g), _dp_groups(ready, g), job.sync_op, size, job.algorithm,
                      job.chunks, f"{name}:sync", cache, record)
    done = _from_groups(done, R.shape, g)
    if g < job.dp:
        done = _in_groups(dag, net, _dp_groups(R, g, True), _dp_groups(done, g, True), "all_reduce", size / g,
                          job.algorithm, job.chunks, f"{name}:sync", cache, record)
        done = _from_groups(done, R.shape, g, True)
    return done
