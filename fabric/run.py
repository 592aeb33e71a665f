"""Training jobs sharing a fabric: one shared run, one isolated run per job,
and each job's slowdown.

A job's slowdown is its completion time in the shared run over its
completion time alone on the same placement (its own data loading included,
the other jobs, pipelines and background traffic left out).
"""

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from . import metrics
from .engine import FlowArrays, simulate_links
from .memory import check_flow_count
from .network import simulate
from .workloads.jobs import TRAFFIC_KINDS, build_job, place
from .workloads.traffic import Traffic

__all__ = ["JobStats", "JobsResult", "compute_bound", "run_jobs"]


@dataclass
class JobStats:
    """One job's times in one run (seconds; nan where the run stopped early).

    ``iteration_times[i]``: from the end of iteration i-1 (or the job's
    start) to the end of iteration i on its slowest rank.  ``in_flight``:
    per kind of transfer the job has (``workloads.jobs.TRAFFIC_KINDS``),
    the seconds during which at least one of them was in flight (released,
    not finished); ``comm_time`` is that of gradient sync.  ``syncs``: one
    row per gradient bucket's collective (iteration, bucket, start, end);
    ``algbw``/``busbw``: the mean over them of bucket bytes over duration
    (nccl-tests definitions).
    """

    jct: float
    iteration_times: np.ndarray
    comm_time: float
    algbw: float
    busbw: float
    syncs: np.ndarray
    in_flight: dict

    @property
    def iterations_done(self):
        return int(np.isfinite(self.iteration_times).sum())


def union(starts, ends):
    """The union of intervals [starts, ends] (unfinished ones, nan, left
    out) as disjoint stretches: (their starts, their ends), in order."""
    ok = np.isfinite(starts) & np.isfinite(ends)
    starts, ends = starts[ok], ends[ok]
    if not len(starts):
        return starts, ends
    order = np.argsort(starts, kind="stable")
    s, reach = starts[order], np.maximum.accumulate(ends[order])
    first = np.flatnonzero(np.r_[True, s[1:] > reach[:-1]])   # where a gap ends, a new stretch starts
    return s[first], reach[np.r_[first[1:] - 1, len(s) - 1]]


def _union_length(starts, ends):
    a, b = union(starts, ends)
    return float(np.sum(b - a))


def _in_flight(jf, res, offset):
    """Per kind of the job's transfers: seconds with at least one in flight."""
    out = {}
    for kind in TRAFFIC_KINDS:
        ids = jf.transfers((kind,)) + offset
        if len(ids):
            out[kind] = _union_length(res.release[ids], res.finish[ids])
    return out


def _iterations(jf, fin, offset=0):
    """When the job's iterations end, and how long each took, from its
    flows' finish times (its flows at ``offset`` onwards); nan where a rank
    is unfinished."""
    ends = np.array([fin[ids + offset].max() for ids in jf.iteration_end])
    return ends, np.diff(np.concatenate([[jf.job.start], ends]))


def _job_stats(jf, res, offset):
    job = jf.job
    fin, rel = res.finish, res.release
    ends, iteration_times = _iterations(jf, fin, offset)
    syncs = np.array([(i, b, rel[ids + offset].min(), fin[ids + offset].max())
                      for i, buckets in enumerate(jf.syncs) for b, ids in enumerate(buckets)], dtype=float).reshape(-1, 4)
    syncs = syncs[np.isfinite(syncs).all(axis=1)]
    width = syncs[:, 3] - syncs[:, 2]
    algbw = float(np.mean(job.grad_size / job.buckets / width[width > 0])) if (width > 0).any() else math.nan
    in_flight = _in_flight(jf, res, offset)
    return JobStats(jct=float(ends[-1] - job.start), iteration_times=iteration_times,
                    comm_time=in_flight.get("sync", 0.0), algbw=algbw,
                    busbw=algbw * job.bus_factor, syncs=syncs, in_flight=in_flight)


