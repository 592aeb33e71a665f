"""The ``fabric`` command: thin click commands that parse, call the library, print."""

import json
import sys

import click
from tabulate import tabulate

import topologies

from .errors import FabricError
from .spec import load_topology
from .units import format_bandwidth, format_time

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}


class _Group(click.Group):
    """Turns library errors into one-line messages and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (FabricError, topologies.TopologyError) as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc}") from None


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(package_name="fabric")
def main():
    """Flow-level emulator of AI-cluster network fabrics.

    Topologies are given as a spec string (fat-tree:k=8, torus:dims=4x4x4,
    dragonfly:p=4,a=8,h=4, with optional keys such as bw=400Gbps, pod=8,
    pod_bw=900GB/s) or as a .json/.graphml file written by 'fabric topo build'.
    """


@main.group(cls=_Group, context_settings=CONTEXT)
def topo():
    """Build and inspect topologies."""


TOPOLOGY = click.argument("topology", metavar="SPEC|FILE")


@topo.command(context_settings=CONTEXT)
@TOPOLOGY
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="Where to write the graph: .json (node-link) or .graphml.")
def build(topology, output):
    """Build a topology and save it to a file."""
    G = load_topology(topology)
    topologies.save(G, output)
    click.echo(f"wrote {output}: {G.number_of_nodes()} nodes, {G.number_of_edges()} links")


def _param_text(params):
    """Parameters in human units, per-layer values only where they differ."""
    out = []
    for key, value in params.items():
        if value is None or value is False:
            continue
        if key.endswith("bandwidth") or key.endswith("latency"):
            base = key.rsplit("_", 1)[-1]
            if key != base and value == params.get(base):
                continue
            value = format_bandwidth(value) if base == "bandwidth" else format_time(value)
        elif isinstance(value, dict):  # a Pod
            value = f"{value['size']} @ {format_bandwidth(value['bandwidth'])}"
        elif isinstance(value, (tuple, list)):
            value = "x".join(map(str, value))
        out.append(f"{key}={value}")
    return ", ".join(out)


def _summary_rows(s):
    rows = [("family", s["family"]), ("parameters", _param_text(s["params"]))]
    rows.append(("nodes", s["nodes"]))
    for kind, n in s["nodes_by_kind"].items():
        rows.append((f"  {kind}", n))
    for tier, n in s["switches_by_tier"].items():
        rows.append((f"  switch tier {tier}", f"{n} (radix {s['switch_radix'][tier]})"))
    rows.append(("links", s["links"]))
    for layer, n in s["links_by_layer"].items():
        rows.append((f"  {layer}", n))
    rows.append(("pods", s["pods"]))
    rows.append(("connected", "yes" if s["connected"] else "NO"))
    rows.append(("diameter (hops)", f"{s['diameter']} ({s['diameter_source']})"))
    bis = s["bisection_bandwidth"]
    rows.append(("bisection bandwidth", "n/a" if bis is None else format_bandwidth(bis) + " per direction"))
    return rows


@topo.command(context_settings=CONTEXT)
@TOPOLOGY
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(topology, as_json):
    """Summarize a topology: counts by kind and tier, radix, diameter, bisection."""
    s = topologies.summary(load_topology(topology))
    if as_json:
        click.echo(json.dumps(s, indent=2))
    else:
        click.echo(tabulate(_summary_rows(s), headers=("topology", ""), tablefmt="simple", disable_numparse=True))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
