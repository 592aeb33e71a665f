"""Test options: slow scale tests run only with --run-slow (see README); shared fixtures."""

import os
import signal
import subprocess

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=1000,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (scale tests)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="scale test: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def flow_budget_1000(monkeypatch):
    """This machine's memory can play 1000 flows."""
    from fabric import memory
    monkeypatch.setattr(memory, "available_memory", lambda: 1000 * memory.BYTES_PER_FLOW)


@pytest.fixture
def interruptible():
    """subprocess.Popen for a child that the test sends Ctrl-C (SIGINT).

    A shell's background job (``pytest &``, nohup) starts with SIGINT
    ignored; its children would inherit that, and Python installs no
    KeyboardInterrupt handler for an ignored signal, so the child would run
    on as if never interrupted.  The child gets the default back, as a
    terminal would give it."""
    def popen(*args, **kw):
        return subprocess.Popen(*args, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)
    return popen
