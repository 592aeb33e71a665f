# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The flow-level engine: exact weighted max-min fair sharing, event by event.

Arrays in, arrays out; the only caller is :mod:`fabric.engine`, which has
validated every array (ids in range, sizes finite and >= 0, capacities > 0,
dependencies acyclic), so bounds checks are off.

Data layout (the one place it is written down)
----------------------------------------------
L directed links, F logical flows, S subflows (S >= F), K incidences.

* Link l: ``cap[l]`` bytes/s, ``lat[l]`` seconds.
* Flow f: ``start[f]``, ``delay[f]``; its dependencies are ``dep_idx[dep_ptr[f] .. dep_ptr[f+1]-1]``
  and the flows that depend on it ``dpt_idx[dpt_ptr[f] .. dpt_ptr[f+1]-1]``;
  its subflows are ``sub_ptr[f] .. sub_ptr[f+1]-1``.
* Subflow s: ``sub_size[s]`` bytes, ``sub_w[s]`` weight, ``sub_cap[s]`` rate
  cap (inf for none); its path is ``path_links[path_ptr[s] .. path_ptr[s+1]-1]``.
  Index k into ``path_links`` is an *incidence*.
* While s is sending, each of its incidences k sits in the active list of
  link l = path_links[k]: ``slots[link_ptr[l] .. link_ptr[l] + cnt[l] - 1]``
  holds the subflows, and ``pos[k]`` is k's place there (O(1) removal).

Model: a flow is released at max(start, finish of its dependencies + delay); each
subflow then waits its path latency and drains its bytes at its max-min rate.

Rate recomputation (why it is exact and local)
----------------------------------------------
Every active subflow has a *level* rate/weight; every link the level at which
it saturated in the last filling (``sat[l]``, inf if unsaturated).  A
subflow is *settled* if it is at its cap, or it crosses an unchanged saturated
link where no subflow has a higher level (sat[l] == its level): the max-min
bottleneck condition.  After a batch of events:

* removals: a subflow left on a link that lost a flow, and not settled
  elsewhere, must be refilled; lam0 <= its level;
