"""`fabric run` and `fabric report`: examples, schema, exit codes, Ctrl-C, HTML in Chromium."""

import csv
import io
import json
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from fabric.cli import EXIT_INFEASIBLE, EXIT_INTERRUPTED, EXIT_SCENARIO, main
from fabric.summary import SCHEMA_PATH

jsonschema = pytest.importorskip("jsonschema")

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
SCALE = {"cluster_4096.toml"}     # minutes of CI time: run with --run-slow


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def validate(summary):
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        jsonschema.validate(summary, json.load(fh), cls=jsonschema.Draft202012Validator)


EXAMPLE_PARAMS = [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.name in SCALE else [])
                  for p in sorted(EXAMPLES.glob("*.toml")) if not p.name.startswith("sweep")]


@pytest.mark.parametrize("path", EXAMPLE_PARAMS)
def test_every_example_runs_and_its_json_validates(path):
    r = run("run", path, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    validate(summary)
    assert not summary["partial"]
    for job in summary["jobs"]:
        assert job["iterations_done"] == job["iterations"]
        assert job["slowdown"] >= 1 - 1e-9 and job["jct_s"] >= job["isolated_jct_s"] * (1 - 1e-9)


def test_summary_table_csv_and_files(tmp_path):
    scn = tmp_path / "s.toml"
    text = (EXAMPLES / "two_jobs_fat_tree.toml").read_text().replace("iterations = 5", "iterations = 2")
    scn.write_text(text.replace("[output]", '[output]\njson = "r.json"\ncsv = "r.csv"'))
    r = run("run", scn)
    assert r.exit_code == 0, r.output
    assert "slowdown" in r.output and "hottest links" in r.output and "llm-b" in r.output
    validate(json.loads((tmp_path / "r.json").read_text()))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert [x["job"] for x in rows] == ["llm-a", "llm-b"] and float(rows[0]["slowdown"]) >= 1
    assert not [v for x in rows for v in x.values() if v.startswith("[")]   # per-job lists stay in the JSON
    r = run("run", scn, "--csv", "--no-isolated")
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert rows[0]["slowdown"] == "" and float(rows[0]["jct_s"]) > 0
    # no run alone is needed to tell the exposed communication: only the ideal network's
    assert rows[0]["isolated_exposed_comm_s"] == "" and 0 < float(rows[0]["exposed_share"]) < 1
    # the isolated runs in threads beside the shared run, or after it: one result
    assert run("run", scn, "--csv", "--threads", "2").output == run("run", scn, "--csv", "--threads", "0").output
    r = run("run", scn, "--threads", "-1")
    assert r.exit_code == 2 and "--threads" in r.output and "-1" in r.output


@pytest.mark.parametrize("content, code, message", [
    (None, 2, "does not exist"),
    ('[topology\nspec = "fat-tree:k=4"\n', EXIT_SCENARIO, "not valid TOML"),
    ('[topology]\nspec = "fat-tree:k=4"\n[[jobs]]\nname = "a"\naccelerators = 4\nitrations = 3\n', EXIT_SCENARIO,
     "s.toml:6: jobs[0].itrations: unknown key (did you mean 'iterations'?"),
    ('[topology]\nspec = "fat-tree:k=4"\n[[jobs]]\nname = "a"\naccelerators = 4.5\n', EXIT_SCENARIO,
     "s.toml:5: jobs[0].accelerators: expected an integer, got 4.5"),
    ('[topology]\nspec = "fat-tree:k=4"\n[[jobs]]\nname = "a"\naccelerators = 40\n', EXIT_INFEASIBLE,
     "s.toml:3: jobs[0].placement: job 'a' needs 40 accelerators, only 16 of 16 are free"),
    ('[topology]\nspec = "fat-tree:k=4"\n[[jobs]]\nname = "a"\naccelerators = 2\nplacement = ["acc0", "core0"]\n',
     EXIT_INFEASIBLE, "s.toml:6: jobs[0].placement: 'core0' is not an accelerator"),
    ('[topology]\nspec = "fat-tree:k=4"\nrouting = "ugal"\n[[jobs]]\nname = "a"\naccelerators = 4\n', EXIT_INFEASIBLE,
     "s.toml:3: topology.routing: routing='ugal': needs a dragonfly topology, got fat_tree"),
    ('[sweep]\nmode = "grid"\n[axes]\nseed = [1, 2]\n[base.topology]\nspec = "fat-tree:k=4"\n', EXIT_SCENARIO,
     "s.toml:1: sweep: this is a sweep file: run it with 'fabric sweep FILE -o DIR'"),
])
def test_bad_scenarios_give_one_line_and_an_exit_code(tmp_path, content, code, message):
    scn = tmp_path / "s.toml"
    if content is not None:
        scn.write_text(content)
    r = run("run", scn)
    assert r.exit_code == code, r.output
    assert message in r.output
    assert r.output.count("\n") <= 4 and "Traceback" not in r.output   # usage errors add a 'Usage:' hint


def test_a_scenario_given_to_sweep_says_to_run_it(tmp_path):
    scn = tmp_path / "s.toml"
    scn.write_text('[topology]\nspec = "fat-tree:k=4"\n[[jobs]]\nname = "a"\naccelerators = 4\n')
    r = run("sweep", scn, "-o", tmp_path / "out")
    assert r.exit_code == EXIT_SCENARIO
    assert f"{scn}: this is a scenario file: run it with 'fabric run FILE'" in r.output


def test_help():
    for args in (["run"], ["report"], ["sweep"]):
        r = run(*args, "--help")
        assert r.exit_code == 0 and "Usage:" in r.output and "Example" in r.output


def test_ctrl_c_stops_with_a_partial_result(tmp_path, interruptible):
    scn = tmp_path / "long.toml"     # small iterations, many of them: a long run of few flows at a time
    scn.write_text('[topology]\nspec = "fat-tree:k=4,oversub=2"\n' + "".join(
        f'[[jobs]]\nname = "{n}"\naccelerators = 8\nplacement = "spread"\niterations = 2000\ncompute = "1ms"\n'
        f'grad_size = "16MiB"\n' for n in "ab"))
    out = tmp_path / "partial.json"
    proc = interruptible([sys.executable, "-m", "fabric.cli", "run", str(scn), "--progress", "-o", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        for line in proc.stderr:     # the engine is running once it reports progress
            if line.startswith("progress:"):
                break
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "PARTIAL" in stdout and "interrupted" in stderr and "Traceback" not in stderr
    summary = json.loads(out.read_text())
    validate(summary)
    assert summary["partial"] and 0 < summary["jobs"][0]["iterations_done"] < 2000
    assert summary["jobs"][0]["jct_s"] is None and summary["jobs"][0]["isolated_jct_s"] is None


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_is_self_contained_and_renders_in_chromium(tmp_path):
    result, page = tmp_path / "r.json", tmp_path / "report.html"
    assert run("run", EXAMPLES / "dragonfly_adversarial.toml", "-o", result).exit_code == 0
    r = run("report", result, "-o", page)
    assert r.exit_code == 0, r.output
    html = page.read_text()
    assert html.count("<figure") == 4 and html.count("<svg") >= 4
    assert "<script" not in html and 'src="http' not in html and "href=\"http" not in html   # no network needed
    for text in ("Topology", "Utilization over time", "Per-job timeline", "FCT slowdown", "ring", "slowdown"):
        assert text in html
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; .ci/run does it)")
    shot = tmp_path / "report.png"
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,3600"]
    p = subprocess.run(args + [f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and shot.exists(), p.stderr
    dom = subprocess.run(args + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and dom.stdout.count("<svg") >= 4 and "Hottest links" in dom.stdout
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[..., :3]
    ink = (pixels.min(axis=2) < 0.9).mean()        # share of pixels that are not (near) white
    assert ink > 0.05, f"the screenshot {shot} looks blank ({ink:.1%} ink)"


def test_report_rejects_what_is_not_a_run_result(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    r = run("report", bad, "-o", tmp_path / "r.html")
    assert r.exit_code == 1 and "not a fabric run result" in r.output
    bad.write_text("{")
    r = run("report", bad, "-o", tmp_path / "r.html")
    assert r.exit_code == 1 and "not valid JSON" in r.output
    assert not (tmp_path / "r.html").exists()


def test_report_names_the_place_a_damaged_result_is_wrong(tmp_path):
    result = tmp_path / "r.json"
    assert run("run", EXAMPLES / "two_jobs_fat_tree.toml", "-o", result).exit_code == 0
    good = json.loads(result.read_text())
    for damage, words in ((lambda s: s.pop("jobs"), "result: top level: 'jobs' is a required property"),
                          (lambda s: s["tiers"][0].pop("layer"), "result: tiers[0]: 'layer' is a required property"),
                          (lambda s: s["jobs"][1].update(jct_s="fast"),
                           "result: jobs[1].jct_s: 'fast' is not of type")):
        summary = json.loads(json.dumps(good))
        damage(summary)
        result.write_text(json.dumps(summary))
        r = run("report", result, "-o", tmp_path / "r.html")
        assert r.exit_code == 1 and r.output.startswith("Error: " + words) and "Traceback" not in r.output, r.output
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_scale_4096_accelerators_8_jobs(tmp_path):
    """The scale scenario (also run by the examples test with --run-slow);
    here its shape: 4096 accelerators, 8 jobs x 20 iterations, storage."""
    out = tmp_path / "big.json"
    r = run("run", EXAMPLES / "cluster_4096.toml", "-o", out)
    assert r.exit_code == 0, r.output
    s = json.loads(out.read_text())
    assert s["topology"]["accelerators"] == 4096 and len(s["jobs"]) == 8
    assert all(j["iterations_done"] == 20 for j in s["jobs"])
    assert "storage" in {t["layer"] for t in s["tiers"]}


def test_max_paths_overrides_the_scenario(tmp_path):
    path = tmp_path / "spray.toml"
    path.write_text('[topology]\nspec = "torus:dims=4x4"\nrouting = "spray"\nmax_paths = 1\n\n'
                    '[[jobs]]\nname = "a"\naccelerators = 16\niterations = 1\ngrad_size = "64MiB"\n')

    def run_spray(*extra):
        r = run("run", path, "--no-isolated", "--json", *extra)
        assert r.exit_code == 0, r.output
        summary = json.loads(r.output)
        validate(summary)
        return summary

    one, many = run_spray(), run_spray("--max-paths", "8")
    assert one["topology"]["max_paths"] == 1 and many["topology"]["max_paths"] == 8
    # the same flows; more paths per flow are more subflows, each with its own start and finish
    assert one["engine"]["flows"] == many["engine"]["flows"] and one["engine"]["events"] < many["engine"]["events"]
