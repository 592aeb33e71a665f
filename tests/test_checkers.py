"""The invariant checkers catch corrupted results (and pass honest ones)."""

import dataclasses

import pytest

from fabric import Flow, simulate_links
from fabric.testing import assert_conserved, assert_feasible, assert_max_min_fair

GB = 1e9


@pytest.fixture
def result():
    # parking lot on 2 links plus a late flow: several rate changes
    flows = [Flow(size=GB, path=[0, 1]), Flow(size=GB / 2, path=[0]), Flow(size=GB, path=[1], start=0.25)]
    return simulate_links([GB, GB], [0, 0], flows, record_links=True, record_rates=True)


def test_honest_result_passes(result):
    assert_feasible(result)
    assert_max_min_fair(result)
    assert_conserved(result)


def test_feasible_catches_overload(result):
    t, ids, v = result.link_log
    bad = dataclasses.replace(result, link_log=(t, ids, v * 1.5))
    with pytest.raises(AssertionError, match=r"link \d+ carries .* > capacity .* at t="):
        assert_feasible(bad)


def test_max_min_catches_a_flow_below_its_share(result):
    t, ids, v = result.rate_log
    v = v.copy()
    v[0] *= 0.5   # subflow 0 at half its fair share at t=0: nothing bottlenecks it
    bad = dataclasses.replace(result, rate_log=(t, ids, v))
    with pytest.raises(AssertionError, match=r"flow 0 \(subflow 0\) at t=0 .* no bottleneck"):
        assert_max_min_fair(bad)


def test_conserved_catches_a_lost_byte():
    # 1000 B over 1000 B/s links; the recorded load loses 1 B/s for 1 s
    r = simulate_links([1e3, 1e3], [0, 0], [Flow(size=1e3, path=[0, 1])], record_links=True)
    assert_conserved(r)
    t, ids, v = r.link_log
    v = v.copy()
    v[0] -= 1.0
    bad = dataclasses.replace(r, link_log=(t, ids, v))
    with pytest.raises(AssertionError, match=r"link \d+ carried 999 bytes, flows crossing it sent 1000"):
        assert_conserved(bad)


def test_conserved_catches_an_early_finish(result):
    fin = result.sub_finish.copy()
    fin[1] = 0.1   # half a GB cannot cross a 1 GB/s link in 0.1 s
    bad = dataclasses.replace(result, sub_finish=fin)
    with pytest.raises(AssertionError, match=r"flow 1 \(subflow 1\) finished at t=0.1"):
        assert_conserved(bad)
