"""``ProbabilisticTensorDictModule``: build a distribution from TensorDict entries and sample it."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import torch
from torch.distributions import Distribution

from rlbricks.modules._common import KeysLike
from rlbricks.modules._common import TensorDictModuleBase
from rlbricks.modules._common import as_keys
from rlbricks.modules._common import read_key
from rlbricks.modules._errors import ModuleValueError
from rlbricks.modules._exploration import ExplorationType
from rlbricks.modules._exploration import as_exploration_type
from rlbricks.modules._exploration import explicit_exploration_type
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import unravel_key

__all__ = ["ProbabilisticTensorDictModule", "default_distribution_class", "sample_for"]

DistributionFactory = Callable[..., Distribution]


def default_distribution_class() -> DistributionFactory:
    """The distribution used when none is given: ``Delta`` (a point mass on its ``param``)."""
    import rlbricks.modules  # at call time: the package is fully imported by then

    delta: DistributionFactory = rlbricks.modules.Delta
    return delta


def _property(dist: Distribution, name: str) -> torch.Tensor | None:
    """``dist.<name>``, or ``None`` when the distribution does not implement it."""
    try:
        value = getattr(dist, name)
    except (AttributeError, NotImplementedError):
        return None
    return value if isinstance(value, torch.Tensor) else None


def _mode(dist: Distribution) -> torch.Tensor | None:
    mode = _property(dist, "mode")
    if mode is not None and not bool(torch.isnan(mode).any()):
        return mode
    # fallbacks for distributions without a usable ``mode``
    if isinstance(dist, torch.distributions.OneHotCategorical):
        probs = dist.probs
        return torch.nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)
    class_probs = _property(dist, "probs")
    if class_probs is not None and isinstance(dist, torch.distributions.Categorical):
        return class_probs.argmax(-1)
    return None


def sample_for(dist: Distribution, kind: ExplorationType) -> torch.Tensor:
    """The value of ``dist`` that the exploration type ``kind`` asks for.

    ``RANDOM``: ``rsample()`` when the distribution has it, else ``sample()``;
    ``MODE``: ``dist.mode`` (argmax for categorical ones); ``MEAN``:
    ``dist.mean``; ``DETERMINISTIC``: ``dist.deterministic_sample`` when it
    exists, else the mode, else the mean.

    Raises:
        ModuleValueError: the distribution cannot give that value.
    """
    if kind is ExplorationType.RANDOM:
        return dist.rsample() if dist.has_rsample else dist.sample()
    if kind is ExplorationType.MODE:
        value = _mode(dist)
    elif kind is ExplorationType.MEAN:
        value = _property(dist, "mean")
    else:
        value = _property(dist, "deterministic_sample")
        if value is None:
            value = _mode(dist)
        if value is None:
            value = _property(dist, "mean")
    if value is None:
        raise ModuleValueError(
            f"{type(dist).__name__} has no {kind.value} value; choose another exploration "
            "type with set_exploration_type (e.g. RANDOM or DETERMINISTIC)"
        )
    return value


class ProbabilisticTensorDictModule(TensorDictModuleBase):
    """Build a distribution from TensorDict entries and write a value of it as the action.

    The entries named by ``in_keys`` become the keyword arguments of
    ``distribution_class``.  With a list, the keyword of a key is its last part
    (``["loc", "scale"]`` calls ``Normal(loc=td["loc"], scale=td["scale"])``;
    ``("agent", "logits")`` gives ``logits=``).  With a mapping, the mapping goes from
    keyword to key: ``{"logits": "action_logits"}``.

    What is written under ``out_keys`` depends on the exploration type (see
    :class:`ExplorationType`): the one set by :class:`set_exploration_type`,
    or ``default_interaction_type`` when none is set.  ``RANDOM`` samples
    (``rsample()`` when available, so gradients flow), ``MODE``/``MEAN`` write
    ``dist.mode``/``dist.mean``, and ``DETERMINISTIC`` writes
    ``dist.deterministic_sample`` when the distribution has one, else the
    mode, else the mean.

    Args:
        in_keys: the distribution's parameters, as a list of keys or a
            ``{keyword: key}`` mapping.
        out_keys: the key of the sample (one key).
        distribution_class: a ``torch.distributions.Distribution`` subclass
            or any callable returning one; ``None`` means
            :class:`~rlbricks.modules.Delta`.
        distribution_kwargs: extra keyword arguments of the distribution
            (e.g. ``{"low": -1.0, "high": 1.0}``).
        return_log_prob: also write the log-probability of the sample.
        log_prob_key: where the log-probability goes.
        default_interaction_type: the exploration type used when none is set.

    Raises:
        ModuleValueError: not exactly one out_key, or an unknown exploration type.

    Example:
        >>> import torch
        >>> from torch.distributions import Normal
        >>> from rlbricks.modules import ExplorationType, ProbabilisticTensorDictModule
        >>> from rlbricks.modules import set_exploration_type
        >>> from rlbricks.tensordict import TensorDict
        >>> head = ProbabilisticTensorDictModule(
        ...     ["loc", "scale"], ["action"], Normal, return_log_prob=True)
        >>> td = TensorDict({"loc": torch.zeros(8, 2), "scale": torch.ones(8, 2)}, [8])
        >>> sorted(head(td).keys())
        ['action', 'loc', 'sample_log_prob', 'scale']
        >>> with set_exploration_type(ExplorationType.MODE):
        ...     head(td)["action"].abs().max()
        tensor(0.)
    """

    def __init__(
        self,
        in_keys: KeysLike | Mapping[str, NestedKey],
        out_keys: KeysLike = "action",
        distribution_class: DistributionFactory | None = None,
        distribution_kwargs: Mapping[str, Any] | None = None,
        return_log_prob: bool = False,
        log_prob_key: NestedKey = "sample_log_prob",
        default_interaction_type: ExplorationType | str = ExplorationType.RANDOM,
    ) -> None:
        super().__init__()
        if isinstance(in_keys, Mapping):
            self.dist_keys: dict[str, NestedKey] = {
                str(name): unravel_key(key) for name, key in in_keys.items()
            }
        else:
            keys = as_keys(in_keys, "in_keys")
            self.dist_keys = {(k if isinstance(k, str) else k[-1]): k for k in keys}
            if len(self.dist_keys) != len(keys):
                raise ModuleValueError(
                    f"in_keys {keys} give two distribution arguments the same name; pass a "
                    "mapping {keyword: key} instead"
                )
        if not self.dist_keys:
            raise ModuleValueError(
                "in_keys is empty: name the entries holding the distribution's parameters"
            )
        sample_keys = as_keys(out_keys, "out_keys")
        if len(sample_keys) != 1:
            raise ModuleValueError(
                f"out_keys must hold exactly one key (where the sample goes), got {sample_keys}"
            )
        self.sample_key: NestedKey = sample_keys[0]
        if distribution_class is None:
            distribution_class = default_distribution_class()
        self.distribution_class = distribution_class
        self.distribution_kwargs = dict(distribution_kwargs or {})
        self.return_log_prob = return_log_prob
        self.log_prob_key: NestedKey = unravel_key(log_prob_key)
        self.default_interaction_type = as_exploration_type(default_interaction_type)
        self.in_keys = list(self.dist_keys.values())
        self.out_keys = [self.sample_key]
        if return_log_prob:
            self.out_keys.append(self.log_prob_key)

    def get_dist(self, tensordict: TensorDict) -> Distribution:
        """The distribution built from the entries of ``tensordict``.

        Raises:
            ModuleKeyError: a parameter entry is missing.
            ModuleValueError: the distribution rejects the keyword arguments.

        Example:
            >>> import torch
            >>> from rlbricks.modules import ProbabilisticTensorDictModule
            >>> from rlbricks.tensordict import TensorDict
            >>> head = ProbabilisticTensorDictModule(
            ...     {"logits": "scores"}, "action", torch.distributions.Categorical)
            >>> head.get_dist(TensorDict({"scores": torch.zeros(2)})).probs
            tensor([0.5000, 0.5000])
        """
        params = {name: read_key(self, tensordict, key) for name, key in self.dist_keys.items()}
        try:
            return self.distribution_class(**params, **self.distribution_kwargs)
        except TypeError as err:
            name = getattr(self.distribution_class, "__name__", repr(self.distribution_class))
            raise ModuleValueError(
                f"{name}(**{sorted(params)}, **{sorted(self.distribution_kwargs)}) failed: {err}. "
                "in_keys name the distribution's keyword arguments; pass a mapping "
                "{keyword: key} when the entry names differ"
            ) from err

    def interaction_type(self) -> ExplorationType:
        """The exploration type in force: the one set, else ``default_interaction_type``.

        Example:
            >>> from rlbricks.modules import ProbabilisticTensorDictModule, set_exploration_type
            >>> head = ProbabilisticTensorDictModule(["loc"], "action", default_interaction_type="mode")
            >>> head.interaction_type().name
            'MODE'
            >>> with set_exploration_type("random"):
            ...     head.interaction_type().name
            'RANDOM'
        """
        current = explicit_exploration_type()
        return self.default_interaction_type if current is None else current

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Build the distribution, write the value the exploration type asks for (and its log-prob).

        Example:
            >>> import torch
            >>> from rlbricks.modules import ProbabilisticTensorDictModule, set_exploration_type
            >>> from rlbricks.tensordict import TensorDict
            >>> head = ProbabilisticTensorDictModule(["logits"], "action", torch.distributions.Categorical)
            >>> with set_exploration_type("mode"):
            ...     head(TensorDict({"logits": torch.tensor([0.0, 3.0, 1.0])}))["action"]
            tensor(1)
        """
        dist = self.get_dist(tensordict)
        sample = sample_for(dist, self.interaction_type())
        tensordict.set(self.sample_key, sample)
        if self.return_log_prob:
            tensordict.set(self.log_prob_key, dist.log_prob(sample))
        return tensordict

    def extra_repr(self) -> str:
        """The keys and the distribution, shown by ``repr(module)``."""
        name = getattr(self.distribution_class, "__name__", repr(self.distribution_class))
        return f"{super().extra_repr()}, distribution_class={name}"
