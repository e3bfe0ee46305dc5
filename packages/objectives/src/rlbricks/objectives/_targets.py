"""Target-network updaters: ``SoftUpdate`` (Polyak averaging) and ``HardUpdate`` (periodic copy)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rlbricks.objectives._errors import LossValueError
from rlbricks.objectives._loss_base import LossModule

__all__ = ["HardUpdate", "SoftUpdate", "TargetNetUpdater"]


class TargetNetUpdater:
    """The base of the target updaters: the ``(network, target)`` pairs of a loss.

    A subclass implements :meth:`step`.  :meth:`init_` copies every network
    into its target at once (the copies made by the loss already start equal,
    so call it only after loading other weights into the networks).

    Args:
        loss: a loss with at least one delayed network (``delay_*=True``).

    Raises:
        LossValueError: ``loss`` is not a :class:`LossModule` or has no target network.

    Example:
        >>> from torch import nn
        >>> from rlbricks.modules import QValueActor
        >>> from rlbricks.objectives import DQNLoss, TargetNetUpdater
        >>> updater = TargetNetUpdater(DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot")))
        >>> len(updater.pairs)
        1
    """

    def __init__(self, loss: LossModule) -> None:
        if not isinstance(loss, LossModule):
            raise LossValueError(
                f"{type(self).__name__} updates the target networks of a LossModule, got "
                f"{type(loss).__name__}"
            )
        pairs = loss.target_pairs()
        if not pairs:
            raise LossValueError(
                f"{type(self).__name__}: {type(loss).__name__} has no target network; build it "
                "with delay_value=True / delay_actor=True / delay_qvalue=True"
            )
        self.loss = loss
        self._cache: tuple[Any, list[tuple[list[torch.Tensor], list[torch.Tensor]]]] | None = None
        _ = self.pairs  # fails early when a target does not match its network

    @property
    def pairs(self) -> list[tuple[list[torch.Tensor], list[torch.Tensor]]]:
        """Per target network: the network's tensors and the target's (parameters, then buffers).

        Cached, and read afresh after the loss moved (``loss.to(device)``) or
        registered a network.

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import QValueActor
            >>> from rlbricks.objectives import DQNLoss, HardUpdate
            >>> sources, targets = HardUpdate(DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))).pairs[0]
            >>> [tuple(t.shape) for t in targets]
            [(2, 3), (2,)]
        """
        version = self.loss.__dict__.get("_structure_version")
        if self._cache is None or self._cache[0] != version:
            pairs = [_tensors(source, target) for source, target in self.loss.target_pairs()]
            self._cache = (version, pairs)
        return self._cache[1]

    @torch.no_grad()
    def init_(self) -> None:
        """Copy every network's parameters and buffers into its target.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from rlbricks.modules import QValueActor
            >>> from rlbricks.objectives import DQNLoss, HardUpdate
            >>> loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))
            >>> with torch.no_grad():
            ...     _ = loss.value_network[0].module.weight.add_(1.0)
            >>> HardUpdate(loss).init_()
            >>> torch.equal(loss.target_value_network[0].module.weight,
            ...             loss.value_network[0].module.weight)
            True
        """
        for sources, targets in self.pairs:
            torch._foreach_copy_(targets, sources)

    def step(self) -> None:
        """Update the targets (called once per optimisation step)."""
        raise NotImplementedError(f"{type(self).__name__} must implement step()")


def _tensors(source: nn.Module, target: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Matching lists of the parameters then buffers of ``source`` and ``target``."""
    src = list(source.parameters()) + list(source.buffers())
    dst = list(target.parameters()) + list(target.buffers())
    if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src, dst)):
        raise LossValueError(
            "a target network does not match its network (different parameters or shapes); "
            "was the network changed after the loss was built?"
        )
    return src, dst


