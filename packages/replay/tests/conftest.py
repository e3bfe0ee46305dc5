"""Fixtures shared by the tests of rlbricks-replay."""

from __future__ import annotations

import pytest

from rlbricks.replay import testing


@pytest.fixture
def dead_pid() -> int:
    """The id of a process that has exited, like a writer that was killed."""
    return testing.dead_pid()
