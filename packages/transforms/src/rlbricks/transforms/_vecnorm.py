"""``VecNorm``: running normalisation whose statistics several worker processes can share."""

from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from collections.abc import Mapping
from collections.abc import Sequence
from multiprocessing.context import get_spawning_popen
from typing import Any

import torch

from rlbricks.specs import TensorSpec
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import unravel_key
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import KeysLike
from rlbricks.transforms._base import Transform
from rlbricks.transforms._compose import Compose
from rlbricks.transforms._errors import TransformValueError
from rlbricks.transforms._fn_running_stats import mean_and_std
from rlbricks.transforms._fn_running_stats import new_stats_buffer
from rlbricks.transforms._fn_running_stats import stats_views
from rlbricks.transforms._fn_running_stats import update_stats_
from rlbricks.transforms._norm import ObservationNorm
from rlbricks.transforms._norm import float_spec
from rlbricks.transforms._norm import load_lazy_buffers
from rlbricks.transforms._spec_utils import route_specs

__all__ = ["VecNorm"]


def _new_lock() -> Any:
    # a "spawn" lock can travel to workers started by any method (fork inherits it; spawn and
    # forkserver reopen it by name), whereas a "fork" lock cannot reach a spawned worker
    return mp.get_context("spawn").Lock()


class VecNorm(Transform):
    """Normalise entries with running statistics: ``(x - mean) / std``, updated by every output.

    Each output of the env (reset and step) first updates the statistics of
    its entries, then is normalised with them. The statistics of each entry
    (count, sum, sum of squares, float64) live in one buffer in **shared
    memory** guarded by a process-shared lock, so one ``VecNorm`` handed to
    the env factory of a :class:`~rlbricks.envs.ParallelEnv` is updated by all
    its workers, and read by the parent:

    .. code-block:: python

        norm = VecNorm(["observation"], shapes={"observation": (4,)})
        env = ParallelEnv(4, functools.partial(make_env, norm))  # make_env attaches norm
        ...
        norm.stats()["mean"]  # what the workers have seen so far

    The buffers must exist before the factory is shipped to the workers:
    give ``shapes``, or attach the transform to an env (in the parent) first.
    A partial reset only counts the sub-envs that it resets.

    With ``decay=None`` the statistics are exact (all samples weigh the same)
    and do not depend on the order in which workers update them. With a
    ``decay`` the old statistics are multiplied by it before each update, so
    recent samples weigh more; the decay then applies per update call: once
    per batched step for ``TransformedEnv(ParallelEnv(...), VecNorm(...))``,
    once per worker step when each worker updates.

    For evaluation, :meth:`freeze` stops the updates (in every process sharing
    the statistics) and :meth:`to_observation_norm` gives a fixed
    :class:`~rlbricks.transforms.ObservationNorm` with the current statistics.
    On a plain TensorDict, ``forward`` updates with the ``("next", key)`` entries
    (or the root ones when there is no ``"next"``) unless frozen, then
    normalises the root and ``"next"`` entries.

    Args:
        in_keys: the entries to normalise (default ``["observation"]``; ``"reward"``
            works too).
        out_keys: where the results go (default: in place).
        decay: forget factor in ``(0, 1]`` (None: exact statistics).
        eps: lower bound of the standard deviation.
        shapes: the shape of each entry without batch dims, to allocate the
            shared statistics now (default: when attached to an env, or at the
            first data).

    Raises:
        TransformValueError: ``decay`` or ``eps`` is out of range, or ``shapes`` names
            keys that are not ``in_keys``.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import VecNorm
        >>> norm = VecNorm(["obs"], decay=None)
        >>> td = TensorDict({"obs": torch.tensor([[1.0], [3.0]])}, batch_size=[2])
        >>> norm(td)["obs"].squeeze(-1).tolist()
        [-1.0, 1.0]
        >>> norm.stats("obs")["mean"].tolist(), norm.stats("obs")["count"].item()
        ([2.0], 2.0)
    """

    _frozen: torch.Tensor

    def __init__(
        self,
        in_keys: KeysLike = None,
        out_keys: KeysLike = None,
        decay: float | None = 0.9999,
        eps: float = 1e-4,
        shapes: Mapping[NestedKey, Sequence[int] | torch.Size] | None = None,
    ) -> None:
        super().__init__(in_keys if in_keys is not None else ["observation"], out_keys)
        if decay is not None and not 0.0 < decay <= 1.0:
            raise TransformValueError(f"VecNorm: decay must be in (0, 1] or None, got {decay}")
        if eps <= 0.0:
            raise TransformValueError(f"VecNorm: eps must be positive, got {eps}")
        self.decay = decay
        self.eps = eps
        self._names = [f"stats_{i}" for i in range(len(self.in_keys))]
        for name in self._names:
            self.register_buffer(name, None)
        self.register_buffer("_frozen", torch.zeros((), dtype=torch.bool).share_memory_(), False)
        self._lock = _new_lock()
        self._owner_pid = os.getpid()
        for key, shape in (shapes or {}).items():
            index = self._index(unravel_key(key), "shapes")
            self._allocate(index, torch.Size(shape))

    # ------------------------------------------------------------------ #
    # statistics buffers
    # ------------------------------------------------------------------ #
    def _index(self, key: NestedKey, what: str) -> int:
        try:
            return self.in_keys.index(key)
        except ValueError:
            raise TransformValueError(
                f"VecNorm: {what} names {key!r}, which is not an in_key; in_keys are {self.in_keys}"
            ) from None

    def _buffer(self, index: int) -> torch.Tensor | None:
        return getattr(self, self._names[index])  # a registered buffer (None until allocated)

    def _allocate(self, index: int, shape: torch.Size) -> torch.Tensor:
        buf = self._buffer(index)
        if buf is not None:
            if tuple(buf.shape[1:]) != tuple(shape):
                raise TransformValueError(
                    f"VecNorm: entry {self.in_keys[index]!r} has shape {tuple(shape)} but its "
                    f"statistics were made for shape {tuple(buf.shape[1:])}; build a new VecNorm for "
                    "entries of the new shape"
                )
            return buf
        if os.getpid() != self._owner_pid:
            warnings.warn(
                f"VecNorm allocates the statistics of {self.in_keys[index]!r} in a worker "
                "process: they are not shared with the parent or the other workers. Give "
                "VecNorm(shapes=...) (or attach it to an env) before shipping it to workers.",
                stacklevel=3,
            )
        buf = new_stats_buffer(shape)
        setattr(self, self._names[index], buf)  # nn.Module stores it as the registered buffer
        return buf

    def _entry_buffer(self, index: int, value: torch.Tensor, batch_dims: int) -> torch.Tensor:
        buf = self._buffer(index)
        if buf is None:
            return self._allocate(index, value.shape[batch_dims:])
        return buf

    # ------------------------------------------------------------------ #
    # updates and normalisation
    # ------------------------------------------------------------------ #
    @property
    def frozen(self) -> bool:
        """Whether the statistics are frozen (shared by every process holding them).

        Example:
            >>> from rlbricks.transforms import VecNorm
            >>> VecNorm().frozen
            False
        """
        return bool(self._frozen)

    def freeze(self) -> VecNorm:
        """Stop updating the statistics (normalisation goes on); return ``self``.

        Example:
            >>> from rlbricks.transforms import VecNorm
            >>> VecNorm().freeze().frozen
            True
        """
        self._frozen.fill_(True)
        return self

    def unfreeze(self) -> VecNorm:
        """Resume the updates; return ``self``.

        Example:
            >>> from rlbricks.transforms import VecNorm
            >>> VecNorm().freeze().unfreeze().frozen
            False
        """
        self._frozen.fill_(False)
        return self

    def _update(self, index: int, samples: torch.Tensor, batch_dims: int) -> None:
        buf = self._entry_buffer(index, samples, batch_dims)
        if self.frozen:
            return
        shape = buf.shape[1:]
        with self._lock:
            update_stats_(buf, samples, shape, self.decay)

    def _normalize(self, index: int, value: torch.Tensor, batch_dims: int) -> torch.Tensor:
        buf = self._entry_buffer(index, value, batch_dims)
        with self._lock:
            mean, std = mean_and_std(buf, buf.shape[1:], self.eps)
        dtype = value.dtype if value.is_floating_point() else torch.float32
        mean = mean.to(device=value.device, dtype=dtype)
        std = std.to(device=value.device, dtype=dtype)
        return (value.to(dtype) - mean) / std

    def _process(
        self, td: TensorDict, mask: torch.Tensor | None = None, update: bool = True
    ) -> TensorDict:
        """Update with (the masked rows of) ``td``'s entries, then normalise them."""
        nd = td.batch_dims
        for index, (in_key, out_key) in enumerate(zip(self.in_keys, self.out_keys)):
            value = td.get(in_key, None)
            if value is None:
                continue
            if update:
                samples = value if mask is None else value[mask]
                self._update(index, samples, nd if mask is None else 1)
            td.set(out_key, self._normalize(index, value, nd))
        return td

    def _reset(self, tensordict: TensorDict | None, tensordict_reset: TensorDict) -> TensorDict:
        batch = tensordict_reset.batch_size
        mask = self.reset_mask(tensordict, batch)
        if mask is not None:
            if not batch:
                if not bool(mask.any()):
                    return tensordict_reset
                mask = None
            else:
                mask = mask.squeeze(-1)
        return self._process(tensordict_reset, mask)

    def _step(self, tensordict: TensorDict, next_tensordict: TensorDict) -> TensorDict:
        return self._process(next_tensordict)

    def _call(self, tensordict: TensorDict) -> TensorDict:
        return self._process(tensordict)

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Update with the ``"next"`` entries (root ones without ``"next"``), normalise both.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import VecNorm
            >>> norm = VecNorm(["obs"], decay=None)
            >>> td = TensorDict({"obs": torch.tensor([[0.0], [2.0]]),
            ...                  "next": {"obs": torch.tensor([[2.0], [4.0]])}}, batch_size=[2])
            >>> out = norm(td)
            >>> out["obs"].squeeze(-1).tolist(), out["next", "obs"].squeeze(-1).tolist()
            ([-3.0, -1.0], [-1.0, 1.0])
        """
        nxt = tensordict.entries.get("next")
        if isinstance(nxt, TensorDict):
            self._process(nxt)
            return self._process(tensordict, update=False)
        return self._process(tensordict)

    # ------------------------------------------------------------------ #
    # reading the statistics
    # ------------------------------------------------------------------ #
    def stats(self, key: NestedKey | None = None) -> dict[str, torch.Tensor]:
        """A snapshot of the statistics of ``key``: ``count`` (a scalar), ``mean`` and ``std``.

        All three are float64; with a ``decay``, ``count`` is the decayed sample weight.

        Args:
            key: the entry (default: the only ``in_key``).

        Raises:
            TransformValueError: ``key`` is not an ``in_key`` or is needed.
            TransformValueError: no data has been seen yet and no shape was given.

        Example:
            >>> from rlbricks.transforms import VecNorm
            >>> VecNorm(["obs"], shapes={"obs": (2,)}).stats()["std"]
            tensor([1., 1.], dtype=torch.float64)
        """
        if key is None:
            if len(self.in_keys) != 1:
                raise TransformValueError(
                    f"VecNorm.stats: several in_keys {self.in_keys}: give key=..."
                )
            index = 0
        else:
            index = self._index(unravel_key(key), "stats")
        buf = self._buffer(index)
        if buf is None:
            raise TransformValueError(
                f"VecNorm has no statistics for {self.in_keys[index]!r} yet: attach it to an "
                "env, run data through it, or give shapes=..."
            )
        with self._lock:
            snapshot = buf.clone()
        shape = snapshot.shape[1:]
        mean, std = mean_and_std(snapshot, shape, self.eps)
        count = stats_views(snapshot, shape)[0].reshape(-1)[0]  # the same in every element
        return {"count": count, "mean": mean, "std": std}

    def to_observation_norm(self) -> Transform:
        """A fixed :class:`ObservationNorm` with the current statistics (one per entry).

        Returns:
            An ``ObservationNorm`` (``standard_normal=True``) for a single
            ``in_key``, a :class:`Compose` of them otherwise.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import VecNorm
            >>> norm = VecNorm(["obs"], decay=None)
            >>> _ = norm(TensorDict({"obs": torch.tensor([[1.0], [3.0]])}, batch_size=[2]))
            >>> fixed = norm.to_observation_norm()
            >>> fixed.loc, fixed.scale
            (tensor([2.]), tensor([1.]))
        """
        norms = []
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            st = self.stats(in_key)
            norms.append(
                ObservationNorm(
                    loc=st["mean"].to(torch.get_default_dtype()),
                    scale=st["std"].to(torch.get_default_dtype()),
                    in_keys=[in_key],
                    out_keys=[out_key],
                    standard_normal=True,
                )
            )
        return norms[0] if len(norms) == 1 else Compose(*norms)

    # ------------------------------------------------------------------ #
    # specs, state, pickling
    # ------------------------------------------------------------------ #
    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Allocate the statistics from the specs; the entries become ``Unbounded`` floats.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import EnvSpecs, VecNorm
            >>> norm = VecNorm()
            >>> _ = norm.transform_env_specs(EnvSpecs.from_env(CountingEnv(batch_size=[3])))
            >>> norm.stats()["mean"].shape
            torch.Size([1])
        """
        nd = len(specs.batch_size)

        def mapped(index: int) -> Any:
            def fn(spec: TensorSpec[Any]) -> TensorSpec[Any]:
                self._allocate(index, spec.shape[nd:])
                return float_spec(spec)

            return fn

        name = type(self).__name__
        for index, (in_key, out_key) in enumerate(zip(self.in_keys, self.out_keys)):
            route_specs(specs, [in_key], [out_key], mapped(index), name)
        return specs

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        load_lazy_buffers(self, state_dict, prefix, self._names)
        for name in self._names:  # lazily created buffers live in shared memory too
            buf = getattr(self, name)
            if buf is not None and not buf.is_shared():
                buf.share_memory_()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if get_spawning_popen() is None:
            # a lock travels only to a process being started; copies (clone, deepcopy,
            # torch.save) get their own lock and, below, their own statistics
            state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if self._lock is None:
            self._lock = _new_lock()
            self._owner_pid = os.getpid()
        for name in [*self._names, "_frozen"]:
            buf = getattr(self, name, None)
            if buf is not None and not buf.is_shared():
                buf.share_memory_()

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        base = super().extra_repr()
        extra = f"decay={self.decay}, eps={self.eps}"
        return f"{base}, {extra}" if base else extra
