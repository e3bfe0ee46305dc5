"""Helpers to compare TensorDicts: ``is_tensordict`` and ``assert_close``."""

from __future__ import annotations

from typing import Any

import torch

from rlbricks.tensordict._errors import TensorDictAssertionError
from rlbricks.tensordict._errors import TensorDictTypeError
from rlbricks.tensordict._td import TensorDict
from rlbricks.tensordict._td import iter_leaves

__all__ = ["assert_close", "is_tensordict"]


def is_tensordict(obj: Any) -> bool:
    """True when ``obj`` is a TensorDict.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict, is_tensordict
        >>> is_tensordict(TensorDict()), is_tensordict({"a": torch.zeros(1)})
        (True, False)
    """
    return isinstance(obj, TensorDict)


def assert_close(
    actual: TensorDict,
    expected: TensorDict,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    equal_nan: bool = True,
    check_dtype: bool = True,
) -> None:
    """Assert two TensorDicts have the same keys, batch size and close values.

    Tolerances follow ``torch.testing.assert_close``; the error names the
    first key that differs.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict, assert_close
        >>> a = TensorDict({"x": torch.ones(2)}, batch_size=[2])
        >>> assert_close(a, a.clone())
        >>> try:
        ...     assert_close(a, a.apply(lambda x: x + 1))
        ... except AssertionError as err:
        ...     print(str(err).splitlines()[0])
        values differ at key 'x':
    """
    if not isinstance(actual, TensorDict) or not isinstance(expected, TensorDict):
        raise TensorDictTypeError(
            f"assert_close compares TensorDicts, got {type(actual).__name__} and "
            f"{type(expected).__name__}"
        )
    if actual.batch_size != expected.batch_size:
        raise TensorDictAssertionError(
            f"batch sizes differ: {tuple(actual.batch_size)} vs {tuple(expected.batch_size)}"
        )
    keys_a = set(actual.keys(include_nested=True, leaves_only=True))
    keys_e = set(expected.keys(include_nested=True, leaves_only=True))
    if keys_a != keys_e:
        raise TensorDictAssertionError(
            f"keys differ: only in actual {sorted(map(str, keys_a - keys_e))}, "
            f"only in expected {sorted(map(str, keys_e - keys_a))}"
        )
    for key, value in iter_leaves(actual):
        try:
            torch.testing.assert_close(
                value,
                expected.get(key),
                rtol=rtol,
                atol=atol,
                equal_nan=equal_nan,
                check_dtype=check_dtype,
            )
        except AssertionError as err:
            raise TensorDictAssertionError(f"values differ at key {key!r}:\n{err}") from None