def compute_bound(jf):
    """The job's iteration times on an ideal network, where every transfer
    takes no time: what is left is compute, the pipeline bubble and the
    optimizer step.  A shared or isolated iteration beyond it is
    communication the job could not hide (exposed communication).

    Examples
    --------
    A 2-stage pipeline of 4 microbatches with 1 s of compute per stage and
    0.5 s of optimizer step: (4 + 2 - 1) / 4 * 1 + 0.5 = 1.75 s, whatever
    the network.

    >>> import topologies, fabric
    >>> from fabric.workloads.jobs import build_job
    >>> net = fabric.Network(topologies.fat_tree(4, bandwidth=1e9, latency=1e-6))
    >>> job = fabric.Job("a", 4, pp=2, microbatches=4, iterations=2, compute=1.0, optimizer=0.5,
    ...                  grad_size=1e9, activation_bytes=1e8)
    >>> compute_bound(build_job(net, job, net.accelerators[:4])).round(9).tolist()
    [1.75, 1.75]
    """
    t = jf.traffic
    F = t.n_flows
    # zero bytes on no links: each flow finishes as it is released
    free = FlowArrays.single_path(np.zeros(F), np.zeros(F + 1, np.int64), np.zeros(0, np.int32), start=t.start,
                                  delay=t.delay, dep_ptr=t.dep_ptr, dep_idx=t.dep_idx)
    return _iterations(jf, simulate_links(np.ones(1), np.zeros(1), free).finish)[1]


def _exposed(iteration, ideal):
    """iteration - ideal, nan if unknown.  Free transfers can only make a
    run faster, so below zero is rounding."""
    d = iteration - ideal
    return 0.0 if d < 0 else d


@dataclass
class JobsResult:
    """What :func:`run_jobs` found.

    Attributes
    ----------
    jobs : list of Job
    flows : list of workloads.jobs.JobFlows
        Each job's flow DAG; job i's flows sit at ``offsets[i]`` onwards in
        the shared run.
    shared : list of JobStats
        Per job, in the shared run.
    isolated : list of JobStats or None
        Per job, alone (None where not run).
    ideal : list of numpy arrays
        Per job, its iteration times on an ideal network
        (:func:`compute_bound`).
    result : fabric.Result
        The shared run (``result.partial`` if it was stopped).
    traffic : Traffic
        The shared run's flows (tags name the job or workload).
    """

    net: object
    jobs: list
    flows: list
    offsets: list
    shared: list
    isolated: list
    ideal: list
    result: object
    traffic: Traffic
    partial: bool = False

    def slowdown(self, i):
        """Job i's JCT shared / alone (nan when unknown; 1 for a job with nothing to wait for)."""
        iso, jct = self.isolated[i], self.shared[i].jct
        if iso is None or not math.isfinite(jct):
            return math.nan
        return jct / iso.jct if iso.jct > 0 else (1.0 if jct == iso.jct else math.inf)

    def table(self):
        """One dict per job: the headline numbers.  ``compute_bound_s`` is
        the mean iteration on an ideal network; ``exposed_comm_s`` (and
        ``isolated_exposed_comm_s``) how much longer the mean iteration
        took, ``exposed_share`` that as a share of the iteration;
        ``activations_held`` the schedule's peak activation memory in
        microbatches (:attr:`Job.activations_held`)."""
        rows = []
        for i, job in enumerate(self.jobs):
            s, iso = self.shared[i], self.isolated[i]
            nan = math.nan
            ideal = float(np.mean(self.ideal[i]))
            rows.append({
                "job": job.name, "accelerators": job.accelerators,
                "placement": job.placement if isinstance(job.placement, str) else "list",
                "iterations": job.iterations, "iterations_done": s.iterations_done,
                "jct_s": s.jct, "isolated_jct_s": iso.jct if iso else nan, "slowdown": self.slowdown(i),
                "iteration_s": float(np.mean(s.iteration_times)),
                "isolated_iteration_s": float(np.mean(iso.iteration_times)) if iso else nan,
                "comm_s": s.comm_time, "isolated_comm_s": iso.comm_time if iso else nan,
                "algbw_Bps": s.algbw, "busbw_Bps": s.busbw, "isolated_busbw_Bps": iso.busbw if iso else nan,
            })
            r = rows[-1]
            r["iteration_slowdown"] = r["iteration_s"] / r["isolated_iteration_s"] if r["isolated_iteration_s"] else nan
            r["comm_slowdown"] = r["comm_s"] / r["isolated_comm_s"] if r["isolated_comm_s"] else nan
            r["compute_bound_s"] = ideal
            r["activations_held"] = job.activations_held
            r["exposed_comm_s"] = _exposed(r["iteration_s"], ideal)
            r["isolated_exposed_comm_s"] = _exposed(r["isolated_iteration_s"], ideal)
            r["exposed_share"] = r["exposed_comm_s"] / r["iteration_s"] if r["iteration_s"] > 0 else nan
        return rows

    def communication(self):
        """One dict per job and kind of transfer it has (``workloads.jobs.TRAFFIC_KINDS``):
        seconds in flight, shared and alone, and their ratio."""
        rows = []
        for job, s, iso in zip(self.jobs, self.shared, self.isolated):
            for kind in TRAFFIC_KINDS:
                if kind in s.in_flight:
                    shared, alone = s.in_flight[kind], iso.in_flight.get(kind, math.nan) if iso else math.nan
                    rows.append({"job": job.name, "kind": kind, "time_s": shared, "isolated_time_s": alone,
                                 "slowdown": shared / alone if alone > 0 else math.nan})
        return rows

    def hot_links(self, top=10):
        return metrics.hot_links(self.result, self.net, top, self.traffic.tag, self.traffic.tags)

    def fct(self):
        return metrics.fct_stats(self.result, self.traffic.tag, self.traffic.tags)


