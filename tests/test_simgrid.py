"""Cross-check against SimGrid's max-min fluid model (CM02, corrections off).

SimGrid takes 5-15 minutes to build from source, so it is not in the test
extra; this module skips unless ``python -c "import simgrid"`` works (with
LD_LIBRARY_PATH pointing at libsimgrid.so).  See benchmarks/peers.py.
CM02 weights flows by 1/route latency, so every route here has the same
latency (one hop each way on a star, or none at all).
"""

import os
import site
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fabric import FlowArrays, simulate_links

from _examples import examples

PEERS = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "peers.py")


def _env():
    env = dict(os.environ)
    libs = [p for p in site.getsitepackages() if os.path.exists(os.path.join(p, "libsimgrid.so"))]
    env["LD_LIBRARY_PATH"] = ":".join(libs + [env.get("LD_LIBRARY_PATH", "")])
    return env


def _simgrid_importable():
    p = subprocess.run([sys.executable, "-c", "import simgrid"], capture_output=True, env=_env())
    return p.returncode == 0


pytestmark = pytest.mark.skipif(
    not _simgrid_importable(),
    reason="simgrid is not installed (no wheel; build it with libboost-dev and pybind11<3, see benchmarks/peers.py)",
)


def simgrid_finish(tmp_path, cap, lat, fa):
    src, out = tmp_path / "in.npz", tmp_path / "out.npy"
    np.savez(src, capacity=cap, latency=lat, size=fa.size, dep_ptr=fa.dep_ptr, dep_idx=fa.dep_idx,
             path_ptr=fa.path_ptr, path_links=fa.path_links)
    subprocess.run([sys.executable, PEERS, str(src), str(out)], check=True, env=_env(), capture_output=True)
    return np.load(out)


@st.composite
def star_scenarios(draw):
    """Flows between ranks of a star (every route: up link + down link), with DAGs."""
    n = draw(st.integers(2, 6))
    cap = np.array(draw(st.lists(st.sampled_from([1e9, 2e9, 5e8]), min_size=2 * n, max_size=2 * n)))
    lat = np.full(2 * n, draw(st.sampled_from([0.0, 1e-6, 1e-3])))
    F = draw(st.integers(1, 12))
    links, sizes, deps, dep_counts = [], [], [], []
    for f in range(F):
        i = draw(st.integers(0, n - 1))
        j = draw(st.integers(0, n - 1).filter(lambda x: x != i))
        links += [2 * i, 2 * j + 1]
        sizes.append(float(draw(st.integers(1, 4 * 10**9))))
        d = draw(st.lists(st.integers(0, f - 1), max_size=2, unique=True)) if f else []
        deps += d
        dep_counts.append(len(d))
    dep_ptr = np.concatenate([[0], np.cumsum(dep_counts)])
    fa = FlowArrays.single_path(sizes, np.arange(0, 2 * F + 1, 2), links, dep_ptr=dep_ptr, dep_idx=deps)
    return cap, lat, fa


@settings(max_examples=examples(25), deadline=None)
@given(star_scenarios())
def test_finish_times_agree_with_simgrid(tmp_path_factory, scn):
    cap, lat, fa = scn
    ours = simulate_links(cap, lat, fa).finish
    theirs = simgrid_finish(tmp_path_factory.mktemp("sg"), cap, lat, fa)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_all_to_all_agrees_with_simgrid(tmp_path):
    n = 12
    src, dst = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    off = src != dst
    src, dst = src[off], dst[off]
    links = np.empty(2 * len(src), np.int64)
    links[0::2], links[1::2] = 2 * src, 2 * dst + 1
    sizes = np.random.default_rng(3).integers(10**6, 10**8, len(src)).astype(float)
    fa = FlowArrays.single_path(sizes, np.arange(0, 2 * len(src) + 1, 2), links)
    cap, lat = np.full(2 * n, 50e9), np.full(2 * n, 5e-7)
    np.testing.assert_allclose(simulate_links(cap, lat, fa).finish, simgrid_finish(tmp_path, cap, lat, fa), rtol=1e-6)
