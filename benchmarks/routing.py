"""Routing speed: compile a fat-tree and route a million random flows.

    python benchmarks/routing.py [--k 32] [--flows 1000000]

Prints the compile time, the routing time (ECMP hashing, one BFS per
destination in compiled code) and, beside it, NetworkX's own shortest-path
routine on a sample of the same pairs, scaled per flow, as a ratio.  Then
the dragonfly policies (minimal, Valiant, UGAL: vectorised tables, UGAL's
sequential choice a plain loop) on the same number of flows of a
p=4, a=8, h=4 dragonfly.
"""

import argparse
import time

import networkx as nx
import numpy as np

import topologies
from fabric import Network


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--sample", type=int, default=2000, help="pairs routed by NetworkX for the comparison")
    args = ap.parse_args()

    t = time.perf_counter()
    G = topologies.fat_tree(args.k)
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    net = Network(G, routing="ecmp", seed=1)
    t_compile = time.perf_counter() - t
    rng = np.random.default_rng(0)
    src = rng.choice(net.accelerators, args.flows)
    dst = rng.choice(net.accelerators, args.flows)
    t = time.perf_counter()
    _, _, path_ptr, _ = net.route(src, dst)
    t_route = time.perf_counter() - t

    # the peer: NetworkX shortest_path per flow (what a naive router does)
    t = time.perf_counter()
    for s, d in zip(src[: args.sample], dst[: args.sample]):
        nx.shortest_path(G, net.nodes[s], net.nodes[d])
    t_nx = (time.perf_counter() - t) / args.sample * args.flows

    n_acc = len(net.accelerators)
    print(f"fat-tree k={args.k}: {n_acc} accelerators, {net.n_nodes} nodes, {net.n_links} directed links")
    print(f"build graph {t_build:.2f} s, compile {t_compile:.2f} s")
    print(f"{'router':<28}{'flows':>10}{'seconds':>12}{'flows/s':>14}{'ratio':>8}")
    print(f"{'fabric ECMP (BFS per dst)':<28}{args.flows:>10}{t_route:>12.2f}{args.flows / t_route:>14.3g}{1:>8.1f}")
    print(f"{'networkx.shortest_path':<28}{args.flows:>10}{t_nx:>12.1f}{args.flows / t_nx:>14.3g}"
          f"{t_nx / t_route:>8.1f}  (extrapolated from {args.sample} pairs)")
    print(f"mean path length {np.diff(path_ptr).mean():.2f} hops")

    df = Network(topologies.dragonfly(4, 8, 4), seed=1)
    src = rng.choice(df.accelerators, args.flows)
    dst = rng.choice(df.accelerators, args.flows)
    keep = src != dst
    print(f"dragonfly p=4 a=8 h=4: {len(df.accelerators)} accelerators, {keep.sum()} flows")
    for policy in ("minimal", "valiant", "ugal"):
        t = time.perf_counter()
        df.route(src[keep], dst[keep], routing=policy)
        t_route = time.perf_counter() - t
        print(f"{'fabric ' + policy:<28}{keep.sum():>10}{t_route:>12.2f}{keep.sum() / t_route:>14.3g}")


if __name__ == "__main__":
    main()