class SoftUpdate(TargetNetUpdater):
    """Polyak averaging of every target network: ``target <- (1 - tau) target + tau network``.

    Each :meth:`step` moves every target parameter a fraction ``tau`` toward
    the network's parameter, ``eps = 1 - tau`` being the fraction kept.
    Floating buffers are averaged the same way, other buffers (counters) are
    copied.  Give ``tau`` or ``eps``, not both; the default is ``tau=0.005``.

    Args:
        loss: a loss with target networks.
        tau: the step toward the network, in ``(0, 1]``.
        eps: ``1 - tau``, the fraction of the target kept, in ``[0, 1)``.

    Raises:
        LossValueError: both ``tau`` and ``eps``, a value out of range, or a loss
            without target network.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import QValueActor
        >>> from rlbricks.objectives import DQNLoss, SoftUpdate
        >>> loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))
        >>> net, target = loss.value_network[0].module, loss.target_value_network[0].module
        >>> with torch.no_grad():
        ...     _ = net.bias.fill_(1.0)
        ...     _ = target.bias.fill_(0.0)
        >>> updater = SoftUpdate(loss, tau=0.1)
        >>> updater.step()
        >>> target.bias.data
        tensor([0.1000, 0.1000])
    """

    def __init__(
        self, loss: LossModule, *, tau: float | None = None, eps: float | None = None
    ) -> None:
        if tau is not None and eps is not None:
            raise LossValueError("SoftUpdate: give tau or eps (= 1 - tau), not both")
        if eps is not None:
            tau = 1.0 - eps
        if tau is None:
            tau = 0.005
        if not 0.0 < tau <= 1.0:
            raise LossValueError(
                f"SoftUpdate: tau must be in (0, 1] (eps in [0, 1)), got tau={tau}"
            )
        super().__init__(loss)
        self.tau = float(tau)

    @property
    def eps(self) -> float:
        """``1 - tau``: the fraction of the target kept at each step.

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import QValueActor
            >>> from rlbricks.objectives import DQNLoss, SoftUpdate
            >>> loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))
            >>> SoftUpdate(loss, eps=0.99).eps
            0.99
        """
        return round(1.0 - self.tau, 12)

    @torch.no_grad()
    def step(self) -> None:
        """Move every target toward its network by ``tau``.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from rlbricks.modules import QValueActor
            >>> from rlbricks.objectives import DQNLoss, SoftUpdate
            >>> loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))
            >>> SoftUpdate(loss, tau=1.0).step()  # tau=1 copies
        """
        floats: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        for sources, targets in self.pairs:
            for source, target in zip(sources, targets):
                if target.is_floating_point():
                    floats[0].append(target)
                    floats[1].append(source)
                else:
                    target.copy_(source)
        if floats[0]:
            torch._foreach_lerp_(floats[0], floats[1], self.tau)


class HardUpdate(TargetNetUpdater):
    """Copy every network into its target once every ``value_network_update_interval`` steps.

    The copy happens at the ``N``-th, ``2N``-th, ... call of :meth:`step`
    (``N = value_network_update_interval``); the calls in between only count.

    Args:
        loss: a loss with target networks.
        value_network_update_interval: ``N``, the number of steps between copies.

    Raises:
        LossValueError: ``N < 1`` or a loss without target network.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import QValueActor
        >>> from rlbricks.objectives import DQNLoss, HardUpdate
        >>> loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))
        >>> net, target = loss.value_network[0].module, loss.target_value_network[0].module
        >>> updater = HardUpdate(loss, value_network_update_interval=2)
        >>> with torch.no_grad():
        ...     _ = net.bias.fill_(1.0)
        >>> updater.step()
        >>> bool((target.bias == 1.0).all())
        False
        >>> updater.step()
        >>> bool((target.bias == 1.0).all())
        True
    """

    def __init__(self, loss: LossModule, *, value_network_update_interval: int = 1000) -> None:
        if int(value_network_update_interval) != value_network_update_interval or (
            value_network_update_interval < 1
        ):
            raise LossValueError(
                "HardUpdate: value_network_update_interval must be an integer >= 1, got "
                f"{value_network_update_interval!r}"
            )
        super().__init__(loss)
        self.value_network_update_interval = int(value_network_update_interval)
        self.counter = 0

    def step(self) -> None:
        """Count one step; copy the networks into the targets every ``N`` steps.

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import QValueActor
            >>> from rlbricks.objectives import DQNLoss, HardUpdate
            >>> updater = HardUpdate(DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot")), value_network_update_interval=3)
            >>> for _ in range(4):
            ...     updater.step()
            >>> updater.counter
            4
        """
        self.counter += 1
        if self.counter % self.value_network_update_interval == 0:
            self.init_()
