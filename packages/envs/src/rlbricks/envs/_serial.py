"""``SerialEnv``: several unbatched envs stepped one after the other in this process."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import torch

from rlbricks.envs._base import DeviceLike
from rlbricks.envs._base import EnvBase
from rlbricks.envs._errors import EnvKeyError
from rlbricks.envs._errors import EnvRuntimeError
from rlbricks.envs._errors import EnvValueError
from rlbricks.specs import Composite
from rlbricks.specs import TensorSpec
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import stack

__all__ = ["SerialEnv"]

EnvFn = Callable[..., EnvBase]
NestedKey = str | tuple[str, ...]

# the specs a batched env copies from its sub-envs
SPEC_NAMES = ("observation_spec", "action_spec", "reward_spec", "done_spec", "state_spec")


def env_factories(
    cls_name: str,
    num_workers: int,
    create_env_fn: EnvFn | Sequence[EnvFn],
    create_env_kwargs: dict[str, Any] | Sequence[dict[str, Any]] | None,
) -> list[tuple[EnvFn, dict[str, Any]]]:
    """One ``(callable, kwargs)`` pair per sub-env, with the lengths checked."""
    if num_workers < 1:
        raise EnvValueError(f"{cls_name}: num_workers must be at least 1, got {num_workers}")
    if callable(create_env_fn):
        fns: list[EnvFn] = [create_env_fn] * num_workers
    else:
        fns = list(create_env_fn)
        if len(fns) != num_workers:
            raise EnvValueError(
                f"{cls_name}: create_env_fn has {len(fns)} callables for num_workers={num_workers}; "
                "give one callable, or one per sub-env"
            )
    if create_env_kwargs is None:
        kwargs: list[dict[str, Any]] = [{} for _ in range(num_workers)]
    elif isinstance(create_env_kwargs, dict):
        kwargs = [dict(create_env_kwargs) for _ in range(num_workers)]
    else:
        kwargs = [dict(kw) for kw in create_env_kwargs]
        if len(kwargs) != num_workers:
            raise EnvValueError(
                f"{cls_name}: create_env_kwargs has {len(kwargs)} dicts for "
                f"num_workers={num_workers}; give one dict, or one per sub-env"
            )
    return list(zip(fns, kwargs, strict=True))


def check_sub_env(cls_name: str, index: int, env: Any) -> None:
    """Sub-envs must be unbatched ``EnvBase`` instances."""
    if not isinstance(env, EnvBase):
        raise EnvRuntimeError(
            f"{cls_name}: create_env_fn for sub-env {index} returned {type(env).__name__}, "
            "not an EnvBase"
        )
    if env.batch_size != torch.Size([]):
        raise EnvRuntimeError(
            f"{cls_name}: sub-env {index} has batch_size {tuple(env.batch_size)}; sub-envs must "
            "be unbatched (batch_size=()): create them without batch_size"
        )


def sub_env_specs(env: EnvBase) -> dict[str, TensorSpec[Any]]:
    """The specs of one sub-env, by attribute name."""
    return {name: getattr(env, name) for name in SPEC_NAMES}


def set_batched_specs(
    env: EnvBase, specs: dict[str, TensorSpec[Any]], num_workers: int, device: DeviceLike
) -> None:
    """Give ``env`` the sub-env specs with a leading ``num_workers`` dim (moved to ``device``)."""
    for name in SPEC_NAMES:
        spec = specs[name]
        if isinstance(spec, Composite):
            batched: TensorSpec[Any] = spec.expand(num_workers)
        else:
            batched = spec.expand(num_workers, *spec.shape)
        setattr(env, name, batched if device is None else batched.to(device))


def leaf_keys(spec: Composite) -> list[NestedKey]:
    """The leaf keys of a composite spec (nested keys as tuples)."""
    return list(spec.keys(include_nested=True, leaves_only=True))


def row_input(td: TensorDict | None, keys: Sequence[NestedKey], index: int) -> TensorDict | None:
    """Row ``index`` of the entries ``keys`` of ``td`` (None when none of them is there)."""
    if td is None:
        return None
    row: TensorDict | None = None
    for key in keys:
        value = td.get(key, None)
        if value is not None:
            if row is None:
                row = TensorDict(batch_size=())
            row.set(key, value[index])
    return row


class SerialEnv(EnvBase):
    """``num_workers`` unbatched envs run one after the other, seen as one env of batch ``[n]``.

    The specs are the sub-env specs with a leading ``num_workers`` dim.
    ``reset`` honours a ``"_reset"`` mask (bool ``[n, 1]``): only the masked
    sub-envs are reset, the others keep the values of the input TensorDict.
    ``set_seed(seed)`` seeds sub-env ``i`` with ``seed + i`` and returns
    ``seed + num_workers``. Use it to debug what :class:`ParallelEnv` runs in
    worker processes: both give the same results for the same seeds.

    Actions are checked once, here, against the batched action spec (see
    :meth:`EnvBase.check_action`): the sub-envs' own value checks are turned
    off (their ``validate_actions`` is False), so ``env.validate_actions``
    alone decides whether values are checked.

    Args:
        num_workers: the number of sub-envs.
        create_env_fn: a callable returning an unbatched env, or a list of
            ``num_workers`` such callables (one per sub-env).
        create_env_kwargs: keyword arguments of ``create_env_fn``: one dict for
            all sub-envs, or a list of one dict per sub-env.
        device: device of the outputs (default: the sub-envs' device).

    Raises:
        EnvRuntimeError: a sub-env is not an ``EnvBase`` or is batched.

    Example:
        >>> from rlbricks.envs import SerialEnv
        >>> from rlbricks.envs.testing import CountingEnv
        >>> env = SerialEnv(3, CountingEnv, create_env_kwargs={"max_steps": 2})
        >>> env.batch_size, env.observation_spec["observation"].shape
        (torch.Size([3]), torch.Size([3, 1]))
        >>> td = env.rollout(4, break_when_any_done=False)
        >>> td["next", "observation"][0, :, 0].tolist()
        [1.0, 2.0, 1.0, 2.0]
        >>> env.set_seed(10), env.sub_env_attr("seed")
        (13, [10, 11, 12])
        >>> env.close()
    """

    def __init__(
        self,
        num_workers: int,
        create_env_fn: EnvFn | Sequence[EnvFn],
        *,
        create_env_kwargs: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        device: DeviceLike = None,
    ) -> None:
        name = type(self).__name__
        factories = env_factories(name, num_workers, create_env_fn, create_env_kwargs)
        envs: list[EnvBase] = []
        try:
            for i, (fn, kwargs) in enumerate(factories):
                sub = fn(**kwargs)
                envs.append(sub)
                check_sub_env(name, i, sub)
        except BaseException:
            for sub in envs:
                if isinstance(sub, EnvBase):
                    sub.close()
            raise
        super().__init__(
            batch_size=(num_workers,), device=device if device is not None else envs[0].device
        )
        self.envs = envs
        for sub in envs:  # values are checked once, on the batched action (shape/dtype stay)
            sub.validate_actions = False
        set_batched_specs(self, sub_env_specs(envs[0]), num_workers, device)
        self._input_keys = ["action", *leaf_keys(envs[0].state_spec)]
        self._state_keys = self._input_keys[1:]

    @property
    def num_workers(self) -> int:
        """The number of sub-envs."""
        return len(self.envs)

    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        mask = None
        if tensordict is not None and "_reset" in tensordict:
            mask = tensordict.get("_reset").reshape(self.num_workers, -1).any(-1).tolist()
        rows: list[TensorDict | None] = []
        for i, env in enumerate(self.envs):
            if mask is None or mask[i]:
                rows.append(env.reset(row_input(tensordict, self._state_keys, i)))
            else:
                rows.append(None)
        template = next((row for row in rows if row is not None), None)
        if template is None:  # nothing to reset: the merge keeps every input value
            zero = self.observation_spec.zero()
            zero.update(self.done_spec.zero())
            return zero
        filler = template.clone().zero_()
        out = stack([row if row is not None else filler for row in rows])
        return out.to(self.device) if out.device not in (None, self.device) else out

    def _step(self, tensordict: TensorDict) -> TensorDict:
        rows = []
        for i, env in enumerate(self.envs):
            row = row_input(tensordict, self._input_keys, i)
            if row is None:
                raise EnvKeyError(
                    f"{type(self).__name__}.step needs 'action' in the TensorDict: write the "
                    "policy's action there first"
                )
            rows.append(env.step(row).get("next"))
        out = stack(rows)
        return out.to(self.device) if out.device not in (None, self.device) else out

    def _set_seed(self, seed: int) -> None:
        for i, env in enumerate(self.envs):
            env.set_seed(seed + i)

    def sub_env_attr(self, name: str) -> list[Any]:
        """The attribute ``name`` of every sub-env, in order.

        Example:
            >>> from rlbricks.envs import SerialEnv
            >>> from rlbricks.envs.testing import CountingEnv
            >>> SerialEnv(2, CountingEnv).sub_env_attr("max_steps")
            [5, 5]
        """
        return [getattr(env, name) for env in self.envs]

    def close(self) -> None:
        """Close every sub-env (idempotent)."""
        if not self.is_closed:
            for env in self.envs:
                env.close()
        super().close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_workers={self.num_workers}, "
            f"env={type(self.envs[0]).__name__}, device={self.device})"
        )
