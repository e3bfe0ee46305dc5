"""Argument checks shared by the constructors of the modules: sizes, counts and ranges.

Each check raises :class:`~rlbricks.modules.ModuleValueError` naming the module,
the argument, the rule and the value received, and returns the value
converted (``int`` or ``float``).  They run once, at construction.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from rlbricks.modules._errors import ModuleValueError

__all__ = ["check_int", "check_number", "is_int"]

_RULES: dict[str, Callable[[float], bool]] = {
    "finite": lambda v: True,
    ">= 0": lambda v: v >= 0,
    "> 0": lambda v: v > 0,
    "in [0, 1]": lambda v: 0 <= v <= 1,
    "in [0, 1)": lambda v: 0 <= v < 1,
}


def is_int(value: Any, minimum: int = 1) -> bool:
    """Whether ``value`` is an int (not a bool) ``>= minimum``.

    Example:
        >>> from rlbricks.modules._checks import is_int
        >>> is_int(3), is_int(0), is_int(0, minimum=0), is_int(2.0), is_int(True)
        (True, False, True, False, False)
    """
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and int(value) >= minimum
    )


def check_int(
    owner: str, name: str, value: Any, minimum: int = 1, *, whole_floats: bool = False
) -> int:
    """``value`` as an int, checked to be an int ``>= minimum``.

    Args:
        owner: the module, named first in the message.
        name: the argument.
        value: what was received.
        minimum: the smallest value allowed.
        whole_floats: also accept whole floats (``1e6``), for counts that
            users commonly write in scientific notation.

    Raises:
        ModuleValueError: ``value`` is not such an int.

    Example:
        >>> from rlbricks.modules._checks import check_int
        >>> check_int("EGreedyModule", "annealing_num_steps", 1e3, whole_floats=True)
        1000
        >>> check_int("MLP", "depth", -1, minimum=0)
        Traceback (most recent call last):
            ...
        rlbricks.modules._errors.ModuleValueError: MLP: depth must be an int >= 0, got -1
    """
    ok = is_int(value, minimum)
    if not ok and whole_floats and isinstance(value, float):
        ok = value.is_integer() and value >= minimum
    if not ok:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ModuleValueError(f"{owner}: {name} must be {what}, got {value!r}")
    return int(value)


def check_number(owner: str, name: str, value: Any, rule: str, meaning: str = "") -> float:
    """``value`` as a float, checked to be a finite real number that passes ``rule``.

    Args:
        owner: the module, named first in the message.
        name: the argument.
        value: what was received.
        rule: ``"finite"``, ``">= 0"``, ``"> 0"``, ``"in [0, 1]"`` or ``"in [0, 1)"``.
        meaning: what the argument is, shown in the message.

    Raises:
        ModuleValueError: ``value`` is not a number, is NaN or infinite, or breaks ``rule``.

    Example:
        >>> from rlbricks.modules._checks import check_number
        >>> check_number("EGreedyModule", "eps_init", 1, "in [0, 1]")
        1.0
        >>> check_number("EGreedyModule", "eps_init", 2, "in [0, 1]", "a probability")
        Traceback (most recent call last):
            ...
        rlbricks.modules._errors.ModuleValueError: EGreedyModule: eps_init must be a number in [0, 1] (a probability), got 2
    """
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if real and math.isfinite(value) and _RULES[rule](value):
        return float(value)
    what = "a finite number" if rule == "finite" else f"a number {rule}"
    about = f" ({meaning})" if meaning else ""
    raise ModuleValueError(f"{owner}: {name} must be {what}{about}, got {value!r}")
