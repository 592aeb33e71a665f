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
    for args in ([], ["topo"], ["topo", "info"], ["topo", "build"], ["collective"], ["nccl"]):
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


def test_topo_info_without_a_diameter(tmp_path):
    G = T.fat_tree(4)
    G.remove_edges_from(list(G.edges("acc0")))
    T.save(G, tmp_path / "cut.json")
    r = run("topo", "info", str(tmp_path / "cut.json"))
    assert r.exit_code == 0, r.output
    assert "diameter (hops)      n/a (disconnected)" in r.output and "None" not in r.output
    r = run("topo", "info", "dragonfly:p=4,a=8,h=4,groups=10")   # 320 accelerators, no closed form
    assert "diameter (hops)      n/a (too large to measure)" in r.output


@pytest.mark.parametrize("ext", ["json", "graphml"])
def test_topo_build_then_info(tmp_path, ext):
    out = tmp_path / f"ft.{ext}"
    r = run("topo", "build", "fat-tree:k=4,oversub=2:1", "-o", str(out))
    assert r.exit_code == 0, r.output
    G = T.load(out)
    assert len(T.accelerators(G)) == 32
    r = run("topo", "info", str(out), "--json")
    assert json.loads(r.output)["params"]["oversubscription"] == 2.0


def test_an_output_folder_that_does_not_exist_is_named(tmp_path):
    out = tmp_path / "missing" / "ft.json"
    r = run("topo", "build", "fat-tree:k=4", "-o", str(out))
    assert r.exit_code == 1
    assert r.output.strip() == f"Error: {out}: No such file or directory"


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


def test_collective_table_and_json():
    # 16 ranks, 1 GB/s, zero latency: ring all-reduce of 16 MB is 2*15 steps of 1 ms
    spec = "fat-tree:k=4,bw=8Gbps,lat=0"
    r = run("collective", "-t", spec, "--op", "allreduce", "-s", "16MB")
    assert r.exit_code == 0, r.output
    assert "30 ms" in r.output and "all_reduce (ring" in r.output
    r = run("collective", "-t", spec, "--op", "all_reduce", "-s", "16MB", "--json")
    row = json.loads(r.output)[0]
    assert row["time_s"] == pytest.approx(0.03) and row["busbw_Bps"] == pytest.approx(1e9)


def test_nccl_table_sizes_and_csv(tmp_path):
    spec = "fat-tree:k=4,bw=8Gbps,lat=0"
    r = run("nccl", "all_reduce", "-b", "1M", "-e", "16M", "-f", "4", "-t", spec)
    assert r.exit_code == 0, r.output
    rows = [line.split() for line in r.output.splitlines() if not line.startswith("#")]
    assert [int(x[0]) for x in rows] == [2**20, 2**22, 2**24]
    assert [x[2] for x in rows] == ["float"] * 3 and rows[0][1] == str(2**18)
    assert float(rows[-1][-1]) == pytest.approx(1.0)          # busbw = link speed, GB/s
    assert "Avg bus bandwidth" in r.output
    out = tmp_path / "sweep.csv"
    r = run("nccl", "alltoall", "-b", "1M", "-e", "2M", "-t", spec, "-o", str(out))
    assert r.exit_code == 0, r.output
    assert out.read_text().splitlines()[0].startswith("size,count,type")
    r = run("nccl", "broadcast", "-b", "1M", "-e", "3M", "-i", "1M", "-t", spec, "--root", "3", "--json")
    assert [x["size"] for x in json.loads(r.output)] == [2**20, 2**21, 3 * 2**20]
    assert json.loads(r.output)[0]["root"] == 3


@pytest.mark.parametrize("args,words", [
    (["collective", "-t", "fat-tree:k=4", "-s", "1XB"], "size='1XB'"),
    (["collective", "-t", "fat-tree:k=4", "-a", "multi_ring"], "needs a torus"),
    (["collective", "-t", "fat-tree:k=4", "--ranks", "99"], "has 16 accelerators"),
    (["collective", "-t", "fat-tree:k=4", "--op", "broadcast", "--root", "20"], "root=20"),
    (["nccl", "bogus", "-t", "fat-tree:k=4"], "'bogus'"),
    (["nccl", "all_reduce", "-t", "fat-tree:k=4", "-b", "8M", "-e", "1M"], "larger than maxbytes"),
    (["nccl", "all_reduce", "-t", "fat-tree:k=4", "-b", "0", "-e", "1M"], "minbytes=0: multiplying 0"),   # once a hang
    (["nccl", "all_reduce", "-t", "fat-tree:k=4", "-b", "1M", "-e", "2M", "-i", "0"], "stepbytes=0: must be > 0"),
    (["nccl", "all_reduce", "-t", "fat-tree:k=4", "-b", "1", "-e", "1G", "-i", "1"],
     "stepbytes=1: 1,073,741,824 sizes from 1 to 1.07374e+09; at most 10,000"),
    (["nccl", "all_gather", "-t", "fat-tree:k=4", "-a", "tree"], "all_gather supports"),
])
def test_collective_errors_are_one_line(args, words):
    r = run(*args)
    assert r.exit_code != 0
    assert words in r.output and "Traceback" not in r.output


