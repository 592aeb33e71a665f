# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Routing kernels over a compiled network (see fabric.network for the layout).

Node v's out-links are ``adj_link[adj_ptr[v] .. adj_ptr[v+1]-1]``, leading to
``adj_dst[...]`` (same order).  ``forwards[v]`` says whether v may appear in
the middle of a path (switches do; accelerators only in direct networks).
"""

import numpy as np
from libc.stdint cimport int32_t, int64_t, uint64_t


def bfs_to(const int64_t[::1] adj_ptr, const int32_t[::1] adj_dst, const signed char[::1] forwards, int32_t target):
    """Hop distance from every node to ``target`` (-1: unreachable), where
    paths may only pass through forwarding nodes.  Give it the *reverse*
    adjacency (in-links: adj_dst holds each link's source), so that one-way
    failures are respected."""
    cdef Py_ssize_t n = adj_ptr.shape[0] - 1, head = 0, tail = 1
    dist_arr = np.full(n, -1, dtype=np.int32)
    cdef int32_t[::1] dist = dist_arr
    cdef int32_t[::1] queue = np.empty(n, dtype=np.int32)
    cdef int32_t u, v
    cdef int64_t k
    dist[target] = 0
    queue[0] = target
    with nogil:
        while head < tail:
            u = queue[head]
            head += 1
            if u != target and not forwards[u]:
                continue
            for k in range(adj_ptr[u], adj_ptr[u + 1]):
                v = adj_dst[k]
                if dist[v] < 0:
                    dist[v] = dist[u] + 1
                    queue[tail] = v
                    tail += 1
    return dist_arr


cdef inline uint64_t mix(uint64_t x) noexcept nogil:
    # splitmix64 finalizer: a well-spread, deterministic hash
    x ^= x >> 30
    x *= 0xbf58476d1ce4e5b9ULL
    x ^= x >> 27
    x *= 0x94d049bb133111ebULL
    x ^= x >> 31
    return x


def _path_arrays(const int32_t[::1] dist, const int32_t[::1] srcs):
    """(lengths, links) to fill with one shortest path per source."""
    cdef Py_ssize_t f
    cdef int64_t total = 0
    lengths = np.empty(srcs.shape[0], dtype=np.int64)
    cdef int64_t[::1] lens = lengths
    for f in range(srcs.shape[0]):
        lens[f] = dist[srcs[f]]
        total += lens[f]
    return lengths, np.empty(total, dtype=np.int32)


def ecmp_paths(const int64_t[::1] adj_ptr, const int32_t[::1] adj_dst, const int32_t[::1] adj_link,
               const signed char[::1] forwards, const int32_t[::1] dist, int32_t target, const int32_t[::1] srcs,
               const int64_t[::1] flow_ids, uint64_t seed, bint hashed):
    """One shortest path per source to ``target``.

    At every hop the next link is chosen among the equal-cost ones by a hash
    of (seed, src, dst, flow id, node) when ``hashed``, else the first (by
    neighbour id): deterministic shortest-path routing.  Returns (lengths,
    links) with the paths concatenated.
    """
    cdef Py_ssize_t m = srcs.shape[0], f
    cdef int64_t k, pos = 0
    cdef int32_t u, v, choice, count
    cdef uint64_t h
    lengths, links_arr = _path_arrays(dist, srcs)
    cdef int32_t[::1] links = links_arr
    with nogil:
        for f in range(m):
            u = srcs[f]
            h = mix(seed ^ mix(<uint64_t> srcs[f] * 0x9e3779b97f4a7c15ULL ^ <uint64_t> target)
                    ^ mix(<uint64_t> flow_ids[f] + 0x632be59bd9b4e019ULL))
            while u != target:
                count = 0
                for k in range(adj_ptr[u], adj_ptr[u + 1]):
                    v = adj_dst[k]
                    if dist[v] == dist[u] - 1 and (forwards[v] or v == target):
                        count += 1
                if count == 0:
                    with gil:
                        raise RuntimeError("ecmp_paths: distance table does not match the adjacency")
                choice = <int32_t> (mix(h ^ <uint64_t> u) % <uint64_t> count) if hashed else 0
                for k in range(adj_ptr[u], adj_ptr[u + 1]):
                    v = adj_dst[k]
                    if dist[v] == dist[u] - 1 and (forwards[v] or v == target):
                        if choice == 0:
                            links[pos] = adj_link[k]
                            pos += 1
                            u = v
                            break
                        choice -= 1
    return lengths, links_arr


def path_counts(const int64_t[::1] adj_ptr, const int32_t[::1] adj_dst, const signed char[::1] forwards,
                const int32_t[::1] dist, int32_t target):
    """How many shortest paths lead from every node to ``target`` through
    forwarding nodes (the paths :func:`ranked_paths` and spraying walk).
    Floats: on a torus they run into the hundreds of thousands per pair, on
    big ones past any integer type."""
    cdef Py_ssize_t n = dist.shape[0], i
    cdef int32_t u, v
    cdef int64_t k
    cdef double c
    counts_arr = np.zeros(n)
    cdef double[::1] counts = counts_arr
    cdef int64_t[::1] order = np.argsort(np.asarray(dist), kind="stable")   # nearer nodes first
    counts[target] = 1
    with nogil:
        for i in range(n):
            u = <int32_t> order[i]
            if dist[u] <= 0:   # the target, or unreachable
                continue
            c = 0
            for k in range(adj_ptr[u], adj_ptr[u + 1]):
                v = adj_dst[k]
                if dist[v] == dist[u] - 1 and (forwards[v] or v == target):
                    c += counts[v]
            counts[u] = c
    return counts_arr


def ranked_paths(const int64_t[::1] adj_ptr, const int32_t[::1] adj_dst, const int32_t[::1] adj_link,
                 const signed char[::1] forwards, const int32_t[::1] dist, int32_t target, const double[::1] counts,
                 const int32_t[::1] srcs, const double[::1] ranks):
    """Path number ``ranks[f]`` (from 0, in neighbour-id order) among the
    shortest paths from ``srcs[f]`` to ``target``, for every f, using
    :func:`path_counts`'s ``counts``.  Returns (lengths, links)."""
    cdef Py_ssize_t m = srcs.shape[0], f
    cdef int64_t k, pos = 0, last
    cdef int32_t u, v
    cdef double r
    lengths, links_arr = _path_arrays(dist, srcs)
    cdef int32_t[::1] links = links_arr
    with nogil:
        for f in range(m):
            u = srcs[f]
            r = ranks[f]
            while u != target:
                last = -1
                for k in range(adj_ptr[u], adj_ptr[u + 1]):
                    v = adj_dst[k]
                    if dist[v] == dist[u] - 1 and (forwards[v] or v == target):
                        last = k
                        if r < counts[v]:
                            break
                        r -= counts[v]
                if last < 0:
                    with gil:
                        raise RuntimeError("ranked_paths: distance table does not match the adjacency")
                # (a rank past the last path, possible only through rounding
                # of astronomically many paths, takes the last one)
                links[pos] = adj_link[last]
                pos += 1
                u = adj_dst[last]
    return lengths, links_arr
