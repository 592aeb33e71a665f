"""Storage, data loading and checkpoints: hand-computed times, and overlap with collectives."""

import networkx as nx
import numpy as np
import pytest

import fabric
import topologies
from fabric import FabricError
from fabric.workloads import Traffic, checkpoint, data_loading

B = 1e9


def storage_fabric(n_storage=2, storage_bw=B, *, hosts=0, host_bw=5 * B):
    G = topologies.fat_tree(4, bandwidth=10 * B, latency=0.0)
    topologies.attach_storage(G, n_storage, bandwidth=storage_bw, latency=0.0)
    if hosts:
        topologies.attach_storage(G, hosts, kind="host", bandwidth=host_bw, latency=0.0, at=["leaf0.0", "leaf1.0"])
    return fabric.Network(G)


def test_attach_storage_defaults_round_trip_and_rebuild(tmp_path):
    G = topologies.attach_storage(topologies.fat_tree(4), 3, bandwidth=25e9)
    assert [next(iter(G[f"storage{i}"])) for i in range(3)] == ["core0", "core1", "core2"]
    assert topologies.summary(G)["nodes_by_kind"]["storage"] == 3
    assert nx.utils.graphs_equal(topologies.rebuild(G), G)
    for ext in ("json", "graphml"):
        topologies.save(G, tmp_path / f"g.{ext}")
        assert nx.utils.graphs_equal(topologies.load(tmp_path / f"g.{ext}"), G)
    T = topologies.attach_storage(topologies.torus((4, 4)), 2)   # direct network: on accelerators
    assert [next(iter(T[s])) for s in ("storage0", "storage1")] == ["acc0", "acc8"]


@pytest.mark.parametrize("kw,words", [
    ({"count": 0}, "count=0"),
    ({"at": ["nowhere"]}, "'nowhere' is not a node"),
    ({"kind": "tape"}, "kind='tape'"),
    ({"bandwidth": -1}, "bandwidth=-1"),
])
def test_attach_storage_errors(kw, words):
    args = {"count": 1}
    args.update(kw)
    with pytest.raises(topologies.TopologyError, match=words):
        topologies.attach_storage(topologies.fat_tree(4), args.pop("count"), **args)


def test_sharded_reads_are_limited_by_storage_links():
    # 8 readers x 0.8 GB over 2 storage nodes at 1 GB/s: each node serves 3.2 GB
    net = storage_fabric(2)
    ranks = [f"acc{i}" for i in range(8)]
    t = data_loading(net, ranks, sample_bytes=8e6, samples=100)
    r = fabric.simulate(net, t)
    assert t.n_flows == 16
    assert r.makespan == pytest.approx(8 * 0.8e9 / (2 * B), rel=1e-12)


def test_steps_back_to_back_and_on_a_clock():
    net = storage_fabric(1)
    t = data_loading(net, ["acc0"], sample_bytes=1e8, samples=5, steps=3)          # 0.5 s per batch
    assert fabric.simulate(net, t).finish.tolist() == pytest.approx([0.5, 1.0, 1.5], rel=1e-12)
    t = data_loading(net, ["acc0"], sample_bytes=1e8, samples=5, steps=3, interval=2.0, start=1.0)
    assert fabric.simulate(net, t).finish.tolist() == pytest.approx([1.5, 3.5, 5.5], rel=1e-12)


def test_preprocessing_hosts_add_their_time_and_hop():
    # raw 1 GB per rank from 2 storage nodes (0.5 GB each, two readers: 1 s), 0.5 s processing,
    # then 2 GB (output_ratio 2) from the host at 5 GB/s: 0.4 s
    net = storage_fabric(2, hosts=2)
    t = data_loading(net, ["acc0", "acc1"], sample_bytes=1e8, samples=10, preprocess=["host0", "host1"],
                     preprocess_time=0.5, output_ratio=2.0)
    r = fabric.simulate(net, t)
    delivered = np.isin(t.src, [net.node_id["host0"], net.node_id["host1"]])
    assert r.finish[delivered].tolist() == pytest.approx([1.9, 1.9], rel=1e-12)


def test_checkpoint_writes_contend_at_storage():
    net = storage_fabric(2)
    r = fabric.simulate(net, checkpoint(net, size=1e8, times=[0.0, 5.0]))   # 16 x 0.1 GB into 2 GB/s
    assert r.makespan == pytest.approx(5.0 + 0.8, rel=1e-12)
    periodic = checkpoint(net, size=1e8, every=5.0, count=2)                  # at 5 s and 10 s
    assert fabric.simulate(net, periodic).makespan == pytest.approx(10.8, rel=1e-12)


def test_data_loading_slows_an_all_reduce_that_shares_its_links():
    # one storage node behind acc0's leaf: reads into acc0/acc1 share their NIC downlinks with the ring
    G = topologies.fat_tree(4, bandwidth=B, latency=0.0)
    topologies.attach_storage(G, 1, bandwidth=100 * B, latency=0.0, at=["leaf0.0"])
    net = fabric.Network(G)
    ranks = ["acc0", "acc1", "acc2", "acc3"]
    alone = fabric.collective(net, "all_reduce", 4e8, ranks=ranks).time
    grad = fabric.workloads.schedule("all_reduce", 4, 4e8).traffic(net._ids(ranks, "ranks"), tag="grad")
    data = data_loading(net, ["acc0", "acc1"], sample_bytes=1e8, samples=10)
    mixed = Traffic.concat([grad, data])
    r = fabric.simulate(net, mixed)
    shared = r.finish[mixed.flows_of("grad")].max()
    assert alone == pytest.approx(0.6, rel=1e-12)
    assert shared > alone * 1.2
    assert mixed.tags == ("grad", "data")


@pytest.mark.parametrize("build, words", [
    (lambda net: data_loading(net, sample_bytes=1e6, samples=1, steps=10**9), "steps=1000000000: 32,000,000,000 flows"),
    (lambda net: checkpoint(net, size=1e6, every=1.0, count=10**9), "count=1000000000: 32,000,000,000 flows"),
    (lambda net: fabric.workloads.background(net, "permutation", size=1e3, load=0.5, duration=1.0),
     "load=0.5, duration=1.0, size=1000.0: 80,000,000 flows"),
])
def test_more_flows_than_the_memory_holds_are_refused_before_building(flow_budget_1000, build, words):
    with pytest.raises(FabricError, match=words + r" would need about .* of memory; 585.9 KiB is available"):
        build(storage_fabric())


def test_pipeline_errors_are_named():
    net = storage_fabric(1)
    plain = fabric.Network(topologies.fat_tree(4))
    with pytest.raises(FabricError, match="no storage nodes"):
        data_loading(plain, sample_bytes=1, samples=1)
    with pytest.raises(FabricError, match="sample_bytes=-1"):
        data_loading(net, sample_bytes=-1, samples=1)
    with pytest.raises(FabricError, match="'acc0' is not a storage node"):
        checkpoint(net, size=1, storage=["acc0"])
    with pytest.raises(FabricError, match="'storage0' is not a host node"):
        data_loading(net, sample_bytes=1, samples=1, preprocess=["storage0"])
    with pytest.raises(FabricError, match="every=0"):
        checkpoint(net, size=1, every=0)
    with pytest.raises(FabricError, match="steps=0"):
        data_loading(net, sample_bytes=1, samples=1, steps=0)
