"""The exception family of ``rlbricks.objectives``: :class:`LossError` and its subclasses.

The value estimators' errors (:class:`~rlbricks.objectives.value.ValueEstimatorError`
and its subclasses) are a branch of this family, defined in
``rlbricks.objectives.value``.
"""

from __future__ import annotations

__all__ = ["LossError", "LossKeyError", "LossValueError"]


class LossError(Exception):
    """The root of every exception that ``rlbricks.objectives`` raises.

    It derives from ``Exception`` only: ``except LossError`` catches every
    error of a loss, a target updater or a value estimator, whichever built-in
    (``ValueError``, ``KeyError``, ``TypeError``) the raised subclass also is.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.objectives import DQNLoss, LossError
        >>> from rlbricks.modules import QValueActor
        >>> from rlbricks.tensordict import TensorDict
        >>> loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))
        >>> try:
        ...     loss(TensorDict({"observation": torch.zeros(4, 3)}, [4]))
        ... except LossError as err:
        ...     print(type(err).__name__)
        LossKeyError
    """


class LossValueError(LossError, ValueError):
    """A loss was built with inconsistent arguments or called against its contract.

    Examples: an unknown ``loss_function``, a key name that the loss does not
    have, target updates asked of a loss without target networks, an input
    whose shape does not fit the networks.  Both a ``ValueError`` and a
    :class:`LossError`.

    Example:
        >>> from torch import nn
        >>> from rlbricks.objectives import DQNLoss, LossValueError
        >>> from rlbricks.modules import QValueActor
        >>> loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))
        >>> try:
        ...     loss.set_keys(rewrd="r")
        ... except LossValueError as err:
        ...     print(str(err).split(";")[0])
        DQNLoss has no key named 'rewrd'
    """


class LossKeyError(LossError, KeyError):
    """An entry that a loss reads is missing from its input TensorDict.

    Both a ``KeyError`` and a :class:`LossError`; the message names the loss,
    the missing key and the keys the TensorDict holds.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.objectives import DQNLoss, LossKeyError
        >>> from rlbricks.modules import QValueActor
        >>> from rlbricks.tensordict import TensorDict
        >>> loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))
        >>> try:
        ...     loss(TensorDict({"observation": torch.zeros(4, 3)}, [4]))
        ... except KeyError as err:
        ...     print(str(err).split(";")[0])
        DQNLoss reads 'action', which the TensorDict does not hold
    """

    def __str__(self) -> str:
        # KeyError quotes its argument; a message reads better unquoted.
        return str(self.args[0]) if self.args else ""
