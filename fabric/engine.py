"""The only Python caller of the Cython engine: validates, converts, wraps results.

Two ways in, both validated before any compiled code runs:

* a list of :class:`Flow` objects (research code, tests), or
* a :class:`FlowArrays` columnar table (millions of flows, built with numpy).

:func:`simulate_links` plays flows over explicit directed-link paths, so the
engine stands on its own; :func:`fabric.simulate` (routing) builds the paths
from a compiled network and calls it.
"""

import math
from dataclasses import dataclass, field
from typing import Hashable, Optional, Sequence

import numpy as np

from . import _core
from .errors import ValidationError
from .metrics import HOT_AT

__all__ = ["Flow", "FlowArrays", "Result", "simulate_links"]


@dataclass
class Flow:
    """One logical flow.

    Parameters
    ----------
    src, dst : hashable, optional
        Endpoints (node names).  Only used for checks and reports at this
        level; routing uses them to find paths.
    size : float
        Bytes to send (>= 0; 0 finishes at release + path latency).
    start : float
        Earliest release time, seconds.
    deps : sequence of int
        Indices of flows that must finish before this one is released.
    delay : float
        Seconds between the last dependency's finish and the release (the
        compute or processing time that separates them); ignored without
        dependencies.
    weight : float
        Weight in weighted max-min sharing (> 0).
    cap : float
        Rate cap in bytes/s (inf for none).  A flow split over several paths
        caps each subflow at its share of ``cap``.
    path : sequence of int, optional
        Directed link ids, in order.
    paths : sequence of sequences of int, optional
        Several paths (multipath / spraying); bytes are split by ``split``
        (default equally).  Each subflow weighs ``weight * its share``, so a
        sprayed flow competes at its source like one flow of its weight.
    split : sequence of float, optional
        Fractions of the bytes per path (normalized to sum 1).

    Examples
    --------
    >>> Flow(size=1e6, path=[0, 1])
    Flow(src=None, dst=None, size=1000000.0, start=0.0, deps=(), weight=1.0, cap=inf, path=[0, 1], paths=None, split=None, delay=0.0)
    """

    src: Optional[Hashable] = None
    dst: Optional[Hashable] = None
    size: float = 0.0
    start: float = 0.0
    deps: Sequence[int] = ()
    weight: float = 1.0
    cap: float = math.inf
    path: Optional[Sequence[int]] = None
    paths: Optional[Sequence[Sequence[int]]] = None
    split: Optional[Sequence[float]] = None
    delay: float = 0.0

    def __post_init__(self):
        self.size = float(self.size)
        self.start = float(self.start)
        self.delay = float(self.delay)
        self.weight = float(self.weight)
        self.cap = float(self.cap)
        self.deps = tuple(self.deps)


def _ptr(counts):
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr


def _ids(values):
    """Integer ids as int64, but int32 ones as given (the engine's width:
    prepare need not narrow them in a copy); anything else is left for
    prepare to refuse by name (truncating 0.5 to 0 would hide a bug)."""
    ids = np.asarray(values)
    if ids.size == 0 or (np.issubdtype(ids.dtype, np.integer) and ids.dtype != np.int32):
        return ids.astype(np.int64, copy=False)
    return ids


def _ranges(starts, counts):
    """Concatenated ranges starts[i] .. starts[i] + counts[i] - 1."""
    starts, counts = np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(counts, np.int64)
    if starts.shape != counts.shape:
        raise ValueError(f"starts and counts: shapes {starts.shape} and {counts.shape} differ")
    return _core.ranges(starts, counts)


def _take_ranges(values, starts, counts):
    """``values[_ranges(starts, counts)]`` (int32 or int64 values) without the index array."""
    values = np.ascontiguousarray(values)
    if values.dtype != np.int32:
        values = values.astype(np.int64, copy=False)
    return _core.take_ranges(values, np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(counts, np.int64))


