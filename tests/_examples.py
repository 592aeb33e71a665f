"""How many examples each property test draws.

Each test pins a count that keeps the default run short.  Hypothesis lets a
pinned count override the profile's, so ``HYPOTHESIS_PROFILE=thorough``
multiplies the pinned counts here instead (by 10).
"""

import os

SCALE = 10 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 1


def examples(n):
    """``n`` examples, or ten times as many under the thorough profile."""
    return n * SCALE
