"""``ObservationNorm``: a fixed affine normalisation, with statistics from random rollouts."""

from __future__ import annotations

from typing import Any

import torch

from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.tensordict import NestedKey
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import KeysLike
from rlbricks.transforms._base import Transform
from rlbricks.transforms._errors import TransformValueError
from rlbricks.transforms._spec_utils import route_specs

__all__ = ["ObservationNorm", "float_spec", "load_lazy_buffers"]


def float_spec(spec: TensorSpec[Any]) -> Unbounded:
    """An Unbounded spec shaped like ``spec``, with its dtype if floating (else float32).

    Example:
        >>> import torch
        >>> from rlbricks.specs import Bounded
        >>> float_spec(Bounded(0, 255, shape=(2,), dtype=torch.uint8)).dtype
        torch.float32
    """
    dtype = spec.dtype if spec.dtype is not None and spec.dtype.is_floating_point else None
    return Unbounded(shape=spec.shape, device=spec.device, dtype=dtype or torch.float32)


def load_lazy_buffers(
    module: torch.nn.Module, state_dict: dict[str, Any], prefix: str, names: list[str]
) -> None:
    """Allocate the buffers ``names`` of ``module`` that are still None from ``state_dict``.

    ``nn.Module.load_state_dict`` skips buffers holding None; a transform
    whose buffers are created lazily calls this first so that loading a
    checkpoint into a fresh transform works.
    """
    for name in names:
        saved = state_dict.get(prefix + name)
        if getattr(module, name, None) is None and isinstance(saved, torch.Tensor):
            setattr(module, name, torch.zeros_like(saved))  # a registered buffer: stays one


def _as_stat(value: float | torch.Tensor | None) -> torch.Tensor | None:
    if value is None:
        return None
    return torch.as_tensor(value, dtype=torch.get_default_dtype()).clone()


