"""Tensor specifications: the shape, dtype, device and domain of every entry an
environment or a policy reads and writes.

A spec answers four questions about a value: is it valid (``is_in``,
``assert_is_in``), give me a valid one (``rand``, ``zero``), make this one
valid (``project``), and convert this raw data (``encode``).
:class:`Composite` nests specs by key to describe whole TensorDicts.

Example:
    >>> import torch
    >>> from rlbricks.specs import Bounded, Categorical, Composite, Unbounded
    >>> spec = Composite(
    ...     observation=Unbounded(shape=(3,)),
    ...     action=Categorical(2),
    ...     next={"reward": Bounded(low=-1.0, high=1.0, shape=(1,))},
    ... )
    >>> td = spec.rand()
    >>> spec.is_in(td)
    True
"""

from rlbricks.specs._base import TensorSpec
from rlbricks.specs._binary import Binary
from rlbricks.specs._bounded import Bounded
from rlbricks.specs._categorical import Categorical
from rlbricks.specs._composite import Composite
from rlbricks.specs._errors import SpecError
from rlbricks.specs._errors import SpecKeyError
from rlbricks.specs._errors import SpecTypeError
from rlbricks.specs._errors import SpecValueError
from rlbricks.specs._multi_categorical import MultiCategorical
from rlbricks.specs._multi_one_hot import MultiOneHot
from rlbricks.specs._one_hot import OneHot
from rlbricks.specs._unbounded import Unbounded

__version__ = "0.1.1"

__all__ = [
    # base
    "TensorSpec",
    # leaf specs
    "Unbounded",
    "Bounded",
    "Categorical",
    "OneHot",
    "MultiCategorical",
    "MultiOneHot",
    "Binary",
    # containers
    "Composite",
    # errors
    "SpecError",
    "SpecValueError",
    "SpecKeyError",
    "SpecTypeError",
]