@dataclass
class FlowArrays:
    """Flows in columnar form (the layout the engine uses).

    F flows, S subflows, K path incidences:

    * ``size``, ``start``, ``weight``, ``cap``: float arrays of length F;
      ``delay`` (optional, zeros if None): seconds from the last
      dependency's finish to the release.
    * dependencies of flow f: ``dep_idx[dep_ptr[f] .. dep_ptr[f+1]-1]``.
    * subflows of flow f: ``sub_ptr[f] .. sub_ptr[f+1]-1``; ``sub_frac[s]``
      is subflow s's share of its flow's bytes.
    * path of subflow s: ``path_links[path_ptr[s] .. path_ptr[s+1]-1]``.
    * ``src``, ``dst``: optional integer node ids (-1 unknown), used to
      reject empty paths between distinct endpoints.

    Use :meth:`single_path` to build the common one-path-per-flow case.
    """

    size: np.ndarray
    start: np.ndarray
    weight: np.ndarray
    cap: np.ndarray
    dep_ptr: np.ndarray
    dep_idx: np.ndarray
    sub_ptr: np.ndarray
    sub_frac: np.ndarray
    path_ptr: np.ndarray
    path_links: np.ndarray
    src: Optional[np.ndarray] = None
    dst: Optional[np.ndarray] = None
    delay: Optional[np.ndarray] = None

    @property
    def n_flows(self):
        return len(self.size)

    @classmethod
    def single_path(cls, size, path_ptr, path_links, *, start=None, weight=None, cap=None,
                    dep_ptr=None, dep_idx=None, src=None, dst=None, delay=None):
        """One path per flow; omitted columns take their defaults.

        Examples
        --------
        >>> fa = FlowArrays.single_path([1e6, 2e6], [0, 1, 2], [0, 1])
        >>> fa.n_flows, fa.sub_ptr.tolist()
        (2, [0, 1, 2])
        """
        size = np.asarray(size, dtype=np.float64)
        n = len(size)
        return cls(
            size=size,
            start=np.zeros(n) if start is None else np.asarray(start, dtype=np.float64),
            weight=np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64),
            cap=np.full(n, np.inf) if cap is None else np.asarray(cap, dtype=np.float64),
            dep_ptr=np.zeros(n + 1, np.int64) if dep_ptr is None else np.asarray(dep_ptr, dtype=np.int64),
            dep_idx=np.zeros(0, np.int64) if dep_idx is None else _ids(dep_idx),
            sub_ptr=np.arange(n + 1, dtype=np.int64),
            sub_frac=np.ones(n),
            path_ptr=np.asarray(path_ptr, dtype=np.int64),
            path_links=np.asarray(path_links),
            src=None if src is None else np.asarray(src, dtype=np.int64),
            dst=None if dst is None else np.asarray(dst, dtype=np.int64),
            delay=None if delay is None else np.asarray(delay, dtype=np.float64),
        )

    @classmethod
    def from_flows(cls, flows, node_ids=None):
        """Columnar form of a list of :class:`Flow` (paths must be set).

        ``node_ids`` maps node names to ints for ``src``/``dst`` checks.
        """
        sub_counts, fracs, path_lens, links = [], [], [], []
        dep_counts, deps = [], []
        for i, f in enumerate(flows):
            if not isinstance(f, Flow):
                raise ValidationError(f"flows[{i}]: expected a fabric.Flow, got {type(f).__name__}")
            if f.paths is not None:
                ps = [list(p) for p in f.paths]
                if not ps:
                    raise ValidationError(f"flows[{i}].paths: empty (give at least one path)")
                split = [1.0] * len(ps) if f.split is None else [float(x) for x in f.split]
                if len(split) != len(ps):
                    raise ValidationError(f"flows[{i}].split: {len(split)} fractions for {len(ps)} paths")
                if not all(math.isfinite(x) and x >= 0 for x in split) or sum(split) <= 0:
                    raise ValidationError(f"flows[{i}].split={f.split!r}: fractions must be >= 0 with a positive sum")
                total = sum(split)
                split = [x / total for x in split]
            elif f.path is not None:
                ps, split = [list(f.path)], [1.0]
            else:
                raise ValidationError(f"flows[{i}]: no path (set path or paths, or use fabric.simulate with a network)")
            sub_counts.append(len(ps))
            fracs.extend(split)
            for p in ps:
                path_lens.append(len(p))
                links.extend(p)
            dep_counts.append(len(f.deps))
            deps.extend(f.deps)
        ids = node_ids or {}
        dep_ptr, sub_ptr, path_ptr = _ptr(dep_counts), _ptr(sub_counts), _ptr(path_lens)
        return cls(
            size=np.array([f.size for f in flows], dtype=np.float64),
            start=np.array([f.start for f in flows], dtype=np.float64),
            weight=np.array([f.weight for f in flows], dtype=np.float64),
            cap=np.array([f.cap for f in flows], dtype=np.float64),
            dep_ptr=dep_ptr,
            dep_idx=_int_array("deps", deps, lambda k: _row_of(dep_ptr, k)),
            sub_ptr=sub_ptr,
            sub_frac=np.array(fracs, dtype=np.float64),
            path_ptr=path_ptr,
            path_links=_int_array("path", links, lambda k: _row_of(sub_ptr, _row_of(path_ptr, k))),
            src=np.array([ids.get(f.src, -1) if f.src is not None else -1 for f in flows], dtype=np.int64),
            dst=np.array([ids.get(f.dst, -1) if f.dst is not None else -1 for f in flows], dtype=np.int64),
            delay=np.array([f.delay for f in flows], dtype=np.float64),
        )


