"""The fabric command: tables, JSON, files, one-line errors."""

import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner

import topologies as T
from fabric.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_help_everywhere():
    for args in ([], ["topo"], ["topo", "info"], ["topo", "build"]):
        r = run(*args, "--help")
        assert r.exit_code == 0 and "Usage:" in r.output


def test_topo_info_table_and_json():
    r = run("topo", "info", "fat-tree:k=8")
    assert r.exit_code == 0, r.output
    assert "accelerator" in r.output and "3.2 TB/s" in r.output
    r = run("topo", "info", "torus:dims=4x4x4,bw=400Gbps", "--json")
    s = json.loads(r.output)
    assert s["nodes_by_kind"] == {"accelerator": 64}
    assert s["diameter"] == 6 and s["params"]["bandwidth"] == 50e9


def test_topo_info_dragonfly_pods_units():
    r = run("topo", "info", "dragonfly:p=2,a=4,h=2,pod=2,pod_bw=900GB/s,global_bw=200Gbps", "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["params"]["pod"]["bandwidth"] == 900e9
    assert s["params"]["global_bandwidth"] == 25e9
    assert s["switches_by_tier"]["scaleup"] == 36


@pytest.mark.parametrize("ext", ["json", "graphml"])
def test_topo_build_then_info(tmp_path, ext):
    out = tmp_path / f"ft.{ext}"
    r = run("topo", "build", "fat-tree:k=4,oversub=2:1", "-o", str(out))
    assert r.exit_code == 0, r.output
    G = T.load(out)
    assert len(T.accelerators(G)) == 32
    r = run("topo", "info", str(out), "--json")
    assert json.loads(r.output)["params"]["oversubscription"] == 2.0


@pytest.mark.parametrize("spec, words", [
    ("fat-tree:k=7", "k=7"),
    ("fat-tree:k=4,pod=3", "pod.size=3"),
    ("fat-tree:k=4,bw=-1Gbps", "bandwidth"),
    ("fat-tree:k=4,bw=fast", "bandwidth"),
    ("torus:dims=4x0x4", "dims[1]=0"),
    ("dragonfly:p=2,a=4,h=0", "h=0"),
    ("hypercube:n=4", "unknown family"),
    ("fat-tree:k=4,colour=red", "unknown key 'colour'"),
    ("missing.json", "no such file"),
])
def test_bad_specs_one_line_error(spec, words):
    r = run("topo", "info", spec)
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0], r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


@pytest.mark.skipif(shutil.which("fabric") is None, reason="fabric console script not on PATH")
def test_console_script_installed():
    p = subprocess.run(["fabric", "topo", "info", "fat-tree:k=3"], capture_output=True, text=True)
    assert p.returncode == 1 and p.stderr.strip() == "Error: k=3: must be even"
    assert "Traceback" not in p.stderr
