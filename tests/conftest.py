"""Shared fixtures: the server under test and an anyio backend for async tests."""

import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"
