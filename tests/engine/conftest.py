from __future__ import annotations

import pytest

from squadnb import BatchExecutor


@pytest.fixture
def executor() -> BatchExecutor:
    """Four at a time, a 30 s per-operation limit (generous: no test should get near it)."""
    return BatchExecutor(max_concurrency=4, timeout=30.0)