def _spare_cores():
    try:
        return len(os.sched_getaffinity(0)) - 1
    except AttributeError:   # not on Linux
        return (os.cpu_count() or 1) - 1


def _play(net, shared_traffic, todo, *, events, record_links, progress, threads):
    """The shared run in this thread and every built job of ``todo`` alone,
    on up to ``threads`` threads beside it (0: after it, one by one).
    Returns the shared run's Result and per job its JobStats alone, or None
    where the runs were stopped."""
    stop = threading.Event()   # set when any run is stopped: the others stop too
    n_threads = min(len(todo), threads)
    pool = ThreadPoolExecutor(n_threads, thread_name_prefix="fabric-isolated") if n_threads > 0 else None
    futures = []

    def start_isolated():
        # once the shared engine plays (without the GIL), not before: building
        # and routing hold the GIL anyway, and a Ctrl-C before the shared run
        # plays must find nothing else running
        if pool is not None and not futures:
            futures.extend(pool.submit(alone, b) for b in todo)

    def watcher(stage, total):
        def report(now, n_events, done):
            if stop.is_set():
                return False
            if stage == "shared" and n_events:
                start_isolated()
            if progress is not None and progress(stage, now, n_events, done, total) is False:
                stop.set()
                return False
            return True
        return report

    def alone(b):
        """The job's stats alone, or None if the runs were stopped."""
        if stop.is_set():
            return None
        r = simulate(net, b.traffic, events=events, progress=watcher(b.job.name, b.traffic.n_flows))
        if r.partial:
            stop.set()
            return None
        return _job_stats(b, r, 0)

    try:
        res = simulate(net, shared_traffic, record_links=record_links, link_summary=True, events=events,
                       progress=watcher("shared", shared_traffic.n_flows))
        if res.partial:
            stop.set()
        if pool is None:
            alone_stats = [alone(b) for b in todo]
        else:
            start_isolated()   # a shared run too short to report plays first
            try:
                wait(futures)
            except KeyboardInterrupt:   # as the engine does: stop, and report what ran
                stop.set()
                wait(futures)
            alone_stats = [f.result() for f in futures]
    finally:
        stop.set()   # after an error too: leave nothing playing
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return res, alone_stats