def _int_array(name, values, flow_of):
    """The flows' ``name`` lists, concatenated, as int64 ids; ``flow_of(k)``
    is the flow that entry k belongs to (for the error message)."""
    def not_an_id(k):
        return ValidationError(f"flows[{flow_of(k)}].{name}: {values[k]!r} is not an integer id")

    try:
        arr = np.asarray(values, dtype=np.float64) if len(values) else np.zeros(0)
    except (TypeError, ValueError):
        for k, v in enumerate(values):
            try:
                float(v)
            except (TypeError, ValueError):
                raise not_an_id(k) from None
        raise ValidationError(f"flows.{name}: expected integer ids") from None
    if arr.size and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
        raise not_an_id(int(np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))[0]))
    return arr.astype(np.int64)


def _first_bad(mask):
    return int(np.flatnonzero(mask)[0])


def _check_column(name, values, n, *, low, low_ok, allow_inf=False):
    if np.iscomplexobj(values):
        raise ValidationError(f"{name}: expected real numbers, got {np.asarray(values).dtype}")
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.shape != (n,):
        raise ValidationError(f"{name}: expected {n} values, got shape {values.shape}")
    i = _core.first_bad(values, low, low_ok, allow_inf)
    if i >= 0:
        rel = ">=" if low_ok else ">"
        raise ValidationError(f"{name}[{i}]={float(values[i])!r}: must be {'a number' if allow_inf else 'finite'} {rel} {low}")
    return values


def _check_ptr(name, ptr, n, total):
    """The offsets as int64, and the first row with nothing in it (or -1)."""
    ptr = np.ascontiguousarray(ptr, dtype=np.int64)
    ends_ok = ptr.shape == (n + 1,) and ptr[0] == 0 and ptr[-1] == total
    decrease, empty = _core.ptr_steps(ptr) if ends_ok else (0, -1)
    if decrease >= 0:
        raise ValidationError(f"{name}: must be a CSR offset array of length {n + 1} from 0 to {total}, non-decreasing")
    return ptr, empty


@dataclass
class _Prepared:
    cap: np.ndarray
    lat: np.ndarray
    fa: FlowArrays
    sub_size: np.ndarray
    sub_w: np.ndarray
    sub_cap: np.ndarray
    dependents: tuple


