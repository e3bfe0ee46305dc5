"""Exploration modules that perturb the action: epsilon-greedy and additive Gaussian noise.

Each module reads the action a policy wrote, perturbs it, and writes it back
(inside the action spec).  They act only while the exploration type is
``RANDOM``; under ``MODE``/``MEAN``/``DETERMINISTIC`` they pass the
TensorDict through.  Their noise scale anneals linearly with :meth:`step`,
and the scale and the step count are buffers, so a checkpoint restores them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rlbricks.modules._checks import check_int
from rlbricks.modules._checks import check_number
from rlbricks.modules._common import TensorDictModuleBase
from rlbricks.modules._common import read_key
from rlbricks.modules._errors import ModuleValueError
from rlbricks.modules._exploration import ExplorationType
from rlbricks.modules._exploration import exploration_type
from rlbricks.modules._spec_utils import fit_spec
from rlbricks.modules._spec_utils import project
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import OneHot
from rlbricks.specs import TensorSpec
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import unravel_key

__all__ = [
    "AdditiveGaussianModule",
    "EGreedyModule",
    "LinearAnnealing",
    "batch_view",
    "leaf_spec",
]


def leaf_spec(spec: Any, key: NestedKey, owner: str) -> TensorSpec[Any]:
    """The spec of the action: ``spec`` itself, or ``spec[key]`` for a Composite."""
    if isinstance(spec, Composite):
        if key not in spec:
            raise ModuleValueError(
                f"{owner}: the Composite spec has no entry {key!r}; its keys are "
                f"{spec.keys(include_nested=True, leaves_only=True)}"
            )
        spec = spec[key]
    if not isinstance(spec, TensorSpec):
        raise ModuleValueError(
            f"{owner} needs the action spec (e.g. env.action_spec), got {type(spec).__name__}"
        )
    return spec


def batch_view(x: Tensor, batch: torch.Size, ndim: int) -> Tensor:
    """``x`` (``batch.numel()`` elements) shaped ``[*batch, 1, ..., 1]`` with ``ndim`` dims."""
    return x.reshape((*batch, *([1] * (ndim - len(batch)))))


class LinearAnnealing(TensorDictModuleBase):
    """Base of the exploration modules: a scale annealed linearly from ``init`` to ``end``.

    After ``k`` frames (summed over calls to :meth:`step`), the scale is
    ``init + (end - init) * min(k / annealing_num_steps, 1)``.  The scale
    (buffer named ``scale_name``) and ``k`` (buffer ``steps``) are in the
    ``state_dict``.

    ``init`` and ``end`` (the arguments ``<scale_name>_init`` and
    ``<scale_name>_end`` of the subclass) must pass ``rule`` (see
    ``_checks.check_number``; ``meaning`` explains them in the message);
    ``annealing_num_steps`` must be a positive int (whole floats such as
    ``1e6`` are accepted).
    """

    steps: Tensor

    def __init__(
        self,
        scale_name: str,
        init: float,
        end: float,
        annealing_num_steps: int,
        rule: str = ">= 0",
        meaning: str = "",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self._scale_name = scale_name
        self._init = check_number(owner, f"{scale_name}_init", init, rule, meaning)
        self._end = check_number(owner, f"{scale_name}_end", end, rule, meaning)
        self.annealing_num_steps = check_int(
            owner, "annealing_num_steps", annealing_num_steps, whole_floats=True
        )
        self.register_buffer(scale_name, torch.tensor(self._init))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def step(self, frames: int = 1) -> None:
        """Advance the schedule by ``frames`` frames (call it once per collected batch).

        Example:
            >>> from rlbricks.modules import EGreedyModule
            >>> from rlbricks.specs import Categorical
            >>> explore = EGreedyModule(Categorical(4), eps_init=1.0, eps_end=0.0,
            ...                         annealing_num_steps=10)
            >>> explore.step(4)
            >>> round(float(explore.eps), 6)
            0.6
        """
        self.steps.add_(int(frames))
        fraction = min(int(self.steps) / self.annealing_num_steps, 1.0)
        getattr(self, self._scale_name).fill_(self._init + (self._end - self._init) * fraction)

    def _active(self) -> bool:
        return exploration_type() is ExplorationType.RANDOM


class EGreedyModule(LinearAnnealing):
    """Epsilon-greedy exploration: with probability ``eps``, replace the action by a random one.

    Each element of the batch draws independently.  Random actions come from
    the action spec (``spec.rand``), so they are valid actions of the spec's
    encoding (one-hot or index) and respect the spec's own mask; with
    ``action_mask_key``, they are drawn uniformly among the actions allowed by
    the mask read from the TensorDict.  ``eps`` anneals linearly from
    ``eps_init`` to ``eps_end`` over ``annealing_num_steps`` frames counted
    by :meth:`step`.  Active only under ``ExplorationType.RANDOM``.

    Args:
        spec: the action spec (a leaf spec or a Composite holding ``action_key``).
        eps_init: the probability of a random action at the start.
        eps_end: the probability after ``annealing_num_steps`` frames.
        annealing_num_steps: the length of the linear schedule, in frames.
        action_key: the action entry.
        action_mask_key: the entry of the action mask (bool, ``True`` =
            allowed, one-hot layout ``[..., n]``), if any.

    A spec with environment batch dims (``Categorical(n, shape=(n_envs, 1))``)
    also serves actions with other leading dims: its environment dims are
    dropped when the action does not carry them.

    Raises:
        ModuleValueError: ``eps_init`` or ``eps_end`` outside ``[0, 1]``, a
            non-positive ``annealing_num_steps``, or a mask asked for with a
            spec that is not ``OneHot`` or ``Categorical``.

    Example:
        >>> import torch
        >>> from rlbricks.modules import EGreedyModule
        >>> from rlbricks.specs import Categorical
        >>> from rlbricks.tensordict import TensorDict
        >>> explore = EGreedyModule(Categorical(4), eps_init=1.0, eps_end=0.1,
        ...                         annealing_num_steps=100)
        >>> td = TensorDict({"action": torch.zeros(1000, dtype=torch.long)}, [1000])
        >>> bool((explore(td)["action"] != 0).any())  # eps = 1: random actions
        True
        >>> explore.step(100)
        >>> round(float(explore.eps), 6)
        0.1
    """

    eps: Tensor

    def __init__(
        self,
        spec: TensorSpec[Any],
        eps_init: float = 1.0,
        eps_end: float = 0.1,
        annealing_num_steps: int = 1000,
        action_key: NestedKey = "action",
        action_mask_key: NestedKey | None = None,
    ) -> None:
        super().__init__(
            "eps", eps_init, eps_end, annealing_num_steps, "in [0, 1]",
            "the probability of a random action",
        )  # fmt: skip
        self.eps_init = float(eps_init)
        self.eps_end = float(eps_end)
        self.action_key = unravel_key(action_key)
        self.action_mask_key = None if action_mask_key is None else unravel_key(action_mask_key)
        self.spec = leaf_spec(spec, self.action_key, "EGreedyModule")
        if self.action_mask_key is not None and not isinstance(self.spec, (OneHot, Categorical)):
            raise ModuleValueError(
                "EGreedyModule: action masks need a OneHot or Categorical action spec, got "
                f"{type(self.spec).__name__}"
            )
        self.in_keys = [self.action_key]
        if self.action_mask_key is not None:
            self.in_keys.append(self.action_mask_key)
        self.out_keys = [self.action_key]

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Replace each action by a random one with probability ``eps`` (under ``RANDOM`` only).

        Example:
            >>> import torch
            >>> from rlbricks.modules import EGreedyModule, set_exploration_type
            >>> from rlbricks.specs import OneHot
            >>> from rlbricks.tensordict import TensorDict
            >>> explore = EGreedyModule(OneHot(3), action_mask_key="mask")
            >>> td = TensorDict({"action": torch.tensor([[True, False, False]] * 50),
            ...                  "mask": torch.tensor([[False, True, True]] * 50)}, [50])
            >>> bool(explore(td.clone())["action"][:, 0].any())  # masked action never drawn
            False
            >>> with set_exploration_type("mode"):
            ...     bool(explore(td.clone())["action"][:, 0].all())  # exploration off
            True
        """
        if not self._active():
            return tensordict
        action: Tensor = read_key(self, tensordict, self.action_key)
        batch = tensordict.batch_size
        eps = self.eps.to(action.device)
        explore = torch.rand(batch, device=action.device) < eps
        random = self._random_actions(tensordict, action)
        explore = batch_view(explore, batch, action.ndim)
        tensordict.set(self.action_key, torch.where(explore, random.to(action.dtype), action))
        return tensordict

    def _random_actions(self, tensordict: TensorDict, action: Tensor) -> Tensor:
        spec = self.spec
        if self.action_mask_key is not None:
            mask = read_key(self, tensordict, self.action_mask_key).to(action.device, torch.bool)
            n = mask.shape[-1]
            if isinstance(spec, OneHot):
                mask = mask.expand(action.shape)
            index = torch.multinomial(mask.reshape(-1, n).float(), 1)
            if isinstance(spec, OneHot):
                return torch.nn.functional.one_hot(index.reshape(mask.shape[:-1]), n)
            if index.numel() != action.numel():
                raise ModuleValueError(
                    f"EGreedyModule: the mask {self.action_mask_key!r} of shape "
                    f"{tuple(mask.shape)} does not match the action of shape {tuple(action.shape)}"
                    " (expected [*action.shape, n])"
                )
            return index.reshape(action.shape)
        spec = fit_spec(spec, action.shape, "EGreedyModule")
        random: Tensor = spec.rand(action.shape[: action.ndim - spec.ndim])
        return random.to(action.device)

    def extra_repr(self) -> str:
        """The keys and the schedule, shown by ``repr(module)``."""
        return (
            f"{super().extra_repr()}, eps_init={self.eps_init}, eps_end={self.eps_end}, "
            f"annealing_num_steps={self.annealing_num_steps}"
        )