* arrivals: a changed link may saturate earlier, but never below
  cap/(sum of weights on it) nor above its old saturation level; lam0 is at
  most both (and at most a new subflow's cap level).

Progressive filling restricted to levels below lam0 is the same as before the
event, so every subflow whose level is below lam0 keeps its rate.  The region
R = new subflows plus every subflow with level >= lam0 reachable from a
changed link through such subflows is refilled from scratch, with the rates
of all other subflows as fixed background load.  As a safety net, if a
refilled subflow lands below lam0 (only possible through rounding), the fill is
redone with lam0 = 0 (the whole component); ``fallbacks`` counts that.

R is found one of two ways.  Scanning: BFS over links, reading every
subflow on each (the background is what falls below lam0).  By candidates:
one pass over the sending subflows (``alist``, with their rates beside
them in ``arate``, in blocks whose top level ``amax`` bounds from above,
so that a block below lam0 is skipped whole) picks H = new or level >=
lam0, each link's share of H is listed (``radj``), the BFS walks only H's
incidences, and a link's background is its kept load (``load``, summed
with its rounding error in ``load_c`` as rates change) minus H's rates.
The second wins when few candidates sit on crowded links (all-to-all on a
fat-tree), the first when the candidates are most of what their links carry
(all-to-all on a star); each closure by candidates measures which case it
is in, and backs off to scanning (keeping neither loads nor alist) while
scanning wins.
"""

import numpy as np
cimport numpy as cnp
from libc.stdlib cimport malloc, realloc, free, qsort
from libc.math cimport INFINITY, NAN, fabs, isfinite, ilogb, ldexp, ceil
from libc.stdint cimport int32_t, int64_t, int8_t
from libc.string cimport memset, memcpy
from libc.time cimport clock, clock_t, CLOCKS_PER_SEC
from cpython.exc cimport PyErr_CheckSignals
from cpython.pycapsule cimport PyCapsule_New, PyCapsule_GetPointer

cnp.import_array()

DEF REL_TOL = 1e-12      # events this close (relative) are one event
DEF SETTLE_TOL = 1e-12   # level comparisons in the bottleneck test
DEF LOCAL_ROUNDS = 16    # verify-and-grow rounds before widening to the lam0 closure
DEF LOCAL_EXPLODE = 256  # ... or as soon as the region doubles past this many subflows
DEF LOCAL_SCAN = 32      # ... or scans more than this many incidences per region subflow
DEF NO_STAMP = -(1 << 62)  # a link mark no link ever carries
DEF BULK_MIN = 64        # finish-heap size from which simultaneous finishes leave it at once
DEF BREATHS = 10         # a long run returns to Python this often per CPU second (Ctrl-C, progress)
DEF RECOUNT = 1e-4       # a link's region weight fell below this share of its start: recount it
DEF ABLOCK = 64          # alist entries per block of the candidates pass (see amax)
DEF NBINS = 128          # time bins of the link statistics (at least half of them used)

#: events whose times agree to this relative tolerance are handled as one
#: batch, at the batch's latest time (a link's logged load may change up
#: to this much of the time late)
EVENT_REL_TOL = REL_TOL

cdef enum:
    EV_RELEASE = 0
    EV_ACTIVATE = 1        # one subflow starts sending
    EV_FINISH = 2
    EV_ACTIVATE_ALL = 3    # every subflow of a flow whose paths have one latency
    N_KINDS = 4            # event key = index * N_KINDS + kind

cdef enum:
    PAUSED = 4    # run() returned to let Python see signals (Ctrl-C) and report progress
    OVERFLOW = 5  # the next event lies at infinity: a flow's times overflowed

cdef enum:
    ST_WAIT = 0
    ST_LATENCY = 1
    ST_ACTIVE = 2
    ST_DONE = 3

ctypedef struct RT:
    # A subflow's bytes left as of tupd, and its finish: while it sends, its
    # key in the finish heap (NaN while out of it); once done, its finish
    # time.  Read together on every rate change (drain, then whether the
    # heap must move), so side by side: one cache miss, not four.
    double rem
    double tupd
    double fin

ctypedef struct Item:
    double t
    int64_t key

ctypedef struct Heap:
    Item* a
    Py_ssize_t n
    Py_ssize_t cap


cdef inline bint _less(Item* x, Item* y) noexcept nogil:
    # Simultaneous events in key order: subflows then join their links in
    # index order, and the fill walks each link's list with good locality.
    return x.t < y.t or (x.t == y.t and x.key < y.key)


cdef int heap_push(Heap* h, double t, int64_t key) noexcept nogil:
    cdef Py_ssize_t i, p
    cdef Item* na
    cdef Item it
    if h.n == h.cap:
        h.cap = h.cap * 2 + 64
        na = <Item*> realloc(h.a, h.cap * sizeof(Item))
        if na == NULL:
            return -1
        h.a = na
    i = h.n
    h.n += 1
    it.t = t
    it.key = key
    while i > 0:
        p = (i - 1) >> 1
        if _less(&it, &h.a[p]):
            h.a[i] = h.a[p]
            i = p
        else:
            break
    h.a[i] = it
    return 0


cdef Item heap_pop(Heap* h) noexcept nogil:
    cdef Item top = h.a[0]
    cdef Item last
    cdef Py_ssize_t i = 0, c
    h.n -= 1
    if h.n > 0:
        last = h.a[h.n]
        while True:
            c = 2 * i + 1
            if c >= h.n:
                break
            if c + 1 < h.n:
                c += _less(&h.a[c + 1], &h.a[c])
            if _less(&h.a[c], &last):
                h.a[i] = h.a[c]
                i = c
            else:
                break
        h.a[i] = last
    return top


ctypedef struct IHeap:
    # Indexed min-heap: one slot per item (a sending subflow's predicted
    # finish, a link's fair-share level), moved in place when its key changes
    # instead of leaving stale entries behind.
    double* t
    int32_t* item
    int32_t* where     # where[i] = slot of subflow i, or -1
    Py_ssize_t n


cdef void _isift(IHeap* h, Py_ssize_t i) noexcept nogil:
    """Move slot i up or down to its place.  The entry rides in a hole that
    the others shift into: one write per level, not a three-way swap.

    No tie-break by item: equal keys (a collective step's links all at one
    fair share) then stop a sift at once instead of running it to the
    bottom.  The heap stays deterministic, which is all results need."""
    cdef double t = h.t[i]
    cdef int32_t it = h.item[i]
    cdef Py_ssize_t p, i0 = i
    while i > 0:
        p = (i - 1) >> 1
        if not t < h.t[p]:
            break
        h.t[i] = h.t[p]
        h.item[i] = h.item[p]
        h.where[h.item[i]] = <int32_t> i
        i = p
    if i != i0:
        h.t[i] = t
        h.item[i] = it
        h.where[it] = <int32_t> i
    else:
        _isift_down(h, i)


cdef void _isift_down(IHeap* h, Py_ssize_t i) noexcept nogil:
    cdef double t = h.t[i]
    cdef int32_t it = h.item[i]
    cdef Py_ssize_t c, n = h.n
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n:
            c += h.t[c + 1] < h.t[c]   # the smaller child, without a coin-toss branch
        if not h.t[c] < t:
            break
        h.t[i] = h.t[c]
        h.item[i] = h.item[c]
        h.where[h.item[i]] = <int32_t> i
        i = c
    h.t[i] = t
    h.item[i] = it
    h.where[it] = <int32_t> i


cdef void ih_set(IHeap* h, int32_t i, double t) noexcept nogil:
    cdef Py_ssize_t k = h.where[i]
    if k < 0:
        k = h.n
        h.n += 1
        h.item[k] = i
        h.where[i] = <int32_t> k
    h.t[k] = t
    _isift(h, k)


cdef void ih_remove(IHeap* h, int32_t i) noexcept nogil:
    cdef Py_ssize_t k = h.where[i]
    if k < 0:
        return
    h.where[i] = -1
    h.n -= 1
    if k != h.n:
        # the last entry fills the hole, then finds its place
        h.t[k] = h.t[h.n]
        h.item[k] = h.item[h.n]
        h.where[h.item[k]] = <int32_t> k
        _isift(h, k)


ctypedef struct Log:
    # Grown in place (realloc of big blocks remaps pages, it does not copy)
    # and handed to numpy as is at the end: a big run's log is its largest
    # allocation, so it must not exist twice.
    double* t
    int32_t* id          # link or subflow: ids are int32 (fabric.engine checks)
    double* v
    Py_ssize_t n
    Py_ssize_t cap


cdef int log_add(Log* g, double t, int32_t id, double v) noexcept nogil:
    cdef double* nt
    cdef int32_t* ni
    cdef double* nv
    if g.n == g.cap:
        g.cap = g.cap + g.cap // 2 + 1024
        nt = <double*> realloc(g.t, g.cap * sizeof(double))
        if nt == NULL:
            return -1
        g.t = nt
        ni = <int32_t*> realloc(g.id, g.cap * sizeof(int32_t))
        if ni == NULL:
            return -1
        g.id = ni
        nv = <double*> realloc(g.v, g.cap * sizeof(double))
        if nv == NULL:
            return -1
        g.v = nv
    g.t[g.n] = t
    g.id[g.n] = id
    g.v[g.n] = v
    g.n += 1
    return 0


ctypedef struct State:
    # inputs
    Py_ssize_t L, F, S
    double* cap
    double* lat
    double* start
    double* delay
    int64_t* dep_ptr
    int64_t* dpt_ptr
    int32_t* dpt_idx
    int64_t* sub_ptr
    double* sub_size
    double* sub_w
    double* sub_cap
    int64_t* path_ptr
    int64_t hops         # > 0: every path has this many links (path_ptr[i] == hops * i)
    int32_t* path_links
    int64_t* link_ptr
    # link state
    int32_t* slots
    int32_t* cnt
    double* sat
    double* resid
    double* wsum
    double* wtot         # wsum when the fill started (to detect cancellation)
    double* bgmax        # top level of subflows outside the region (scratch)
    int32_t* undo_l      # links whose sat a local refill changed, to restore
    double* usat         # their sat before this batch (per link)
    int64_t* umark
    Py_ssize_t n_undo
    double* rmax         # top level the fill gave a region subflow (scratch)
    int32_t* ucnt
    int64_t* lmark
    double* lbusy
    double* lsince
    double* load         # sum of the rates on each link, kept as rates change ...
    double* load_c       # ... with its rounding error (compensated summation)
    double* lload        # ... as last logged
    int8_t* lchg          # bit 1: lost a subflow, bit 2: gained one
    int32_t* chg_list
    Py_ssize_t n_chg
    int32_t* queue
    int64_t* amark       # == H stamp: the link's candidates are radj[rstart[l] .. + rcnt[l] - 1]
    int64_t* rstart
    int32_t* rcnt
    int32_t* radj
    int32_t* rpair       # scratch for radj: (link, subflow) per listed incidence
    int32_t* hlinks      # scratch: the links of H
    int32_t* alist       # the sending subflows that cross links, in no order (kept with the loads) ...
    int32_t* apos        # ... and each one's place there ...
    double* arate        # ... and its rate (inf while new), so the pass picking H streams ...
    double* amax         # ... skipping each block of ABLOCK entries whose top level (amax, an upper bound) is below it
    Py_ssize_t n_alist
    # incidence state
    int32_t* pos
    # subflow state
    int8_t* state
    RT* rt
    double* rate
    double* newrate
    int32_t* smark       # 2*fill stamp: in region R; +1 once frozen (int32: a hot array, half the cache)
    int64_t* nmark       # == batch stamp: activated in this batch
    int32_t* bneck       # the link that froze it in its last fill (-1: none, or its cap): where to look first
    int32_t* owner       # the flow of each subflow (NULL when subflow i is flow i)
    int8_t* same_lat     # per flow: all its subflows' paths have one latency (and it has several)
    double* sfirst
    int32_t* rlist
    Py_ssize_t n_r
    int32_t* newlist
    Py_ssize_t n_new
    int32_t* due         # scratch: subflows finishing together (finish_due)
    # flow state
    int32_t* pending
    int32_t* left
    double* release      # until flow f is released: the latest finish of its dependencies so far
    double* first        # (sfirst itself when subflow i is flow i)
    double* finish
    # heaps, logs, counters
    Heap ev
    IHeap fin
    IHeap lfill        # links of the region by fair-share level
    Heap capfill       # capped subflows of the region by cap level
    Log linklog
    Log ratelog
    bint rec_links
    bint stat_links      # per-link statistics kept as loads change, not a log of every change:
    double hot           # ... the utilization counted as hot,
    double* st_t         # ... per link when its utilization last changed, and to what,
    double* st_u
    double* st_peak      # ... its highest utilization, the seconds at or above hot,
    double* st_hot
    double* bins         # ... and its utilization-seconds in time bins (L x NBINS) of width
    double bin_w         # ... bin_w, a power of two (0 until a positive time is seen)
    bint rec_rates
    bint unit_w          # every weight is 1: reading none saves an array per subflow in the hot loops
    bint has_caps        # some subflow has a finite rate cap (else the fill skips looking for them)
    double until         # stop before events later than this (inf: run to the end)
    double now           # time of the last batch processed
    double window        # events up to this time belong to the current batch
    double tb            # the latest event time in the current batch
    int64_t pause_every  # return to Python every this many batches (0: only on the clock)
    int64_t next_pause
    clock_t next_clock   # ... and at about this CPU time
    bint started
    int64_t n_done       # logical flows finished
    int64_t skip_local   # local refills still to skip, and the current backoff
    int64_t backoff
    int64_t skip_candidates   # closures to find by scanning before trying candidates again, ...
    int64_t cand_backoff      # ... and how many the next failed try skips
    bint by_candidates   # closures go by candidates (and refills use the kept loads) ...
    bint keep_loads      # ... so load and alist are kept up to date, as they are for the link log
    int64_t batch
    int64_t stamp
    int64_t stamp_limit  # past it, stamps start again from 0 (subflow marks are int32)
    int64_t logstamp
    int64_t n_events
    int64_t n_fills
    int64_t n_refilled
    int64_t n_incid
    int64_t n_fallbacks
    int64_t n_widened
    int64_t n_by_candidates
    int64_t n_active
    int64_t max_active
    int64_t n_stalled
    int64_t n_changed
    int64_t bad_flow     # with OVERFLOW: a flow whose times overflowed


cdef inline int64_t path_begin(State* s, Py_ssize_t i) noexcept nogil:
    """Where subflow i's path starts in path_links.  When every path has the
    same length (a star's collectives) it is arithmetic: the fill walks
    thousands of paths per event in no order, and path_ptr was one more
    cache miss before each walk could start."""
    return s.hops * i if s.hops > 0 else s.path_ptr[i]


cdef inline int64_t path_end(State* s, Py_ssize_t i) noexcept nogil:
    return s.hops * (i + 1) if s.hops > 0 else s.path_ptr[i + 1]


cdef inline int32_t owner_of(State* s, Py_ssize_t i) noexcept nogil:
    return <int32_t> i if s.owner == NULL else s.owner[i]


cdef inline double path_latency(const int64_t* path_ptr, const int32_t* path_links, const double* lat,
                                Py_ssize_t i) noexcept nogil:
    """Subflow i's path latency, summed when asked (once per release): an
    array of them would be one more per subflow for the whole run."""
    cdef double t = 0
    cdef int64_t k
    for k in range(path_ptr[i], path_ptr[i + 1]):
        t += lat[path_links[k]]
    return t


cdef inline void fin_set(State* s, Py_ssize_t i, double t) noexcept nogil:
    s.rt[i].fin = t
    ih_set(&s.fin, <int32_t> i, t)


cdef inline void fin_remove(State* s, Py_ssize_t i) noexcept nogil:
    s.rt[i].fin = NAN
    ih_remove(&s.fin, <int32_t> i)


cdef inline void drain(State* s, Py_ssize_t i, double t) noexcept nogil:
    """Bring subflow i's remaining bytes up to time t at its current rate."""
    cdef double dt = t - s.rt[i].tupd
    if dt > 0 and s.rate[i] > 0:
        s.rt[i].rem -= s.rate[i] * dt
        if s.rt[i].rem < 0:
            s.rt[i].rem = 0
    s.rt[i].tupd = t


cdef inline void load_add(State* s, int32_t l, double x) noexcept nogil:
    """load[l] += x, keeping the rounding error in load_c (Neumaier): a
    crowded link sees millions of rate changes, and a plain running sum
    would drift by their rounding errors."""
    cdef double a = s.load[l]
    cdef double t = a + x
    if fabs(a) >= fabs(x):
        s.load_c[l] += (a - t) + x
    else:
        s.load_c[l] += (x - t) + a
    s.load[l] = t


cdef inline void mark_changed(State* s, int32_t l, int8_t bit) noexcept nogil:
    if s.lchg[l] == 0:
        s.chg_list[s.n_chg] = l
        s.n_chg += 1
    s.lchg[l] |= bit


cdef void link_add(State* s, Py_ssize_t i, double t) noexcept nogil:
    cdef int64_t k
    cdef int32_t l
    for k in range(path_begin(s, i), path_end(s, i)):
        l = s.path_links[k]
        s.slots[s.link_ptr[l] + s.cnt[l]] = <int32_t> i
        s.pos[k] = s.cnt[l]
        if s.cnt[l] == 0:
            s.lsince[l] = t
        s.cnt[l] += 1
        mark_changed(s, l, 2)


cdef void link_remove(State* s, Py_ssize_t i, double t) noexcept nogil:
    cdef int64_t k, base, km
    cdef int32_t l, p, m
    for k in range(path_begin(s, i), path_end(s, i)):
        l = s.path_links[k]
        base = s.link_ptr[l]
        p = s.pos[k]
        s.cnt[l] -= 1
        if p != s.cnt[l]:
            m = s.slots[base + s.cnt[l]]
            s.slots[base + p] = m
            # the moved subflow's incidence on l: paths are short, so search it
            for km in range(path_begin(s, m), path_end(s, m)):
                if s.path_links[km] == l:
                    s.pos[km] = p
                    break
        if s.cnt[l] == 0:
            s.lbusy[l] += t - s.lsince[l]
            s.load[l] = 0   # exact again whenever a link idles: no drift carried over
            s.load_c[l] = 0
        elif s.keep_loads and s.rate[i] != 0:
            load_add(s, l, -s.rate[i])
        mark_changed(s, l, 1)


cdef int release(State* s, int64_t f, double t) noexcept nogil:
    """Flow f is released at t: its subflows start their path latency."""
    cdef Py_ssize_t i
    s.release[f] = t
    s.first[f] = INFINITY
    for i in range(s.sub_ptr[f], s.sub_ptr[f + 1]):
        s.state[i] = ST_LATENCY
    if s.same_lat[f]:
        # sprayed paths of equal latency: one event, not one per path
        return heap_push(&s.ev, t + path_latency(s.path_ptr, s.path_links, s.lat, s.sub_ptr[f]),
                         f * N_KINDS + EV_ACTIVATE_ALL)
    for i in range(s.sub_ptr[f], s.sub_ptr[f + 1]):
        if heap_push(&s.ev, t + path_latency(s.path_ptr, s.path_links, s.lat, i),
                     <int64_t> i * N_KINDS + EV_ACTIVATE) < 0:
            return -1
    return 0


cdef int finish_sub(State* s, Py_ssize_t i, double t) noexcept nogil:
    cdef int32_t f = owner_of(s, i)
    cdef int64_t k
    cdef int32_t d
    cdef double rel
    s.state[i] = ST_DONE
    s.rt[i].fin = t
    s.left[f] -= 1
    if t > s.finish[f]:
        s.finish[f] = t
    if s.left[f] > 0:
        return 0
    s.n_done += 1
    for k in range(s.dpt_ptr[f], s.dpt_ptr[f + 1]):
        d = s.dpt_idx[k]
        if s.finish[f] > s.release[d]:
            s.release[d] = s.finish[f]
        s.pending[d] -= 1
        if s.pending[d] == 0:
            rel = s.release[d] + s.delay[d]
            if s.start[d] > rel:
                rel = s.start[d]
            if rel <= s.window:
                # due in this batch anyway (a collective's next step): the
                # heap would hand it straight back
                s.n_events += 1
                if rel > s.tb:
                    s.tb = rel
                if release(s, d, rel) < 0:
                    return -1
            elif heap_push(&s.ev, rel, <int64_t> d * N_KINDS + EV_RELEASE) < 0:
                return -1
    return 0


cdef int activate(State* s, Py_ssize_t i, double t) noexcept nogil:
    """Subflow i starts sending (its path latency has elapsed)."""
    s.sfirst[i] = t
    if t < s.first[owner_of(s, i)]:
        s.first[owner_of(s, i)] = t
    s.rt[i].tupd = t
    if s.rt[i].rem <= 0:
        return finish_sub(s, i, t)
    if path_end(s, i) == path_begin(s, i):
        # no links: only a cap limits it
        if not isfinite(s.sub_cap[i]):
            s.rt[i].rem = 0
            return finish_sub(s, i, t)
        s.state[i] = ST_ACTIVE
        s.rate[i] = s.sub_cap[i]
        fin_set(s, i, t + s.rt[i].rem / s.rate[i])
        return 0
    s.state[i] = ST_ACTIVE
    s.rate[i] = 0
    s.nmark[i] = s.batch
    s.newlist[s.n_new] = <int32_t> i
    s.n_new += 1
    s.n_active += 1
    if s.n_active > s.max_active:
        s.max_active = s.n_active
    link_add(s, i, t)
    if s.keep_loads:
        s.apos[i] = <int32_t> s.n_alist
        s.alist[s.n_alist] = <int32_t> i
        s.arate[s.n_alist] = INFINITY   # new: a candidate whatever the threshold
        s.amax[s.n_alist // ABLOCK] = INFINITY
        s.n_alist += 1
    return 0


cdef int handle(State* s, Item* it) noexcept nogil:
    cdef int64_t kind = it.key % N_KINDS
    cdef int64_t idx = it.key // N_KINDS
    cdef double t = it.t
    cdef Py_ssize_t i
    if kind == EV_RELEASE:
        return release(s, idx, t)
    if kind == EV_ACTIVATE_ALL:
        s.n_events += s.sub_ptr[idx + 1] - s.sub_ptr[idx] - 1   # count one per subflow, as before
        for i in range(s.sub_ptr[idx], s.sub_ptr[idx + 1]):
            if activate(s, i, t) < 0:
                return -1
        return 0
    i = idx
    if kind == EV_ACTIVATE:
        return activate(s, i, t)
    # EV_FINISH (popped from the finish heap)
    drain(s, i, t)
    s.rt[i].rem = 0
    if path_end(s, i) > path_begin(s, i):
        s.n_active -= 1
        link_remove(s, i, t)
        if s.keep_loads:
            s.n_alist -= 1
            s.alist[s.apos[i]] = s.alist[s.n_alist]
            s.arate[s.apos[i]] = s.arate[s.n_alist]
            raise_amax(s, s.apos[i])
            s.apos[s.alist[s.n_alist]] = s.apos[i]
    s.rate[i] = 0
    return finish_sub(s, i, t)


cdef inline double alist_level(State* s, Py_ssize_t c) noexcept nogil:
    """The level of alist entry c (what amax bounds)."""
    return s.arate[c] if s.unit_w else s.arate[c] / s.sub_w[s.alist[c]]


cdef inline void raise_amax(State* s, Py_ssize_t c) noexcept nogil:
    """alist entry c took a new rate: its block's bound must cover its level."""
    cdef double lv = alist_level(s, c)
    if lv > s.amax[c // ABLOCK]:
        s.amax[c // ABLOCK] = lv


cdef inline bint is_new(State* s, Py_ssize_t i) noexcept nogil:
    """Subflow i started sending in this batch (most batches start none:
    then nmark is not read at all)."""
    return s.n_new > 0 and s.nmark[i] == s.batch


cdef inline double wt(State* s, Py_ssize_t i) noexcept nogil:
    """Subflow i's weight."""
    return 1.0 if s.unit_w else s.sub_w[i]


cdef inline double level_of(State* s, Py_ssize_t i) noexcept nogil:
    return s.rate[i] / wt(s, i)


cdef inline bint bottleneck_at(State* s, int32_t l, double lv, int64_t lstamp) noexcept nogil:
    return ((s.lmark[l] == lstamp or s.lchg[l] == 0) and s.sat[l] <= lv * (1 + SETTLE_TOL)
            and s.sat[l] >= lv * (1 - SETTLE_TOL))


cdef inline bint settled_after(State* s, Py_ssize_t i, int64_t lstamp) noexcept nogil:
    """Bottleneck condition: i is at its cap, or crosses a saturated link on
    which nobody has a higher level.  Links changed by this batch only count
    if the local fill touched them (lmark == lstamp: their level is new)."""
    cdef int64_t k
    cdef int32_t l = s.bneck[i]
    cdef double lv = level_of(s, i)
    if s.has_caps and s.rate[i] >= s.sub_cap[i] * (1 - SETTLE_TOL):
        return True
    # The link that froze i is almost always still its bottleneck: asking it
    # first skips the walk along i's path (a chain of cache misses on
    # crowded links, where these checks run thousands of times per event).
    # Only a hint: the answer is the same either way.
    if l >= 0 and bottleneck_at(s, l, lv, lstamp):
        return True
    for k in range(path_begin(s, i), path_end(s, i)):
        if bottleneck_at(s, s.path_links[k], lv, lstamp):
            return True
    return False


cdef inline bint settled(State* s, Py_ssize_t i) noexcept nogil:
    """Max-min bottleneck condition for i against unchanged links."""
    return settled_after(s, i, NO_STAMP)


cdef double arrival_bound(State* s, int32_t l) noexcept nogil:
    """A lower bound on the level at which link l saturates after arrivals.

    Water-fill l alone: new subflows rise with the level, old ones stop at
    their current levels.  Below the root of sum_i w_i min(lam, lam_i) +
    W_new lam = cap, l cannot saturate, and nothing else changes there either.
    Iterating lam <- (cap - rates below lam) / (weights at or above lam)
    climbs to that root from below; every iterate is a valid bound.
    """
    cdef int64_t base = s.link_ptr[l], j
    cdef Py_ssize_t i
    cdef int it
    cdef double wall = 0, wnew = 0, lam, fixed, rest, nxt
    for j in range(s.cnt[l]):
        i = s.slots[base + j]
        wall += wt(s, i)
        if is_new(s, i):
            wnew += wt(s, i)
    lam = s.cap[l] / wall
    for it in range(4):   # every iterate is a valid bound; more only tighten it
        fixed = 0
        rest = wnew
        for j in range(s.cnt[l]):
            i = s.slots[base + j]
            if is_new(s, i):
                continue
            if s.rate[i] < lam * wt(s, i):
                fixed += s.rate[i]
            else:
                rest += wt(s, i)
        nxt = (s.cap[l] - fixed) / rest
        if not nxt > lam * (1 + 1e-15):
            break
        lam = nxt
    return lam * (1 - SETTLE_TOL)


cdef bint lowest_changed_level_needed(State* s) noexcept nogil:
    """Whether anything can move: a new subflow, or an unsettled one on a link
    that lost a subflow (otherwise those links just become unsaturated)."""
    cdef Py_ssize_t c, j
    cdef int32_t l
    if s.n_new > 0:
        return True
    for c in range(s.n_chg):
        l = s.chg_list[c]
        if s.lchg[l] & 1:
            for j in range(s.cnt[l]):
                if not settled(s, s.slots[s.link_ptr[l] + j]):
                    return True
    for c in range(s.n_chg):
        if s.lchg[s.chg_list[c]] & 1:
            s.sat[s.chg_list[c]] = INFINITY
    return False


cdef double lowest_changed_level(State* s) noexcept nogil:
    """lam0: subflows below this level keep their rates (see module notes)."""
    cdef double lam0 = INFINITY, lb
    cdef Py_ssize_t c, j, i
    cdef int32_t l
    cdef int64_t base
    for c in range(s.n_chg):
        l = s.chg_list[c]
        base = s.link_ptr[l]
        s.n_incid += s.cnt[l]
        if s.lchg[l] & 2:
            if s.sat[l] < lam0:
                lam0 = s.sat[l]
            lb = arrival_bound(s, l)
            if lb < lam0:
                lam0 = lb
        if s.lchg[l] & 1:
            for j in range(s.cnt[l]):
                i = s.slots[base + j]
                if not is_new(s, i) and level_of(s, i) < lam0 and not settled(s, i):
                    lam0 = level_of(s, i)
    for j in range(s.n_new if s.has_caps else 0):
        i = s.newlist[j]
        if s.sub_cap[i] / wt(s, i) < lam0:
            lam0 = s.sub_cap[i] / wt(s, i)
    return lam0


cdef inline bint freeze(State* s, Py_ssize_t i, double r, double lv, double lam0, int32_t by) noexcept nogil:
    """Subflow i freezes at rate r (level lv), by link ``by`` (-1: its cap).
    Returns whether it landed below lam0 though not new (see refill)."""
    cdef int64_t k
    cdef int32_t l
    cdef double wi = wt(s, i)
    cdef double* resid = s.resid
    cdef double* wsum = s.wsum
    cdef int32_t* ucnt = s.ucnt
    s.newrate[i] = r
    s.bneck[i] = by
    for k in range(path_begin(s, i), path_end(s, i)):
        l = s.path_links[k]
        if l == by:
            # the link that froze it is out of the fill: nothing reads its
            # sums again, and updating them chains every freeze of its loop
            # through one memory cell
            continue
        resid[l] -= r
        wsum[l] -= wi
        ucnt[l] -= 1
        if lv > s.rmax[l]:
            s.rmax[l] = lv
        if ucnt[l] == 0:
            ih_remove(&s.lfill, l)
    return r < wi * lam0 * (1 - 1e-9) and not is_new(s, i)


cdef inline void region_link(State* s, int32_t l, double resid, double wsum, int32_t ucnt,
                             double bgmax) noexcept nogil:
    """Link l's free capacity and region weight, ready for the fill."""
    cdef double lv
    s.resid[l] = resid
    s.wsum[l] = wsum
    s.wtot[l] = wsum
    s.ucnt[l] = ucnt
    s.bgmax[l] = bgmax
    s.rmax[l] = 0
    s.sat[l] = INFINITY
    if ucnt > 0:
        lv = resid / wsum
        ih_set(&s.lfill, l, lv if lv > 0 else 0)


cdef inline void scan_link(State* s, int32_t l, int64_t stamp) noexcept nogil:
    """Background load, region weight and top background level of link l."""
    cdef int64_t base = s.link_ptr[l], j
    cdef Py_ssize_t i
    cdef double resid = s.cap[l], wsum = 0, bgmax = 0
    cdef int32_t ucnt = 0
    for j in range(s.cnt[l]):
        i = s.slots[base + j]
        if s.smark[i] == stamp:
            wsum += wt(s, i)
            ucnt += 1
        else:
            resid -= s.rate[i]
            if s.rate[i] > bgmax * wt(s, i):   # no division per subflow
                bgmax = s.rate[i] / wt(s, i)
    s.n_incid += s.cnt[l]
    region_link(s, l, resid, wsum, ucnt, bgmax)


cdef void recount(State* s, int32_t l, int64_t stamp) noexcept nogil:
    """Link l's free capacity and unfrozen region weight, summed afresh."""
    cdef int64_t base = s.link_ptr[l], j
    cdef Py_ssize_t i
    cdef double resid = s.cap[l], wsum = 0
    for j in range(s.cnt[l]):
        i = s.slots[base + j]
        if s.smark[i] == stamp:
            wsum += wt(s, i)
        elif s.smark[i] == stamp + 1:
            resid -= s.newrate[i]
        else:
            resid -= s.rate[i]
    s.n_incid += s.cnt[l]
    s.resid[l] = resid
    s.wsum[l] = wsum
    s.wtot[l] = wsum


cdef double background_max(State* s, int32_t l, int64_t stamp) noexcept nogil:
    """The top level of the subflows on link l outside the region."""
    cdef int64_t base = s.link_ptr[l], j
    cdef Py_ssize_t i
    cdef double top = 0
    for j in range(s.cnt[l]):
        i = s.slots[base + j]
        if s.smark[i] != stamp and s.smark[i] != stamp + 1 and s.rate[i] > top * wt(s, i):
            top = s.rate[i] / wt(s, i)
    s.n_incid += s.cnt[l]
    return top


cdef int progressive_fill(State* s, int64_t stamp, Py_ssize_t n_links, int64_t adj, double lam0) noexcept nogil:
    """Freeze the region's subflows (smark == stamp) level by level.

    The region's links (queue[0 .. n_links-1]) must have been scanned.  New
    rates go to newrate; links that fill get sat = their level; a touched
    link left with no room gets sat = the top level on it; others inf.
    Links with amark == adj list their region members in radj (the rest of
    a crowded link need not be walked); bgmax < 0 means not yet known.
    Returns 1 if a subflow that is not new landed below lam0 (see refill),
    -1 on allocation failure, else 0.
    """
    cdef Py_ssize_t c, i
    cdef int32_t l
    cdef int64_t j, n_ids, frozen = stamp + 1
    cdef double lv, cur = 0
    cdef Item it
    cdef int32_t* ids
    cdef bint below = False
    cdef int32_t* slots = s.slots
    cdef int32_t* mark = s.smark
    cdef int32_t* buf = s.due   # scratch
    cdef int64_t m
    s.capfill.n = 0
    for c in range(s.n_r if s.has_caps else 0):
        i = s.rlist[c]
        if isfinite(s.sub_cap[i]):
            if heap_push(&s.capfill, s.sub_cap[i] / wt(s, i), i) < 0:
                return -1
    while s.lfill.n > 0 or s.capfill.n > 0:
        if s.capfill.n == 0 or (s.lfill.n > 0 and s.lfill.t[0] <= s.capfill.a[0].t):
            l = s.lfill.item[0]
            if s.wsum[l] < s.wtot[l] * RECOUNT:
                # Most of the weight froze elsewhere: what is left is a small
                # difference of big sums (weights 1e16 apart leave 0), so
                # the level would be rounding noise; sum the rest afresh.
                recount(s, l, stamp)
            # keys are lower bounds (levels only rise as subflows freeze):
            # re-key a stale top instead of sifting on every freeze
            lv = s.resid[l] / s.wsum[l]
            if lv > s.lfill.t[0]:
                ih_set(&s.lfill, l, lv)
                continue
            lv = lv if lv > cur else cur
            ih_remove(&s.lfill, l)
            cur = lv
            s.sat[l] = lv
            if s.amark[l] == adj:   # the region members listed on l
                ids = s.radj + s.rstart[l]
                n_ids = s.rcnt[l]
            else:                   # everything on l
                ids = slots + s.link_ptr[l]
                n_ids = s.cnt[l]
            # the unfrozen ones first, without a branch per id, then frozen
            m = 0
            for j in range(n_ids):
                buf[m] = ids[j]
                m += mark[ids[j]] == stamp
            for j in range(m):
                i = buf[j]
                mark[i] = frozen
                below |= freeze(s, i, wt(s, i) * lv, lv, lam0, l)
        else:
            it = heap_pop(&s.capfill)
            i = it.key
            if mark[i] == frozen:
                continue
            cur = it.t if it.t > cur else cur
            mark[i] = frozen
            below |= freeze(s, i, s.sub_cap[i], s.sub_cap[i] / wt(s, i), lam0, -1)
    for c in range(n_links):
        l = s.queue[c]
        if s.sat[l] == INFINITY and s.resid[l] <= s.cap[l] * SETTLE_TOL:
            if s.bgmax[l] < 0:
                s.bgmax[l] = background_max(s, l, stamp)
            s.sat[l] = s.bgmax[l] if s.bgmax[l] > s.rmax[l] else s.rmax[l]
    return below


cdef inline Py_ssize_t queue_changed(State* s, int64_t stamp) noexcept nogil:
    """The closure's BFS starts from the links the batch changed."""
    cdef Py_ssize_t c
    cdef int32_t l
    for c in range(s.n_chg):
        l = s.chg_list[c]
        s.lmark[l] = stamp
        s.queue[c] = l
    return s.n_chg


cdef inline Py_ssize_t join_region(State* s, Py_ssize_t i, int64_t stamp, Py_ssize_t n_r,
                                    Py_ssize_t* qt) noexcept nogil:
    """Subflow i joins the region (rlist[n_r]); its links not yet reached
    join the BFS queue.  Returns the new region size."""
    cdef int64_t k
    cdef int32_t l
    s.smark[i] = stamp
    s.rlist[n_r] = <int32_t> i
    for k in range(path_begin(s, i), path_end(s, i)):
        l = s.path_links[k]
        if s.lmark[l] != stamp:
            s.lmark[l] = stamp
            s.queue[qt[0]] = l
            qt[0] += 1
    return n_r + 1


cdef Py_ssize_t closure_by_scan(State* s, double thr, int64_t stamp, Py_ssize_t* n_links) noexcept nogil:
    """The closure by BFS over links, reading every subflow on each: cheap
    when the region is most of what its links carry (all-to-all on a star).
    Membership is decided by the threshold alone, so a link's background
    load and region weight are final when it is dequeued: one pass."""
    cdef Py_ssize_t j, qh = 0, qt = queue_changed(s, stamp), n_r = 0
    cdef int32_t l, ucnt
    cdef int64_t base
    cdef Py_ssize_t i
    cdef double resid, wsum, bgmax
    cdef int32_t* slots = s.slots
    cdef int32_t* mark = s.smark
    cdef int32_t* queue = s.queue
    cdef double* rate = s.rate
    cdef int32_t* joins = s.due   # scratch
    cdef Py_ssize_t n_j, c
    cdef double r, w
    cdef bint bg, inside
    # locals, not wt() and is_new() on fields of s: unit_w is a C int, which
    # the int32 stores to joins may alias, so the compiler would load and
    # test it again for every slot (measured: 2-5% of an all-to-all)
    cdef bint unit_w = s.unit_w, any_new = s.n_new > 0
    cdef double* sub_w = s.sub_w
    cdef int64_t* nmark = s.nmark
    cdef int64_t batch = s.batch
    while qh < qt:
        l = queue[qh]
        qh += 1
        base = s.link_ptr[l]
        s.n_incid += s.cnt[l]
        resid = s.cap[l]
        wsum = 0
        bgmax = 0
        ucnt = 0
        n_j = 0
        # Without branches on the subflow's class (a coin toss per slot on a
        # star's all-to-all, and a mispredicted branch costs more than the
        # arithmetic): background adds its rate, the rest its weight; those
        # not yet in the region are listed and join after the pass.
        for j in range(s.cnt[l]):
            i = slots[base + j]
            r = rate[i]
            w = 1.0 if unit_w else sub_w[i]
            inside = mark[i] == stamp
            bg = (not inside) & (r < thr * w) & (not (any_new and nmark[i] == batch))
            resid -= r * bg
            wsum += w * (not bg)
            ucnt += not bg
            if bg & (r > bgmax * w):   # rarely: the top only rises
                bgmax = r / w
            joins[n_j] = <int32_t> i
            n_j += (not bg) & (not inside)
        for c in range(n_j):
            n_r = join_region(s, joins[c], stamp, n_r, &qt)
        region_link(s, l, resid, wsum, ucnt, bgmax)
    n_links[0] = qt
    return n_r


cdef int64_t list_by_link(State* s, int32_t* members, Py_ssize_t n, int64_t astamp, int64_t* crowd) noexcept nogil:
    """Each link's share of ``members``, in one block of radj per link
    (amark == astamp marks the links listed).  Returns the members'
    incidences; ``crowd`` gets how many subflows those links carry."""
    cdef Py_ssize_t c, n_tl = 0
    cdef Py_ssize_t i
    cdef int32_t l
    cdef int64_t k, off = 0, m = 0
    cdef int32_t* tl = s.hlinks
    cdef int32_t* pair = s.rpair
    crowd[0] = 0
    for c in range(n):
        i = members[c]
        for k in range(path_begin(s, i), path_end(s, i)):
            l = s.path_links[k]
            if s.amark[l] != astamp:
                s.amark[l] = astamp
                s.rcnt[l] = 0
                tl[n_tl] = l
                n_tl += 1
            s.rcnt[l] += 1
            # kept for the second pass: walking the paths again would miss
            # the cache as often as this walk did
            pair[2 * m] = l
            pair[2 * m + 1] = <int32_t> i
            m += 1
    for c in range(n_tl):
        l = tl[c]
        s.rstart[l] = off
        off += s.rcnt[l]
        crowd[0] += s.cnt[l]
        s.rcnt[l] = 0
    for k in range(m):
        l = pair[2 * k]
        s.radj[s.rstart[l] + s.rcnt[l]] = pair[2 * k + 1]
        s.rcnt[l] += 1
    s.n_incid += 2 * off
    return off


cdef inline void kept_link(State* s, int32_t l, int64_t astamp) noexcept nogil:
    """Link l ready for the fill from its kept load: the background is the
    load minus the rates of the region members listed on it (radj)."""
    cdef double resid = s.cap[l] - (s.load[l] + s.load_c[l]), wsum = 0
    cdef int32_t ucnt = 0
    cdef int64_t base, j
    cdef Py_ssize_t i
    if s.amark[l] == astamp:
        base = s.rstart[l]
        for j in range(s.rcnt[l]):
            i = s.radj[base + j]
            resid += s.rate[i]
            wsum += wt(s, i)
        ucnt = s.rcnt[l]
    region_link(s, l, resid, wsum, ucnt, -1)   # bgmax: found if needed (progressive_fill)


cdef Py_ssize_t closure_by_candidates(State* s, double thr, int64_t hstamp, int64_t stamp,
                                      Py_ssize_t* n_links) noexcept nogil:
    """The closure by BFS over the candidates H (new, or level >= thr)
    only: one pass over the sending subflows finds them (skipping each
    block of them whose bound amax is below thr), each link's share
    of them is listed (radj), and a crowded link's background is its kept
    load minus H's rates, not a pass over everything on it (all-to-all on a
    fat-tree: a few hundred candidates on links carrying thousands)."""
    cdef Py_ssize_t c, j, qh = 0, qt, n_r = 0, n_h = 0
    cdef int32_t l
    cdef int64_t base, off, crowd
    cdef Py_ssize_t i
    cdef int32_t* hl = s.due   # H (scratch)
    cdef int32_t* mark = s.smark
    cdef int32_t* queue = s.queue
    cdef double* arate = s.arate
    cdef int32_t* alist = s.alist
    cdef bint unit_w = s.unit_w
    cdef double top, lv
    # with weights, a level (rate / weight) only bounds the exact test
    # rate < thr * weight up to rounding: skip a block only well below thr
    cdef double skip_below = thr if unit_w else thr * (1 - 1e-9)
    cdef Py_ssize_t b, end
    for b in range((s.n_alist + ABLOCK - 1) // ABLOCK):
        if s.amax[b] < skip_below:
            continue   # most blocks: nobody in them reaches thr
        top = 0
        end = (b + 1) * ABLOCK if (b + 1) * ABLOCK < s.n_alist else s.n_alist
        s.n_incid += end - b * ABLOCK
        for c in range(b * ABLOCK, end):
            # arate: the rates in list order (a stream, not a gather); new ones inf
            lv = alist_level(s, c)
            if lv > top:
                top = lv
            if not arate[c] < (thr if unit_w else thr * s.sub_w[alist[c]]):
                i = alist[c]
                mark[i] = hstamp
                hl[n_h] = <int32_t> i
                n_h += 1
        s.amax[b] = top   # exact again
    off = list_by_link(s, hl, n_h, hstamp, &crowd)
    if off * 3 > crowd:
        # H is much of what its links carry: scanning them is as cheap, and
        # needs neither lists nor kept loads; probe again after a while,
        # less often each time it fails (the traffic may change)
        s.cand_backoff = s.cand_backoff * 2 if s.cand_backoff < 1024 else 1024
        s.skip_candidates = s.cand_backoff
        s.by_candidates = False
        s.keep_loads = s.rec_links or s.stat_links
    else:
        s.cand_backoff = 16
    # BFS from the changed links: on a link it reaches, every H member is reached
    qt = queue_changed(s, stamp)
    while qh < qt:
        l = queue[qh]
        qh += 1
        if s.amark[l] == hstamp:
            base = s.rstart[l]
            for j in range(s.rcnt[l]):
                i = s.radj[base + j]
                if mark[i] == hstamp:
                    n_r = join_region(s, i, stamp, n_r, &qt)
        kept_link(s, l, hstamp)
    n_links[0] = qt
    return n_r


cdef int _by_id(const void* a, const void* b) noexcept nogil:
    cdef int32_t x = (<const int32_t*> a)[0], y = (<const int32_t*> b)[0]
    return (x > y) - (x < y)


cdef void sort_ids(int32_t* a, Py_ssize_t n, int32_t* tmp) noexcept nogil:
    """a[:n], ids >= 0, in increasing order; tmp holds n.  LSD radix sort by
    11-bit digits: a batch sorts thousands of ids, and qsort's comparator
    calls cost more than the cache misses the order saves."""
    cdef Py_ssize_t cnt[2048]
    cdef Py_ssize_t k, j, acc, c
    cdef int32_t x, mx = 0
    cdef int32_t* src = a
    cdef int32_t* dst = tmp
    cdef int32_t* sw
    cdef int shift = 0
    if n < 64:
        for k in range(1, n):
            x = a[k]
            j = k - 1
            while j >= 0 and a[j] > x:
                a[j + 1] = a[j]
                j -= 1
            a[j + 1] = x
        return
    for k in range(n):
        if a[k] > mx:
            mx = a[k]
    while shift < 31 and (mx >> shift) > 0:
        memset(cnt, 0, sizeof(cnt))
        for k in range(n):
            cnt[(src[k] >> shift) & 2047] += 1
        acc = 0
        for j in range(2048):
            c = cnt[j]
            cnt[j] = acc
            acc += c
        for k in range(n):
            j = (src[k] >> shift) & 2047
            dst[cnt[j]] = src[k]
            cnt[j] += 1
        sw = src
        src = dst
        dst = sw
        shift += 11
    if src != a:
        memcpy(a, src, n * sizeof(int32_t))


cdef void start_keeping_loads(State* s) noexcept nogil:
    """Every link's load summed afresh, and the list of sending subflows
    (alist) gathered from the links; both kept up to date from now on.

    The list is put in subflow order: gathered in link order, the sums over
    it would depend on how links are numbered (results must not)."""
    cdef Py_ssize_t l, i
    cdef int64_t j, base, seen
    cdef double load
    s.stamp += 1
    seen = 2 * s.stamp
    s.n_alist = 0
    for l in range(s.L):
        base = s.link_ptr[l]
        load = 0
        for j in range(s.cnt[l]):
            i = s.slots[base + j]
            load += s.rate[i]
            if s.smark[i] != seen:
                s.smark[i] = seen
                s.alist[s.n_alist] = <int32_t> i
                s.n_alist += 1
        s.load[l] = load
        s.load_c[l] = 0
        s.n_incid += s.cnt[l]
    qsort(s.alist, s.n_alist, sizeof(int32_t), _by_id)
    for l in range(s.n_alist):
        i = s.alist[l]
        s.apos[i] = <int32_t> l
        s.arate[l] = INFINITY if is_new(s, i) else s.rate[i]
    for l in range((s.n_alist + ABLOCK - 1) // ABLOCK):
        s.amax[l] = INFINITY   # exact after the first pass
    s.keep_loads = True
    s.by_candidates = True


cdef int refill(State* s, double lam0) noexcept nogil:
    """Refill the lam0 closure: new subflows plus every subflow with level >=
    lam0 reachable from a changed link through such subflows (module notes).

    Returns 1 if a refilled subflow landed below lam0 (caller redoes with 0),
    -1 on allocation failure, else 0.
    """
    cdef Py_ssize_t n_r, qt
    cdef int64_t stamp, hstamp, adj
    cdef double thr = lam0 * (1 - SETTLE_TOL)
    s.stamp += 1
    hstamp = 2 * s.stamp
    s.stamp += 1
    stamp = 2 * s.stamp
    s.n_fills += 1
    if s.skip_candidates > 0:
        s.skip_candidates -= 1
        n_r = closure_by_scan(s, thr, stamp, &qt)
        adj = NO_STAMP
    else:
        if not s.by_candidates:
            # summed afresh even when the link log kept them: rates must not
            # depend on whether links are recorded
            start_keeping_loads(s)
        n_r = closure_by_candidates(s, thr, hstamp, stamp, &qt)
        adj = hstamp
        s.n_by_candidates += 1
    s.n_r = n_r
    s.n_refilled += n_r
    # a refilled subflow that landed below lam0 (only through rounding) makes
    # the caller redo it with lam0 = 0; the fill checks as it freezes
    return progressive_fill(s, stamp, qt, adj, lam0)


cdef inline void save_sat(State* s, int32_t l) noexcept nogil:
    if s.umark[l] != s.batch:
        s.umark[l] = s.batch
        s.undo_l[s.n_undo] = l
        s.usat[l] = s.sat[l]
        s.n_undo += 1


cdef int local_refill(State* s, int max_rounds) noexcept nogil:
    """Refill the smallest region that can change, and prove it is enough.

    Start from the new subflows and the unsettled ones on links that lost a
    subflow; fill them with everything else fixed; then check every outside
    subflow on a touched link: it must not sit above a link the fill
    saturated, and must still have a bottleneck.  Violators join the region
    and the fill is redone.  When nothing is violated, every subflow has a
    bottleneck and no link is over capacity: that is the (unique) max-min
    allocation.  Returns 0 when proved, 2 if max_rounds were not enough (the
    caller falls back to the lam0 closure), -1 on allocation failure.
    """
    cdef Py_ssize_t c, j, qt, n_r = 0, n_before
    cdef int32_t l
    cdef int64_t base, k, stamp, lstamp, scanned, adj, crowd
    cdef Py_ssize_t i
    cdef int rnd
    s.stamp += 1
    stamp = 2 * s.stamp
    for c in range(s.n_new):
        i = s.newlist[c]
        s.smark[i] = stamp
        s.rlist[n_r] = <int32_t> i
        n_r += 1
    for c in range(s.n_chg):
        l = s.chg_list[c]
        if s.lchg[l] & 1:
            base = s.link_ptr[l]
            for j in range(s.cnt[l]):
                i = s.slots[base + j]
                if s.smark[i] != stamp and not settled(s, i):
                    s.smark[i] = stamp
                    s.rlist[n_r] = <int32_t> i
                    n_r += 1
    if n_r == 0:
        # nothing can move: links that lost a subflow are simply unsaturated
        for c in range(s.n_chg):
            if s.lchg[s.chg_list[c]] & 1:
                s.sat[s.chg_list[c]] = INFINITY
        return 3
    s.n_undo = 0
    for c in range(s.n_chg):
        if s.lchg[s.chg_list[c]] & 1:
            save_sat(s, s.chg_list[c])
            s.sat[s.chg_list[c]] = INFINITY
    for rnd in range(max_rounds):
        s.n_r = n_r
        s.n_fills += 1
        s.n_refilled += n_r
        if rnd:
            s.stamp += 1
            stamp = 2 * s.stamp
            for c in range(n_r):
                s.smark[s.rlist[c]] = stamp
        # the links under the region, scanned and filled
        s.stamp += 1
        lstamp = 2 * s.stamp
        qt = 0
        for c in range(s.n_chg):
            l = s.chg_list[c]
            if s.lmark[l] != lstamp and s.lchg[l] & 2:
                s.lmark[l] = lstamp
                s.queue[qt] = l
                qt += 1
        for c in range(n_r):
            i = s.rlist[c]
            for k in range(path_begin(s, i), path_end(s, i)):
                l = s.path_links[k]
                if s.lmark[l] != lstamp:
                    s.lmark[l] = lstamp
                    s.queue[qt] = l
                    qt += 1
        scanned = 0
        adj = NO_STAMP
        if s.by_candidates:   # crowded links: their kept load, not a pass over them
            adj = lstamp
            list_by_link(s, s.rlist, n_r, adj, &crowd)
        for c in range(qt):
            save_sat(s, s.queue[c])
            if s.by_candidates:
                kept_link(s, s.queue[c], adj)
            else:
                scan_link(s, s.queue[c], stamp)
            scanned += s.cnt[s.queue[c]]
        if progressive_fill(s, stamp, qt, adj, 0.0) < 0:
            return -1
        # outside subflows on touched links: above a filled link, or unsettled?
        # Not on a link whose level came out as before the batch: its outside
        # subflows were at or below that level and still are, and one whose
        # bottleneck moved sits on the link that moved, where it is checked.
        # Most links a refill touches are such (often unsaturated before and
        # after) and crowded: this skips most of the scan.
        n_before = n_r
        for c in range(qt):
            l = s.queue[c]
            if s.sat[l] == s.usat[l]:
                continue
            base = s.link_ptr[l]
            s.n_incid += s.cnt[l]
            for j in range(s.cnt[l]):
                i = s.slots[base + j]
                if s.smark[i] == stamp + 1 or s.smark[i] == stamp + 3:
                    continue
                # above the level a link filled at: per link; bottleneck: once
                if s.rate[i] > s.sat[l] * wt(s, i) * (1 + SETTLE_TOL) or (
                        s.smark[i] != stamp + 2 and not settled_after(s, i, lstamp)):
                    s.smark[i] = stamp + 3
                    s.rlist[n_r] = <int32_t> i
                    n_r += 1
                else:
                    s.smark[i] = stamp + 2   # bottleneck checked this round
        if n_r == n_before:
            return 0
        if (n_r > 2 * n_before and n_r > LOCAL_EXPLODE) or scanned > LOCAL_SCAN * n_before:
            # a ripple this wide, or links this crowded, are what the lam0
            # closure is for: each further round would rescan them all
            break
        s.stamp += 1   # stamp + 2 / + 3 must not be mistaken for next round's marks
    # not proved: put the saturation levels back for the lam0 closure
    for c in range(s.n_undo):
        s.sat[s.undo_l[c]] = s.usat[s.undo_l[c]]
    return 2


cdef void bins_cover(State* s, double t) noexcept nogil:
    """Make the bins reach past time t.  The first positive time sets their
    width to a power of two (so runs played in phases share one grid);
    later ones merge neighbouring bins until t fits."""
    cdef Py_ssize_t l, k
    cdef double* row
    if s.bin_w == 0:
        s.bin_w = ldexp(1.0, ilogb(t) - 6)   # t / bin_w in [64, 128)
    while t >= NBINS * s.bin_w:
        for l in range(s.L):
            row = s.bins + l * NBINS
            for k in range(NBINS // 2):
                row[k] = row[2 * k] + row[2 * k + 1]
            for k in range(NBINS // 2, NBINS):
                row[k] = 0
        s.bin_w *= 2


cdef void stat_step(State* s, int32_t l, double t, double u) noexcept nogil:
    """Link l's utilization becomes u at time t: the step ending here joins
    its time at or above hot and its bins (the arithmetic of link_log_stats
    on the log, in the same order)."""
    cdef double a = s.st_t[l], v = s.st_u[l], w
    cdef Py_ssize_t i, j, k
    cdef double* row
    if not t < INFINITY:
        return   # never a batch's time; a guard for the bin arithmetic all the same
    if t > a and v > 0:
        if v >= s.hot:
            s.st_hot[l] += t - a
        bins_cover(s, t)
        w = s.bin_w
        row = s.bins + l * NBINS
        i = <Py_ssize_t> (a / w)
        j = <Py_ssize_t> (t / w)
        if i == j:
            row[i] += v * (t - a)
        else:
            row[i] += v * ((i + 1) * w - a)
            for k in range(i + 1, j):
                row[k] += v * w
            row[j] += v * (t - j * w)
    if u > s.st_peak[l]:
        s.st_peak[l] = u
    s.st_t[l] = t
    s.st_u[l] = u


cdef int log_load(State* s, int32_t l, double t) noexcept nogil:
    """Link l's load to the link log and statistics if it changed (once per
    call of apply_rates)."""
    cdef double load = s.load[l] + s.load_c[l]
    if s.lmark[l] == -s.logstamp:
        return 0
    s.lmark[l] = -s.logstamp
    if load != s.lload[l]:
        s.lload[l] = load
        if s.stat_links:
            stat_step(s, l, t, load / s.cap[l])
        if s.rec_links:
            return log_add(&s.linklog, t, l, load)
    return 0


cdef int apply_rates(State* s, double t) noexcept nogil:
    cdef Py_ssize_t c, j
    cdef Py_ssize_t i
    cdef double nr, pred
    for c in range(s.n_r):
        i = s.rlist[c]
        nr = s.newrate[i]
        if nr == s.rate[i] and not is_new(s, i):
            continue
        if fabs(nr - s.rate[i]) > 1e-12 * nr:
            s.n_changed += 1
        drain(s, i, t)
        if s.keep_loads:
            # kept as rates change, not summed when needed: a storage
            # server's link carries thousands of flows, and the closure
            # refill and the link log would rescan them all on every change
            for j in range(path_begin(s, i), path_end(s, i)):
                load_add(s, s.path_links[j], nr - s.rate[i])
            s.arate[s.apos[i]] = nr
            raise_amax(s, s.apos[i])
        s.rate[i] = nr
        if s.rec_rates and log_add(&s.ratelog, t, <int32_t> i, nr) < 0:
            return -1
        if nr > 0:
            # A later finish may stay in the heap as a lower bound: next_time
            # re-keys it if it comes to the top (saves most sifts when rates fall).
            pred = s.rt[i].tupd + s.rt[i].rem / nr
            if not pred >= s.rt[i].fin:   # earlier, or not in the heap (NaN)
                fin_set(s, i, pred)
        else:
            fin_remove(s, i)
            s.n_stalled += 1
    if s.rec_links or s.stat_links:
        # log every link whose load may have moved: the changed ones and
        # those under refilled subflows (negative marks never clash with
        # refill's positive stamps)
        s.logstamp += 1
        for c in range(s.n_chg):
            if log_load(s, s.chg_list[c], t) < 0:
                return -1
        for c in range(s.n_r):
            i = s.rlist[c]
            for j in range(path_begin(s, i), path_end(s, i)):
                if log_load(s, s.path_links[j], t) < 0:
                    return -1
    return 0


cdef inline double next_time(State* s) noexcept nogil:
    cdef double t = INFINITY, pred
    cdef int32_t i
    while s.fin.n > 0:
        i = s.fin.item[0]
        pred = s.rt[i].tupd + s.rt[i].rem / s.rate[i]
        if pred <= s.fin.t[0]:
            break
        fin_set(s, i, pred)
    if s.ev.n > 0:
        t = s.ev.a[0].t
    if s.fin.n > 0 and s.fin.t[0] < t:
        t = s.fin.t[0]
    return t


cdef int finish_due(State* s) noexcept nogil:
    """Handle every subflow due to finish in the current batch in one go.

    A collective step ends many flows at once; popping them one by one costs
    a sift each (m log n), while taking them out and rebuilding the heap
    costs O(n).  Returns 1 if it did so, 0 if too few were due (the caller
    pops them singly), -1 on allocation failure in a handler.
    """
    cdef IHeap* h = &s.fin
    cdef int32_t* stack = s.rlist   # depth-first: never more than the heap's depth + 2 entries
    cdef int32_t* due = s.due
    cdef Py_ssize_t top = 0, m = 0, k, c, n_due = 0, j
    cdef int32_t i
    cdef double pred
    cdef Item it
    cdef double window = s.window
    # the slots whose key (a lower bound) is within the window: a subtree at the root
    stack[top] = 0
    top += 1
    while top > 0:
        top -= 1
        k = stack[top]
        if k >= h.n or h.t[k] > window:
            continue
        due[m] = <int32_t> k
        m += 1
        stack[top] = <int32_t> (2 * k + 1)
        stack[top + 1] = <int32_t> (2 * k + 2)
        top += 2
    if m * 8 < h.n:
        return 0
    for c in range(m):
        k = due[c]
        i = h.item[k]
        pred = s.rt[i].tupd + s.rt[i].rem / s.rate[i]
        if pred <= window:
            h.item[k] = -1
            h.where[i] = -1
            s.rt[i].fin = NAN
            due[n_due] = i
            n_due += 1
        else:
            h.t[k] = pred   # a stale lower bound: its true finish is later
            s.rt[i].fin = pred
    j = 0
    for k in range(h.n):
        if h.item[k] >= 0:
            h.t[j] = h.t[k]
            h.item[j] = h.item[k]
            h.where[h.item[j]] = <int32_t> j
            j += 1
    h.n = j
    for k in range(j // 2 - 1, -1, -1):   # Floyd's heap construction
        _isift_down(h, k)
    # last index first: subflows join their links' lists in index order, so
    # each leaves from the end of the list and none has to move into its
    # place; and the handlers walk per-subflow and per-flow arrays in order
    sort_ids(due, n_due, s.rlist)
    for c in range(n_due - 1, -1, -1):
        i = due[c]
        it.t = s.rt[i].tupd + s.rt[i].rem / s.rate[i]
        it.key = <int64_t> i * N_KINDS + EV_FINISH
        s.n_events += 1
        if it.t > s.tb:
            s.tb = it.t
        if handle(s, &it) < 0:
            return -1
    return 1


cdef void drain_all(State* s, double t) noexcept nogil:
    """Bring every sending subflow's remaining bytes up to time t."""
    cdef Py_ssize_t i
    for i in range(s.S):
        if s.state[i] == ST_ACTIVE:
            drain(s, i, t)


cdef int64_t overflowed_flow(State* s) noexcept nogil:
    """The flow of the next event, once it lies at infinity."""
    cdef int64_t kind, idx
    if s.ev.n > 0:
        kind = s.ev.a[0].key % N_KINDS
        idx = s.ev.a[0].key // N_KINDS
        return idx if kind == EV_RELEASE or kind == EV_ACTIVATE_ALL else owner_of(s, idx)
    return owner_of(s, s.fin.item[0])


cdef void restart_stamps(State* s) noexcept nogil:
    """Clear every mark a stamp was written to and count stamps from 0
    again.  Only between batches: no mark outlives its batch's fills."""
    cdef Py_ssize_t i
    for i in range(s.S):
        s.smark[i] = 0
    for i in range(s.L):
        s.lmark[i] = 0
        s.amark[i] = 0
    s.stamp = 0


cdef int run(State* s) noexcept nogil:
    cdef Item it
    cdef double t0
    cdef Py_ssize_t c, f
    cdef double lam0
    cdef int rc
    cdef bint bulk
    if not s.started:
        s.started = 1
        for f in range(s.F):
            if s.pending[f] == 0:
                if heap_push(&s.ev, s.start[f], <int64_t> f * N_KINDS + EV_RELEASE) < 0:
                    return -1
    while s.ev.n > 0 or s.fin.n > 0:
        # Nogil code never sees Ctrl-C: a long run comes up for air BREATHS
        # times per CPU second (however long its batches), and every
        # pause_every batches (progress a test can count on)
        if (s.pause_every > 0 and s.batch >= s.next_pause) or (s.batch % 16 == 0 and clock() >= s.next_clock):
            s.next_pause = s.batch + s.pause_every
            s.next_clock = clock() + CLOCKS_PER_SEC // BREATHS
            return PAUSED
        t0 = next_time(s)
        if t0 > s.until:
            drain_all(s, s.until)   # stop here, every sending subflow's bytes up to `until`
            return 0
        if not t0 < INFINITY:
            s.bad_flow = overflowed_flow(s)
            return OVERFLOW
        s.window = t0 + REL_TOL * fabs(t0)
        s.tb = t0
        s.batch += 1
        s.n_new = 0
        s.n_chg = 0
        s.n_r = 0
        bulk = True
        while next_time(s) <= s.window:
            if s.fin.n > 0 and (s.ev.n == 0 or s.fin.t[0] <= s.ev.a[0].t):
                if bulk and s.fin.n >= BULK_MIN:
                    rc = finish_due(s)
                    if rc < 0:
                        return -1
                    bulk = False   # one try per batch: what comes due later is popped singly
                    if rc:
                        continue
                it.t = s.fin.t[0]
                it.key = <int64_t> s.fin.item[0] * N_KINDS + EV_FINISH
                fin_remove(s, s.fin.item[0])
            else:
                it = heap_pop(&s.ev)
            s.n_events += 1
            if it.t > s.tb:
                s.tb = it.t
            if handle(s, &it) < 0:
                return -1
        s.window = -INFINITY   # releases outside a batch go through the heap
        if s.stamp > s.stamp_limit:
            restart_stamps(s)   # a batch takes a few dozen stamps at most: never mid-batch
        if s.n_chg > 0:
            # after local attempts that had to widen, skip a growing number
            # of them: traffic that couples everything (all-to-all) would
            # pay for the attempt and then for the closure at every event
            if s.skip_local > 0:
                s.skip_local -= 1
                rc = 2 if lowest_changed_level_needed(s) else 3
            else:
                rc = local_refill(s, LOCAL_ROUNDS)
                if rc == 2:
                    s.backoff = s.backoff * 2 + 1 if s.backoff < 64 else 64
                    s.skip_local = s.backoff
                elif rc == 0:
                    s.backoff = 0
            if rc == 2:
                # a failed local attempt put every saturation level back, so
                # lam0 still sees the levels from before the event
                s.n_widened += 1
                rc = refill(s, lowest_changed_level(s))
            if rc == 1:
                s.n_fallbacks += 1
                rc = refill(s, 0.0)
            if rc < 0:
                return -1
            if rc == 3:
                s.n_r = 0   # nothing moved; the link log still records lost subflows
            if (rc != 3 or s.rec_links or s.stat_links) and apply_rates(s, s.tb) < 0:
                return -1
            for c in range(s.n_chg):
                s.lchg[s.chg_list[c]] = 0
        s.now = s.tb
    return 0


cdef inline void* _data(cnp.ndarray arr):
    """The array's buffer (numpy allocates one even for empty arrays)."""
    return cnp.PyArray_DATA(arr)


def _ptr_from_counts(counts):
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr


def simulate(cap, lat, start, delay, dep_ptr, dep_idx, sub_ptr, sub_size, sub_w, sub_cap,
             path_ptr, path_links, bint record_links=False, bint record_rates=False, bint link_stats=False,
             double hot=0.9, double until=INFINITY, progress=None, int64_t progress_every=2000, dependents=None,
             int64_t stamp_limit=1 << 29):
    """Run the engine on validated, contiguous arrays (see the module's layout).

    Returns a dict of numpy arrays: per flow ``release``, ``first_byte``,
    ``finish``; per subflow ``sub_first``, ``sub_finish`` (with one subflow
    per flow, a full run's ``sub_first`` is ``first_byte``); per link
    ``link_bytes``, ``link_busy``; counters; and, on request, the link load
    log (``link_log_t``, ``link_log_id``, ``link_log_v``: load in bytes/s from
    that time on) and the rate log (``rate_log_*``: subflow rate from then on).
    ``link_stats`` keeps, in O(links) memory however long the run, what the
    link log would give: per link ``link_peak`` utilization,
    ``link_hot_s`` (seconds at a utilization >= ``hot``) and ``link_bins``
    (links x bins: utilization-seconds in bins of ``link_bin_width``
    seconds, a power of two, from time 0 to ``link_horizon``, where the run
    ended or stopped).
    With ``until``, the run stops before the first event later than it, with
    every sending subflow's ``sub_remaining`` brought up to that time and
    ``sub_state`` telling where each subflow stands (0 waiting, 1 in latency,
    2 sending, 3 done).  ``overflowed`` is -1, or a flow whose release or
    finish time overflowed to infinity: the run stopped there.

    ``progress(now, events, flows_done)`` is called about ten times per CPU
    second and at least every ``progress_every`` batches of simultaneous
    events.  When it returns False, or Ctrl-C (KeyboardInterrupt) arrives
    meanwhile, the run stops as with ``until`` at the time reached, and
    ``counters["stopped"]`` is 1.  Without ``progress``, Ctrl-C raises
    KeyboardInterrupt, as fast.

    ``dependents``: the reverse of the dependency CSR, (ptr, idx) from
    :func:`reverse_csr`, if the caller already has it.  ``stamp_limit``:
    how far fill stamps count before they start again (tests lower it).
    """
    cdef Py_ssize_t L = cap.shape[0], F = start.shape[0], S = sub_size.shape[0]
    cdef Py_ssize_t K = path_links.shape[0]
    dpt_ptr, dpt_idx = reverse_csr(dep_ptr, dep_idx, F) if dependents is None else dependents
    # link -> incidences, sized by how many subflows use each link
    link_ptr = _ptr_from_counts(np.bincount(path_links, minlength=L))
    # one subflow per flow (most traffic): subflow i is flow i, and per-flow
    # arrays serve for both (owner, first byte), a million fewer entries each
    multipath = S != F
    i8, i32, i64, f64 = np.int8, np.int32, np.int64, np.float64
    a = dict(
        # inputs (validated by fabric.engine)
        cap=(cap, f64), lat=(lat, f64), start=(start, f64), delay=(delay, f64), dep_ptr=(dep_ptr, i64),
        sub_ptr=(sub_ptr, i64),
        sub_size=(sub_size, f64), sub_w=(sub_w, f64), sub_cap=(sub_cap, f64), path_ptr=(path_ptr, i64),
        path_links=(path_links, i32),
        # derived layout
        dpt_ptr=(dpt_ptr, i64), dpt_idx=(dpt_idx, i32), link_ptr=(link_ptr, i64),
        owner=(_owners(sub_ptr) if multipath else np.zeros(0, i32), i32),
        same_lat=(_same_latency(sub_ptr, path_ptr, path_links, lat), i8),
        # link state
        slots=(np.zeros(K, i32), i32), pos=(np.zeros(K, i32), i32), cnt=(np.zeros(L, i32), i32),
        ucnt=(np.zeros(L, i32), i32), sat=(np.full(L, np.inf), f64), resid=(np.zeros(L), f64),
        wsum=(np.zeros(L), f64), wtot=(np.zeros(L), f64), bgmax=(np.zeros(L), f64), rmax=(np.zeros(L), f64),
        undo_l=(np.zeros(L, i32), i32), usat=(np.zeros(L), f64), umark=(np.zeros(L, i64), i64),
        lmark=(np.zeros(L, i64), i64), lbusy=(np.zeros(L), f64), lsince=(np.zeros(L), f64),
        load=(np.zeros(L), f64), lload=(np.zeros(L), f64), lchg=(np.zeros(L, i8), i8),
        chg_list=(np.zeros(L, i32), i32), queue=(np.zeros(L, i32), i32), lfill_t=(np.zeros(L), f64),
        load_c=(np.zeros(L), f64), amark=(np.zeros(L, i64), i64), rstart=(np.zeros(L, i64), i64),
        rcnt=(np.zeros(L, i32), i32), hlinks=(np.zeros(L, i32), i32), radj=(np.zeros(K, i32), i32),
        rpair=(np.zeros(2 * K, i32), i32),
        alist=(np.zeros(S, i32), i32), apos=(np.zeros(S, i32), i32), arate=(np.zeros(S), f64),
        amax=(np.zeros(S // ABLOCK + 1), f64),
        lfill_item=(np.zeros(L, i32), i32), lfill_where=(np.full(L, -1, i32), i32),
        st_t=(np.zeros(L), f64), st_u=(np.zeros(L), f64), st_peak=(np.zeros(L), f64), st_hot=(np.zeros(L), f64),
        bins=(np.zeros(L * NBINS if link_stats else 0), f64),
        # subflow state
        state=(np.zeros(S, i8), i8), rt=(_rt_records(sub_size), f64), rate=(np.zeros(S), f64),
        newrate=(np.zeros(S), f64), fin_t=(np.zeros(S), f64),
        fin_item=(np.zeros(S, i32), i32), fin_where=(np.full(S, -1, i32), i32),
        smark=(np.zeros(S, i32), i32), nmark=(np.zeros(S, i64), i64),
        bneck=(np.full(S, -1, i32), i32), sfirst=(np.full(S, np.nan), f64), rlist=(np.zeros(S + 2, i32), i32),
        newlist=(np.zeros(S, i32), i32),
        due=(np.empty(S, i32), i32),
        # flow state; release and finish start at -inf so max() works
        pending=(counts32(dep_ptr), i32), left=(counts32(sub_ptr), i32),
        release=(np.full(F, -np.inf), f64), first=(np.full(F if multipath else 0, np.nan), f64),
        finish=(np.full(F, -np.inf), f64),
    )
    arrays = {}
    for name, (arr, dtype) in a.items():
        # the C code reads these through raw pointers: insist on the exact layout
        arr = np.asarray(arr)
        if arr.dtype != dtype or not arr.flags.c_contiguous:
            raise TypeError(f"fabric._core.simulate: {name} must be C-contiguous {np.dtype(dtype).name}")
        arrays[name] = arr
    if not multipath:
        arrays["first"] = arrays["sfirst"]
    cdef State s
    s.L, s.F, s.S = L, F, S
    s.cap = <double*> _data(arrays["cap"])
    s.lat = <double*> _data(arrays["lat"])
    s.start = <double*> _data(arrays["start"])
    s.delay = <double*> _data(arrays["delay"])
    s.dep_ptr = <int64_t*> _data(arrays["dep_ptr"])
    s.sub_ptr = <int64_t*> _data(arrays["sub_ptr"])
    s.sub_size = <double*> _data(arrays["sub_size"])
    s.sub_w = <double*> _data(arrays["sub_w"])
    s.sub_cap = <double*> _data(arrays["sub_cap"])
    pp = arrays["path_ptr"]
    s.path_ptr = <int64_t*> _data(pp)
    s.hops = pp[1] if S > 0 and pp[1] > 0 and is_stride(pp, pp[1]) else 0
    s.path_links = <int32_t*> _data(arrays["path_links"])
    s.dpt_ptr = <int64_t*> _data(arrays["dpt_ptr"])
    s.dpt_idx = <int32_t*> _data(arrays["dpt_idx"])
    s.link_ptr = <int64_t*> _data(arrays["link_ptr"])
    s.owner = <int32_t*> _data(arrays["owner"]) if multipath else NULL
    s.same_lat = <int8_t*> _data(arrays["same_lat"])
    s.slots = <int32_t*> _data(arrays["slots"])
    s.pos = <int32_t*> _data(arrays["pos"])
    s.cnt = <int32_t*> _data(arrays["cnt"])
    s.ucnt = <int32_t*> _data(arrays["ucnt"])
    s.chg_list = <int32_t*> _data(arrays["chg_list"])
    s.queue = <int32_t*> _data(arrays["queue"])
    s.load_c = <double*> _data(arrays["load_c"])
    s.amark = <int64_t*> _data(arrays["amark"])
    s.rstart = <int64_t*> _data(arrays["rstart"])
    s.rcnt = <int32_t*> _data(arrays["rcnt"])
    s.hlinks = <int32_t*> _data(arrays["hlinks"])
    s.radj = <int32_t*> _data(arrays["radj"])
    s.rpair = <int32_t*> _data(arrays["rpair"])
    s.alist = <int32_t*> _data(arrays["alist"])
    s.apos = <int32_t*> _data(arrays["apos"])
    s.arate = <double*> _data(arrays["arate"])
    s.amax = <double*> _data(arrays["amax"])
    s.lchg = <int8_t*> _data(arrays["lchg"])
    s.lmark = <int64_t*> _data(arrays["lmark"])
    s.lfill.t = <double*> _data(arrays["lfill_t"])
    s.lfill.item = <int32_t*> _data(arrays["lfill_item"])
    s.lfill.where = <int32_t*> _data(arrays["lfill_where"])
    s.lfill.n = 0
    s.sat = <double*> _data(arrays["sat"])
    s.resid = <double*> _data(arrays["resid"])
    s.wsum = <double*> _data(arrays["wsum"])
    s.wtot = <double*> _data(arrays["wtot"])
    s.bgmax = <double*> _data(arrays["bgmax"])
    s.rmax = <double*> _data(arrays["rmax"])
    s.undo_l = <int32_t*> _data(arrays["undo_l"])
    s.usat = <double*> _data(arrays["usat"])
    s.umark = <int64_t*> _data(arrays["umark"])
    s.n_undo = 0
    s.lbusy = <double*> _data(arrays["lbusy"])
    s.lsince = <double*> _data(arrays["lsince"])
    s.load = <double*> _data(arrays["load"])
    s.lload = <double*> _data(arrays["lload"])
    s.state = <int8_t*> _data(arrays["state"])
    s.rt = <RT*> _data(arrays["rt"])
    s.rate = <double*> _data(arrays["rate"])
    s.newrate = <double*> _data(arrays["newrate"])
    s.fin.t = <double*> _data(arrays["fin_t"])
    s.fin.item = <int32_t*> _data(arrays["fin_item"])
    s.fin.where = <int32_t*> _data(arrays["fin_where"])
    s.fin.n = 0
    s.smark = <int32_t*> _data(arrays["smark"])
    s.nmark = <int64_t*> _data(arrays["nmark"])
    s.bneck = <int32_t*> _data(arrays["bneck"])
    s.sfirst = <double*> _data(arrays["sfirst"])
    s.rlist = <int32_t*> _data(arrays["rlist"])
    s.newlist = <int32_t*> _data(arrays["newlist"])
    s.due = <int32_t*> _data(arrays["due"])
    s.pending = <int32_t*> _data(arrays["pending"])
    s.left = <int32_t*> _data(arrays["left"])
    s.release = <double*> _data(arrays["release"])
    s.first = <double*> _data(arrays["first"])
    s.finish = <double*> _data(arrays["finish"])
    s.n_chg = s.n_r = s.n_new = 0
    s.ev.a = NULL
    s.ev.n = s.ev.cap = 0
    s.capfill.a = NULL
    s.capfill.n = s.capfill.cap = 0
    s.n_alist = 0
    s.linklog.t = NULL
    s.linklog.id = NULL
    s.linklog.v = NULL
    s.linklog.n = s.linklog.cap = 0
    s.ratelog.t = NULL
    s.ratelog.id = NULL
    s.ratelog.v = NULL
    s.ratelog.n = s.ratelog.cap = 0
    s.rec_links = record_links
    s.stat_links = link_stats
    s.hot = hot
    s.st_t = <double*> _data(arrays["st_t"])
    s.st_u = <double*> _data(arrays["st_u"])
    s.st_peak = <double*> _data(arrays["st_peak"])
    s.st_hot = <double*> _data(arrays["st_hot"])
    s.bins = <double*> _data(arrays["bins"])
    s.bin_w = 0
    s.rec_rates = record_rates
    s.unit_w = bool((arrays["sub_w"] == 1).all())
    s.has_caps = bool(np.isfinite(arrays["sub_cap"]).any())
    s.until = until
    s.now = 0.0
    s.window = -INFINITY
    s.tb = 0.0
    s.pause_every = progress_every if progress is not None else 0
    s.next_pause = s.pause_every
    s.next_clock = clock() + CLOCKS_PER_SEC // BREATHS
    s.started = 0
    s.n_done = 0
    s.batch = s.stamp = s.logstamp = 0
    s.stamp_limit = stamp_limit
    s.skip_local = s.backoff = 0
    s.skip_candidates = 0
    s.cand_backoff = 16
    s.keep_loads = record_links or link_stats
    s.by_candidates = False
    s.n_events = s.n_fills = s.n_refilled = s.n_incid = s.n_fallbacks = s.n_widened = s.n_by_candidates = 0
    s.n_active = s.max_active = s.n_stalled = s.n_changed = 0
    s.bad_flow = -1

    cdef int rc
    cdef bint stopped = 0
    cdef double t_end
    cdef Py_ssize_t l
    try:
        while True:
            try:
                with nogil:
                    rc = run(&s)
                if rc != PAUSED:
                    break
                PyErr_CheckSignals()
                if progress is not None and progress(s.now, s.n_events, s.n_done) is False:
                    stopped = 1
            except KeyboardInterrupt:
                if progress is None:
                    raise   # a plain call: Ctrl-C interrupts it, as it would any Python code
                stopped = 1
            if stopped:
                drain_all(&s, s.now)   # as with `until`
                rc = 0
                break
        if rc < 0:
            raise MemoryError("fabric engine: out of memory")
        # where the statistics end: the stop at `until` if it came first (not
        # an overflow: that run ends in an error, at the last finite time)
        t_end = until if rc == 0 and (s.ev.n > 0 or s.fin.n > 0) and not stopped else s.now
        rem = arrays["rt"][0::3]   # a view: read once below, and by callers of stopped runs
        # the rates are spent: their memory takes the finishes (nothing new
        # allocated at the run's peak)
        sub_finish = arrays["rate"]
        sub_finish[:] = arrays["rt"][2::3]
        first, sub_first = arrays["first"], arrays["sfirst"]
        arrays["release"][np.isnan(first)] = np.nan   # never released: it held its dependencies' finishes
        if s.n_done < F:
            sub_finish[arrays["state"] != ST_DONE] = np.nan   # still going: that was a heap key
            if first is sub_first:   # released but not sending: the flow's first byte is inf, the subflow's nan
                sub_first = np.where(np.isinf(first), np.nan, first)
        out = {
            "release": arrays["release"], "first_byte": first, "finish": arrays["finish"],
            "sub_first": sub_first, "sub_finish": sub_finish,
            "sub_remaining": rem, "sub_state": arrays["state"], "flow_done": arrays["left"] == 0,
            "overflowed": s.bad_flow,
            "link_bytes": _link_bytes(L, arrays["path_ptr"], arrays["path_links"], arrays["sub_size"],
                                      rem),
            "link_busy": arrays["lbusy"],
            "counters": {
                "events": s.n_events, "batches": s.batch, "fills": s.n_fills,
                "refilled_subflows": s.n_refilled, "incidences": s.n_incid,
                "fallbacks": s.n_fallbacks, "widened": s.n_widened, "by_candidates": s.n_by_candidates,
                "max_active": s.max_active,
                "stalled": s.n_stalled, "rate_changes": s.n_changed, "stopped": int(stopped),
            },
        }
        if record_links:
            out["link_log_t"], out["link_log_id"], out["link_log_v"] = _adopt_log(&s.linklog)
        if record_rates:
            out["rate_log_t"], out["rate_log_id"], out["rate_log_v"] = _adopt_log(&s.ratelog)
        if link_stats:
            if t_end > 0:
                bins_cover(&s, t_end)   # a grid even if no link ever carried anything
            for l in range(L):   # every link's last step lasts until the end
                stat_step(&s, <int32_t> l, t_end, s.st_u[l])
            n_bins = min(NBINS, int(ceil(t_end / s.bin_w))) if s.bin_w > 0 else 0
            out.update(link_peak=arrays["st_peak"], link_hot_s=arrays["st_hot"],
                       link_bins=arrays["bins"].reshape(L, NBINS)[:, :n_bins].copy(), link_bin_width=s.bin_w,
                       link_horizon=t_end)
        return out
    finally:
        free(s.ev.a)
        free(s.capfill.a)
        free(s.linklog.t)
        free(s.linklog.id)
        free(s.linklog.v)
        free(s.ratelog.t)
        free(s.ratelog.id)
        free(s.ratelog.v)


def _rt_records(sub_size):
    """The RT records as doubles: rem = the size, tupd = 0, fin = NaN."""
    rt = np.zeros(3 * len(sub_size))
    rt[0::3] = sub_size
    rt[2::3] = np.nan
    return rt


def _owners(const int64_t[::1] sub_ptr):
    """The flow of every subflow."""
    cdef Py_ssize_t f
    cdef int64_t i
    out = np.empty(sub_ptr[sub_ptr.shape[0] - 1], np.int32)
    cdef int32_t[::1] o = out
    with nogil:
        for f in range(sub_ptr.shape[0] - 1):
            for i in range(sub_ptr[f], sub_ptr[f + 1]):
                o[i] = <int32_t> f
    return out


ctypedef fused ids_t:
    int32_t
    int64_t


def sorted_ids(ids):
    """A copy of ``ids`` (int32, >= 0) in increasing order, by the radix
    sort the engine orders a batch's finishing subflows with (for tests)."""
    cdef cnp.ndarray a = np.array(ids, dtype=np.int32, copy=True, order="C")
    cdef cnp.ndarray tmp = np.empty_like(a)
    if a.size and a.min() < 0:
        raise ValueError("sorted_ids: ids must be >= 0")
    sort_ids(<int32_t*> _data(a), a.shape[0], <int32_t*> _data(tmp))
    return a


def take_ranges(const ids_t[::1] values, const int64_t[::1] starts, const int64_t[::1] counts):
    """values[starts[i] .. starts[i] + counts[i] - 1], concatenated: what
    ``values[ranges(starts, counts)]`` gives, without its index array (a
    sprayed fabric's paths have tens of millions of links, and the int64
    index would be twice their size)."""
    cdef Py_ssize_t i, k = 0
    cdef int64_t j, total = 0
    if starts.shape[0] != counts.shape[0]:
        raise ValueError(f"starts and counts: lengths {starts.shape[0]} and {counts.shape[0]} differ")
    for i in range(counts.shape[0]):
        if counts[i] < 0 or starts[i] < 0 or starts[i] + counts[i] > values.shape[0]:
            raise ValueError(f"range {i}: {starts[i]} + {counts[i]} is not within 0..{values.shape[0]}")
        total += counts[i]
    out = np.empty(total, np.int32 if ids_t is int32_t else np.int64)
    cdef ids_t[::1] o = out
    with nogil:
        for i in range(counts.shape[0]):
            for j in range(starts[i], starts[i] + counts[i]):
                o[k] = values[j]
                k += 1
    return out


def ranges(const int64_t[::1] starts, const int64_t[::1] counts):
    """Concatenated ranges starts[i] .. starts[i] + counts[i] - 1, in one
    pass (numpy needs a repeat, a cumsum and an arange, each a full copy)."""
    cdef Py_ssize_t i, k = 0
    cdef int64_t j, total = 0
    for i in range(counts.shape[0]):
        if counts[i] < 0:
            raise ValueError(f"counts[{i}]={counts[i]}: must be >= 0")
        total += counts[i]
    out = np.empty(total, np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        for i in range(counts.shape[0]):
            for j in range(counts[i]):
                o[k] = starts[i] + j
                k += 1
    return out


def _same_latency(const int64_t[::1] sub_ptr, const int64_t[::1] path_ptr, const int32_t[::1] path_links,
                  const double[::1] lat):
    """Per flow, 1 if it has several subflows and their path latencies are equal."""
    cdef Py_ssize_t f
    cdef int64_t i
    cdef double first
    out = np.zeros(sub_ptr.shape[0] - 1, np.int8)
    cdef int8_t[::1] o = out
    with nogil:
        for f in range(sub_ptr.shape[0] - 1):
            if sub_ptr[f + 1] - sub_ptr[f] < 2:
                continue
            o[f] = 1
            first = path_latency(&path_ptr[0], &path_links[0], &lat[0], sub_ptr[f])
            for i in range(sub_ptr[f] + 1, sub_ptr[f + 1]):
                if path_latency(&path_ptr[0], &path_links[0], &lat[0], i) != first:
                    o[f] = 0
                    break
    return out


def _link_bytes(Py_ssize_t L, const int64_t[::1] path_ptr, const int32_t[::1] path_links, const double[::1] size,
                const double[:] rem):
    """Bytes each link carried: what every subflow crossing it has sent
    (``rem`` may be strided: the engine's RT records)."""
    cdef Py_ssize_t i
    cdef int64_t k
    cdef double sent
    out = np.zeros(L)
    cdef double[::1] o = out
    with nogil:
        for i in range(path_ptr.shape[0] - 1):
            sent = size[i] - rem[i]
            for k in range(path_ptr[i], path_ptr[i + 1]):
                o[path_links[k]] += sent
    return out


cdef void _free_capsule(object capsule) noexcept:
    free(PyCapsule_GetPointer(capsule, NULL))


cdef object _adopt(void** p, Py_ssize_t n, Py_ssize_t itemsize, int typenum):
    """A numpy array that takes over malloc'd ``*p`` (n items; ``*p`` is
    cleared, the array frees it).  Shrunk to n first: no slack is kept."""
    cdef cnp.npy_intp dims = n
    cdef void* q
    if n == 0:
        return cnp.PyArray_SimpleNew(1, &dims, typenum)
    q = realloc(p[0], n * itemsize)
    if q == NULL:
        q = p[0]   # shrinking failed: keep the bigger block
    p[0] = NULL
    capsule = PyCapsule_New(q, NULL, <void(*)(object) noexcept>_free_capsule)
    arr = cnp.PyArray_SimpleNewFromData(1, &dims, typenum, q)
    cnp.set_array_base(arr, capsule)
    return arr


cdef tuple _adopt_log(Log* g):
    """(times, ids, values) of a log, without copying it."""
    return (_adopt(<void**> &g.t, g.n, sizeof(double), cnp.NPY_FLOAT64),
            _adopt(<void**> &g.id, g.n, sizeof(int32_t), cnp.NPY_INT32),
            _adopt(<void**> &g.v, g.n, sizeof(double), cnp.NPY_FLOAT64))


def link_log_stats(const double[::1] t, const int32_t[::1] ids, const double[::1] load, const double[::1] cap,
                   double horizon, double hot):
    """Per link, from a time-ordered load log (``Result.link_log``): the peak
    utilization over its changes, and the seconds within [0, horizon] spent
    at a utilization >= ``hot`` (> 0).  One pass, O(links) memory: a big
    run's log holds 10^7-10^8 changes, too many to regroup by link."""
    cdef Py_ssize_t L = cap.shape[0], n = t.shape[0], k, l
    if ids.shape[0] != n or load.shape[0] != n or not hot > 0:
        raise ValueError("link_log_stats: times, ids and loads of one length, and hot > 0")
    peak_a = np.zeros(L)
    hot_a = np.zeros(L)
    last_t_a = np.full(L, np.nan)
    last_u_a = np.zeros(L)
    cdef double[::1] peak = peak_a, hot_s = hot_a, last_t = last_t_a, last_u = last_u_a
    cdef double u, a, b
    with nogil:
        for k in range(n):
            l = ids[k]
            u = load[k] / cap[l]
            if u > peak[l]:
                peak[l] = u
            if last_u[l] >= hot:   # the step that ends here (never true before a link's first change)
                a = t[k] if t[k] < horizon else horizon
                b = last_t[l] if last_t[l] < horizon else horizon
                hot_s[l] += a - b
            last_t[l] = t[k]
            last_u[l] = u
        for l in range(L):
            if last_u[l] >= hot:   # the last step lasts until the horizon
                b = last_t[l] if last_t[l] < horizon else horizon
                hot_s[l] += horizon - b
    return peak_a, hot_a


def reverse_csr(const int64_t[::1] ptr, const int32_t[::1] idx, Py_ssize_t n):
    """Transpose a CSR relation by counting sort: for every j, the rows i
    (in increasing order) with j in idx[ptr[i] .. ptr[i+1]-1]."""
    cdef Py_ssize_t rows = ptr.shape[0] - 1, i, j
    cdef int64_t k
    rptr = np.zeros(n + 1, dtype=np.int64)
    ridx = np.empty(idx.shape[0], dtype=np.int32)
    cdef int64_t[::1] rp = rptr
    cdef int32_t[::1] ri = ridx
    cdef int64_t[::1] fill = np.empty(n, dtype=np.int64)
    with nogil:
        for k in range(idx.shape[0]):
            rp[idx[k] + 1] += 1
        for j in range(n):
            rp[j + 1] += rp[j]
            fill[j] = rp[j]
        for i in range(rows):
            for k in range(ptr[i], ptr[i + 1]):
                j = idx[k]
                ri[fill[j]] = <int32_t> i
                fill[j] += 1
    return rptr, ridx


def check_paths(const int64_t[::1] path_ptr, const int32_t[::1] path_links, Py_ssize_t L):
    """First bad incidence of the paths, as (k, 1) for a link id out of
    0..L-1, (k, 2) for a link repeated within one path, or (-1, 0)."""
    cdef Py_ssize_t S = path_ptr.shape[0] - 1, sub
    cdef int64_t k, l, bad = -1
    cdef int problem = 0
    cdef int64_t[::1] last = np.full(max(L, 1), -1, dtype=np.int64)
    with nogil:
        for sub in range(S):
            for k in range(path_ptr[sub], path_ptr[sub + 1]):
                l = path_links[k]
                if l < 0 or l >= L:
                    problem = 1
                elif last[l] == sub:
                    problem = 2
                else:
                    last[l] = sub
                    continue
                bad = k
                break
            if problem:
                break
    return bad, problem


def find_cycle(const int64_t[::1] dep_ptr, const int64_t[::1] dptr, const int32_t[::1] dpt):
    """Kahn's algorithm over the dependency DAG (dependents ``dpt`` in CSR
    ``dptr``, from :func:`reverse_csr`); a flow on a cycle, or -1."""
    cdef Py_ssize_t F = dep_ptr.shape[0] - 1, f = -1, k, head = 0, tail = 0
    cdef int32_t[::1] deg = counts32(dep_ptr)
    cdef int32_t[::1] q = np.empty(F, dtype=np.int32)
    with nogil:
        for f in range(F):
            if deg[f] == 0:
                q[tail] = <int32_t> f
                tail += 1
        while head < tail:
            f = q[head]
            head += 1
            for k in range(dptr[f], dptr[f + 1]):
                deg[dpt[k]] -= 1
                if deg[dpt[k]] == 0:
                    q[tail] = dpt[k]
                    tail += 1
        for f in range(F):
            if deg[f] > 0:
                break
    return -1 if tail == F else f


# Checks and derived arrays in single passes: numpy expressions would make a
# temporary per step, and for millions of flows the page faults of those
# temporaries cost more than the checks.

def counts32(const int64_t[::1] ptr):
    """ptr[i+1] - ptr[i] as int32 (counts within one flow fit)."""
    cdef Py_ssize_t n = ptr.shape[0] - 1, i
    out = np.empty(n, np.int32)
    cdef int32_t[::1] o = out
    with nogil:
        for i in range(n):
            o[i] = <int32_t> (ptr[i + 1] - ptr[i])
    return out


def first_bad(const double[::1] v, double low, bint low_ok, bint allow_inf):
    """Index of the first value that is NaN, infinite (but +inf with
    ``allow_inf``), or below ``low`` (or at it, unless ``low_ok``); -1 if none."""
    cdef Py_ssize_t i, bad = -1
    cdef double x
    with nogil:
        for i in range(v.shape[0]):
            x = v[i]
            if x != x or x < low or (x == low and not low_ok) or (x == -INFINITY) or (
                    x == INFINITY and not allow_inf):
                bad = i
                break
    return bad


cdef void _positive_range(const double[::1] v, double* lo, double* hi) noexcept nogil:
    cdef Py_ssize_t i
    lo[0], hi[0] = INFINITY, 0
    for i in range(v.shape[0]):
        if v[i] > 0:
            if v[i] < lo[0]:
                lo[0] = v[i]
            if v[i] > hi[0]:
                hi[0] = v[i]


def positive_ranges(const double[::1] a, const double[::1] b):
    """(smallest, largest) of the values > 0 in a, then in b; (inf, 0) if none."""
    cdef double alo, ahi, blo, bhi
    with nogil:
        _positive_range(a, &alo, &ahi)
        _positive_range(b, &blo, &bhi)
    return alo, ahi, blo, bhi


def ptr_steps(const int64_t[::1] ptr):
    """(first i with ptr[i+1] < ptr[i], first i with ptr[i+1] == ptr[i]), -1 for none."""
    cdef Py_ssize_t i, neg = -1, zero = -1
    with nogil:
        for i in range(ptr.shape[0] - 1):
            if ptr[i + 1] < ptr[i]:
                neg = i
                break
            if zero < 0 and ptr[i + 1] == ptr[i]:
                zero = i
    return neg, zero


def is_stride(const int64_t[::1] ptr, int64_t h):
    """Whether ptr is 0, h, 2h, ... (h = 1: one subflow per flow)."""
    cdef Py_ssize_t i, n = ptr.shape[0]
    with nogil:
        for i in range(n):
            if ptr[i] != h * i:
                break
        else:
            i = n
    return i == n


def split_flows(const double[::1] size, const double[::1] weight, const double[::1] fcap, const double[::1] frac,
                const double[::1] tot, const int64_t[::1] sub_ptr):
    """Each subflow's share of its flow (frac / the flow's total ``tot``)
    and its size, weight and cap (inf on a path with share 0): in one pass,
    without the per-subflow owner and gathered columns numpy would build."""
    cdef Py_ssize_t f, S = frac.shape[0]
    cdef int64_t k
    cdef double sh
    share_a, size_a, w_a, cap_a = (np.empty(S) for _ in range(4))
    cdef double[::1] share = share_a, sub_size = size_a, sub_w = w_a, sub_cap = cap_a
    with nogil:
        for f in range(sub_ptr.shape[0] - 1):
            for k in range(sub_ptr[f], sub_ptr[f + 1]):
                sh = frac[k] / tot[f]
                share[k] = sh
                sub_size[k] = size[f] * sh
                sub_w[k] = weight[f] * sh
                sub_cap[k] = fcap[f] * sh if sh > 0 else INFINITY   # inf * 0 would be nan
    return share_a, size_a, w_a, cap_a


def narrow(const ids_t[::1] ids, int64_t n):
    """ids as int32 (int32 input itself, not a copy), and the index of the
    first id outside 0..n-1 (or -1)."""
    cdef Py_ssize_t k, bad = -1
    out = np.asarray(ids) if ids_t is int32_t else np.empty(ids.shape[0], np.int32)
    cdef int32_t[::1] o = out
    with nogil:
        for k in range(ids.shape[0]):
            if ids[k] < 0 or ids[k] >= n:
                bad = k
                break
            if ids_t is int64_t:
                o[k] = <int32_t> ids[k]
    return out, bad


def compact_ids(const int32_t[::1] ids, Py_ssize_t n):
    """Renumber ids in [0, n) by first use: (the distinct ids, in that order;
    each entry's new id).  O(len(ids) + n), no sort."""
    cdef Py_ssize_t k, m = 0
    cdef int32_t i
    lut_a = np.full(n, -1, np.int32)
    used_a = np.empty(min(n, ids.shape[0]), np.int32)
    new_a = np.empty(ids.shape[0], np.int32)
    cdef int32_t[::1] lut = lut_a, used = used_a, new = new_a
    with nogil:
        for k in range(ids.shape[0]):
            i = ids[k]
            if lut[i] < 0:
                lut[i] = <int32_t> m
                used[m] = i
                m += 1
            new[k] = lut[i]
    return used_a[:m], new_a


def first_self_dep(const int64_t[::1] dep_ptr, const int32_t[::1] dep_idx):
    """First flow that lists itself among its dependencies, or -1."""
    cdef Py_ssize_t f, bad = -1
    cdef int64_t k
    with nogil:
        for f in range(dep_ptr.shape[0] - 1):
            for k in range(dep_ptr[f], dep_ptr[f + 1]):
                if dep_idx[k] == f:
                    bad = f
            if bad >= 0:
                break
    return bad


def first_cut(const int64_t[::1] sub_ptr, const int64_t[::1] path_ptr, const int64_t[::1] src, const int64_t[::1] dst):
    """First flow with an empty path between two distinct known endpoints, or -1."""
    cdef Py_ssize_t f, bad = -1
    cdef int64_t s
    with nogil:
        for f in range(sub_ptr.shape[0] - 1):
            if src[f] < 0 or dst[f] < 0 or src[f] == dst[f]:
                continue
            for s in range(sub_ptr[f], sub_ptr[f + 1]):
                if path_ptr[s + 1] == path_ptr[s]:
                    bad = f
            if bad >= 0:
                break
    return bad