_MAX_IDS = 2**31 - 1   # the engine names links, flows and subflows with int32 ids


def _check_count(name, n):
    if n > _MAX_IDS:
        raise ValidationError(f"{name}: {n:,} entries; the engine's 32-bit ids allow at most {_MAX_IDS:,}")


def prepare(capacity, latency, flows, node_ids=None):
    """Validate links and flows; return contiguous arrays for the engine.

    Raises :class:`ValidationError` naming the first bad field and index.
    """
    cap = np.ascontiguousarray(capacity, dtype=np.float64)
    if cap.ndim != 1:
        raise ValidationError(f"capacity: expected a 1-D array, got shape {cap.shape}")
    L = len(cap)
    _check_count("capacity", L)
    cap = _check_column("capacity", cap, L, low=0, low_ok=False)
    lat = _check_column("latency", latency, L, low=0, low_ok=True)
    fa = flows if isinstance(flows, FlowArrays) else FlowArrays.from_flows(list(flows), node_ids)
    F = fa.n_flows
    _check_count("flows", F)
    _check_count("flows.sub_frac", len(fa.sub_frac))
    size = _check_column("flows.size", fa.size, F, low=0, low_ok=True)
    start = _check_column("flows.start", fa.start, F, low=0, low_ok=True)
    delay = np.zeros(F) if fa.delay is None else _check_column("flows.delay", fa.delay, F, low=0, low_ok=True)
    weight = _check_column("flows.weight", fa.weight, F, low=0, low_ok=False)
    fcap = _check_column("flows.cap", fa.cap, F, low=0, low_ok=False, allow_inf=True)
    dep_idx, bad = _narrow(fa.dep_idx, F, "flows.dep_idx")
    dep_ptr, _ = _check_ptr("flows.dep_ptr", fa.dep_ptr, F, len(dep_idx))
    if bad >= 0:
        raise ValidationError(f"flows[{_row_of(dep_ptr, bad)}].deps: {fa.dep_idx[bad]} is not a flow index (0..{F - 1})")
    f = _core.first_self_dep(dep_ptr, dep_idx)
    if f >= 0:
        raise ValidationError(f"flows[{f}].deps: depends on itself")
    sub_ptr, empty = _check_ptr("flows.sub_ptr", fa.sub_ptr, F, len(fa.sub_frac))
    S = len(fa.sub_frac)
    if empty >= 0:
        raise ValidationError(f"flows[{empty}]: has no path")
    frac = _check_column("flows.sub_frac", fa.sub_frac, S, low=0, low_ok=True)
    path_ptr, _ = _check_ptr("flows.path_ptr", fa.path_ptr, S, len(fa.path_links))
    path_links, k = _narrow(fa.path_links, L, "flows.path_links")
    problem = 1 if k >= 0 else 0
    if not problem:
        k, problem = _core.check_paths(path_ptr, path_links, L)
    if problem:
        f = _row_of(sub_ptr, _row_of(path_ptr, k))
        if problem == 1:
            raise ValidationError(f"flows[{f}].path: link {fa.path_links[k]} does not exist (0..{L - 1})")
        raise ValidationError(f"flows[{f}].path: crosses link {path_links[k]} twice")
    if fa.src is not None and fa.dst is not None and S:
        src, dst = np.ascontiguousarray(fa.src, np.int64), np.ascontiguousarray(fa.dst, np.int64)
        if src.shape != (F,) or dst.shape != (F,):
            raise ValidationError(f"flows.src/dst: expected {F} node ids each, got shapes {src.shape} and {dst.shape}")
        f = _core.first_cut(sub_ptr, path_ptr, src, dst)
        if f >= 0:
            raise ValidationError(f"flows[{f}].path: empty, but src {src[f]} != dst {dst[f]}")
    dependents = _core.reverse_csr(dep_ptr, dep_idx, F)
    if dep_idx.size:
        cyc = _core.find_cycle(dep_ptr, *dependents)
        if cyc >= 0:
            raise ValidationError(f"flows[{cyc}].deps: on or behind a dependency cycle")
    if S == F and _core.is_stride(sub_ptr, 1):
        # one path per flow: the subflow is the flow (no copies)
        f = _core.first_bad(frac, 0.0, False, False)   # frac >= 0 already: finds a 0
        if f >= 0:
            raise ValidationError(f"flows[{f}].split: fractions sum to 0")
        share = frac if np.all(frac == 1) else np.ones(F)   # each path carries all; reuse the caller's ones
        sub_size, sub_w, sub_cap = size, weight, fcap
    else:
        tot = np.add.reduceat(frac, sub_ptr[:-1]) if S else np.zeros(F)
        if F and np.any(tot <= 0):
            raise ValidationError(f"flows[{_first_bad(tot <= 0)}].split: fractions sum to 0")
        # a path with share 0 carries nothing and never sends: no cap
        share, sub_size, sub_w, sub_cap = _core.split_flows(size, weight, fcap, frac, tot, sub_ptr)
    _check_scales(cap, sub_w, sub_ptr)
    fa = FlowArrays(size, start, weight, fcap, dep_ptr, dep_idx, sub_ptr, share, path_ptr, path_links,
                    fa.src, fa.dst, delay)
    return _Prepared(cap=cap, lat=lat, fa=fa, sub_size=sub_size, sub_w=sub_w, sub_cap=sub_cap,
                     dependents=dependents)


