"""The engine benchmark script runs, and its peers solve the same problem."""

import json
import os
import subprocess
import sys

import numpy as np

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "engine.py")


def test_engine_benchmark_small_cases(tmp_path):
    out = tmp_path / "raw.json"
    p = subprocess.run([sys.executable, SCRIPT, "--cases", "ring:8,a2a:6,perm:4:spray", "--peers", "fabric,reference",
                        "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["case", "impl", "flows"] and len(lines) == 1 + 3 * 2 + 1
    assert lines[-1].startswith("memory probe")
    raw = json.loads(out.read_text())
    assert set(raw.pop("memory_probe_ns")) == {"4 MiB", "256 MiB"}
    for case, flows in (("ring:8", 2 * 7 * 8), ("a2a:6", 30), ("perm:4:spray", None)):
        fab, ref = raw[case]["fabric"], raw[case]["reference"]
        assert fab["flows"] == ref["flows"] and (flows is None or fab["flows"] == flows)
        np.testing.assert_allclose(fab["finish_sample"], ref["finish_sample"], rtol=1e-9)
        # each run's own peak, not the parent's (whose memory probe alone takes 300 MB)
        assert 0 < fab["peak_rss_mb"] < 200 and ref["seconds"] > 0
