"""Sweeps: expansion, determinism across executors, resume, failures, dead workers."""

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from fabric import FabricError
from fabric.cli import EXIT_INTERRUPTED, main
from fabric.scenario import ScenarioError
from fabric.sweeps import _apply, expand, load_sweep, run_sweep, sweep

BASE = """
[base]
name = "tiny"
[base.topology]
spec = "fat-tree:k=4,oversub=2,bw=100Gbps"
[[base.jobs]]
name = "a"
accelerators = 4
iterations = 2
compute = "1ms"
grad_size = "64MiB"
[[base.jobs]]
name = "b"
accelerators = 4
iterations = 2
grad_size = "32MiB"
"""

AXES = """
[axes]
"topology.oversub" = [1, 2]
routing = ["ecmp", "spray"]
"jobs[*].placement" = ["packed", "spread"]
"""


def write_sweep(tmp_path, axes=AXES, head="[sweep]\nseed = 5\n", base=BASE, name="s.toml"):
    path = tmp_path / name
    path.write_text(head + axes + base)
    return path


def table(out):
    """The tidy table without the wall-clock column."""
    with open(os.path.join(out, "table.csv"), newline="") as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


def records(out):
    """Names of the finished point records (not the .tmp- file of one being written)."""
    points = os.path.join(out, "points")
    return sorted(p for p in os.listdir(points) if not p.startswith(".tmp-")) if os.path.exists(points) else []


def summaries(out):
    found = {}
    for name in sorted(os.listdir(os.path.join(out, "points"))):
        with open(os.path.join(out, "points", name)) as fh:
            record = json.load(fh)
        found[name] = record["summary"]
    return found


def test_expansion_modes():
    axes = [("x", [1, 2, 3]), ("y", ["a", "b", "c"])]
    assert len(expand(axes)) == 9 and expand(axes)[1] == {"x": 1, "y": "b"}
    assert [tuple(c.values()) for c in expand(axes, "zip")] == [(1, "a"), (2, "b"), (3, "c")]
    r = expand(axes, "random", samples=50, seed=3)
    assert len(r) == 50 and r == expand(axes, "random", samples=50, seed=3) != expand(axes, "random", 50, 4)
    assert {c["x"] for c in r} == {1, 2, 3}
    with pytest.raises(FabricError, match="every axis needs the same number of values"):
        expand([("x", [1, 2]), ("y", [1])], "zip")


def test_points_have_stable_ids_and_seeds_from_their_coordinates(tmp_path):
    a = load_sweep(write_sweep(tmp_path)).points()
    b = load_sweep(write_sweep(tmp_path, axes=AXES.replace('["ecmp", "spray"]', '["spray", "ecmp"]'),
                               name="t.toml")).points()
    by_coords = lambda pts: {json.dumps(p["coords"], sort_keys=True): p["seed"] for p in pts}   # noqa: E731
    assert by_coords(a) == by_coords(b)          # the order of values does not change a point's seed
    assert len({p["seed"] for p in a}) == len(a) == 8
    c = load_sweep(write_sweep(tmp_path, head="[sweep]\nseed = 6\n", name="u.toml")).points()
    assert by_coords(a) != by_coords(c)


def test_axis_paths_set_the_scenario():
    data = {"topology": {"spec": "fat-tree:k=4,oversub=2"}, "jobs": [{"name": "a"}, {"name": "b"}]}
    _apply(data, "topology.oversubscription", 3)
    _apply(data, "routing", "spray")
    _apply(data, "jobs[*].placement", "spread")
    _apply(data, "jobs[1].iterations", 7)
    _apply(data, "topology.max_paths", 16)   # a key of the [topology] table, not of its spec
    assert data["topology"] == {"spec": "fat-tree:k=4,oversubscription=3", "routing": "spray", "max_paths": 16}
    assert [j["placement"] for j in data["jobs"]] == ["spread", "spread"] and data["jobs"][1]["iterations"] == 7
    for path, message in (("jobs[5].x", "jobs has 2 entries"), ("pipelines[0].x", "no array 'pipelines'"),
                          ("jobs[0]", "not the table itself"), ("jobs[x].y", "cannot read")):
        with pytest.raises(FabricError, match=message.replace("[", r"\[")):
            _apply(data, path, 1)


