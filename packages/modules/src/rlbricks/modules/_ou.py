"""``OrnsteinUhlenbeckProcessModule``: temporally correlated exploration noise (DDPG)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from rlbricks.modules._checks import check_int
from rlbricks.modules._checks import check_number
from rlbricks.modules._common import read_key
from rlbricks.modules._errors import ModuleValueError
from rlbricks.modules._exploration_modules import LinearAnnealing
from rlbricks.modules._exploration_modules import batch_view
from rlbricks.modules._exploration_modules import leaf_spec
from rlbricks.modules._spec_utils import project
from rlbricks.specs import TensorSpec
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import unravel_key

__all__ = ["OrnsteinUhlenbeckProcessModule"]


class OrnsteinUhlenbeckProcessModule(LinearAnnealing):
    """Ornstein-Uhlenbeck exploration noise added to a continuous action, projected into the spec.

    The noise follows, independently for every element of the batch,

    ``x[t+1] = x[t] + theta * (mu - x[t]) * dt + sigma_t * sqrt(dt) * N(0, 1)``

    and the action becomes ``spec.project(action + eps * x[t+1])``.  The noise
    state is kept **in the TensorDict** — ``"_ou_prev_noise"`` (shaped like
    the action) and ``"_ou_steps"`` (``[*batch, 1]``, steps since the episode
    started) at the root, which ``step_mdp`` carries to the next step — so
    one module serves any number of batched environments.  The state restarts
    from ``x0`` where the entry ``is_init_key`` is ``True`` (episode starts,
    as written by the ``InitTracker`` transform) and where the state entries
    are absent (the first step).

    With ``sigma_min``, ``sigma_t`` decreases linearly from ``sigma`` to
    ``sigma_min`` over the first ``n_steps_annealing`` steps of each episode;
    without it, ``sigma_t = sigma``.  Independently, the factor ``eps``
    anneals from ``eps_init`` to ``eps_end`` over ``annealing_num_steps``
    frames counted by :meth:`step`; it is a buffer, as is the frame count.
    Active only under ``ExplorationType.RANDOM``.

    Args:
        spec: the action spec (a leaf spec or a Composite holding ``action_key``).
        theta: the mean-reversion rate.
        sigma: the noise scale.
        dt: the time step of the process.
        x0: the initial noise (a number or a tensor broadcastable to the
            action); ``None`` means zeros.
        sigma_min: the final noise scale within an episode, if annealed.
        n_steps_annealing: the episode steps over which ``sigma`` goes to ``sigma_min``.
        is_init_key: the entry that flags episode starts.
        mu: the mean the noise reverts to.
        eps_init: the factor applied to the noise at the start of training.
        eps_end: the factor after ``annealing_num_steps`` frames.
        annealing_num_steps: the length of the ``eps`` schedule, in frames.
        action_key: the action entry.

    Raises:
        ModuleValueError: a negative ``theta``, ``sigma``, ``sigma_min``,
            ``eps_init`` or ``eps_end``, ``sigma_min > sigma``, ``dt <= 0``,
            a non-finite number (``mu``, ``x0``...), or a non-positive
            ``n_steps_annealing`` or ``annealing_num_steps``.

    Example:
        >>> import torch
        >>> from rlbricks.modules import OrnsteinUhlenbeckProcessModule
        >>> from rlbricks.specs import Bounded
        >>> from rlbricks.tensordict import TensorDict
        >>> ou = OrnsteinUhlenbeckProcessModule(Bounded(-1.0, 1.0, shape=(2,)))
        >>> td = ou(TensorDict({"action": torch.zeros(4, 2)}, [4]))
        >>> td["_ou_prev_noise"].shape, td["_ou_steps"].view(-1).tolist()
        (torch.Size([4, 2]), [1, 1, 1, 1])
        >>> td["is_init"] = torch.tensor([[True], [False], [False], [False]])
        >>> ou(td)["_ou_steps"].view(-1).tolist()  # env 0 restarted its noise
        [1, 2, 2, 2]
    """

    eps: Tensor
    x0: Tensor

    def __init__(
        self,
        spec: TensorSpec[Any],
        theta: float = 0.15,
        sigma: float = 0.2,
        dt: float = 1e-2,
        x0: float | Tensor | None = None,
        sigma_min: float | None = None,
        n_steps_annealing: int = 1000,
        is_init_key: NestedKey = "is_init",
        mu: float = 0.0,
        eps_init: float = 1.0,
        eps_end: float = 0.1,
        annealing_num_steps: int = 1000,
        action_key: NestedKey = "action",
    ) -> None:
        super().__init__(
            "eps", eps_init, eps_end, annealing_num_steps, ">= 0", "the factor of the noise"
        )
        owner = "OrnsteinUhlenbeckProcessModule"
        self.theta = check_number(owner, "theta", theta, ">= 0", "the mean-reversion rate")
        self.sigma = check_number(owner, "sigma", sigma, ">= 0", "the noise scale")
        self.dt = check_number(owner, "dt", dt, "> 0", "the time step of the process")
        self.mu = check_number(owner, "mu", mu, "finite", "the mean the noise reverts to")
        self.sigma_min = None
        if sigma_min is not None:
            self.sigma_min = check_number(
                owner, "sigma_min", sigma_min, ">= 0", "the final noise scale of an episode"
            )
            if self.sigma_min > self.sigma:
                raise ModuleValueError(
                    f"{owner}: sigma_min={sigma_min!r} must be <= sigma={sigma!r}: the noise "
                    "scale decreases from sigma to sigma_min over each episode; swap them, or "
                    "pass sigma_min=None for a constant scale"
                )
        self.n_steps_annealing = check_int(
            owner, "n_steps_annealing", n_steps_annealing, whole_floats=True
        )
        self.eps_init = float(eps_init)
        self.eps_end = float(eps_end)
        x0_tensor = torch.as_tensor(0.0 if x0 is None else x0, dtype=torch.float32)
        if not bool(x0_tensor.isfinite().all()):
            raise ModuleValueError(
                f"{owner}: x0 must hold finite numbers (the initial noise), got {x0!r}"
            )
        self.register_buffer("x0", x0_tensor, persistent=False)  # configuration, not state
        self.action_key = unravel_key(action_key)
        self.is_init_key = unravel_key(is_init_key)
        self.noise_key: NestedKey = "_ou_prev_noise"
        self.steps_key: NestedKey = "_ou_steps"
        self.spec = leaf_spec(spec, self.action_key, "OrnsteinUhlenbeckProcessModule")
        self.in_keys = [self.action_key, self.noise_key, self.steps_key, self.is_init_key]
        self.out_keys = [self.action_key, self.noise_key, self.steps_key]

    def sigma_at(self, episode_steps: Tensor) -> Tensor:
        """The noise scale after ``episode_steps`` steps of an episode (element-wise).

        Example:
            >>> import torch
            >>> from rlbricks.modules import OrnsteinUhlenbeckProcessModule
            >>> from rlbricks.specs import Bounded
            >>> ou = OrnsteinUhlenbeckProcessModule(Bounded(-1.0, 1.0), sigma=0.2, sigma_min=0.1,
            ...                                     n_steps_annealing=10)
            >>> ou.sigma_at(torch.tensor([0, 5, 10, 50]))
            tensor([0.2000, 0.1500, 0.1000, 0.1000])
        """
        if self.sigma_min is None:
            return torch.full(episode_steps.shape, self.sigma, device=episode_steps.device)
        slope = (self.sigma - self.sigma_min) / self.n_steps_annealing
        return (self.sigma - slope * episode_steps.to(torch.float32)).clamp(min=self.sigma_min)

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Advance the noise of every environment and add it to the action (under ``RANDOM`` only).

        Example:
            >>> import torch
            >>> from rlbricks.modules import OrnsteinUhlenbeckProcessModule, set_exploration_type
            >>> from rlbricks.specs import Bounded
            >>> from rlbricks.tensordict import TensorDict
            >>> ou = OrnsteinUhlenbeckProcessModule(Bounded(-1.0, 1.0, shape=(1,)))
            >>> with set_exploration_type("mode"):
            ...     sorted(ou(TensorDict({"action": torch.zeros(1)})).keys())
            ['action']
        """
        if not self._active():
            return tensordict
        action: Tensor = read_key(self, tensordict, self.action_key)
        batch = tensordict.batch_size
        x0 = self.x0.to(action.device, action.dtype).expand(action.shape)
        prev = tensordict.get(self.noise_key, None)
        steps = tensordict.get(self.steps_key, None)
        if prev is None or steps is None:
            prev = x0
            steps = torch.zeros((*batch, 1), dtype=torch.long, device=action.device)
        is_init = tensordict.get(self.is_init_key, None)
        if is_init is not None:
            reset = is_init.reshape(batch).to(torch.bool)
            prev = torch.where(batch_view(reset, batch, action.ndim), x0, prev)
            steps = steps.masked_fill(reset.reshape(*batch, 1), 0)
        sigma = batch_view(self.sigma_at(steps), batch, action.ndim)
        noise = (
            prev
            + self.theta * (self.mu - prev) * self.dt
            + sigma * math.sqrt(self.dt) * torch.randn_like(prev)
        )
        tensordict.set(self.noise_key, noise)
        tensordict.set(self.steps_key, steps + 1)
        eps = self.eps.to(action.device)
        projected = project(self.spec, action + eps * noise, "OrnsteinUhlenbeckProcessModule")
        tensordict.set(self.action_key, projected)
        return tensordict

    def extra_repr(self) -> str:
        """The keys and the process parameters, shown by ``repr(module)``."""
        return (
            f"{super().extra_repr()}, theta={self.theta}, mu={self.mu}, sigma={self.sigma}, "
            f"dt={self.dt}, sigma_min={self.sigma_min}, eps_init={self.eps_init}, "
            f"eps_end={self.eps_end}"
        )
