"""Traffic: point-to-point flows between nodes, as columns, before routing.

Every workload (collectives, data pipelines, background traffic) produces a
:class:`Traffic`; several are merged with :meth:`Traffic.concat` into one
simulation, so a data pipeline overlaps the all-reduce it feeds.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..engine import _ptr

__all__ = ["Traffic"]


@dataclass
class Traffic:
    """F flows between nodes, not yet routed.

    * ``src``, ``dst``: node ids (int32) of a :class:`fabric.Network`;
    * ``size`` bytes, ``start`` and ``delay`` seconds (float64, length F);
    * dependencies of flow f: ``dep_idx[dep_ptr[f] .. dep_ptr[f+1]-1]``
      (indices into this Traffic);
    * ``tag``: one small int per flow naming its origin in ``tags``
      (e.g. ``tags[tag[f]] == "all_reduce"``), for metrics and reports;
    * ``flow_id`` (optional, int64): the label routing hashes on.  Flows
      with the same (src, dst, flow_id) are one connection used again (the
      same transfer in every training iteration) and take one path.

    Examples
    --------
    >>> a = Traffic.from_columns([0], [1], [1e6], tag="data")
    >>> b = Traffic.from_columns([1, 1], [2, 3], [5.0, 5.0], deps=[[], [0]], tag="grad")
    >>> t = Traffic.concat([a, b])
    >>> t.n_flows, t.dep_idx.tolist(), [t.tags[i] for i in t.tag]
    (3, [1], ['data', 'grad', 'grad'])
    """

    src: np.ndarray
    dst: np.ndarray
    size: np.ndarray
    start: np.ndarray
    delay: np.ndarray
    dep_ptr: np.ndarray
    dep_idx: np.ndarray
    tag: np.ndarray
    tags: tuple = ()
    flow_id: Optional[np.ndarray] = None

    @property
    def n_flows(self):
        return len(self.size)

    @classmethod
    def from_columns(cls, src, dst, size, *, start=0.0, delay=0.0, deps=None, dep_ptr=None, dep_idx=None, tag="flows"):
        """Build from columns; ``deps`` is a list of lists, or give CSR ``dep_ptr``/``dep_idx``."""
        src = np.asarray(src, np.int32)
        n = len(src)
        if deps is not None:
            dep_ptr, dep_idx = _ptr([len(d) for d in deps]), np.array([i for d in deps for i in d], np.int64)
        return cls(
            src=src, dst=np.asarray(dst, np.int32), size=np.asarray(size, np.float64),
            start=np.broadcast_to(np.asarray(start, np.float64), (n,)).copy(),
            delay=np.broadcast_to(np.asarray(delay, np.float64), (n,)).copy(),
            dep_ptr=np.zeros(n + 1, np.int64) if dep_ptr is None else np.asarray(dep_ptr, np.int64),
            dep_idx=np.zeros(0, np.int64) if dep_idx is None else np.asarray(dep_idx, np.int64),
            tag=np.zeros(n, np.int16), tags=(tag,),
        )

    @classmethod
    def concat(cls, parts):
        """One Traffic holding all parts in order (dependencies re-indexed, tags merged)."""
        parts = list(parts)
        if not parts:
            return cls.from_columns([], [], [])
        tags, tag_cols, offset, dep_idx, dep_counts, fids = [], [], 0, [], [], []
        labelled = any(p.flow_id is not None for p in parts)
        for p in parts:
            if labelled:   # unlabelled parts get labels no labelled part uses
                fids.append(p.flow_id if p.flow_id is not None else np.arange(p.n_flows) + offset + (1 << 48))
            tags += [t for t in p.tags if t not in tags]
            remap = np.array([tags.index(t) for t in p.tags], np.int16)
            tag_cols.append(remap[p.tag] if len(p.tag) else p.tag)
            dep_idx.append(p.dep_idx + offset)
            dep_counts.append(np.diff(p.dep_ptr))
            offset += p.n_flows
        cat = np.concatenate
        return cls(
            src=cat([p.src for p in parts]), dst=cat([p.dst for p in parts]), size=cat([p.size for p in parts]),
            start=cat([p.start for p in parts]), delay=cat([p.delay for p in parts]),
            dep_ptr=_ptr(cat(dep_counts)), dep_idx=cat(dep_idx).astype(np.int64, copy=False),
            tag=cat(tag_cols).astype(np.int16, copy=False), tags=tuple(tags),
            flow_id=cat(fids).astype(np.int64, copy=False) if labelled else None,
        )

    def flow_arrays(self, net, flow_ids=None):
        """Route over ``net``: a :class:`fabric.FlowArrays` ready for the engine."""
        return net.flow_arrays(self.src, self.dst, self.size, start=self.start, delay=self.delay,
                               dep_ptr=self.dep_ptr, dep_idx=self.dep_idx,
                               flow_ids=self.flow_id if flow_ids is None else flow_ids)

    def flows_of(self, tag):
        """Indices of the flows carrying ``tag``."""
        if tag not in self.tags:
            return np.zeros(0, np.int64)
        return np.flatnonzero(self.tag == self.tags.index(tag))