class ObservationNorm(Transform):
    """An affine normalisation of observations: ``x * scale + loc``, or ``(x - loc) / scale``.

    With ``standard_normal=False`` (default) the entries become
    ``x * scale + loc``; with ``standard_normal=True`` they become
    ``(x - loc) / scale``. ``loc`` and ``scale`` are buffers (saved in
    ``state_dict``) broadcast against each entry (without its batch dims).
    They may be left to None and estimated from the env with
    :meth:`init_stats` so that the outputs are standardised (zero mean, unit
    variance) in either convention. Non-floating entries (e.g. uint8 pixels)
    come out as float32; the specs of the transformed entries become
    ``Unbounded`` of the same shape.

    For statistics that keep adapting during training (or are shared by
    several worker processes) use :class:`~rlbricks.transforms.VecNorm`.

    Args:
        loc: the shift (None: set by :meth:`init_stats`).
        scale: the factor (None: set by :meth:`init_stats`).
        in_keys: the entries to normalise (default ``["observation"]``).
        out_keys: where the results go (default: in place).
        standard_normal: use ``(x - loc) / scale``.
        eps: lower bound of the standard deviation estimated by :meth:`init_stats`.

    Raises:
        TransformValueError: only one of ``loc`` and ``scale`` is given.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import ObservationNorm
        >>> norm = ObservationNorm(loc=1.0, scale=2.0, in_keys=["obs"], standard_normal=True)
        >>> td = TensorDict({"obs": torch.tensor([1.0, 5.0]), "next": {"obs": torch.tensor([3.0, 3.0])}})
        >>> out = norm(td)
        >>> out["obs"].tolist(), out["next", "obs"].tolist()
        ([0.0, 2.0], [1.0, 1.0])
    """

    loc: torch.Tensor | None
    scale: torch.Tensor | None

    def __init__(
        self,
        loc: float | torch.Tensor | None = None,
        scale: float | torch.Tensor | None = None,
        in_keys: KeysLike = None,
        out_keys: KeysLike = None,
        standard_normal: bool = False,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(in_keys if in_keys is not None else ["observation"], out_keys)
        if (loc is None) != (scale is None):
            raise TransformValueError(
                "ObservationNorm: give both loc and scale, or neither (then call init_stats)"
            )
        self.register_buffer("loc", _as_stat(loc))
        self.register_buffer("scale", _as_stat(scale))
        self.standard_normal = standard_normal
        self.eps = eps

    @property
    def initialized(self) -> bool:
        """Whether ``loc`` and ``scale`` are set.

        Example:
            >>> from rlbricks.transforms import ObservationNorm
            >>> ObservationNorm().initialized, ObservationNorm(0.0, 1.0).initialized
            (False, True)
        """
        return self.loc is not None and self.scale is not None

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        loc, scale = self.loc, self.scale
        if loc is None or scale is None:
            raise TransformValueError(
                "ObservationNorm has no loc and scale yet: give them to the constructor, or "
                "call init_stats(num_iter) once the transform is attached to an env"
            )
        if not value.is_floating_point():
            value = value.to(torch.float32)
        if loc.device != value.device:
            loc, scale = loc.to(value.device), scale.to(value.device)
        if self.standard_normal:
            return (value - loc) / scale
        return value * scale + loc

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """The normalised entries become ``Unbounded`` floating specs of the same shape.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import EnvSpecs, ObservationNorm
            >>> specs = ObservationNorm(0.0, 1.0).transform_env_specs(EnvSpecs.from_env(CountingEnv()))
            >>> type(specs.observation["observation"]).__name__
            'Unbounded'
        """
        return route_specs(specs, self.in_keys, self.out_keys, float_spec, type(self).__name__)

    def init_stats(
        self,
        num_iter: int,
        reduce_dim: int | tuple[int, ...] = 0,
        cat_dim: int = 0,
        key: NestedKey | None = None,
    ) -> None:
        """Estimate ``loc`` and ``scale`` from random rollouts of the parent env.

        Rollouts of :attr:`parent` (the base env and the transforms before this
        one) with random actions are run until at least ``num_iter`` steps
        are collected; the root values of ``key`` are concatenated along
        ``cat_dim`` and their mean and standard deviation taken over
        ``reduce_dim``. An unbatched env gives ``[T, *F]`` per rollout: the
        defaults reduce over time. For a batched env (``[B, T, *F]``) use
        ``cat_dim=1, reduce_dim=(0, 1)``. Afterwards the transform outputs
        standardised values (in both conventions of ``standard_normal``).

        Args:
            num_iter: the least number of steps to collect.
            reduce_dim: the dim(s) to average over.
            cat_dim: the dim along which the rollouts are concatenated.
            key: the entry to measure (default: the only ``in_key``).

        Raises:
            TransformValueError: the transform is not attached to an env, or the
                statistics do not broadcast to the entry.
            TransformValueError: ``key`` is needed (several ``in_keys``) or ``num_iter < 1``.

        Example:
            >>> import torch
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import ObservationNorm, TransformedEnv
            >>> env = TransformedEnv(CountingEnv(max_steps=4), ObservationNorm())
            >>> env.transform[0].init_stats(8)
            >>> env.transform[0].loc, env.transform[0].scale
            (tensor([-1.3416]), tensor([0.8944]))
        """
        if num_iter < 1:
            raise TransformValueError(
                f"ObservationNorm.init_stats: num_iter must be >= 1, got {num_iter}"
            )
        if key is None:
            if len(self.in_keys) != 1:
                raise TransformValueError(
                    f"ObservationNorm.init_stats: several in_keys {self.in_keys}: name the entry "
                    "to measure with key=..."
                )
            key = self.in_keys[0]
        parent = self.parent
        if parent is None:
            raise TransformValueError(
                "ObservationNorm.init_stats needs the transform attached to an env: "
                "TransformedEnv(env, ObservationNorm(...)), then call init_stats"
            )
        chunks: list[torch.Tensor] = []
        collected = 0
        while collected < num_iter:
            rollout = parent.rollout(num_iter)
            chunks.append(rollout.get(key).to(torch.get_default_dtype()))
            collected += rollout.numel()
        data = torch.cat(chunks, cat_dim)
        mean = data.mean(reduce_dim)
        std = data.std(reduce_dim, unbiased=False).clamp_min(self.eps)
        entry_shape = data.shape[len(parent.batch_size) + 1 :]
        try:
            fits = torch.broadcast_shapes(mean.shape, entry_shape) == entry_shape
        except RuntimeError:
            fits = False
        if not fits:
            raise TransformValueError(
                f"ObservationNorm.init_stats: statistics of shape {tuple(mean.shape)} (data "
                f"{tuple(data.shape)} reduced over {reduce_dim}) do not broadcast to the "
                f"entries of shape {tuple(entry_shape)}: fix reduce_dim / cat_dim"
            )
        if self.standard_normal:
            loc, scale = mean, std
        else:
            loc, scale = -mean / std, 1.0 / std
        self.loc = loc.contiguous()
        self.scale = scale.contiguous()

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        load_lazy_buffers(self, state_dict, prefix, ["loc", "scale"])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        base = super().extra_repr()
        extra = f"standard_normal={self.standard_normal}"
        if not self.initialized:
            extra += ", uninitialized"
        return f"{base}, {extra}" if base else extra