def _check_scales(cap, sub_w, sub_ptr):
    """Reject weights so far from the capacities that the engine's levels
    (rate / weight, up to capacity / weight) would overflow, or its rates
    (down to about capacity * weight ratio / subflows) underflow to 0."""
    cmin, cmax, wmin, wmax = _core.positive_ranges(cap, sub_w)   # a path with share 0 never sends
    if wmax == 0 or cmax == 0:
        return
    if cmax / wmin > 1e300 or cmin * (wmin / wmax) / len(sub_w) < 1e-300:
        f = _row_of(sub_ptr, int(np.flatnonzero(sub_w == wmin)[0]))
        raise ValidationError(f"flows[{f}].weight: {wmin:g} on a path, beside weights up to {wmax:g} and capacities "
                              f"of {cmin:g}..{cmax:g} B/s, puts rates or rate / weight outside the float range; "
                              "rescale the weights (only their ratios matter) or the capacities")


def _narrow(values, n, name):
    """Ids as contiguous int32, and the index of the first outside 0..n-1 (or -1)."""
    ids = np.asarray(values)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValidationError(f"{name}: expected integer ids, got {ids.dtype}")
    return _core.narrow(np.ascontiguousarray(ids, dtype=np.int32 if ids.dtype == np.int32 else np.int64), n)


def _row_of(ptr, k):
    """The row i of a CSR offset array with ptr[i] <= k < ptr[i+1]."""
    return int(np.searchsorted(ptr, k, side="right") - 1)