def run_jobs(net, jobs, *, traffic=(), events=(), seed=0, placements=None, isolated=True, record_links=False,
             progress=None, threads=None):
    """Play jobs (and other traffic) together on ``net``, and each job alone.

    Parameters
    ----------
    net : fabric.Network
    jobs : list of Job
    traffic : list of Traffic
        Pipelines and background traffic sharing the fabric (not in the
        isolated runs).
    events : list of fabric.LinkEvent
        Timed failures, in every run.
    seed : int
        Seed of random placements.
    placements : list of node-id arrays, optional
        Ranks of every job (default: :func:`place`).
    isolated : bool
        Run every job alone too (needed for slowdowns).
    record_links : bool
        Also keep every link's load as a step function in the shared run
        (``result.link_utilization``).  The congestion metrics (hot links,
        tiers, the heatmap) do not need it: the shared run always keeps its
        link summary, in O(links) memory, where the log of a long run takes
        GBs.
    progress : callable, optional
        ``progress(stage, now, events, flows_done, flows)`` during every run
        (stage ``"shared"`` or a job name), from the thread playing it;
        returning False stops every run and the result is partial.
    threads : int, optional
        Threads that play the isolated runs while the shared run plays
        (default: one per spare core, at most one per job; 0 plays them
        after it, one by one).  The engine runs without the GIL, so the runs
        overlap on several cores; the results are the same either way, but
        the runs' memory adds up.

    Examples
    --------
    Two 4-rank jobs whose all-reduces cross one 1 GB/s link between two
    switches: each runs twice as long as alone.

    >>> import networkx as nx, topologies, fabric
    >>> G = nx.Graph()
    >>> for s in "LR":
    ...     G.add_node(s, kind="switch", tier="leaf")
    >>> for i in range(8):
    ...     G.add_node(f"a{i}", kind="accelerator", pod=i)
    ...     G.add_edge(f"a{i}", "L" if i % 4 < 2 else "R", capacity=1e12, latency=0.0)
    >>> G.add_edge("L", "R", capacity=1e9, latency=0.0)
    >>> net = fabric.Network(G)
    >>> jobs = [fabric.Job(n, 4, iterations=2, grad_size=4e8) for n in "ab"]
    >>> r = run_jobs(net, jobs)
    >>> [round(r.slowdown(i), 9) for i in range(2)]
    [2.0, 2.0]
    """
    jobs = list(jobs)
    placements = place(net, jobs, seed) if placements is None else placements
    built = [build_job(net, job, ranks, label=i + 1) for i, (job, ranks) in enumerate(zip(jobs, placements))]
    offsets = np.cumsum([0] + [b.traffic.n_flows for b in built])[:-1].tolist()
    parts = [b.traffic for b in built] + list(traffic)
    check_flow_count(sum(t.n_flows for t in parts), f"{len(jobs)} jobs and {len(traffic)} traffic sets")
    shared_traffic = Traffic.concat(parts)
    ideal = [compute_bound(b) for b in built]   # no sharing: quick, and part of getting ready

    res, alone_stats = _play(net, shared_traffic, built if isolated else [], events=events,
                             record_links=record_links, progress=progress,
                             threads=_spare_cores() if threads is None else threads)
    shared = [_job_stats(b, res, off) for b, off in zip(built, offsets)]
    if res.partial:
        alone_stats = []   # as if never run: slowdowns against a cut-short shared run mean nothing
    alone_stats += [None] * (len(jobs) - len(alone_stats))
    partial = res.partial or (isolated and any(a is None for a in alone_stats))
    return JobsResult(net=net, jobs=jobs, flows=built, offsets=offsets, shared=shared, isolated=alone_stats,
                      ideal=ideal, result=res, traffic=shared_traffic, partial=partial)
