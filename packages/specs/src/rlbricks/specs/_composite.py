"""``Composite``: a spec of TensorDicts, mapping (nested) keys to sub-specs."""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any
from typing import cast

import torch

from rlbricks.specs._base import Mismatch
from rlbricks.specs._base import TensorSpec
from rlbricks.specs._base import format_key
from rlbricks.specs._entries import encode_entries
from rlbricks.specs._entries import entries_in
from rlbricks.specs._entries import entry_mismatches
from rlbricks.specs._entries import project_entries
from rlbricks.specs._errors import SpecKeyError
from rlbricks.specs._errors import SpecTypeError
from rlbricks.specs._errors import SpecValueError
from rlbricks.specs._keys import NestedKey
from rlbricks.specs._keys import key_of
from rlbricks.specs._keys import key_path
from rlbricks.specs._utils import DeviceLike
from rlbricks.specs._utils import ShapeLike
from rlbricks.specs._utils import as_device
from rlbricks.specs._utils import as_size
from rlbricks.specs._utils import expand_shape
from rlbricks.specs._utils import fmt_shape
from rlbricks.tensordict import TensorDict

__all__ = ["Composite"]


class Composite(TensorSpec[TensorDict]):
    """A spec of TensorDicts: each key maps to a sub-spec (a leaf spec or a nested Composite).

    Every sub-spec's shape starts with the Composite's ``shape`` (the batch
    dims it shares with its entries).  ``rand``/``zero``/``encode`` build
    :class:`~rlbricks.tensordict.TensorDict` values; ``is_in`` accepts
    TensorDicts (or dicts) holding *at least* the spec's keys.

    Sub-specs given as dicts become nested Composites with the parent's shape
    and device.  With a ``device``, every sub-spec is moved to it; without one
    (``None``) the sub-specs keep their own devices.

    Args:
        specs: mapping from keys to specs (or dicts of specs).
        shape: the leading shape shared by every entry.
        device: device of every entry, or ``None``.
        **kw_specs: more entries, by keyword.

    Raises:
        SpecValueError: a sub-spec's shape does not start with ``shape`` (the
            message names the key and both shapes).

    Example:
        >>> import torch
        >>> from rlbricks.specs import Bounded, Composite, Unbounded
        >>> spec = Composite(
        ...     observation=Unbounded(shape=(4, 3)),
        ...     next={"reward": Unbounded(shape=(4, 1))},
        ...     shape=(4,),
        ... )
        >>> spec["next", "reward"].shape
        torch.Size([4, 1])
        >>> td = spec.rand((2,))
        >>> td.batch_size, td["observation"].shape
        (torch.Size([2, 4]), torch.Size([2, 4, 3]))
        >>> spec.is_in(td)
        True
        >>> spec.keys(include_nested=True, leaves_only=True)
        ['observation', ('next', 'reward')]
    """

    def __init__(
        self,
        specs: Mapping[str, Any] | Composite | None = None,
        shape: ShapeLike = (),
        device: DeviceLike = None,
        **kw_specs: Any,
    ) -> None:
        self._shape = as_size(shape)
        self._device = None if device is None else as_device(device)
        self._specs: dict[str, TensorSpec[Any]] = {}
        if specs is not None:
            for key, value in specs.items():
                self._set_path(key_path(key), value, ())
        for name, value in kw_specs.items():
            if name in self._specs:
                raise SpecValueError(
                    f"Composite: key {name!r} given both in specs and as a keyword: give it once"
                )
            self._set_path((name,), value, ())

    # ------------------------------------------------------------------ #
    # description
    # ------------------------------------------------------------------ #
    @property
    def shape(self) -> torch.Size:
        """The leading shape shared by every entry; settable if every sub-spec starts with it.

        Nested Composites that had the old shape follow the new one.

        Example:
            >>> from rlbricks.specs import Composite, Unbounded
            >>> spec = Composite(obs=Unbounded(shape=(4, 3)))
            >>> spec.shape = (4,)
            >>> spec.shape
            torch.Size([4])
        """
        return self._shape

    @shape.setter
    def shape(self, value: ShapeLike) -> None:
        new = as_size(value)
        self._check_shape(new, ())
        self._assign_shape(new)

    def _check_shape(self, new: torch.Size, prefix: tuple[str, ...]) -> None:
        for name, spec in self._specs.items():
            if isinstance(spec, Composite) and spec._shape == self._shape:
                spec._check_shape(new, prefix + (name,))
            elif spec.shape[: len(new)] != new:
                raise SpecValueError(
                    f"cannot set the Composite shape to {fmt_shape(new)}: key "
                    f"{format_key(prefix + (name,))} has shape {fmt_shape(spec.shape)}, which "
                    f"does not start with {fmt_shape(new)}"
                )

    def _assign_shape(self, new: torch.Size) -> None:
        for spec in self._specs.values():
            if isinstance(spec, Composite) and spec._shape == self._shape:
                spec._assign_shape(new)
        self._shape = new

    @property
    def ndim(self) -> int:
        """Number of dims of ``shape``."""
        return len(self._shape)

    @property
    def device(self) -> torch.device | None:
        """The device of every entry, or ``None`` when the entries keep their own."""
        return self._device

    @property
    def dtype(self) -> torch.dtype | None:
        """The dtype shared by every leaf, or ``None`` if they differ (or there is none).

        Example:
            >>> import torch
            >>> from rlbricks.specs import Categorical, Composite, Unbounded
            >>> Composite(a=Unbounded(), b=Unbounded()).dtype
            torch.float32
            >>> Composite(a=Unbounded(), b=Categorical(2)).dtype is None
            True
        """
        dtypes = {spec.dtype for spec in self.values(include_nested=True, leaves_only=True)}
        return dtypes.pop() if len(dtypes) == 1 else None

    # ------------------------------------------------------------------ #
    # mapping interface
    # ------------------------------------------------------------------ #
    def _set_path(self, path: tuple[str, ...], value: Any, prefix: tuple[str, ...]) -> None:
        """Set ``path`` (relative to self; ``prefix`` locates self, for messages)."""
        node = self
        for i, part in enumerate(path[:-1]):
            child = node._specs.get(part)
            if child is None:
                # build the missing branch whole before attaching it: on error, nothing changes
                node._set_one(part, {path[i + 1 :]: value}, prefix + path[:i])
                return
            if not isinstance(child, Composite):
                raise SpecValueError(
                    f"cannot set key {format_key(prefix + path)}: "
                    f"{format_key(prefix + path[: i + 1])} holds a {type(child).__name__}, "
                    f"not a Composite: delete that entry first, or pick another key"
                )
            node = child
        node._set_one(path[-1], value, prefix + path[:-1])

    def _set_one(self, name: str, value: Any, prefix: tuple[str, ...]) -> None:
        full = prefix + (name,)
        if isinstance(value, Mapping):
            sub = Composite(shape=self._shape, device=self._device)
            for key, item in value.items():
                sub._set_path(key_path(key), item, full)
            value = sub
        if not isinstance(value, TensorSpec):
            raise SpecTypeError(
                f"Composite: key {format_key(full)} must map to a spec (or a dict of specs), "
                f"got {type(value).__name__}"
            )
        if value.shape[: len(self._shape)] != self._shape:
            raise SpecValueError(
                f"Composite: key {format_key(full)} has shape {fmt_shape(value.shape)}, which does "
                f"not start with the Composite shape {fmt_shape(self._shape)}; every entry's "
                f"shape must begin with the shape of the Composite holding it"
            )
        if self._device is not None and value.device != self._device:
            value = value.to(self._device)
        self._specs[name] = value

    def _missing(self, key: Any) -> SpecKeyError:
        available = self.keys(include_nested=True)
        return SpecKeyError(f"key {key!r} not found in Composite; available keys: {available}")

    def __getitem__(self, key: NestedKey) -> TensorSpec[Any]:
        """The sub-spec at ``key`` (a str, or a tuple of str for nested entries).

        Raises:
            SpecKeyError: the key is missing (the message lists the available keys).
        """
        node: TensorSpec[Any] = self
        for part in key_path(key):
            if not isinstance(node, Composite) or part not in node._specs:
                raise self._missing(key)
            node = node._specs[part]
        return node

    def __setitem__(self, key: NestedKey, value: TensorSpec[Any] | Mapping[str, Any]) -> None:
        """Set ``key`` to a spec (a dict becomes a nested Composite).

        Missing intermediate Composites of a nested key are created.

        Raises:
            SpecValueError: the spec's shape does not start with the Composite's.
        """
        self._set_path(key_path(key), value, ())

    def __delitem__(self, key: NestedKey) -> None:
        path = key_path(key)
        parent: TensorSpec[Any] = self
        for part in path[:-1]:
            if not isinstance(parent, Composite) or part not in parent._specs:
                raise self._missing(key)
            parent = parent._specs[part]
        if not isinstance(parent, Composite) or path[-1] not in parent._specs:
            raise self._missing(key)
        del parent._specs[path[-1]]

    def __contains__(self, key: object) -> bool:
        try:
            path = key_path(key)
        except TypeError:
            return False
        node: TensorSpec[Any] = self
        for part in path:
            if not isinstance(node, Composite) or part not in node._specs:
                return False
            node = node._specs[part]
        return True

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def keys(self, include_nested: bool = False, leaves_only: bool = False) -> list[NestedKey]:
        """The keys, in insertion order.

        Args:
            include_nested: also list the keys of nested Composites, as tuples.
            leaves_only: skip the keys that hold a Composite.

        Example:
            >>> from rlbricks.specs import Composite, Unbounded
            >>> spec = Composite(a=Unbounded(), next={"b": Unbounded()})
            >>> spec.keys()
            ['a', 'next']
            >>> spec.keys(include_nested=True)
            ['a', 'next', ('next', 'b')]
        """
        return [key for key, _ in self._walk(include_nested, leaves_only, ())]

    def values(
        self, include_nested: bool = False, leaves_only: bool = False
    ) -> list[TensorSpec[Any]]:
        """The sub-specs, in the order of ``keys(include_nested, leaves_only)``."""
        return [spec for _, spec in self._walk(include_nested, leaves_only, ())]

    def items(
        self, include_nested: bool = False, leaves_only: bool = False
    ) -> list[tuple[NestedKey, TensorSpec[Any]]]:
        """``(key, sub-spec)`` pairs, in the order of ``keys(include_nested, leaves_only)``."""
        return list(self._walk(include_nested, leaves_only, ()))

    def _walk(
        self, include_nested: bool, leaves_only: bool, prefix: tuple[str, ...]
    ) -> Iterator[tuple[NestedKey, TensorSpec[Any]]]:
        for name, spec in self._specs.items():
            is_composite = isinstance(spec, Composite)
            if not (leaves_only and is_composite):
                yield key_of(prefix + (name,)), spec
            if include_nested and isinstance(spec, Composite):
                yield from spec._walk(True, leaves_only, prefix + (name,))

    # ------------------------------------------------------------------ #
    # values
    # ------------------------------------------------------------------ #
    def _batch(self, shape: ShapeLike) -> tuple[torch.Size, torch.Size]:
        lead = as_size(shape)
        return lead, torch.Size((*lead, *self._shape))

    def rand(self, shape: ShapeLike = ()) -> TensorDict:
        """A TensorDict with batch size ``[*shape, *spec.shape]`` of random values.

        Example:
            >>> from rlbricks.specs import Categorical, Composite
            >>> td = Composite(action=Categorical(3)).rand((5,))
            >>> td.batch_size, td["action"].shape
            (torch.Size([5]), torch.Size([5]))
        """
        lead, batch = self._batch(shape)
        values = {name: spec.rand(lead) for name, spec in self._specs.items()}
        return TensorDict(values, batch_size=batch, device=self._device)

    def zero(self, shape: ShapeLike = ()) -> TensorDict:
        """A TensorDict with batch size ``[*shape, *spec.shape]`` of zeros (buffer placeholders).

        Example:
            >>> from rlbricks.specs import Composite, Unbounded
            >>> Composite(obs=Unbounded(shape=(2,))).zero()["obs"]
            tensor([0., 0.])
        """
        lead, batch = self._batch(shape)
        values = {name: spec.zero(lead) for name, spec in self._specs.items()}
        return TensorDict(values, batch_size=batch, device=self._device)

    def is_in(self, value: Any) -> bool:
        """Whether ``value`` (a TensorDict or dict) holds every key of the spec, each in its spec.

        Extra keys are ignored; a missing key gives ``False``.  Never raises.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Categorical, Composite
            >>> from rlbricks.tensordict import TensorDict
            >>> spec = Composite(action=Categorical(3))
            >>> spec.is_in(TensorDict({"action": torch.tensor(2), "extra": torch.zeros(())}))
            True
            >>> spec.is_in(TensorDict({"other": torch.tensor(2)}))
            False
        """
        return entries_in(self._specs, value)

    def _mismatches(self, value: Any) -> list[Mismatch]:
        return entry_mismatches(self._specs, value)

    def assert_is_in(self, value: Any) -> None:
        """Raise one :class:`~rlbricks.specs.SpecValueError` listing every offending entry.

        Each line names the (nested) key and the problem: missing key, wrong
        dtype, device or shape, or values out of range (with the range
        expected and the min/max seen).

        Raises:
            SpecValueError: some entry is not in its spec.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Bounded, Categorical, Composite
            >>> from rlbricks.tensordict import TensorDict
            >>> spec = Composite(
            ...     action=Categorical(3), next={"reward": Bounded(low=-1.0, high=1.0, shape=(1,))}
            ... )
            >>> td = TensorDict({"action": torch.tensor(5), "next": {"reward": torch.ones(1)}})
            >>> spec.assert_is_in(td)
            Traceback (most recent call last):
                ...
            rlbricks.specs._errors.SpecValueError: 1 entry does not match the Composite spec:
              'action': values out of range: expected integers in [0, 3), got 1 of 1 outside (min 5, max 5); first at index (): 5
        """
        super().assert_is_in(value)

    def project(self, value: TensorDict) -> TensorDict:
        """A TensorDict like ``value`` whose entries are projected into their specs.

        Keys the spec does not describe are kept as they are.

        Raises:
            SpecKeyError: a key of the spec is missing from ``value``.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Bounded, Composite
            >>> from rlbricks.tensordict import TensorDict
            >>> spec = Composite(action=Bounded(low=-1.0, high=1.0, shape=(2,)))
            >>> spec.project(TensorDict({"action": torch.tensor([3.0, -0.5])}))["action"]
            tensor([ 1.0000, -0.5000])
        """
        return project_entries(self._specs, value, self._device)

    def encode(self, value: Any) -> TensorDict:
        """A TensorDict from a dict (or TensorDict) of numpy arrays, numbers or tensors.

        Each entry is encoded by its sub-spec (see ``encode`` of the leaf
        specs); the batch size is ``[*batch, *spec.shape]`` where ``batch`` are
        the leading dims the entries carry beyond their spec.

        Raises:
            SpecKeyError: a key of the spec is missing (or an unknown key is given).

        Example:
            >>> import numpy as np
            >>> from rlbricks.specs import Composite, Unbounded
            >>> spec = Composite(obs=Unbounded(shape=(3,)), reward=Unbounded(shape=(1,)))
            >>> td = spec.encode({"obs": np.zeros((8, 3)), "reward": np.ones(8)})
            >>> td.batch_size, td["reward"].shape
            (torch.Size([8]), torch.Size([8, 1]))
        """
        return encode_entries(self._specs, value, self._shape, self._device)

    # ------------------------------------------------------------------ #
    # new specs
    # ------------------------------------------------------------------ #
    def _new(self, specs: dict[str, TensorSpec[Any]], shape: torch.Size) -> Composite:
        """A Composite holding ``specs`` as they are (already validated)."""
        out = Composite(shape=shape, device=self._device)
        out._specs = specs
        return out

    def expand(self, *shape: Any) -> Composite:
        """The spec with new leading dims, added to every entry.

        Raises:
            SpecValueError: the new shape does not end with ``spec.shape``.

        Example:
            >>> from rlbricks.specs import Composite, Unbounded
            >>> spec = Composite(obs=Unbounded(shape=(3,))).expand(8)
            >>> spec.shape, spec["obs"].shape
            (torch.Size([8]), torch.Size([8, 3]))
        """
        new = expand_shape(shape, self._shape, "Composite")
        lead = tuple(new[: len(new) - len(self._shape)])
        specs = {name: spec.expand(*lead, *spec.shape) for name, spec in self._specs.items()}
        return self._new(specs, new)

    def to(self, device: DeviceLike) -> Composite:
        """The spec with every entry on ``device`` (``self`` if it already is there).

        Example:
            >>> from rlbricks.specs import Composite, Unbounded
            >>> Composite(obs=Unbounded()).to("cpu").device
            device(type='cpu')
        """
        dev = as_device(device)
        if dev == self._device:
            return self
        out = Composite(shape=self._shape, device=dev)
        out._specs = {name: spec.to(dev) for name, spec in self._specs.items()}
        return out

    def clone(self) -> Composite:
        """A deep copy: every sub-spec is cloned.

        Example:
            >>> from rlbricks.specs import Composite, Unbounded
            >>> spec = Composite(obs=Unbounded())
            >>> copy = spec.clone()
            >>> copy == spec, copy["obs"] is spec["obs"]
            (True, False)
        """
        return self._new({name: spec.clone() for name, spec in self._specs.items()}, self._shape)

    def _shallow(self) -> Composite:
        """A copy of the Composite structure; leaf specs are shared."""
        specs = {
            name: spec._shallow() if isinstance(spec, Composite) else spec
            for name, spec in self._specs.items()
        }
        return self._new(specs, self._shape)

    def select(self, *keys: NestedKey) -> Composite:
        """A Composite holding only ``keys`` (nested keys keep their parents).

        The Composite structure is new; the leaf specs are shared with ``self``.

        Raises:
            SpecKeyError: a key is missing.

        Example:
            >>> from rlbricks.specs import Composite, Unbounded
            >>> spec = Composite(a=Unbounded(), b=Unbounded(), next={"c": Unbounded()})
            >>> spec.select("a", ("next", "c")).keys(include_nested=True)
            ['a', 'next', ('next', 'c')]
        """
        out = self._new({}, self._shape)
        for key in keys:
            path = key_path(key)
            spec = self[path]
            src, dst = self, out
            for part in path[:-1]:  # every parent is a Composite: self[path] succeeded
                src = cast(Composite, src._specs[part])
                if part not in dst._specs:
                    dst._specs[part] = src._new({}, src._shape)
                dst = cast(Composite, dst._specs[part])
            dst._specs[path[-1]] = spec._shallow() if isinstance(spec, Composite) else spec
        return out

    def exclude(self, *keys: NestedKey) -> Composite:
        """A Composite without ``keys`` (missing keys are ignored).

        The Composite structure is new; the leaf specs are shared with ``self``.

        Example:
            >>> from rlbricks.specs import Composite, Unbounded
            >>> Composite(a=Unbounded(), b=Unbounded()).exclude("a", "zzz").keys()
            ['b']
        """
        out = self._shallow()
        for key in keys:
            if key in out:
                del out[key]
        return out

    def update(self, other: Composite | Mapping[str, Any]) -> Composite:
        """Set every entry of ``other`` in ``self`` (nested Composites are merged); return ``self``.

        Example:
            >>> from rlbricks.specs import Categorical, Composite, Unbounded
            >>> spec = Composite(next={"obs": Unbounded()})
            >>> _ = spec.update(Composite(action=Categorical(2), next={"reward": Unbounded()}))
            >>> spec.keys(include_nested=True, leaves_only=True)
            [('next', 'obs'), ('next', 'reward'), 'action']
        """
        for key, value in other.items():
            path = key_path(key)
            current = self[path] if path in self else None  # noqa: SIM401 (no .get on specs)
            if isinstance(current, Composite) and isinstance(value, (Composite, Mapping)):
                current.update(value)
            else:
                self._set_path(path, value, ())
        return self

    def empty(self) -> Composite:
        """A Composite with the same shape and device and no entry.

        Example:
            >>> from rlbricks.specs import Composite, Unbounded
            >>> Composite(a=Unbounded(), shape=()).empty().keys()
            []
        """
        return Composite(shape=self._shape, device=self._device)

    def is_empty(self) -> bool:
        """Whether the Composite holds no leaf spec (nested empty Composites count as empty).

        Example:
            >>> from rlbricks.specs import Composite
            >>> Composite(next={}).is_empty()
            True
        """
        return not self.keys(include_nested=True, leaves_only=True)

    # ------------------------------------------------------------------ #
    # comparison and display
    # ------------------------------------------------------------------ #
    def __eq__(self, other: object) -> bool:
        if type(other) is not Composite:
            return False
        return (
            other._shape == self._shape
            and other._device == self._device
            and other._specs.keys() == self._specs.keys()
            and all(spec == other._specs[name] for name, spec in self._specs.items())
        )

    def __repr__(self) -> str:
        lines = ["Composite("]
        for name, spec in self._specs.items():
            sub = repr(spec).replace("\n", "\n    ")
            lines.append(f"    {name}: {sub},")
        device = "None" if self._device is None else str(self._device)
        lines.append(f"    shape={fmt_shape(self._shape)}, device={device})")
        return "\n".join(lines)
