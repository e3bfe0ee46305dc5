"""A Composite's values, entry by entry: pairing a value's keys with the sub-specs.

:class:`~rlbricks.specs.Composite` delegates here everything that walks a
given TensorDict (or dict) against its sub-specs: the membership test, the
all-at-once problem collection behind ``assert_is_in``, ``project`` and
``encode``.  Each function takes the Composite's ``{name: sub-spec}`` mapping;
nested Composites recurse through their own methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from rlbricks.specs._base import Mismatch
from rlbricks.specs._base import TensorSpec
from rlbricks.specs._errors import SpecKeyError
from rlbricks.specs._errors import SpecTypeError
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import is_tensordict

__all__ = ["encode_entries", "entries_in", "entry_mismatches", "project_entries"]


def entries_in(specs: Mapping[str, TensorSpec[Any]], value: Any) -> bool:
    """Whether ``value`` (a TensorDict or dict) holds every key of ``specs``, each in its spec.

    Extra keys are ignored; never raises.
    """
    if not (is_tensordict(value) or isinstance(value, Mapping)):
        return False
    for name, spec in specs.items():
        try:
            entry = value[name]
        except KeyError:
            return False
        if not spec.is_in(entry):
            return False
    return True


def entry_mismatches(specs: Mapping[str, TensorSpec[Any]], value: Any) -> list[Mismatch]:
    """Every problem of ``value`` against ``specs`` as ``(key path, message)`` pairs.

    A missing key is one problem; a present one contributes its sub-spec's
    problems, under its name.  Empty when ``value`` is in the spec.

    Example:
        >>> import torch
        >>> from rlbricks.specs import Categorical, Unbounded
        >>> specs = {"action": Categorical(3), "obs": Unbounded()}
        >>> for path, message in entry_mismatches(specs, {"action": torch.tensor(1.0)}):
        ...     print(path, message)
        ('action',) expected dtype torch.int64, got torch.float32
        ('obs',) missing; the value holds the keys ['action']
    """
    if not (is_tensordict(value) or isinstance(value, Mapping)):
        return [((), f"expected a TensorDict, got {type(value).__name__}")]
    problems: list[Mismatch] = []
    for name, spec in specs.items():
        try:
            entry = value[name]
        except KeyError:
            available = list(value.keys())
            problems.append(((name,), f"missing; the value holds the keys {available}"))
            continue
        for path, message in spec._mismatches(entry):
            problems.append(((name, *path), message))
    return problems


def project_entries(
    specs: Mapping[str, TensorSpec[Any]], value: TensorDict, device: torch.device | None
) -> TensorDict:
    """``value`` with each entry of ``specs`` projected; other keys kept as they are.

    ``device`` is the Composite's (``None`` when its entries keep their own).

    Raises:
        SpecTypeError: ``value`` is not a TensorDict.
        SpecKeyError: a key of ``specs`` is missing from ``value``.
    """
    if not is_tensordict(value):
        raise SpecTypeError(f"Composite.project expects a TensorDict, got {type(value).__name__}")
    out: dict[str, Any] = {}
    name: Any
    for name, entry in value.items():
        spec = specs.get(name)
        out[name] = entry if spec is None else spec.project(entry)
    missing = [name for name in specs if name not in out]
    if missing:
        raise SpecKeyError(
            f"Composite.project: the value lacks the keys {missing}; it holds {list(out)}"
        )
    device = value.device if device in (None, value.device) else None
    return TensorDict(out, batch_size=value.batch_size, device=device)


def encode_entries(
    specs: Mapping[str, TensorSpec[Any]],
    value: Any,
    shape: torch.Size,
    device: torch.device | None,
) -> TensorDict:
    """A TensorDict of ``value``'s entries, each encoded by its spec.

    ``shape`` and ``device`` are the Composite's; the batch size is
    ``[*batch, *shape]``, ``batch`` being the leading dims the first entry
    carries beyond its spec.

    Raises:
        SpecTypeError: ``value`` is neither a dict nor a TensorDict.
        SpecKeyError: ``value`` does not hold exactly the keys of ``specs``.
    """
    if not (is_tensordict(value) or isinstance(value, Mapping)):
        raise SpecTypeError(f"Composite.encode expects a dict, got {type(value).__name__}")
    out: dict[str, Any] = {}
    unknown: list[Any] = []
    name: Any
    for name, entry in value.items():
        spec = specs.get(name)
        if spec is None:
            unknown.append(name)
        else:
            out[name] = spec.encode(entry)
    missing = [name for name in specs if name not in out]
    if missing or unknown:
        raise SpecKeyError(
            f"Composite.encode: the value must hold exactly the keys {list(specs)}; "
            f"missing {missing}, unknown {unknown}"
        )
    lead: tuple[int, ...] = ()
    if out:
        name, first = next(iter(out.items()))
        first_shape = first.batch_size if is_tensordict(first) else first.shape
        lead = tuple(first_shape[: len(first_shape) - specs[name].ndim])
    return TensorDict(out, batch_size=(*lead, *shape), device=device)
