"""Human units at the edge and topology spec strings."""

import math

import pytest
from hypothesis import given, strategies as st

from fabric import FabricError
from fabric.spec import parse_spec, topology_from_spec
from fabric.units import format_bandwidth, parse_bandwidth, parse_size, parse_time


@pytest.mark.parametrize("text, value", [
    ("400Gbps", 50e9), ("400Gb/s", 50e9), ("900GB/s", 900e9), ("50GBps", 50e9),
    ("1.6Tbps", 200e9), ("100Mbps", 12.5e6), ("1e9", 1e9), (2e9, 2e9), ("1GiB/s", 2**30),
])
def test_bandwidth(text, value):
    assert parse_bandwidth(text) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("text, value", [
    ("1GiB", 2**30), ("64MiB", 2**26), ("1GB", 1e9), ("8G", 8 * 2**30), ("8", 8), ("1.5kB", 1500), ("0", 0),
])
def test_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text, value", [("2us", 2e-6), ("1.5ms", 1.5e-3), ("500ns", 5e-7), ("3s", 3), ("0", 0)])
def test_time(text, value):
    assert parse_time(text) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("call", [
    lambda: parse_bandwidth("0Gbps"), lambda: parse_bandwidth("-1Gbps"), lambda: parse_bandwidth("fast"),
    lambda: parse_bandwidth("10 furlongs"), lambda: parse_size("-1GiB"), lambda: parse_size("1 parsec"),
    lambda: parse_time("nan"), lambda: parse_time("1 week"), lambda: parse_size(float("inf")),
])
def test_bad_units_raise(call):
    with pytest.raises(FabricError):
        call()


def test_an_overflowing_size_is_called_not_finite():
    with pytest.raises(FabricError, match=r"size='1e400B': must be finite and >= 0"):
        parse_size("1e400B")


@given(st.floats(1e3, 1e15))
def test_bandwidth_format_round_trip(bps):
    text = format_bandwidth(bps).replace(" ", "")
    assert math.isclose(parse_bandwidth(text), bps, rel_tol=1e-3)


def test_spec_keys_and_aliases():
    fam, kw = parse_spec("fat-tree:k=8,oversub=3:1,rail=yes,host_bw=200Gbps,lat=1us,pod=8")
    assert fam == "fat_tree"
    assert kw == {"k": 8, "oversubscription": 3.0, "rail_optimized": True, "host_bandwidth": 25e9,
                  "latency": 1e-6, "pod": 8}
    G = topology_from_spec("torus:dims=2x3,pod=3,pod_bw=900GB/s")
    assert G.graph["params"]["pod"] == {"size": 3, "bandwidth": 900e9, "latency": 2.5e-7}


@pytest.mark.parametrize("spec", ["torus", "torus:dims=axb", "fat-tree:k", "fat-tree:k=eight",
                                  "torus:dims=4,pod_bw=1GB/s", "fat-tree:k=4,rail=maybe"])
def test_bad_specs(spec):
    with pytest.raises((FabricError, ValueError)):
        topology_from_spec(spec)
