"""``TensorDictSequential``: TensorDict modules run one after the other on the same TensorDict."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from typing import overload

from torch import nn
from torch.distributions import Distribution

from rlbricks.modules._common import KeysLike
from rlbricks.modules._common import TensorDictModuleBase
from rlbricks.modules._common import as_keys
from rlbricks.modules._errors import ModuleValueError
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

__all__ = ["TensorDictSequential", "chain_keys"]


def chain_keys(modules: list[TensorDictModuleBase]) -> tuple[list[NestedKey], list[NestedKey]]:
    """``(in_keys, out_keys)`` of a chain of modules.

    ``in_keys`` are the keys some module reads before any earlier module
    writes them; ``out_keys`` are all the keys written.  Both keep their first
    order and hold no duplicate.
    """
    in_keys: list[NestedKey] = []
    out_keys: list[NestedKey] = []
    written: set[NestedKey] = set()
    for module in modules:
        for key in module.in_keys:
            if key not in written and key not in in_keys:
                in_keys.append(key)
        for key in module.out_keys:
            if key not in written:
                written.add(key)
                out_keys.append(key)
    return in_keys, out_keys


class TensorDictSequential(TensorDictModuleBase):
    """Run TensorDict modules in order; each one sees what the previous ones wrote.

    ``in_keys`` are the keys read by some module that no earlier module
    writes (what the caller must provide); ``out_keys`` are all the keys the
    modules write.  With ``selected_out_keys`` (or :meth:`select_out_keys`),
    the modules run on a shallow copy and only the selected entries are
    written back, so intermediate results (e.g. a shared embedding) do not
    land in the caller's TensorDict.

    A sequence indexes like a list (``seq[0]``, ``seq[1:]`` gives a new
    sequence sharing the modules), has a length, and can be nested in
    another sequence.

    Args:
        *modules: TensorDict modules (anything with ``in_keys``, ``out_keys``
            and ``forward(tensordict)``, e.g. :class:`TensorDictModule`).
        selected_out_keys: the outputs to keep; ``None`` keeps every one.

    Raises:
        ModuleValueError: no module, a module that is not a TensorDict module, or
            a selected key that no module writes.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import TensorDictModule, TensorDictSequential
        >>> from rlbricks.tensordict import TensorDict
        >>> body = TensorDictModule(nn.Linear(3, 8), ["observation"], ["hidden"])
        >>> head = TensorDictModule(nn.Linear(8, 2), ["hidden"], ["action"])
        >>> seq = TensorDictSequential(body, head)
        >>> seq.in_keys, seq.out_keys
        (['observation'], ['hidden', 'action'])
        >>> td = seq(TensorDict({"observation": torch.randn(4, 3)}, [4]))
        >>> td["action"].shape
        torch.Size([4, 2])
        >>> lean = TensorDictSequential(body, head, selected_out_keys=["action"])
        >>> sorted(lean(TensorDict({"observation": torch.randn(4, 3)}, [4])).keys())
        ['action', 'observation']
        >>> len(seq), seq[1] is head
        (2, True)
    """

    def __init__(
        self,
        *modules: TensorDictModuleBase,
        selected_out_keys: KeysLike | None = None,
    ) -> None:
        super().__init__()
        if not modules:
            raise ModuleValueError("TensorDictSequential needs at least one module")
        for i, module in enumerate(modules):
            if not isinstance(module, nn.Module) or not all(
                hasattr(module, name) for name in ("in_keys", "out_keys")
            ):
                raise ModuleValueError(
                    f"TensorDictSequential: module {i} ({type(module).__name__}) is not a "
                    "TensorDict module; wrap a plain network in TensorDictModule(net, in_keys, "
                    "out_keys) first"
                )
        self.module = nn.ModuleList(modules)
        self._selected: list[NestedKey] | None = None
        self.in_keys, self._all_out_keys = chain_keys(list(modules))
        self.out_keys = list(self._all_out_keys)
        if selected_out_keys is not None:
            self.select_out_keys(*as_keys(selected_out_keys, "selected_out_keys"))

    def select_out_keys(self, *keys: NestedKey) -> TensorDictSequential:
        """Keep only ``keys`` among the outputs; with no key, keep every output again.

        Returns ``self``.

        Raises:
            ModuleValueError: a key is not written by any module.

        Example:
            >>> import torch
            >>> from rlbricks.modules import TensorDictModule, TensorDictSequential
            >>> from rlbricks.tensordict import TensorDict
            >>> seq = TensorDictSequential(
            ...     TensorDictModule(torch.exp, ["x"], ["ex"]),
            ...     TensorDictModule(torch.log, ["ex"], ["y"]),
            ... ).select_out_keys("y")
            >>> seq.out_keys, sorted(seq(TensorDict({"x": torch.ones(1)})).keys())
            (['y'], ['x', 'y'])
        """
        if not keys:
            self._selected = None
            self.out_keys = list(self._all_out_keys)
            return self
        wanted = as_keys(list(keys), "selected_out_keys")
        unknown = [k for k in wanted if k not in self._all_out_keys]
        if unknown:
            raise ModuleValueError(
                f"selected_out_keys: {unknown} are not written by any module; the outputs are "
                f"{self._all_out_keys}"
            )
        self._selected = [k for k in self._all_out_keys if k in wanted]
        self.out_keys = list(self._selected)
        return self

    def forward(
        self, tensordict: TensorDict, tensordict_out: TensorDict | None = None
    ) -> TensorDict:
        """Run every module in order.

        Args:
            tensordict: the input; the outputs are written into it unless
                ``tensordict_out`` is given.
            tensordict_out: where to write ``out_keys`` instead.

        Returns:
            The TensorDict the outputs were written to.

        Example:
            >>> import torch
            >>> from rlbricks.modules import TensorDictModule, TensorDictSequential
            >>> from rlbricks.tensordict import TensorDict
            >>> seq = TensorDictSequential(TensorDictModule(torch.neg, ["x"], ["y"]))
            >>> seq(TensorDict({"x": torch.ones(2)}, [2]))["y"]
            tensor([-1., -1.])
        """
        if self._selected is None and tensordict_out is None:
            for module in self.module:
                tensordict = module(tensordict)
            return tensordict
        work = tensordict.copy()
        for module in self.module:
            work = module(work)
        target = tensordict if tensordict_out is None else tensordict_out
        for key in self.out_keys:
            target.set(key, work.get(key))
        return target

    def get_dist(self, tensordict: TensorDict) -> Distribution:
        """The distribution of the last module, after running the ones before it.

        The last module must have a ``get_dist`` method (a
        :class:`ProbabilisticTensorDictModule`, a :class:`ProbabilisticActor`
        or a sequence ending with one).  The earlier modules write their
        outputs into ``tensordict``.

        Raises:
            ModuleValueError: the last module does not build a distribution.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from rlbricks.modules import (
            ...     ProbabilisticTensorDictModule, TensorDictModule, TensorDictSequential)
            >>> from rlbricks.tensordict import TensorDict
            >>> seq = TensorDictSequential(
            ...     TensorDictModule(nn.Linear(3, 4), ["observation"], ["logits"]),
            ...     ProbabilisticTensorDictModule(["logits"], ["action"], torch.distributions.Categorical),
            ... )
            >>> seq.get_dist(TensorDict({"observation": torch.randn(3)})).probs.shape
            torch.Size([4])
        """
        *body, last = list(self.module)
        get_dist = getattr(last, "get_dist", None)
        if get_dist is None:
            raise ModuleValueError(
                f"get_dist: the last module ({type(last).__name__}) builds no distribution; "
                "end the sequence with a ProbabilisticTensorDictModule"
            )
        for module in body:
            tensordict = module(tensordict)
        dist: Distribution = get_dist(tensordict)
        return dist

    def _part(self, index: int) -> TensorDictModuleBase:
        part: TensorDictModuleBase = self.module[index]  # type: ignore[assignment]
        return part

    @overload
    def __getitem__(self, index: int) -> TensorDictModuleBase: ...

    @overload
    def __getitem__(self, index: slice) -> TensorDictSequential: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return TensorDictSequential(*self.module[index])
        return self.module[index]

    def __len__(self) -> int:
        return len(self.module)

    def __iter__(self) -> Iterator[TensorDictModuleBase]:
        return iter(self.module)  # type: ignore[arg-type]
