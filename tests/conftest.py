"""Shared fixtures (an anyio backend for async tests) and the Hypothesis profiles.

Profiles: "ci" is fixed (derandomize: the same examples on every run, so CI fails only when the code changed) and
"dev" draws fresh random examples, twice as many, each run. HYPOTHESIS_PROFILE picks one; otherwise "ci" when the
CI variable is set (CI=true), else "dev". Deadlines are off in both: the protocol tests go through a real client
and their timing follows the machine's load.
"""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=100, derandomize=True, deadline=None, database=None, print_blob=True)
settings.register_profile("dev", max_examples=200, deadline=None, print_blob=True)


def _profile() -> str:
    if os.environ.get("HYPOTHESIS_PROFILE"):
        return os.environ["HYPOTHESIS_PROFILE"]
    return "ci" if os.environ.get("CI", "").lower() not in ("", "0", "false") else "dev"


settings.load_profile(_profile())


def pytest_report_header(config) -> str:
    return f"hypothesis profile: {_profile()} (HYPOTHESIS_PROFILE=ci|dev; ci is the default when CI is set)"


@pytest.fixture
def anyio_backend():
    return "asyncio"
