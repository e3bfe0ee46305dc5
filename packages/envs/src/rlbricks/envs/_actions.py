"""Actions checked against the action spec before an env applies them.

``EnvBase.step`` and the gymnasium rollout loop (:mod:`._gym_policy_rollout`)
run an :class:`ActionCheck` on every action, built once per action spec:

* **shape** (always): the action's shape is exactly ``action_spec.shape``, the
  env's batch dims followed by the action's own dims. Nothing is broadcast,
  squeezed or unsqueezed for the caller: a ``[3]`` action for a ``[1]`` spec,
  or a ``[1]`` index for a ``Categorical`` spec of shape ``[]``, is an error.
* **dtype** (always), by kind rather than width, because that is what
  changes the meaning of an action (a float ``0.5`` becomes index ``0`` when
  an env casts it), while every env converts between widths anyway:

  - ``Bounded``/``Unbounded`` floating specs take any floating dtype;
  - ``Categorical``, ``MultiCategorical`` and integer ``Bounded``/``Unbounded``
    specs take any integer dtype or bool (never floats: indices are integers);
  - ``OneHot``, ``MultiOneHot`` and ``Binary`` take bool, integer or floating
    dtypes (their values are 0/1, checked below);
  - a bool ``Unbounded`` takes bool; any other spec its own dtype only.
* **values** (unless the env's ``validate_actions`` is False): ``Bounded``
  values in ``[low, high]`` (NaN is out; a floating bound tolerates 4 ulps
  of rounding, since ``TanhNormal``'s ``mid + half * tanh(z)`` lands one ulp
  outside most non-dyadic bounds it saturates to), categorical indices in
  ``[0, n)`` (per choice for ``MultiCategorical``), one-hot rows with exactly
  one 1 and zeros elsewhere, binary flags in {0, 1}, and only allowed actions
  when the spec holds a mask. ``Unbounded`` values are not checked.

The shape and dtype checks compare ``torch.Size`` and dtype objects (about a
microsecond). The value checks are chosen once per spec: a single
value is read with ``item()``, a small vector with one ``tolist()`` and
Python comparisons against bounds kept as Python numbers, anything larger
with one fused torch reduction (``aminmax``). Only when a check fails is the
exact (slower) description computed: the offending values and their index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import torch

from rlbricks.envs._errors import ActionError
from rlbricks.specs import Binary
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import MultiCategorical
from rlbricks.specs import MultiOneHot
from rlbricks.specs import OneHot
from rlbricks.specs import SpecError
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ActionCheck"]

_FLOATS = frozenset((torch.float16, torch.bfloat16, torch.float32, torch.float64))
_INTS = frozenset((torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64))
_BOOL = frozenset((torch.bool,))
_REAL = _FLOATS | _INTS | _BOOL

# 1-D actions of at most this many entries are checked on a Python list (one
# ``tolist()``); larger ones with one torch reduction, which costs about the same
# fixed ~3 us whatever the size
_SMALL = 16
_ULPS = 4  # floating bounds tolerate this many ulps of rounding (of the coarser dtype)
_SKIP_HINT = "pass validate_actions=False to the env (or the collector) to skip value checks"


def _fmt_shape(shape: Any) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _fmt_num(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text if any(c in text for c in ".ein") else text + ".0"
    return str(value)


def _dtype_words(accepted: frozenset[torch.dtype]) -> str:
    if accepted == _FLOATS:
        return "a floating dtype (float16, bfloat16, float32 or float64)"
    if accepted == _INTS | _BOOL:
        return "an integer dtype (or bool): indices, not floats"
    if accepted == _REAL:
        return "a bool, integer or floating dtype holding 0/1 values"
    return " or ".join(str(d) for d in sorted(accepted, key=str))


def _dtype_fix(accepted: frozenset[torch.dtype], got: torch.dtype) -> str:
    if accepted == _FLOATS:
        return "convert it with .float()"
    if accepted == _INTS | _BOOL:
        if got.is_floating_point:
            return (
                "write integer indices (e.g. the argmax of the action values, or a sample of "
                "a Categorical distribution); a float here is usually logits or a "
                "non-integral value that the env would truncate"
            )
        return "convert it with .long()"
    return f"convert it with .to({sorted(accepted, key=str)[0]})"


def _uniform(bound: torch.Tensor) -> Any:
    """The Python number every entry of ``bound`` equals, or None."""
    flat = bound.reshape(-1)
    if flat.numel() == 0:
        return None
    first = flat[0]
    if bool((flat == first).all()):
        return first.item()
    return None


class _Leaf:
    """The check of one tensor entry against a leaf spec."""

    def __init__(self, spec: TensorSpec[Any], key: Any) -> None:
        self.spec = spec
        self.key = key
        self.shape = spec.shape
        cls = type(spec)
        numel = self.shape.numel()
        self.maskable = cls in (Categorical, OneHot, MultiCategorical, MultiOneHot)
        # the spec whose mask is read at every step (None: no mask to read)
        self.masked_spec: Any = spec if self.maskable else None
        self.float_values = False
        self.lo: Any = None  # uniform bounds, as Python numbers
        self.hi: Any = None
        self.low_t = torch.zeros(())  # the bounds as tensors, broadcastable to the action
        self.high_t = torch.zeros(())
        self.slack: dict[torch.dtype, float] = {}  # rounding slack of floating bounds, by dtype
        self.bounds: dict[torch.dtype, tuple[Any, Any]] = {}  # uniform bounds with the slack
        self.each: dict[torch.dtype, tuple[list[Any], list[Any]]] = {}  # per-entry, small
        self._bound_tensors: dict[Any, tuple[torch.Tensor, torch.Tensor]] = {}
        self.bool_in_range = True
        self.expected = ""
        self.hint = ""
        ok: Callable[[torch.Tensor], bool] | None = None
        if isinstance(spec, (Bounded, Unbounded)) and cls in (Bounded, Unbounded):
            dtype = spec.dtype
            if dtype.is_floating_point:
                self.accepted = _FLOATS
            elif dtype is torch.bool:
                self.accepted = _BOOL
            elif dtype.is_complex:
                self.accepted = frozenset((dtype,))
            else:
                self.accepted = _INTS | _BOOL
            if isinstance(spec, Bounded):
                self.float_values = dtype.is_floating_point
                ok = self._range_setup(spec.low, spec.high)
                self.hint = (
                    "clamp it into the bounds (action_spec.project(action) clamps; a "
                    "tanh-squashed distribution such as TanhNormal stays inside)"
                )
        elif isinstance(spec, (Categorical, MultiCategorical)) and cls in (
            Categorical,
            MultiCategorical,
        ):
            self.accepted = _INTS | _BOOL
            if isinstance(spec, Categorical):
                high = torch.full((), spec.n - 1, dtype=torch.int64)
                self.expected = f"[0, {spec.n})"
            else:
                nvec = spec.nvec.to("cpu", torch.int64)
                high = (nvec - 1).broadcast_to(self.shape)
                self.expected = f"[0, nvec[i]) for entry i, nvec={nvec.tolist()}"
            ok = self._range_setup(torch.zeros((), dtype=torch.int64), high)
            self.hint = "write indices in [0, n) (e.g. the argmax over the n action values)"
        elif cls is OneHot or cls is MultiOneHot or cls is Binary:
            self.accepted = _REAL
            if cls is OneHot:
                self.zeros = self.shape[-1] - 1  # zeros in a one-hot row
                if numel <= 4 * _SMALL and self._ndim() == 1:
                    ok = self._one_hot_row
                elif numel <= 4 * _SMALL and self._ndim() == 2:
                    ok = self._one_hot_rows
                else:
                    ok = self._one_hot_torch
                self.hint = (
                    "write one-hot rows, exactly one 1 per row (OneHot.to_one_hot(index), "
                    "or action_spec.project(scores))"
                )
            else:
                ok = self._binary
                self.hint = (
                    "write one-hot rows, exactly one 1 per choice (MultiOneHot.to_one_hot)"
                    if cls is MultiOneHot
                    else "write 0/1 flags"
                )
        else:  # another spec class: its own dtype, its own is_in
            own = spec.dtype
            self.accepted = frozenset(() if own is None else (own,))
            ok = self._spec_is_in
            self.hint = "write a value the spec accepts (action_spec.rand() shows one)"
        self.values_ok = ok  # None: no value to check (Unbounded)
        self.delegate = cls is MultiOneHot  # segments: the spec's own is_in, after the 0/1 check

    def _ndim(self) -> int:
        return len(self.shape)

    # ------------------------------------------------------------------ #
    # ranges: Bounded, Categorical, MultiCategorical
    # ------------------------------------------------------------------ #
    def _range_setup(self, low: torch.Tensor, high: torch.Tensor) -> Callable[[torch.Tensor], bool]:
        low = low.detach().to("cpu")
        high = high.detach().to("cpu")
        self.low_t, self.high_t = low, high
        lo, hi = _uniform(low), _uniform(high)
        # Rounding slack for floating bounds, per action dtype: a squashing distribution
        # (TanhNormal's ``mid + half * tanh(z)``) lands an ulp outside a bound it saturates to
        # for most bounds that are not dyadic; integers are exact.
        slack = dict.fromkeys(self.accepted, 0.0)
        if self.float_values:
            both = torch.cat((low.reshape(-1), high.reshape(-1))).double()
            finite = both[both.isfinite()]
            scale = float(finite.abs().max()) if finite.numel() else 0.0
            own = torch.finfo(self.spec.dtype).eps  # type: ignore[arg-type]
            slack = {d: _ULPS * max(own, torch.finfo(d).eps) * scale for d in self.accepted}
        self.slack = slack
        numel = self.shape.numel()
        if lo is not None and hi is not None:
            self.lo, self.hi = lo, hi
            self.bounds = {d: (lo - sl, hi + sl) for d, sl in slack.items()}
            if not self.expected:
                self.expected = f"[{_fmt_num(lo)}, {_fmt_num(hi)}]"
            self.bool_in_range = lo <= 0 and hi >= 1
            if numel == 1:
                return self._range_one
            if self._ndim() == 1 and numel <= _SMALL:
                return self._range_list_float if self.float_values else self._range_list
            return self._range_torch
        if not self.expected:
            self.expected = "[low, high]"
        self.bool_in_range = bool((low <= 0).all() and (high >= 1).all())
        if self._ndim() == 1 and numel <= _SMALL:
            lows = low.broadcast_to(self.shape).tolist()
            highs = high.broadcast_to(self.shape).tolist()
            self.each = {
                d: ([x - sl for x in lows], [x + sl for x in highs]) for d, sl in slack.items()
            }
            return self._range_list_each
        return self._range_torch_each

    def _range_one(self, value: torch.Tensor) -> bool:
        lo, hi = self.bounds[value.dtype]
        x = value.item()
        return bool(lo <= x <= hi)

    def _range_list(self, value: torch.Tensor) -> bool:
        lo, hi = self.bounds[value.dtype]
        xs = value.tolist()
        return bool(lo <= min(xs) and max(xs) <= hi)

    def _range_list_float(self, value: torch.Tensor) -> bool:
        lo, hi = self.bounds[value.dtype]
        xs = value.tolist()
        total = sum(xs)  # NaN if any entry is NaN (min/max may skip a NaN)
        return bool(lo <= min(xs) and max(xs) <= hi and total == total)

    def _range_list_each(self, value: torch.Tensor) -> bool:
        lows, highs = self.each[value.dtype]
        return all(lo <= x <= hi for lo, x, hi in zip(lows, value.tolist(), highs, strict=True))

    def _range_torch(self, value: torch.Tensor) -> bool:
        if value.dtype is torch.bool:
            if self.bool_in_range:
                return True
            value = value.to(torch.uint8)
        lo, hi = self.bounds[value.dtype]
        low, high = torch.aminmax(value)  # NaN propagates: the comparisons below fail
        return bool(lo <= low.item() and high.item() <= hi)

    def _range_torch_each(self, value: torch.Tensor) -> bool:
        if value.dtype is torch.bool and self.bool_in_range:
            return True
        low, high = self._tensor_bounds(value)
        return bool(((value >= low) & (value <= high)).all())

    def _tensor_bounds(self, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The bounds with the slack of ``value``'s dtype, on its device (cached)."""
        key = (value.dtype, value.device)
        found = self._bound_tensors.get(key)
        if found is None:
            sl = self.slack.get(value.dtype, 0.0)
            low, high = self.low_t, self.high_t
            if sl:
                low, high = low.double() - sl, high.double() + sl
            found = self._bound_tensors[key] = (low.to(value.device), high.to(value.device))
        return found

    def _range_problem(self, value: torch.Tensor) -> str | None:
        low, high = self._tensor_bounds(value)
        if value.dtype is torch.bool:
            value = value.to(torch.int64)
        bad = ~((value >= low) & (value <= high))
        if not bool(bad.any()):
            return None
        idx = tuple(bad.nonzero()[0].tolist())
        count = int(bad.sum())
        seen = []
        numbers = value
        if value.is_floating_point():
            nan = value.isnan()
            if bool(nan.any()):
                seen.append(f"{int(nan.sum())} NaN")
                numbers = value[~nan]
        if numbers.numel():
            seen.append(f"min {_fmt_num(numbers.min())}, max {_fmt_num(numbers.max())}")
        message = (
            f"{count} of {value.numel()} values not in {self.expected} ({'; '.join(seen)}); "
            f"first at index {idx}: {_fmt_num(value[idx])}"
        )
        if self.lo is None or self.hi is None:  # per-entry bounds: the ones of that entry
            l_at = self.low_t.broadcast_to(self.shape)[idx]
            h_at = self.high_t.broadcast_to(self.shape)[idx]
            message += f", not in [{_fmt_num(l_at)}, {_fmt_num(h_at)}]"
        return message

    # ------------------------------------------------------------------ #
    # 0/1 values: OneHot, MultiOneHot, Binary
    # ------------------------------------------------------------------ #
    def _one_hot_row(self, value: torch.Tensor) -> bool:
        row = value.tolist()
        # list.count compares with ==: True == 1 == 1.0; NaN equals nothing
        return bool(row.count(1) == 1 and row.count(0) == self.zeros)

    def _one_hot_rows(self, value: torch.Tensor) -> bool:
        zeros = self.zeros
        return all(row.count(1) == 1 and row.count(0) == zeros for row in value.tolist())

    def _one_hot_torch(self, value: torch.Tensor) -> bool:
        if value.dtype is not torch.bool and not bool(((value == 0) | (value == 1)).all()):
            return False
        return bool((value.sum(-1) == 1).all())

    def _binary(self, value: torch.Tensor) -> bool:
        if value.dtype is torch.bool:
            return True
        return bool(((value == 0) | (value == 1)).all())

    def _binary_problem(self, value: torch.Tensor) -> str | None:
        if value.dtype is torch.bool:
            return None
        bad = (value != 0) & (value != 1)
        if not bool(bad.any()):
            return None
        idx = tuple(bad.nonzero()[0].tolist())
        return (
            f"{int(bad.sum())} of {value.numel()} entries are not 0 or 1; first at index "
            f"{idx}: {_fmt_num(value[idx])}"
        )

    def _one_hot_problem(self, value: torch.Tensor) -> str | None:
        problem = self._binary_problem(value)
        if problem is not None:
            return problem
        counts = value.to(torch.int64).sum(-1)
        bad = counts != 1
        if not bool(bad.any()):
            return None
        idx = tuple(bad.nonzero()[0].tolist())
        return (
            f"{int(bad.sum())} of {counts.numel()} rows do not hold exactly one 1; first at "
            f"index {idx}: {int(counts[idx])} ones"
        )

    # ------------------------------------------------------------------ #
    # the spec's own check: masks, MultiOneHot segments, other spec classes
    # ------------------------------------------------------------------ #
    def _as_spec_value(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` in the spec's dtype and device (exact: its values were checked first)."""
        spec = self.spec
        return value.to(device=spec.device, dtype=spec.dtype)

    def _spec_is_in(self, value: torch.Tensor) -> bool:
        return bool(self.spec.is_in(self._as_spec_value(value)))

    def _spec_problem(self, value: torch.Tensor) -> str | None:
        try:
            self.spec.assert_is_in(self._as_spec_value(value))
        except SpecError as err:
            return str(err)
        return None

    # ------------------------------------------------------------------ #
    # the check
    # ------------------------------------------------------------------ #
    def problem(self, value: torch.Tensor) -> str | None:
        """What is wrong with the values of ``value`` (right shape and dtype), or None."""
        cls = type(self.spec)
        if cls is Bounded or cls is Categorical or cls is MultiCategorical:
            problem = self._range_problem(value)
        elif cls is OneHot:
            problem = self._one_hot_problem(value)
        elif cls is Binary or cls is MultiOneHot:
            problem = self._binary_problem(value)
        elif cls is Unbounded:
            problem = None
        else:
            return self._spec_problem(value)
        if problem is None and (self.delegate or self._masked()):
            problem = self._spec_problem(value)
        return problem

    def _masked(self) -> bool:
        return self.masked_spec is not None and self.masked_spec.mask is not None

    def __call__(self, value: Any, values: bool, owner: Any) -> None:
        if not isinstance(value, torch.Tensor):
            raise ActionError(
                f"{_owner(owner)}: the action {self.key!r} is a {type(value).__name__}, not a "
                f"torch.Tensor; the env's action spec is {self.spec!r}"
            )
        if value.shape != self.shape or value.dtype not in self.accepted:
            raise self._layout_error(value, owner, self.key)
        if not values:
            return
        ok = self.values_ok
        if ok is not None and not ok(value):
            self._raise_values(value, owner, self.key)
        masked = self.masked_spec
        if (
            masked is not None
            and (self.delegate or masked.mask is not None)
            and not self._spec_is_in(value)
        ):
            self._raise_values(value, owner, self.key)

    def _layout_error(self, value: torch.Tensor, owner: Any, key: Any) -> ActionError:
        expected = []
        fixes = []
        if value.shape != self.shape:
            batch = getattr(owner, "batch_size", None)
            where = ""
            if batch is not None and tuple(self.shape[: len(batch)]) == tuple(batch):
                where = (
                    f" (the env's batch_size {_fmt_shape(batch)} followed by the action's own "
                    f"dims {_fmt_shape(self.shape[len(batch) :])})"
                )
            expected.append(f"shape {_fmt_shape(self.shape)}{where}")
            fixes.append(
                f"write an action of exactly shape {_fmt_shape(self.shape)}: it is not "
                "broadcast, and no trailing dim of size 1 is added or dropped"
            )
        if value.dtype not in self.accepted:
            expected.append(_dtype_words(self.accepted))
            fixes.append(_dtype_fix(self.accepted, value.dtype))
        return ActionError(
            f"{_owner(owner)}: the action {key!r} has shape {_fmt_shape(value.shape)} and dtype "
            f"{value.dtype}, but the env's action spec {self.spec!r} expects "
            f"{' and '.join(expected)}. Fix the policy's output: {'; '.join(fixes)} "
            "(shape and dtype are always checked)."
        )

    def _raise_values(self, value: torch.Tensor, owner: Any, key: Any) -> None:
        problem = self.problem(value)
        if problem is None:  # the fast check is conservative (e.g. +inf and -inf summed)
            return
        hint = self.hint
        if value.is_floating_point() and bool(value.isnan().any()):
            hint = (
                "the policy produced NaN: look for NaN in its inputs and parameters (a "
                "diverged loss, too high a learning rate)"
            )
        elif self._masked() and "mask" in problem:
            hint = "pick only the actions the spec's mask allows (action_spec.mask)"
        raise ActionError(
            f"{_owner(owner)}: the action {key!r} is not in the env's action spec "
            f"{self.spec!r}: {problem}. Fix the policy's output: {hint}; or {_SKIP_HINT}."
        )


def _owner(owner: Any) -> str:
    return f"{type(owner).__name__}.step"


class ActionCheck:
    """Checks the action of a step against one action spec (a leaf spec or a Composite).

    Built once per spec (the env rebuilds it when its ``action_spec`` is
    replaced) and called every step with the action and whether values are
    checked. Raises :class:`~rlbricks.envs.ActionError`.
    """

    def __init__(self, spec: TensorSpec[Any], key: str = "action") -> None:
        self.spec = spec
        self.key = key
        self._leaves: dict[Any, _Leaf] = {}
        # ``run(value, values, owner)``: what the hot loops call (one Python call for a leaf)
        self.run: Callable[[Any, bool, Any], None]
        if isinstance(spec, Composite):
            composite = spec
            self.run = lambda value, values, owner: self._check_composite(
                composite, value, values, owner
            )
        else:
            self.run = _Leaf(spec, key)

    def __call__(self, value: Any, values: bool, owner: Any) -> None:
        """Check ``value`` (the ``"action"`` entry); ``values``: also its values."""
        self.run(value, values, owner)

    def _check_composite(self, spec: Composite, value: Any, values: bool, owner: Any) -> None:
        if not isinstance(value, TensorDict):
            raise ActionError(
                f"{_owner(owner)}: the action {self.key!r} is a {type(value).__name__}, but the "
                f"env's action spec is a Composite with keys "
                f"{spec.keys(include_nested=True, leaves_only=True)}: write a TensorDict"
            )
        if value.batch_size != spec.shape:
            raise ActionError(
                f"{_owner(owner)}: the action {self.key!r} has batch_size "
                f"{_fmt_shape(value.batch_size)}, but the env's action spec expects "
                f"{_fmt_shape(spec.shape)}"
            )
        for sub_key, sub_spec in spec.items(include_nested=True, leaves_only=True):
            sub = value.get(sub_key, None)
            path = (self.key, *((sub_key,) if isinstance(sub_key, str) else sub_key))
            if sub is None:
                raise ActionError(
                    f"{_owner(owner)}: the action has no entry {path!r}, which the env's action "
                    f"spec declares ({sub_spec!r}); entries found: "
                    f"{value.keys(include_nested=True, leaves_only=True)}"
                )
            leaf = self._leaves.get(sub_key)
            if leaf is None or leaf.spec is not sub_spec:  # the Composite may change in place
                leaf = self._leaves[sub_key] = _Leaf(sub_spec, path)
            leaf(sub, values, owner)