@dataclass
class Result:
    """What the engine reports.  Times in seconds, bytes, bytes/s.

    Attributes
    ----------
    release, first_byte, finish : ndarray (F,)
        Per logical flow: release time, time its first subflow starts sending
        (release + path latency), time its last byte is sent.
    makespan : float
        Latest finish (0 with no flows).
    link_bytes, link_busy : ndarray (L,)
        Per directed link: bytes carried (integrated from the rates) and time
        during which at least one flow was sending on it.
    capacity, latency : ndarray (L,)
        The link parameters the run used.
    counters : dict
        ``events``, ``batches``, ``fills``, ``refilled_subflows``,
        ``incidences`` (flow-link incidences visited), ``fallbacks``,
        ``widened`` (local refills that grew into the lam0 closure),
        ``by_candidates`` (closures walked over their candidates' own
        incidences instead of whole links), ``max_active`` (most subflows
        sending at once), ``stalled``, ``rate_changes`` (times a sending
        subflow's rate moved, its first rate included: the model's own
        count, each of which an engine keeping a rate per subflow must
        apply) and ``stopped`` (1 when the run was stopped early).
    flows : FlowArrays
        The normalized input, for checkers and reports.
    failed : ndarray of bool (F,)
        Flows left without a path by timed link failures (finish nan);
        all False otherwise.
    link_summary : dict, optional
        With ``link_summary=True``: per link ``peak`` utilization, ``hot_s``
        (seconds at or above :data:`fabric.metrics.HOT`) and ``bins``
        (links x bins: utilization-seconds in bins of ``bin_width``
        seconds from time 0), up to ``horizon`` (the end of the run), kept
        as the run went in O(links) memory, as a log would give them.
        Utilization is against the capacity at the time (after a timed
        degradation, the link's reduced one).
    """

    release: np.ndarray
    first_byte: np.ndarray
    finish: np.ndarray
    sub_first: np.ndarray
    sub_finish: np.ndarray
    link_bytes: np.ndarray
    link_busy: np.ndarray
    capacity: np.ndarray
    latency: np.ndarray
    counters: dict
    flows: FlowArrays
    sub_size: np.ndarray
    sub_weight: np.ndarray
    sub_cap: np.ndarray
    link_log: Optional[tuple] = None
    rate_log: Optional[tuple] = None
    meta: dict = field(default_factory=dict)
    failed: Optional[np.ndarray] = None
    link_summary: Optional[dict] = None

    @property
    def makespan(self):
        """Latest finish (of the finished flows, in a partial run)."""
        return float(np.nanmax(self.finish)) if np.isfinite(self.finish).any() else 0.0

    @property
    def partial(self):
        """True when the run was stopped early (Ctrl-C or a progress callback)."""
        return bool(self.counters.get("stopped", 0))

    @property
    def events(self):
        return self.counters["events"]

    @property
    def max_active(self):
        return self.counters["max_active"]

    def link_utilization(self, link):
        """Step function of one link's utilization (load / capacity).

        Returns (times, values): the utilization is ``values[i]`` from
        ``times[i]`` until ``times[i+1]``; 0 before the first change.
        Needs ``record_links=True``.
        """
        if self.link_log is None:
            raise ValueError("link_utilization needs simulate(..., record_links=True)")
        if not (isinstance(link, (int, np.integer)) and 0 <= link < len(self.capacity)):
            raise ValidationError(f"link={link!r}: expected a link id in 0..{len(self.capacity) - 1}")
        t, ids, v = self.link_log
        sel = ids == link
        return t[sel], v[sel] / self.capacity[link]

    def link_utilization_all(self):
        """(times, link ids, utilization) triples of every change, in time order."""
        if self.link_log is None:
            raise ValueError("link_utilization_all needs simulate(..., record_links=True)")
        t, ids, v = self.link_log
        return t, ids, v / self.capacity[ids]


def run_prepared(p, flow_ids=None, **options):
    """The engine (:func:`fabric._core.simulate`) on ``prepare``'s arrays.

    A few flows on a big fabric run on the links they cross only (the
    engine's per-link arrays would cost more than the run); per-link results
    come back under the caller's link ids.  ``flow_ids``: the caller's index
    of each flow, for error messages.  ``options``: ``record_links``,
    ``record_rates``, ``link_stats``, ``until``, ``progress``.
    """
    fa = p.fa
    cap, lat, links, used = p.cap, p.lat, fa.path_links, None
    if len(links) < len(cap) // 2:
        used, links = _core.compact_ids(links, len(cap))
        cap, lat = cap[used], lat[used]
    out = _core.simulate(cap, lat, fa.start, fa.delay, fa.dep_ptr, fa.dep_idx, fa.sub_ptr, p.sub_size, p.sub_w,
                         p.sub_cap, fa.path_ptr, links, dependents=p.dependents, hot=HOT_AT, **options)
    if used is not None:
        for key in ("link_bytes", "link_busy", "link_peak", "link_hot_s", "link_bins"):
            if key in out:
                full = np.zeros((len(p.cap),) + out[key].shape[1:])
                full[used] = out[key]
                out[key] = full
        if "link_log_id" in out:
            out["link_log_id"] = used[out["link_log_id"]]
    if out["overflowed"] >= 0:
        f = out["overflowed"] if flow_ids is None else flow_ids[out["overflowed"]]
        raise ValidationError(f"flows[{f}]: its times overflow the float range (past {np.finfo(float).max:.3g} s); "
                              "check its start, delay, size, cap and path latency, and those of the flows it waits for")
    if out["counters"]["stalled"]:
        raise RuntimeError("fabric engine: a subflow got rate 0 (numerical breakdown); please report this input")
    return out