def test_sweep_file_errors(tmp_path):
    for head, axes, message in (
        ("[sweep]\nmode = \"grd\"\n", AXES, "sweep.mode: unknown mode 'grd'"),
        ("[sweep]\nmode = \"random\"\n", AXES, "sweep.samples: mode='random' needs samples >= 1"),
        ("[sweep]\n", "[axes]\nrouting = []\n", "axes.routing: expected a non-empty list"),
        ("[sweep]\n", "[axes]\n\"jobs[9].placement\" = [\"packed\"]\n", "jobs has 2 entries"),
        ("[sweep]\nmode = \"zip\"\n", "[axes]\nrouting = [\"ecmp\"]\nseed = [1, 2]\n", "same number of values"),
        ("[sweep]\nbase = \"x.toml\"\n", AXES, "give a scenario file (sweep.base) or a [base] table, not both"),
    ):
        with pytest.raises(ScenarioError) as e:   # an invalid file: exit code 3, like a scenario's
            load_sweep(write_sweep(tmp_path, axes=axes, head=head))
        assert str(e.value).startswith(str(tmp_path / "s.toml") + ": ") and message in str(e.value)


def test_the_same_results_with_one_or_two_workers_and_on_dask(tmp_path):
    path = write_sweep(tmp_path)
    run_sweep(load_sweep(path), tmp_path / "w1", workers=1)
    run_sweep(load_sweep(path), tmp_path / "w2", workers=2)
    assert table(tmp_path / "w1") == table(tmp_path / "w2")
    assert summaries(tmp_path / "w1") == summaries(tmp_path / "w2")
    rows = table(tmp_path / "w1")
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        run_sweep(load_sweep(path), tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert table(tmp_path / "dask") == rows
    assert summaries(tmp_path / "dask") == summaries(tmp_path / "w1")


def test_a_failing_point_is_recorded_and_the_rest_finish(tmp_path):
    # 100,000 iterations take long just to build: the timeout stops the build too
    axes = '[axes]\n"jobs[0].placement" = ["packed", "packd", "spread"]\n"jobs[0].iterations" = [1, 100000]\n'
    out = tmp_path / "out"
    rows = run_sweep(load_sweep(write_sweep(tmp_path, axes=axes)), out, workers=2, point_timeout=0.5)
    status = {(r["jobs[0].placement"], r["jobs[0].iterations"]): (r["status"], r["error"]) for r in rows}
    assert status["packed", 1] == ("ok", None) and status["spread", 1] == ("ok", None)
    assert status["packd", 1][0] == "failed" and "unknown placement 'packd'" in status["packd", 1][1]
    assert status["packed", 100000] == ("failed", "timeout: still running after 0.5 s")
    assert len(table(out)) == 6


def test_the_cli_exits_1_when_a_point_failed_and_still_writes_the_table(tmp_path):
    path = write_sweep(tmp_path, axes='[axes]\n"jobs[0].placement" = ["packed", "packd"]\n')
    r = CliRunner().invoke(main, ["sweep", str(path), "-o", str(tmp_path / "out"), "--workers", "1"])
    assert r.exit_code == 1 and "1 of 2 points ok, 1 failed" in r.output, r.output
    assert [row["status"] for row in table(tmp_path / "out")] == ["ok", "failed"]


def test_resume_after_a_killed_sweep_runs_only_the_rest(tmp_path):
    path = write_sweep(tmp_path, axes=AXES.replace("[1, 2]", "[1, 2, 3]"))
    out = tmp_path / "out"
    points = out / "points"
    proc = subprocess.Popen([sys.executable, "-m", "fabric.cli", "sweep", str(path), "-o", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(records(out)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)     # the whole sweep, workers included, mid-way
    finally:
        proc.wait()
    before = {p: os.stat(points / p).st_mtime_ns for p in records(out)}   # the kill may leave a .tmp- file too
    assert 3 <= len(before) < 12
    (points / ".tmp-x0001-dead.json").write_text("{")   # as if killed mid-write, every time
    r = CliRunner().invoke(main, ["sweep", str(path), "-o", str(out), "--workers", "2", "--resume"])
    assert r.exit_code == 0, r.output
    after = {p: os.stat(points / p).st_mtime_ns for p in records(out)}
    assert len(after) == 12 and all(after[p] == t for p, t in before.items())   # finished points not re-run
    assert sorted(os.listdir(points)) == sorted(after)   # and no half-written record left behind
    CliRunner().invoke(main, ["sweep", str(path), "-o", str(tmp_path / "clean"), "--workers", "2"])
    assert table(out) == table(tmp_path / "clean")


def test_a_killed_dask_worker_loses_no_point(tmp_path):
    distributed = pytest.importorskip("distributed")
    path = write_sweep(tmp_path, axes=AXES + '"jobs[0].iterations" = [20, 30]\n')
    out = tmp_path / "out"
    import dask

    # a result held by the dead worker is found lost when connecting to it fails: fail fast
    with dask.config.set({"distributed.comm.timeouts.connect": "3s"}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=None) as cluster:
        result = {}
        runner = threading.Thread(target=lambda: result.update(
            rows=run_sweep(load_sweep(path), out, scheduler=cluster.scheduler_address)))
        runner.start()
        deadline = time.monotonic() + 120
        while not records(out) and time.monotonic() < deadline:
            time.sleep(0.02)
        victim = next(iter(cluster.workers.values()))
        os.kill(victim.process.process.pid, signal.SIGKILL)   # a worker dies mid-sweep; its nanny restarts it
        runner.join(timeout=300)
    rows = result["rows"]
    assert len(rows) == 16 and all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]


def test_cli_table_parquet_api_and_report(tmp_path):
    path = write_sweep(tmp_path, axes='[axes]\n"topology.oversub" = [1, 2]\n')
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["sweep", str(path), "-o", str(out), "--workers", "1"])
    assert r.exit_code == 0 and "2 of 2 points ok" in r.output, r.output
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert not (out / "table.parquet").exists()
    else:
        assert pq.read_table(out / "table.parquet").num_rows == 2
    import fabric

    assert fabric.sweep is sweep
    rows = fabric.sweep(path, tmp_path / "api", workers=1, as_frame=False)
    assert [r["topology.oversub"] for r in rows] == [1, 2] and rows[0]["a.jct_s"] > 0
    assert rows[0]["a.sync_s"] > 0 and rows[0]["a.sync_slowdown"] >= 1 - 1e-9   # each kind of traffic too
    assert all(0 < r["a.exposed_share"] < 1 for r in rows)
    assert all(r["a.activations_held"] == 1 for r in rows)   # no pipeline, one microbatch
    page = tmp_path / "sweep.html"
    r = CliRunner().invoke(main, ["report", str(out), "-o", str(page)])
    assert r.exit_code == 0, r.output
    html = page.read_text()
    assert "<svg" in html and "a: JCT (ms)" in html and "topology.oversub" in html
    assert "<th>a.exposed_share</th>" in html and f"<td>{100 * rows[0]['a.exposed_share']:.1f}%</td>" in html
    r = CliRunner().invoke(main, ["report", str(tmp_path), "-o", str(page)])
    assert r.exit_code == 1 and "no table.csv" in r.output


def test_without_dask_the_error_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    r = CliRunner().invoke(main, ["sweep", str(write_sweep(tmp_path)), "-o", str(tmp_path / "o"),
                                  "--scheduler", "tcp://127.0.0.1:1"])
    assert r.exit_code == 1 and "pip install 'fabric[dask]'" in r.output


def test_ctrl_c_keeps_finished_points(tmp_path, interruptible):
    path = write_sweep(tmp_path, axes=AXES.replace("[1, 2]", "[1, 2, 3, 4]"))
    out = tmp_path / "out"
    proc = interruptible([sys.executable, "-m", "fabric.cli", "sweep", str(path), "-o", str(out), "--workers", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while len(records(out)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    rows = table(out)
    assert 2 <= len(rows) < 16 and all(r["status"] == "ok" for r in rows)


EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "sweep.toml"


def test_example_sweep_expands():
    sw = load_sweep(EXAMPLE)
    points = sw.points()
    assert len(points) == 16
    assert {p["coords"]["jobs[*].placement"] for p in points} == {"packed", "spread"}


@pytest.mark.slow
def test_example_sweep_runs(tmp_path):
    rows = run_sweep(load_sweep(EXAMPLE), tmp_path / "out", workers=2)
    assert len(rows) == 16 and all(r["status"] == "ok" for r in rows)


def _children():
    """PIDs of this process's children (Linux /proc)."""
    pids = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as fh:
                pids.update(int(p) for p in fh.read().split())
        except OSError:
            pass
    return pids


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc to find the workers")
def test_a_killed_local_worker_loses_no_point(tmp_path):
    path = write_sweep(tmp_path, axes=AXES + '"jobs[0].iterations" = [20, 30]\n')
    out = tmp_path / "out"
    before = _children()
    result = {}
    runner = threading.Thread(target=lambda: result.update(rows=run_sweep(load_sweep(path), out, workers=2)))
    runner.start()
    deadline = time.monotonic() + 120
    while not records(out) and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = sorted(_children() - before)
    assert workers, "no worker processes found"
    os.kill(workers[0], signal.SIGKILL)     # the pool breaks; its unfinished points go to a new one
    runner.join(timeout=300)
    rows = result["rows"]
    assert len(rows) == 16 and all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
