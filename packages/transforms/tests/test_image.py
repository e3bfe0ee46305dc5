"""Image transforms and their functions: hand-computed values and naive references."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from rlbricks.envs import EnvBase
from rlbricks.envs import check_env_specs
from rlbricks.envs.testing import CountingEnv
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import CenterCrop
from rlbricks.transforms import Compose
from rlbricks.transforms import EnvSpecs
from rlbricks.transforms import GrayScale
from rlbricks.transforms import Resize
from rlbricks.transforms import ToTensorImage
from rlbricks.transforms import Transform
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError
from rlbricks.transforms._fn_image import GRAY_WEIGHTS
from rlbricks.transforms._fn_image import center_crop
from rlbricks.transforms._fn_image import resize
from rlbricks.transforms._fn_image import rgb_to_grayscale
from rlbricks.transforms._fn_image import to_tensor_image


def test_to_tensor_image_permutes_and_scales() -> None:
    img = torch.randint(0, 256, (2, 5, 4, 3), dtype=torch.uint8)
    out = to_tensor_image(img)
    assert out.shape == (2, 3, 5, 4)
    assert out.dtype == torch.float32
    for c in range(3):
        torch.testing.assert_close(out[:, c], img[..., c].float() / 255.0)
    floats = torch.rand(5, 4, 3)
    assert torch.equal(to_tensor_image(floats), floats.permute(2, 0, 1))


def test_grayscale_matches_per_pixel_formula() -> None:
    img = torch.rand(2, 3, 4, 5)
    gray = rgb_to_grayscale(img)
    assert gray.shape == (2, 1, 4, 5)
    for b in range(2):
        for i in range(4):
            for j in range(5):
                expected = sum(w * float(img[b, c, i, j]) for c, w in enumerate(GRAY_WEIGHTS))
                assert gray[b, 0, i, j].item() == pytest.approx(expected, abs=1e-6)
    as_uint8 = rgb_to_grayscale((img * 255).to(torch.uint8))
    assert as_uint8.dtype == torch.uint8
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_grayscale(torch.zeros(4, 5, 3))


def test_center_crop_takes_the_middle() -> None:
    img = torch.arange(2 * 5 * 6.0).reshape(2, 1, 5, 6)
    out = center_crop(img, 3, 2)
    assert torch.equal(out, img[..., 1:4, 2:4])
    with pytest.raises(ValueError, match="cannot cut"):
        center_crop(img, 6, 2)


def test_resize_shapes_constants_and_integer_factors() -> None:
    const = torch.full((3, 2, 10, 8), 0.25)
    out = resize(const, 5, 4)
    assert out.shape == (3, 2, 5, 4)
    torch.testing.assert_close(out, torch.full_like(out, 0.25))
    img = torch.rand(1, 1, 4, 6)
    assert torch.equal(resize(img, 2, 3, "nearest"), img[..., ::2, ::2])
    up = resize(img, 8, 12, "nearest")
    assert torch.equal(up, img.repeat_interleave(2, -2).repeat_interleave(2, -1))


def test_resize_matches_pillow_bilinear() -> None:
    image_module = pytest.importorskip("PIL.Image")
    gen = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (40, 30), dtype=torch.uint8, generator=gen)
    ref = np.asarray(image_module.fromarray(img.numpy()).resize((12, 20), image_module.BILINEAR))
    out = resize(img[None, None], 20, 12)[0, 0]
    assert out.dtype == torch.uint8
    diff = (out.int() - torch.from_numpy(ref.copy()).int()).abs().max().item()
    assert diff <= 1


# --------------------------------------------------------------------------- #
# the transforms
# --------------------------------------------------------------------------- #
class PixelEnv(EnvBase):
    """uint8 frames [*batch, H, W, 3] that depend on the step count only."""

    def __init__(
        self, max_steps: int = 4, batch_size: tuple[int, ...] = (), hw: tuple[int, int] = (12, 10)
    ) -> None:
        super().__init__(batch_size=batch_size)
        bs = self.batch_size
        self.hw = hw
        self.max_steps = max_steps
        self.count = torch.zeros((*bs, 1), dtype=torch.long)
        self.observation_spec = Composite(
            pixels=Bounded(0, 255, shape=(*bs, *hw, 3), dtype=torch.uint8), shape=bs
        )
        self.action_spec = Categorical(2, shape=(*bs, 1))
        self.reward_spec = Unbounded(shape=(*bs, 1))

    def _frame(self) -> torch.Tensor:
        h, w = self.hw
        base = torch.arange(h * w * 3).reshape(h, w, 3)
        count = self.count.reshape(*self.batch_size, 1, 1, 1)
        return ((base + 37 * count) % 256).to(torch.uint8)

    def _reset(self, td: TensorDict | None) -> TensorDict:
        if td is not None and "_reset" in td:
            self.count = torch.where(td["_reset"], 0, self.count)
        else:
            self.count = torch.zeros_like(self.count)
        return TensorDict({"pixels": self._frame()}, batch_size=self.batch_size)

    def _step(self, td: TensorDict) -> TensorDict:
        self.count = self.count + 1
        return TensorDict(
            {
                "pixels": self._frame(),
                "reward": td["action"].float(),
                "terminated": self.count >= self.max_steps,
            },
            batch_size=self.batch_size,
        )

    def _set_seed(self, seed: int) -> None:
        pass


def pixels_td() -> TensorDict:
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 3, 8, 6, 3), dtype=torch.uint8, generator=gen)
    return TensorDict({"pixels": frames[:, 0], "next": {"pixels": frames[:, 1]}}, batch_size=[2])


def test_transforms_on_plain_tensordicts_match_the_functions() -> None:
    td = pixels_td()
    raw, raw_next = td["pixels"].clone(), td["next", "pixels"].clone()
    out = ToTensorImage()(td)
    assert torch.equal(out["pixels"], to_tensor_image(raw))
    assert torch.equal(out["next", "pixels"], to_tensor_image(raw_next))
    gray = GrayScale()(out.clone())
    assert torch.equal(gray["pixels"], rgb_to_grayscale(to_tensor_image(raw)))
    small = Resize(3, 4)(out.clone())
    assert small["pixels"].shape == (2, 3, 4, 3)
    assert torch.equal(small["next", "pixels"], resize(to_tensor_image(raw_next), 4, 3))
    crop = CenterCrop(4, 2, out_keys=["crop"])(out.clone())
    assert torch.equal(crop["crop"], to_tensor_image(raw)[..., 3:5, 1:5])
    assert crop["pixels"].shape == (2, 3, 8, 6)


def test_specs_follow_the_images() -> None:
    specs = EnvSpecs.from_env(PixelEnv(batch_size=(2,)))
    specs = Compose(
        ToTensorImage(), CenterCrop(8, 10), GrayScale(), Resize(5, 4)
    ).transform_env_specs(specs)
    spec = specs.observation["pixels"]
    assert isinstance(spec, Bounded)
    assert spec.shape == (2, 1, 4, 5)
    assert spec.dtype == torch.float32
    assert spec.low.max().item() == 0.0
    assert spec.high.min().item() == 1.0
    raw = EnvSpecs.from_env(PixelEnv())
    raw.observation["pixels"] = Unbounded(shape=(8, 6, 3))
    spec = ToTensorImage().transform_env_specs(raw).observation["pixels"]
    assert isinstance(spec, Unbounded)
    assert spec.shape == (3, 8, 6)
    with pytest.raises(TransformError, match="ToTensorImage first"):
        GrayScale().transform_env_specs(EnvSpecs.from_env(PixelEnv()))
    with pytest.raises(TransformError, match="cannot cut"):
        Compose(ToTensorImage(), CenterCrop(11, 11)).transform_env_specs(
            EnvSpecs.from_env(PixelEnv())
        )
    with pytest.raises(TransformError, match="image spec"):
        Resize(4, in_keys=["observation"]).transform_env_specs(EnvSpecs.from_env(CountingEnv()))


@pytest.mark.parametrize(
    "make",
    [
        lambda: ToTensorImage(),
        lambda: Compose(ToTensorImage(), GrayScale()),
        lambda: Compose(ToTensorImage(), Resize(7, 5)),
        lambda: Compose(ToTensorImage(), CenterCrop(6, 8)),
        lambda: Compose(ToTensorImage(), Resize(4, 6, interpolation="nearest")),
        lambda: Compose(ToTensorImage(), Resize(3, 3, interpolation="bicubic")),
    ],
)
def test_check_env_specs_on_pixel_envs(make: Callable[[], Transform]) -> None:
    check_env_specs(TransformedEnv(PixelEnv(), make()))
    check_env_specs(TransformedEnv(PixelEnv(max_steps=2, batch_size=(2,)), make()))


def test_uint8_images_stay_uint8() -> None:
    gen = torch.Generator().manual_seed(1)
    img = torch.randint(0, 256, (2, 3, 12, 10), dtype=torch.uint8, generator=gen)
    td = TensorDict({"pixels": img}, batch_size=[2])
    out = Compose(Resize(5, 6, out_keys=["small"]), GrayScale(out_keys=["gray"]))(td)
    assert out["small"].dtype == torch.uint8
    assert out["small"].shape == (2, 3, 6, 5)
    as_float = resize(img.float(), 6, 5)
    assert (out["small"].float() - as_float).abs().max().item() <= 0.5 + 1e-4
    assert out["gray"].dtype == torch.uint8
    assert out["gray"].shape == (2, 1, 12, 10)
    assert torch.equal(out["gray"], rgb_to_grayscale(img.float()).round().to(torch.uint8))


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="interpolation"):
        Resize(4, interpolation="lanczos")
    with pytest.raises(ValueError, match="positive"):
        Resize(0)
    with pytest.raises(ValueError, match="positive"):
        CenterCrop(2, 0)
    with pytest.raises(ValueError, match="floating"):
        ToTensorImage(dtype=torch.uint8)
    assert "w=4, h=4" in repr(Resize(4))
