"""Image operations on batches of images, in plain torch (no torchvision).

Images are channel-first ``[*, C, H, W]`` except the input of
:func:`to_tensor_image`, which takes the ``[*, H, W, C]`` layout of
simulators and gymnasium renderers. Any number of leading dims is allowed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlbricks.transforms._errors import TransformValueError

__all__ = [
    "GRAY_WEIGHTS",
    "center_crop",
    "check_image",
    "resize",
    "rgb_to_grayscale",
    "to_tensor_image",
]

# ITU-R BT.601 luma weights, the usual RGB -> gray conversion
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def check_image(name: str, image: torch.Tensor, channels_last: bool = False) -> None:
    """Raise :class:`TransformValueError` unless ``image`` has at least 3 dims (``[*, C, H, W]``).

    Example:
        >>> import torch
        >>> check_image("pixels", torch.zeros(3, 8, 8))
    """
    if image.ndim < 3:
        layout = "[*, H, W, C]" if channels_last else "[*, C, H, W]"
        raise TransformValueError(
            f"{name} must be an image {layout} (at least 3 dims), got shape {tuple(image.shape)}"
        )


def to_tensor_image(image: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[*, H, W, C]`` → ``[*, C, H, W]`` float; integer images are scaled from [0, 255] to [0, 1].

    Floating images are only permuted and cast (assumed already in [0, 1]).

    Example:
        >>> import torch
        >>> img = torch.full((2, 4, 5, 3), 255, dtype=torch.uint8)
        >>> out = to_tensor_image(img)
        >>> out.shape, out.dtype, out.max().item()
        (torch.Size([2, 3, 4, 5]), torch.float32, 1.0)
    """
    check_image("image", image, channels_last=True)
    out = image.movedim(-1, -3).to(dtype)
    if not image.is_floating_point():
        out = out / 255.0
    return out.contiguous()


def _flat_images(image: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
    lead = image.shape[:-3]
    return image.reshape(-1, *image.shape[-3:]), lead


def resize(
    image: torch.Tensor, height: int, width: int, interpolation: str = "bilinear"
) -> torch.Tensor:
    """Resize ``[*, C, H, W]`` images to ``[*, C, height, width]``.

    Integer images are resized in float32, then rounded and cast back (clamped
    to the range of their dtype).

    Args:
        image: the images.
        height: the output height.
        width: the output width.
        interpolation: a ``torch.nn.functional.interpolate`` mode: ``"bilinear"``,
            ``"nearest"``, ``"bicubic"``, ``"area"`` or ``"nearest-exact"``.

    Example:
        >>> import torch
        >>> resize(torch.ones(2, 1, 8, 6), 4, 3).shape
        torch.Size([2, 1, 4, 3])
    """
    check_image("image", image)
    if height < 1 or width < 1:
        raise TransformValueError(f"resize: height and width must be >= 1, got {height} x {width}")
    flat, lead = _flat_images(image)
    work = flat if flat.is_floating_point() else flat.float()
    kwargs = {"align_corners": False} if interpolation in ("bilinear", "bicubic") else {}
    antialias = interpolation in ("bilinear", "bicubic")
    out = F.interpolate(
        work, size=(height, width), mode=interpolation, antialias=antialias, **kwargs
    )
    if not image.is_floating_point():
        info = torch.iinfo(image.dtype)
        out = out.round().clamp(info.min, info.max).to(image.dtype)
    return out.reshape(*lead, *out.shape[-3:])


def rgb_to_grayscale(image: torch.Tensor) -> torch.Tensor:
    """RGB ``[*, 3, H, W]`` → gray ``[*, 1, H, W]`` with the BT.601 luma weights.

    Integer images are rounded back to their dtype.

    Example:
        >>> import torch
        >>> rgb = torch.zeros(3, 2, 2)
        >>> rgb[0] = 1.0
        >>> rgb_to_grayscale(rgb)[0, 0, 0].item()
        0.2989000082015991
    """
    check_image("image", image)
    if image.shape[-3] != 3:
        raise TransformValueError(
            f"rgb_to_grayscale needs 3 channels at dim -3, got shape {tuple(image.shape)}: "
            "convert [*, H, W, C] images with ToTensorImage first"
        )
    work = image if image.is_floating_point() else image.float()
    r, g, b = work.unbind(-3)
    gray = (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(-3)
    if not image.is_floating_point():
        gray = gray.round().to(image.dtype)
    return gray


def center_crop(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central ``height x width`` window of ``[*, C, H, W]`` images (a view).

    When ``H - height`` is odd the window is one pixel closer to the top
    (same for the width and the left side).

    Example:
        >>> import torch
        >>> img = torch.arange(16.0).reshape(1, 4, 4)
        >>> center_crop(img, 2, 2)[0].tolist()
        [[5.0, 6.0], [9.0, 10.0]]
    """
    check_image("image", image)
    h, w = image.shape[-2], image.shape[-1]
    if not (0 < height <= h and 0 < width <= w):
        raise TransformValueError(
            f"center_crop: cannot cut {height} x {width} (height x width) out of {h} x {w} images"
        )
    top = (h - height) // 2
    left = (w - width) // 2
    return image[..., top : top + height, left : left + width]
