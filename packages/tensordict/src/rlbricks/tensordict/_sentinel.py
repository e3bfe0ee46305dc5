"""The marker for "argument not given" shared by the TensorDict modules."""

from __future__ import annotations

from typing import Any

__all__ = ["NO_DEFAULT"]

NO_DEFAULT: Any = object()
