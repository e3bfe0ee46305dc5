"""The exception family of ``rlbricks.modules``: :class:`ModuleError` and its subclasses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ModuleError", "ModuleKeyError", "ModuleValueError", "missing_key_error"]


class ModuleError(Exception):
    """The root of every exception that ``rlbricks.modules`` raises.

    It derives from ``Exception`` only: ``except ModuleError`` catches every
    module error, whichever built-in (``ValueError``, ``KeyError``) the raised
    subclass also is.

    Example:
        >>> import torch
        >>> from rlbricks.modules import ModuleError, TensorDictModule
        >>> from rlbricks.tensordict import TensorDict
        >>> double = TensorDictModule(lambda x: 2 * x, in_keys=["observation"], out_keys=["y"])
        >>> try:
        ...     double(TensorDict({"obs": torch.zeros(3)}))
        ... except ModuleError as err:
        ...     print(type(err).__name__)
        ModuleKeyError
    """


class ModuleValueError(ModuleError, ValueError):
    """A module was built with inconsistent arguments or called against its contract.

    Examples: out_keys that do not match the number of outputs of the wrapped
    callable, an action space that is neither ``"one_hot"`` nor
    ``"categorical"``, a distribution that cannot give the sample the current
    exploration type asks for.  Both a ``ValueError`` and a
    :class:`ModuleError`.

    Example:
        >>> import torch
        >>> from rlbricks.modules import ModuleValueError, TensorDictModule
        >>> from rlbricks.tensordict import TensorDict
        >>> split = TensorDictModule(lambda x: x.chunk(2, -1), ["x"], ["a", "b", "c"])
        >>> try:
        ...     split(TensorDict({"x": torch.zeros(4)}))
        ... except ModuleValueError as err:
        ...     print(err)
        TensorDictModule returned 2 outputs but has 3 out_keys ['a', 'b', 'c']: give one out_key per output
    """


class ModuleKeyError(ModuleError, KeyError):
    """A key that a module reads is missing from its input TensorDict.

    Both a ``KeyError`` and a :class:`ModuleError`; the message names the
    module, the missing key and the keys the TensorDict holds.

    Example:
        >>> import torch
        >>> from rlbricks.modules import ModuleKeyError, TensorDictModule
        >>> from rlbricks.tensordict import TensorDict
        >>> double = TensorDictModule(lambda x: 2 * x, in_keys=["observation"], out_keys=["y"])
        >>> try:
        ...     double(TensorDict({"obs": torch.zeros(3)}))
        ... except KeyError as err:
        ...     print(err)
        TensorDictModule reads 'observation', which the TensorDict does not hold; available keys: ['obs']
    """

    def __str__(self) -> str:
        # KeyError quotes its argument; a message reads better unquoted.
        return str(self.args[0]) if self.args else ""


def missing_key_error(who: str, key: Any, available: Sequence[Any]) -> ModuleKeyError:
    """The error raised when ``who`` reads ``key`` and the TensorDict lacks it."""
    return ModuleKeyError(
        f"{who} reads {key!r}, which the TensorDict does not hold; available keys: {list(available)}"
    )