def _link_summary(out):
    """The engine output's link statistics as ``Result.link_summary``."""
    return {"peak": out["link_peak"], "hot_s": out["link_hot_s"], "bins": out["link_bins"],
            "bin_width": out["link_bin_width"], "horizon": out["link_horizon"]}


def simulate_links(capacity, latency, flows, *, record_links=False, record_rates=False, link_summary=False,
                   node_ids=None, progress=None):
    """Play flows over explicit directed-link paths; the engine on its own.

    Parameters
    ----------
    capacity, latency : array_like (L,)
        Per directed link: bytes/s (> 0) and one-way seconds (>= 0).
    flows : list of Flow or FlowArrays
        Each flow with ``path``/``paths`` of link ids.
    record_links : bool
        Keep every link's load as a step function (``Result.link_utilization``).
    link_summary : bool
        Keep per-link peak, time hot and binned utilization as the run goes
        (``Result.link_summary``): what the congestion metrics need, in
        O(links) memory where the step functions of a long run take GBs.
    record_rates : bool
        Keep every subflow rate change (``Result.rate_log``: times, subflow
        ids, rates), for invariant checkers.
    progress : callable, optional
        ``progress(now, events, flows_done)``, called about ten times per
        CPU second (and every 2000 event batches).  Returning False, or
        Ctrl-C, stops the run where it is: ``Result.partial`` is True and
        unfinished flows finish at nan.  Without it, Ctrl-C raises
        KeyboardInterrupt as promptly.

    Examples
    --------
    One flow alone finishes at release + latency + size / bottleneck:

    >>> r = simulate_links([1e9, 2e9], [1e-6, 1e-6], [Flow(size=1e9, path=[0, 1])])
    >>> float(r.finish[0])
    1.000002

    Two flows on one link share it equally:

    >>> r = simulate_links([1e9], [0.0], [Flow(size=1e9, path=[0]), Flow(size=1e9, path=[0])])
    >>> r.finish.tolist()
    [2.0, 2.0]
    """
    p = prepare(capacity, latency, flows, node_ids)
    fa = p.fa
    out = run_prepared(p, record_links=record_links, record_rates=record_rates, link_stats=link_summary,
                       progress=progress)
    if out["counters"]["stopped"]:
        out["finish"][~out["flow_done"]] = np.nan
    return Result(
        release=out["release"], first_byte=out["first_byte"], finish=out["finish"],
        sub_first=out["sub_first"], sub_finish=out["sub_finish"],
        link_bytes=out["link_bytes"], link_busy=out["link_busy"], capacity=p.cap, latency=p.lat,
        counters=out["counters"], flows=fa, sub_size=p.sub_size, sub_weight=p.sub_w, sub_cap=p.sub_cap,
        link_log=(out["link_log_t"], out["link_log_id"], out["link_log_v"]) if record_links else None,
        rate_log=(out["rate_log_t"], out["rate_log_id"], out["rate_log_v"]) if record_rates else None,
        failed=np.zeros(len(out["finish"]), bool), link_summary=_link_summary(out) if link_summary else None,
    )
