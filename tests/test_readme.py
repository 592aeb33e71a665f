"""The README's Python examples run as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _block_after(heading):
    text = README.read_text()
    section = text.split(heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.skipif(not README.exists(), reason="README not next to the tests")
def test_testing_your_own_code_example_runs():
    exec(compile(_block_after("## Testing your own code with fabric"), "README.md", "exec"), {})


@pytest.mark.skipif(not README.exists(), reason="README not next to the tests")
def test_collectives_and_pipelines_example_runs():
    scope = {}
    exec(compile(_block_after("## Collectives and data pipelines"), "README.md", "exec"), scope)
    assert scope["r"].busbw > 0 and scope["res"].makespan > 0


@pytest.mark.skipif(not README.exists(), reason="README not next to the tests")
def test_jobs_example_runs():
    scope = {}
    exec(compile(_block_after("## Jobs sharing a fabric"), "README.md", "exec"), scope)
    assert all(row["slowdown"] >= 1 - 1e-9 for row in scope["r"].table())
