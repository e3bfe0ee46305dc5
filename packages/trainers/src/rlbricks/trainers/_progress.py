"""The tqdm progress bar of the trainer (only on a terminal)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["make_progress_bar"]


def make_progress_bar(enabled: bool, total: int, initial: int = 0) -> Any:
    """A tqdm bar over ``total`` frames, or None when disabled or stdout is not a terminal."""
    isatty = getattr(sys.stdout, "isatty", None)
    if not enabled or not callable(isatty) or not isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="frames", dynamic_ncols=True)
