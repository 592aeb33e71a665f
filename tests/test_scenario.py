"""Scenario files: every mistake is one line naming the file, line and key."""

import pytest

import fabric
from fabric.scenario import ScenarioError, parse_scenario

GOOD = """\
name = "t"
seed = 2

[topology]
spec = "fat-tree:k=4,storage=2"
routing = "ecmp"

[[jobs]]
name = "a"
accelerators = 4
compute = "10ms"
grad_size = "64MiB"

[[jobs]]
name = "b"
accelerators = 4
placement = "spread"
sample_bytes = "1MiB"
samples = 2

[[pipelines]]
kind = "checkpoint"
job = "b"
size = "16MiB"
at = ["5ms"]

[[background]]
pattern = "uniform"
size = "1MiB"
load = 0.2
duration = "10ms"

[[failures]]
link = ["spine0.0", "core0"]
at = "1ms"
factor = 0.5
"""


def test_good_scenario_builds_and_runs():
    s = parse_scenario(GOOD, "good.toml")
    assert s.jobs[0]["grad_size"] == 64 * 2**20 and s.jobs[1]["placement"] == "spread"
    net = s.network()
    jobs, placements, traffic, events = s.build(net)
    assert [j.name for j in jobs] == ["a", "b"] and len(traffic) == 2 and events[0].factor == 0.5
    free = set(net.accelerators.tolist()) - {int(v) for p in placements for v in p}
    assert set(traffic[1].src.tolist()) <= free           # background defaults to the free accelerators
    r = fabric.run_jobs(net, jobs, placements=placements, traffic=traffic, events=events)
    assert all(x.jct > 0 for x in r.shared)


def _edit(old, new):
    assert old in GOOD
    return GOOD.replace(old, new)


def test_spray_path_cap_is_a_topology_key():
    assert parse_scenario(GOOD).network().max_paths == 64
    assert parse_scenario(_edit('routing = "ecmp"', 'routing = "spray"\nmax_paths = 8')).network().max_paths == 8


@pytest.mark.parametrize("text, message", [
    (_edit('placement = "spread"', 'placement = "packd"'),
     "bad.toml:17: jobs[1].placement: unknown placement 'packd' (expected packed, spread, random, or a list)"),
    (_edit('compute = "10ms"', 'compte = "10ms"'),
     "bad.toml:11: jobs[0].compte: unknown key (did you mean 'compute'? expected one of"),
    (_edit("accelerators = 4\ncompute", "accelerators = \"four\"\ncompute"),
     "bad.toml:10: jobs[0].accelerators: expected an integer, got 'four'"),
    (_edit('grad_size = "64MiB"', 'grad_size = "64 parsecs"'),
     "bad.toml:12: jobs[0].grad_size: '64 parsecs': unknown size unit 'parsecs'"),
    (_edit('compute = "10ms"', 'compute = true'), "bad.toml:11: jobs[0].compute: expected a time"),
    (_edit('compute = "10ms"', 'compute = "10ms"\nschedule = "1f1bb"'),
     "bad.toml:12: jobs[0].schedule: unknown schedule '1f1bb' (expected gpipe, 1f1b, zb_h1)"),
    (_edit('load = 0.2', 'load = 1.5'), "bad.toml:30: background[0].load: expected a number in (0, 1], got 1.5"),
    (_edit('routing = "ecmp"', 'routing = "magic"'), "bad.toml:6: topology.routing: unknown routing 'magic'"),
    (_edit('routing = "ecmp"', 'max_paths = 0'), "bad.toml:6: topology.max_paths: expected an integer >= 1, got 0"),
    (_edit('link = ["spine0.0", "core0"]', 'link = "spine0.0"'), "bad.toml:34: failures[0].link: expected a pair"),
    (_edit('name = "b"', 'name = "a"'), "bad.toml:15: jobs[1].name: 'a' is used by jobs[0] too"),
    (_edit('[[pipelines]]\nkind = "checkpoint"\n', '[[pipelines]]\n'), "bad.toml:21: pipelines[0].kind: missing"),
    (_edit('seed = 2', 'sed = 2'), "bad.toml:2: sed: unknown key (did you mean 'seed'?"),
    (_edit('seed = 2', 'seed = [2'), "bad.toml: not valid TOML: "),
    (GOOD.split("[[jobs]]")[0], "bad.toml: jobs: missing (required)"),
    (_edit('spec = "fat-tree:k=4,storage=2"', 'spec = "fat-tree:k=4"\nfile = "x.json"'),
     "bad.toml:4: topology: give exactly one of spec or file"),
])
def test_scenario_errors_name_file_line_and_key(text, message):
    with pytest.raises(ScenarioError) as e:
        parse_scenario(text, "bad.toml")
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("old, new, message", [
    ("accelerators = 4\nplacement", "accelerators = 40\nplacement",
     "bad.toml:17: jobs[1].placement: job 'b' needs 40 accelerators, only 12 of 16 are free"),
    ('spec = "fat-tree:k=4,storage=2"', 'spec = "fat-tree:k=5,storage=2"', "bad.toml:5: topology.spec: k=5"),
    ('job = "b"', 'job = "c"', "bad.toml:23: pipelines[0].job: job='c': no such job"),
    ('link = ["spine0.0", "core0"]', 'link = ["spine0.0", "acc0"]', "bad.toml:34: failures[0].link: link ('spine0.0', 'acc0')"),
    ('name = "a"\naccelerators = 4', 'name = "a"\naccelerators = 4\ntp = 3',
     "bad.toml:10: jobs[0].accelerators: accelerators=4 is not a multiple of tp*pp=3"),
])
def test_errors_found_against_the_topology(old, new, message):
    s = parse_scenario(_edit(old, new), "bad.toml")
    with pytest.raises(fabric.FabricError) as e:
        s.build(s.network())
    assert str(e.value).startswith(message), str(e.value)