class AdditiveGaussianModule(LinearAnnealing):
    """Gaussian exploration noise added to a continuous action, projected into the spec.

    The action becomes ``spec.project(action + sigma * (mean + std * N(0, 1)))``:
    for a ``Bounded`` spec, the noisy action is clamped into the box.
    ``sigma`` anneals linearly from ``sigma_init`` to ``sigma_end`` over
    ``annealing_num_steps`` frames counted by :meth:`step`.  Active only under
    ``ExplorationType.RANDOM``.

    Args:
        spec: the action spec (a leaf spec or a Composite holding ``action_key``).
        sigma_init: the noise scale at the start.
        sigma_end: the noise scale after ``annealing_num_steps`` frames.
        annealing_num_steps: the length of the linear schedule, in frames.
        mean: the mean of the unscaled noise.
        std: the standard deviation of the unscaled noise.
        action_key: the action entry.

    Raises:
        ModuleValueError: a negative or non-finite ``sigma_init``, ``sigma_end``
            or ``std``, a non-finite ``mean``, or a non-positive
            ``annealing_num_steps``.

    Example:
        >>> import torch
        >>> from rlbricks.modules import AdditiveGaussianModule
        >>> from rlbricks.specs import Bounded
        >>> from rlbricks.tensordict import TensorDict
        >>> noise = AdditiveGaussianModule(Bounded(-1.0, 1.0, shape=(2,)), sigma_init=5.0)
        >>> td = noise(TensorDict({"action": torch.zeros(100, 2)}, [100]))
        >>> bool(td["action"].abs().max() <= 1.0), bool(td["action"].std() > 0.1)
        (True, True)
    """

    sigma: Tensor

    def __init__(
        self,
        spec: TensorSpec[Any],
        sigma_init: float = 1.0,
        sigma_end: float = 0.1,
        annealing_num_steps: int = 1000,
        mean: float = 0.0,
        std: float = 1.0,
        action_key: NestedKey = "action",
    ) -> None:
        super().__init__(
            "sigma", sigma_init, sigma_end, annealing_num_steps, ">= 0", "the noise scale"
        )
        self.sigma_init = float(sigma_init)
        self.sigma_end = float(sigma_end)
        owner = "AdditiveGaussianModule"
        self.mean = check_number(owner, "mean", mean, "finite", "the mean of the unscaled noise")
        self.std = check_number(owner, "std", std, ">= 0", "the std of the unscaled noise")
        self.action_key = unravel_key(action_key)
        self.spec = leaf_spec(spec, self.action_key, "AdditiveGaussianModule")
        self.in_keys = [self.action_key]
        self.out_keys = [self.action_key]

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Add the scaled noise to the action and project it (under ``RANDOM`` only).

        Example:
            >>> import torch
            >>> from rlbricks.modules import AdditiveGaussianModule, set_exploration_type
            >>> from rlbricks.specs import Bounded
            >>> from rlbricks.tensordict import TensorDict
            >>> noise = AdditiveGaussianModule(Bounded(-1.0, 1.0, shape=(1,)))
            >>> with set_exploration_type("deterministic"):
            ...     noise(TensorDict({"action": torch.full((1,), 0.5)}))["action"]
            tensor([0.5000])
        """
        if not self._active():
            return tensordict
        action: Tensor = read_key(self, tensordict, self.action_key)
        noise = (torch.randn_like(action) * self.std + self.mean) * self.sigma.to(action.device)
        tensordict.set(
            self.action_key, project(self.spec, action + noise, "AdditiveGaussianModule")
        )
        return tensordict

    def extra_repr(self) -> str:
        """The keys and the schedule, shown by ``repr(module)``."""
        return (
            f"{super().extra_repr()}, sigma_init={self.sigma_init}, sigma_end={self.sigma_end}, "
            f"annealing_num_steps={self.annealing_num_steps}"
        )
