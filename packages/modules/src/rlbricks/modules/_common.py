"""``TensorDictModule``: run any callable on TensorDict entries and write its outputs back."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from rlbricks.modules._errors import ModuleValueError
from rlbricks.modules._errors import missing_key_error
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import unravel_key

__all__ = ["KeysLike", "TensorDictModule", "TensorDictModuleBase", "as_keys", "read_key"]

KeysLike = NestedKey | Iterable[NestedKey]
"""One key, or several: ``"observation"``, ``("next", "obs")`` or ``["obs", "action"]``."""


def as_keys(keys: KeysLike, what: str) -> list[NestedKey]:
    """``keys`` as a list of canonical keys (a str or a tuple is one key)."""
    if isinstance(keys, (str, tuple)):
        items: list[Any] = [keys]
    else:
        try:
            items = list(keys)
        except TypeError:
            raise ModuleValueError(
                f"{what} must be a key or a list of keys, got {type(keys).__name__}: {keys!r}"
            ) from None
    try:
        out = [unravel_key(k) for k in items]
    except TypeError as err:
        raise ModuleValueError(f"{what}: {err}") from None
    if len(set(out)) != len(out):
        raise ModuleValueError(f"{what} lists a key twice: {out}; list each key once")
    return out


def read_key(module: nn.Module, tensordict: TensorDict, key: NestedKey) -> Any:
    """``tensordict[key]``, or a ``ModuleKeyError`` naming ``module`` and the available keys."""
    value = tensordict.get(key, None)
    if value is None:
        available = list(tensordict.keys(include_nested=True, leaves_only=True))
        raise missing_key_error(type(module).__name__, key, available)
    return value


class TensorDictModuleBase(nn.Module):
    """The interface of every TensorDict module: ``in_keys``, ``out_keys`` and ``forward(td)``.

    Subclass it to write a module that reads and writes TensorDict entries
    itself; set ``self.in_keys`` (what ``forward`` reads) and ``self.out_keys``
    (what it writes) in ``__init__``.  :class:`TensorDictSequential` uses these
    two lists to chain modules, so they must be accurate.  ``forward`` writes
    into the TensorDict it receives and returns it.

    Example:
        >>> import torch
        >>> from rlbricks.modules import TensorDictModuleBase
        >>> from rlbricks.tensordict import TensorDict
        >>> class AddOne(TensorDictModuleBase):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.in_keys, self.out_keys = ["x"], ["y"]
        ...
        ...     def forward(self, tensordict):
        ...         tensordict["y"] = tensordict["x"] + 1
        ...         return tensordict
        >>> AddOne()(TensorDict({"x": torch.zeros(2)}, [2]))["y"]
        tensor([1., 1.])
    """

    in_keys: list[NestedKey]
    out_keys: list[NestedKey]

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Read ``in_keys`` from ``tensordict``, write ``out_keys`` into it and return it."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(tensordict)")

    def extra_repr(self) -> str:
        """The keys, shown by ``repr(module)``."""
        return f"in_keys={self.in_keys}, out_keys={self.out_keys}"


class TensorDictModule(TensorDictModuleBase):
    """Wrap a callable (usually an ``nn.Module``) so that it reads and writes TensorDict entries.

    Calling the wrapper on a TensorDict passes ``tensordict[k]`` for each key
    of ``in_keys``, in order, as positional arguments to ``module``, and
    writes its output(s) under ``out_keys``: one key for a single tensor, one
    key per element when the callable returns a tuple.  The TensorDict is
    modified in place and returned.  The batch dims of the TensorDict (none,
    one or several) come along as leading dims of the tensors, so ``module``
    must accept leading dims (every ``nn.Linear``-based network does).

    The wrapper is an ``nn.Module``: a wrapped ``nn.Module`` is registered as
    its child ``module``, so ``parameters()``, ``state_dict()`` and ``.to()``
    reach it.

    Args:
        module: the callable.
        in_keys: the keys read, in the order of ``module``'s arguments; nested
            keys are tuples.
        out_keys: the keys written, one per output of ``module``.

    Raises:
        ModuleValueError: ``in_keys``/``out_keys`` are malformed, or (when called)
            the number of outputs differs from the number of ``out_keys``.
        ModuleKeyError: (when called) an in_key is missing; the message
            lists the available keys.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import TensorDictModule
        >>> from rlbricks.tensordict import TensorDict
        >>> policy = TensorDictModule(nn.Linear(3, 2), in_keys=["observation"], out_keys=["action"])
        >>> td = TensorDict({"observation": torch.randn(5, 4, 3)}, batch_size=[5, 4])
        >>> policy(td)["action"].shape
        torch.Size([5, 4, 2])
        >>> split = TensorDictModule(lambda x: x.chunk(2, -1), [("agent", "x")], ["a", "b"])
        >>> out = split(TensorDict({"agent": {"x": torch.arange(4.0)}}))
        >>> out["a"], out["b"]
        (tensor([0., 1.]), tensor([2., 3.]))
    """

    def __init__(
        self,
        module: Callable[..., Any],
        in_keys: KeysLike,
        out_keys: KeysLike,
    ) -> None:
        super().__init__()
        if not callable(module):
            raise ModuleValueError(
                f"TensorDictModule wraps a callable (e.g. an nn.Module), got "
                f"{type(module).__name__}"
            )
        self.module = module
        self.in_keys = as_keys(in_keys, "in_keys")
        self._all_out_keys = as_keys(out_keys, "out_keys")
        if not self._all_out_keys:
            raise ModuleValueError("out_keys is empty: name the key(s) the module's output goes to")
        self.out_keys = list(self._all_out_keys)
        self._written = list(enumerate(self._all_out_keys))

    def select_out_keys(self, *keys: NestedKey) -> TensorDictModule:
        """Write only ``keys`` (a subset of ``out_keys``); the other outputs are dropped.

        Returns ``self``. Calling it with no key writes every output again.

        Raises:
            ModuleValueError: a key is not one of the module's outputs.

        Example:
            >>> import torch
            >>> from rlbricks.modules import TensorDictModule
            >>> from rlbricks.tensordict import TensorDict
            >>> m = TensorDictModule(lambda x: (x + 1, x - 1), ["x"], ["up", "down"])
            >>> sorted(m.select_out_keys("up")(TensorDict({"x": torch.zeros(1)})).keys())
            ['up', 'x']
        """
        if not keys:
            self.out_keys = list(self._all_out_keys)
            self._written = list(enumerate(self._all_out_keys))
            return self
        wanted = as_keys(list(keys), "select_out_keys")
        unknown = [k for k in wanted if k not in self._all_out_keys]
        if unknown:
            raise ModuleValueError(
                f"select_out_keys: {unknown} not among the outputs {self._all_out_keys}"
            )
        self._written = [(i, k) for i, k in enumerate(self._all_out_keys) if k in wanted]
        self.out_keys = [k for _, k in self._written]
        return self

    def forward(
        self, tensordict: TensorDict, tensordict_out: TensorDict | None = None
    ) -> TensorDict:
        """Run the callable on the ``in_keys`` entries and write its outputs.

        Args:
            tensordict: the input; the outputs are written into it unless
                ``tensordict_out`` is given.
            tensordict_out: where to write the outputs instead.

        Returns:
            The TensorDict the outputs were written to.

        Example:
            >>> import torch
            >>> from rlbricks.modules import TensorDictModule
            >>> from rlbricks.tensordict import TensorDict
            >>> m = TensorDictModule(torch.neg, ["x"], ["y"])
            >>> td = TensorDict({"x": torch.ones(2)}, [2])
            >>> out = m(td, tensordict_out=TensorDict(batch_size=[2]))
            >>> list(out.keys()), "y" in td.keys()
            (['y'], False)
        """
        args = [read_key(self, tensordict, key) for key in self.in_keys]
        result = self.module(*args)
        target = tensordict if tensordict_out is None else tensordict_out
        if isinstance(result, torch.Tensor):
            if len(self._all_out_keys) != 1:
                raise self._count_error(1)
            if self._written:
                target.set(self._all_out_keys[0], result)
            return target
        if not isinstance(result, (tuple, list)):
            raise ModuleValueError(
                f"{type(self).__name__}: the module returned {type(result).__name__}; a "
                "TensorDictModule's callable returns a tensor or a tuple of tensors"
            )
        if len(result) != len(self._all_out_keys):
            raise self._count_error(len(result))
        for index, key in self._written:
            target.set(key, result[index])
        return target

    def _count_error(self, n_outputs: int) -> ModuleValueError:
        return ModuleValueError(
            f"{type(self).__name__} returned {n_outputs} output{'s' if n_outputs != 1 else ''} "
            f"but has {len(self._all_out_keys)} out_keys {self._all_out_keys}: give one "
            "out_key per output"
        )
