"""Segments: the index bookkeeping shared by MultiCategorical and MultiOneHot.

``nvec = [3, 2]`` describes two choices with 3 and 2 actions.  Their one-hot
layout concatenates the segments: ``[a0 a1 a2 | b0 b1]`` (``total = 5``).
The *padded* layout ``[k, max_n]`` (here ``[2, 3]``) puts each segment on its
own row so that per-segment ops (argmax, sums, masks) are plain vectorised
reductions over the last dim.
"""

from __future__ import annotations

from typing import Any

import torch

from rlbricks.specs._errors import SpecValueError
from rlbricks.specs._mask import check_mask
from rlbricks.specs._mask import masked_sample

__all__ = ["Segments", "as_nvec", "prepare_segment_mask"]


def as_nvec(nvec: Any, what: str) -> torch.Tensor:
    """``nvec`` as a 1-D int64 CPU tensor of positive sizes."""
    t = torch.as_tensor(nvec)
    if t.ndim > 1:
        raise SpecValueError(
            f"{what}: nvec must be 1-D (one size per choice), got shape {list(t.shape)}"
        )
    t = t.reshape(-1)
    if t.is_floating_point() and bool((t == t.round()).all()):
        t = t.long()
    if t.dtype is torch.bool or t.is_floating_point() or t.is_complex():
        raise SpecValueError(f"{what}: nvec must hold integers, got {nvec!r}")
    t = t.to(device="cpu", dtype=torch.int64)
    if t.numel() == 0 or bool((t < 1).any()):
        raise SpecValueError(
            f"{what}: nvec must be a non-empty sequence of positive ints, got {nvec!r}"
        )
    return t


class Segments:
    """Precomputed indices for a list of choices with ``nvec[i]`` actions each."""

    def __init__(self, nvec: torch.Tensor, device: torch.device) -> None:
        self.nvec = nvec.to(device)
        self.nvec_list: list[int] = nvec.tolist()
        self.k = len(self.nvec_list)
        self.total = sum(self.nvec_list)
        self.max_n = max(self.nvec_list)
        self.uniform_n = self.nvec_list[0] if len(set(self.nvec_list)) == 1 else None
        self.offsets = (torch.cumsum(nvec, 0) - nvec).to(device)
        arange = torch.arange(self.max_n)
        valid = arange < nvec.unsqueeze(-1)
        # position in the concatenated layout of padded slot [i, j]; invalid slots point
        # at the segment's first position and are masked out with ``valid``.
        gather = (torch.cumsum(nvec, 0) - nvec).unsqueeze(-1) + torch.where(valid, arange, 0)
        self.valid = valid.to(device)
        self.invalid = ~self.valid
        self.gather = gather.to(device)

    def sample(self, lead: tuple[int, ...], not_mask: torch.Tensor | None) -> torch.Tensor:
        """Uniform int64 indices ``[*lead, k]`` (among allowed actions if ``not_mask`` is given).

        ``lead`` holds the batch dims and the spec's dims before the segments;
        ``not_mask`` is the negated padded mask.
        """
        device = self.nvec.device
        if not_mask is not None:
            return masked_sample(not_mask, lead[: len(lead) - (not_mask.ndim - 2)])
        shape = (*lead, self.k)
        if self.uniform_n is not None:
            return torch.randint(0, self.uniform_n, shape, device=device)
        # a huge uniform integer modulo n: the bias is below n / 2**62
        return torch.randint(0, 2**62, shape, device=device).remainder_(self.nvec)

    def pad(self, value: torch.Tensor) -> torch.Tensor:
        """``[..., total]`` to ``[..., k, max_n]`` (invalid slots hold the segment's first entry)."""
        return value[..., self.gather]

    def one_hot(self, index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Indices ``[..., k]`` to the concatenated one-hot layout ``[..., total]``."""
        out = torch.zeros((*index.shape[:-1], self.total), dtype=dtype, device=index.device)
        return out.scatter_(-1, index + self.offsets, 1)

    def argmax(self, value: torch.Tensor, not_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-segment argmax of ``[..., total]`` scores, as indices ``[..., k]``.

        ``not_mask`` (padded layout) excludes forbidden actions.
        """
        if value.dtype is torch.bool:
            value = value.to(torch.uint8)
        padded = self.pad(value).double()
        excluded = self.invalid if not_mask is None else not_mask
        return padded.masked_fill_(excluded, float("-inf")).argmax(-1)

    def counts(self, value: torch.Tensor) -> torch.Tensor:
        """Number of non-zero entries of each segment of ``[..., total]``: ``[..., k]``."""
        padded = self.pad(value) != 0
        return (padded & self.valid).sum(-1)

    def pad_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """A concatenated-layout mask ``[..., total]`` to the padded layout (invalid = False)."""
        return self.pad(mask) & self.valid

    def check_pad_mask(self, padded: torch.Tensor, what: str) -> None:
        """Every segment of a padded mask allows at least one action."""
        if padded.numel() and not bool(padded.any(-1).all()):
            empty = int((~padded.any(-1)).sum())
            raise SpecValueError(
                f"{what}: every choice needs at least one allowed action, but {empty} "
                f"segment(s) of the mask are all False"
            )


def prepare_segment_mask(
    mask: Any, layout: torch.Size, segments: Segments, device: torch.device, what: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check a concatenated-layout mask; return its negation compact (a private copy),
    broadcast to ``layout``, and in the padded layout.

    Raises:
        SpecValueError: not bool, not broadcastable, or a segment with no allowed action.
    """
    m = check_mask(mask, layout, device, f"{what} (layout: the segments of nvec concatenated)")
    padded = segments.pad_mask(m.broadcast_to(layout))
    segments.check_pad_mask(padded, what)
    not_compact = ~m
    return not_compact, not_compact.broadcast_to(layout), ~padded
