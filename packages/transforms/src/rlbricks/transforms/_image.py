"""Image transforms: ``ToTensorImage``, ``Resize``, ``GrayScale`` and ``CenterCrop``.

They act on pixel entries (default ``"pixels"``) of any leading shape, with
plain torch operations (no torchvision). ``ToTensorImage`` turns the
``[*, H, W, C]`` uint8 frames of simulators into ``[*, C, H, W]`` floats in
[0, 1]; the others expect that channel-first layout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rlbricks.specs import Bounded
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import KeysLike
from rlbricks.transforms._base import Transform
from rlbricks.transforms._errors import TransformValueError
from rlbricks.transforms._fn_image import center_crop
from rlbricks.transforms._fn_image import resize
from rlbricks.transforms._fn_image import rgb_to_grayscale
from rlbricks.transforms._fn_image import to_tensor_image
from rlbricks.transforms._spec_utils import route_specs

__all__ = ["CenterCrop", "GrayScale", "Resize", "ToTensorImage"]

_INTERPOLATIONS = ("bilinear", "nearest", "nearest-exact", "bicubic", "area")


def _pixel_keys(in_keys: KeysLike) -> KeysLike:
    return in_keys if in_keys is not None else ["pixels"]


def _image_spec(
    spec: TensorSpec[Any],
    shape: torch.Size,
    dtype: torch.dtype | None,
    bounds: Callable[[torch.Tensor], torch.Tensor] | None,
    owner: str,
) -> TensorSpec[Any]:
    """The spec of the transformed images: ``shape`` and ``dtype`` (None: unchanged).

    ``bounds`` maps the bounds of a Bounded spec element-wise (a permutation,
    a crop, a rescaling); None keeps their overall min and max (the transform
    mixes pixels: resize, gray).
    """
    out_dtype = dtype or spec.dtype or torch.float32
    if type(spec) is Bounded:
        if bounds is not None:
            low, high = bounds(spec.low), bounds(spec.high)
        else:
            low, high = spec.low.min().to(out_dtype), spec.high.max().to(out_dtype)
        return Bounded(low, high, shape=shape, device=spec.device, dtype=out_dtype)
    if type(spec) is Unbounded:
        return Unbounded(shape=shape, device=spec.device, dtype=out_dtype)
    raise TransformValueError(
        f"{owner}: cannot transform a {type(spec).__name__} spec as an image; only Bounded and "
        "Unbounded image entries are supported"
    )


class _ImageTransform(Transform):
    """Shared plumbing: route the specs of ``in_keys`` through ``_map_spec``."""

    def _map_spec(self, spec: TensorSpec[Any]) -> TensorSpec[Any]:
        raise NotImplementedError

    def _check_spec(self, spec: TensorSpec[Any]) -> torch.Size:
        if len(spec.shape) < 3:
            raise TransformValueError(
                f"{type(self).__name__}: expected an image spec (at least 3 dims), got shape "
                f"{tuple(spec.shape)}"
            )
        return spec.shape

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """The image entries' specs after the transform (shape, dtype and bounds).

        Example:
            >>> import torch
            >>> from rlbricks.specs import Bounded, Composite
            >>> from rlbricks.transforms import EnvSpecs, ToTensorImage
            >>> from rlbricks.envs.testing import CountingEnv
            >>> specs = EnvSpecs.from_env(CountingEnv())
            >>> specs.observation["pixels"] = Bounded(0, 255, shape=(8, 8, 3), dtype=torch.uint8)
            >>> ToTensorImage().transform_env_specs(specs).observation["pixels"].shape
            torch.Size([3, 8, 8])
        """
        return route_specs(specs, self.in_keys, self.out_keys, self._map_spec, type(self).__name__)


class ToTensorImage(_ImageTransform):
    """``[*, H, W, C]`` images → ``[*, C, H, W]`` floats; integer images are scaled to [0, 1].

    uint8 frames (from ``GymEnv(..., from_pixels=True)`` or Atari envs) are
    divided by 255; floating frames are only permuted. The spec becomes
    ``Bounded(0, 1)`` float for integer images.

    Args:
        in_keys: the image entries (default ``["pixels"]``).
        out_keys: where the results go (default: in place).
        dtype: the floating dtype of the output.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import ToTensorImage
        >>> td = TensorDict({"pixels": torch.full((4, 6, 3), 255, dtype=torch.uint8)})
        >>> out = ToTensorImage()(td)["pixels"]
        >>> out.shape, out.dtype, out.max().item()
        (torch.Size([3, 4, 6]), torch.float32, 1.0)
    """

    def __init__(
        self,
        in_keys: KeysLike = None,
        out_keys: KeysLike = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not dtype.is_floating_point:
            raise TransformValueError(f"ToTensorImage: dtype must be floating, got {dtype}")
        super().__init__(_pixel_keys(in_keys), out_keys)
        self.dtype = dtype

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return to_tensor_image(value, self.dtype)

    def _map_spec(self, spec: TensorSpec[Any]) -> TensorSpec[Any]:
        *lead, h, w, c = self._check_spec(spec)
        return _image_spec(
            spec, torch.Size((*lead, c, h, w)), self.dtype, self._apply_transform, "ToTensorImage"
        )


class Resize(_ImageTransform):
    """Resize ``[*, C, H, W]`` images to ``[*, C, h, w]`` (``w`` is the width, ``h`` the height).

    Interpolation uses ``torch.nn.functional.interpolate`` (with antialiasing
    for ``"bilinear"`` and ``"bicubic"``, as PIL does when shrinking); integer
    images are rounded back to their dtype and bicubic results are clamped to
    the input's range. A Bounded spec keeps its overall bounds.

    Args:
        w: the output width (last dim).
        h: the output height (dim -2); default ``w``.
        interpolation: ``"bilinear"`` (default), ``"nearest"``, ``"nearest-exact"``,
            ``"bicubic"`` or ``"area"``.
        in_keys: the image entries (default ``["pixels"]``).
        out_keys: where the results go (default: in place).

    Raises:
        TransformValueError: a size is not positive or the interpolation is unknown.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import Resize
        >>> td = TensorDict({"pixels": torch.rand(2, 3, 64, 48)}, batch_size=[2])
        >>> Resize(32, 16)(td)["pixels"].shape
        torch.Size([2, 3, 16, 32])
    """

    def __init__(
        self,
        w: int,
        h: int | None = None,
        interpolation: str = "bilinear",
        in_keys: KeysLike = None,
        out_keys: KeysLike = None,
    ) -> None:
        h = w if h is None else h
        if w < 1 or h < 1:
            raise TransformValueError(f"Resize: w and h must be positive, got w={w}, h={h}")
        if interpolation not in _INTERPOLATIONS:
            raise TransformValueError(
                f"Resize: unknown interpolation {interpolation!r}; use one of {_INTERPOLATIONS}"
            )
        super().__init__(_pixel_keys(in_keys), out_keys)
        self.w = w
        self.h = h
        self.interpolation = interpolation

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        out = resize(value, self.h, self.w, self.interpolation)
        if self.interpolation == "bicubic" and value.is_floating_point() and value.numel():
            out = out.clamp(value.min(), value.max())
        return out

    def _map_spec(self, spec: TensorSpec[Any]) -> TensorSpec[Any]:
        shape = self._check_spec(spec)
        return _image_spec(spec, torch.Size((*shape[:-2], self.h, self.w)), None, None, "Resize")

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"w={self.w}, h={self.h}, interpolation={self.interpolation!r}, " + (
            super().extra_repr()
        )


class GrayScale(_ImageTransform):
    """RGB ``[*, 3, H, W]`` images → gray ``[*, 1, H, W]`` (BT.601 luma weights).

    Args:
        in_keys: the image entries (default ``["pixels"]``).
        out_keys: where the results go (default: in place).

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import GrayScale
        >>> td = TensorDict({"pixels": torch.ones(3, 2, 2)})
        >>> GrayScale()(td)["pixels"].shape
        torch.Size([1, 2, 2])
    """

    def __init__(self, in_keys: KeysLike = None, out_keys: KeysLike = None) -> None:
        super().__init__(_pixel_keys(in_keys), out_keys)

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return rgb_to_grayscale(value)

    def _map_spec(self, spec: TensorSpec[Any]) -> TensorSpec[Any]:
        *lead, c, h, w = self._check_spec(spec)
        if c != 3:
            raise TransformValueError(
                f"GrayScale needs RGB images [*, 3, H, W], the spec has shape "
                f"{tuple(spec.shape)}: put ToTensorImage first"
            )
        return _image_spec(spec, torch.Size((*lead, 1, h, w)), None, None, "GrayScale")


class CenterCrop(_ImageTransform):
    """Keep the central ``h x w`` window of ``[*, C, H, W]`` images.

    Args:
        w: the output width (last dim).
        h: the output height (dim -2); default ``w``.
        in_keys: the image entries (default ``["pixels"]``).
        out_keys: where the results go (default: in place).

    Raises:
        TransformValueError: a size is not positive.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import CenterCrop
        >>> td = TensorDict({"pixels": torch.arange(16.0).reshape(1, 4, 4)})
        >>> CenterCrop(2)(td)["pixels"][0].tolist()
        [[5.0, 6.0], [9.0, 10.0]]
    """

    def __init__(
        self, w: int, h: int | None = None, in_keys: KeysLike = None, out_keys: KeysLike = None
    ) -> None:
        h = w if h is None else h
        if w < 1 or h < 1:
            raise TransformValueError(f"CenterCrop: w and h must be positive, got w={w}, h={h}")
        super().__init__(_pixel_keys(in_keys), out_keys)
        self.w = w
        self.h = h

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return center_crop(value, self.h, self.w).contiguous()

    def _map_spec(self, spec: TensorSpec[Any]) -> TensorSpec[Any]:
        shape = self._check_spec(spec)
        if self.h > shape[-2] or self.w > shape[-1]:
            raise TransformValueError(
                f"CenterCrop: cannot cut {self.h} x {self.w} (h x w) out of images of shape "
                f"{tuple(shape)}"
            )
        out = torch.Size((*shape[:-2], self.h, self.w))
        return _image_spec(spec, out, None, self._apply_transform, "CenterCrop")

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"w={self.w}, h={self.h}, " + super().extra_repr()
