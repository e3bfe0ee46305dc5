"""Make the shared ``_setup`` helpers importable by the tests; shared fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rlbricks.replay import testing

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def dead_pid() -> int:
    """The id of a process that has exited, like a checkpoint writer that was killed."""
    return testing.dead_pid()