def test_max_paths_caps_spraying_from_the_command_line():
    def run_a2a(*extra):
        r = run("collective", "-t", "torus:dims=6x6", "--routing", "spray", "--op", "all_to_all", "-s", "64MiB",
                "--json", *extra)
        assert r.exit_code == 0, r.output
        return json.loads(r.output)[0]
    one, many = run_a2a("--max-paths", "1"), run_a2a()
    # one path per flow: as many subflows as flows (a start and a finish each); more paths finish sooner
    assert one["events"] == 3 * one["flows"] < many["events"] and many["time_s"] < one["time_s"]


def test_nccl_plot_draws_busbw_against_size(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    plot = tmp_path / "ar.png"
    r = run("nccl", "all_reduce", "-b", "1K", "-e", "1M", "-f", "4", "-t", "fat-tree:k=4", "--json", "--plot", str(plot))
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)) == 6                    # the machine output is untouched
    pixels = matplotlib.image.imread(str(plot))[..., :3]
    assert (pixels.min(axis=2) < 0.9).mean() > 0.02          # not blank
    r = run("nccl", "all_reduce", "-t", "fat-tree:k=4", "--plot", str(tmp_path / "ar.gif"))
    assert r.exit_code == 2 and "--plot" in r.output and ".png, .svg or .pdf" in r.output
    assert not (tmp_path / "ar.gif").exists()


def test_nccl_zero_bytes_alone_is_one_size():
    r = run("nccl", "all_reduce", "-t", "fat-tree:k=4", "-b", "0", "-e", "0", "--json")   # once a hang
    assert r.exit_code == 0 and [x["size"] for x in json.loads(r.output)] == [0]


def _strict_json(text):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_one_rank_has_no_bandwidth_and_strict_json():
    # one rank sends nothing and takes no time: no algbw (once 'inf PB/s' and
    # 'Infinity', which strict JSON parsers reject)
    r = run("collective", "-t", "fat-tree:k=4", "--ranks", "1", "--op", "broadcast")
    assert r.exit_code == 0, r.output
    assert [line.split()[1:] for line in r.output.splitlines() if line.split()[0] in ("algbw", "busbw")] == [["-"]] * 2
    row = _strict_json(run("collective", "-t", "fat-tree:k=4", "--ranks", "1", "--json").output)[0]
    assert row["time_s"] == 0 and row["flows"] == 0 and row["algbw_Bps"] is None and row["busbw_Bps"] == 0
    r = run("nccl", "broadcast", "-t", "fat-tree:k=4", "--ranks", "1", "-b", "1K", "-e", "2K")
    assert r.exit_code == 0, r.output
    assert [line.split()[-2:] for line in r.output.splitlines() if not line.startswith("#")] == [["-", "-"]] * 2
    assert r.output.splitlines()[-1] == "# Avg bus bandwidth    : -"
    rows = _strict_json(run("nccl", "broadcast", "-t", "fat-tree:k=4", "--ranks", "1", "-b", "1K", "-e", "2K",
                            "--json").output)
    assert [(x["algbw_GBps"], x["busbw_GBps"]) for x in rows] == [(None, None)] * 2
    csv_rows = run("nccl", "broadcast", "-t", "fat-tree:k=4", "--ranks", "1", "-b", "1K", "-e", "1K", "--csv")
    assert csv_rows.output.splitlines()[1].split(",")[6:8] == ["", ""]


def test_a_typo_that_asks_for_too_many_flows_is_one_line(flow_budget_1000):
    r = run("collective", "-t", "fat-tree:k=4", "--chunks", "1000000")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.strip().splitlines() == [
        "Error: all_reduce over 16 ranks, chunks=1000000: 480,000,000 flows would need about 268.2 GiB of memory; "
        "585.9 KiB is available"]


def test_a_stopped_collective_reports_nothing(monkeypatch):
    from fabric import cli

    monkeypatch.setattr(cli._RunProgress, "__call__", lambda self, *report: False)   # as Ctrl-C does
    r = run("collective", "-t", "fat-tree:k=4", "-s", "1GiB", "--chunks", "200")
    assert r.exit_code == cli.EXIT_INTERRUPTED and "interrupted" in r.output and "algbw" not in r.output


def test_ctrl_c_outside_the_engine_is_one_line(monkeypatch):
    from fabric import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "load_topology", interrupted)   # Ctrl-C while the topology builds
    r = run("nccl", "all_reduce", "-t", "fat-tree:k=4")
    assert r.exit_code == cli.EXIT_INTERRUPTED and r.output.strip() == "Error: interrupted; nothing to report"


def test_ctrl_c_in_nccl_keeps_the_sizes_done(monkeypatch):
    from fabric import cli

    real = cli.collective_sizes

    def one_then_ctrl_c(*args, **kwargs):
        yield next(real(*args, **kwargs))
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "collective_sizes", one_then_ctrl_c)
    r = run("nccl", "all_reduce", "-t", "fat-tree:k=4", "-b", "1M", "-e", "4M", "-f", "2")
    assert r.exit_code == cli.EXIT_INTERRUPTED and "interrupted after 1 of 3 sizes" in r.output
    assert "   1048576 " in r.output and "2097152" not in r.output   # the first size's row, as nccl-tests would
