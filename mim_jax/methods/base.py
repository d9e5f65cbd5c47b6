"""What the method files share: building a model from a config, and the method interface
parts that are the same for every pixel-reconstruction method."""

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mim_jax import config_lib
from mim_jax.models.patch import patch_grid, patchify, unpatchify, video_grid

Params = Any


def build_model(cls: type[nn.Module], config: ml_collections.ConfigDict) -> nn.Module:
    """`cls(...)` with each field taken from `config.model`, else from the input geometry
    in `config.data` (image size or spectrogram shape, channels, num_frames, mean, std,
    num_classes) and `config.dtype`."""
    d = config.data
    geometry = dict(
        image_size=config_lib.input_shape(d)[-3:-1],  # (H, W), or (frames, mel bins)
        channels=d.channels,
        num_frames=d.num_frames,
        mean=tuple(d.mean),
        std=tuple(d.std),
        num_classes=d.num_classes,
        dtype=config_lib.compute_dtype(config.dtype),
    )
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name in config.model:
            value = config.model[field.name]
            kwargs[field.name] = tuple(value) if isinstance(value, list) else value
        elif field.name in geometry:
            kwargs[field.name] = geometry[field.name]
    return cls(**kwargs)


def patch_io(model: nn.Module, images: jax.Array):
    """(patches [B, L, p*p*C] of `images`, to_image: patches -> [B, H, W, C]) for an image
    model with `patch_size` and `grid`: what every image method's `reconstruct` needs."""
    patches = patchify(images, model.patch_size)
    return patches, lambda x: unpatchify(x, model.patch_size, model.grid)


def reconstruction_views(
    patches: jax.Array, pred: jax.Array, mask: jax.Array, to_image
) -> dict[str, jax.Array]:
    """The reconstruction grid's views from target patches and pixel-space predictions
    [B, L, P], mask [B, L] (1 = hidden) and `to_image` (patches -> images or clips)."""
    mask = mask[..., None]
    return {
        "original": to_image(patches),
        "masked": to_image(patches * (1 - mask)),
        "reconstruction": to_image(pred),
        "recon + visible": to_image(pred * mask + patches * (1 - mask)),
    }


class ImageModel(nn.Module):
    """Fields and patch grid shared by the image models: images [B, H, W, C] cut into
    patch x patch squares and a ViT encoder of `depth` blocks, `width` wide."""

    image_size: tuple[int, int]
    channels: int
    patch_size: int
    width: int
    depth: int
    num_heads: int
    remat: str = dataclasses.field(default="none", kw_only=True)  # vit.REMAT_POLICIES
    # models/attention.py IMPLEMENTATIONS, for every attention of the model
    attention: str = dataclasses.field(default="auto", kw_only=True)

    @property
    def grid(self) -> tuple[int, int]:
        return patch_grid(self.image_size, self.patch_size)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]


class VideoAutoencoder(nn.Module):
    """Fields and token grid shared by the video models: clips [B, T, H, W, C] cut into
    tubelet x patch x patch cubes, an encoder and a decoder."""

    num_frames: int
    image_size: tuple[int, int]
    channels: int
    tubelet: int
    patch_size: int
    width: int
    depth: int
    num_heads: int
    decoder_width: int
    decoder_depth: int
    decoder_heads: int
    remat: str = dataclasses.field(default="none", kw_only=True)  # vit.REMAT_POLICIES
    attention: str = dataclasses.field(default="auto", kw_only=True)  # attention.IMPLEMENTATIONS

    @property
    def grid(self) -> tuple[int, int, int]:
        return video_grid(self.num_frames, self.image_size, self.tubelet, self.patch_size)

    @property
    def num_tokens(self) -> int:
        return int(np.prod(self.grid))


def pool_tokens(x: jax.Array, pool: str) -> jax.Array:
    """[B, 1 + N, D] (cls first) -> [B, D]: the cls token or the mean of the others."""
    if pool == "cls":
        return x[:, 0]
    if pool == "mean":
        return x[:, 1:].mean(axis=1)
    raise ValueError(f"eval.features must be 'cls' or 'mean', got {pool!r}")


@dataclasses.dataclass(frozen=True)
class PixelMethod:
    """init and loss for a model whose `__call__(inputs, ..., train)` returns a dict with
    "loss"; subclasses add `forward(params, inputs, rngs, ..., train)`."""

    model: nn.Module

    def init(self, rng: jax.Array, batch: Mapping[str, jax.Array]) -> Params:
        inputs = jnp.zeros((1, *batch["image"].shape[1:]), jnp.float32)
        rngs = dict(zip(("params", "masking"), jax.random.split(rng)))
        return self.model.init(rngs, inputs, train=False)["params"]

    def loss(
        self,
        params: Params,
        batch: Mapping[str, jax.Array],
        rngs: Mapping[str, jax.Array],
        train: bool = True,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        out = self.forward(params, batch["image"], rngs, train=train, **self.given_masks(batch))
        return out["loss"], {}

    def given_masks(self, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """forward() keyword arguments fixing the masking from the batch (none by default)."""
        del batch
        return {}


@dataclasses.dataclass(frozen=True)
class NoiseMaskedMethod(PixelMethod):
    """A method whose model masks by argsort of per-token noise (MAE, MAE-ST) and has an
    `encode` giving [B, 1 + N, D] with the cls token first."""

    def forward(
        self,
        params: Params,
        inputs: jax.Array,
        rngs: Mapping[str, jax.Array] | None = None,
        noise: jax.Array | None = None,
        train: bool = False,
    ) -> dict[str, jax.Array]:
        """Full pretraining forward (loss, pred, mask, latent), with the masking noise
        [B, L] given explicitly or drawn from rngs["masking"]: the parity API."""
        return self.model.apply({"params": params}, inputs, noise, train, rngs=rngs)

    def given_masks(self, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """A batch may carry the masking noise ("mask_noise" [B, L]), e.g. for parity."""
        return {"noise": batch["mask_noise"]} if "mask_noise" in batch else {}

    def features(self, params: Params, inputs: jax.Array, pool: str = "cls") -> jax.Array:
        """Unmasked encoder features [B, D]: the cls token or the mean of the others."""
        return pool_tokens(self.model.apply({"params": params}, inputs, method="encode"), pool)


@dataclasses.dataclass(frozen=True)
class BoolMaskedMethod(PixelMethod):
    """A method whose model takes a boolean mask [B, L] (True = masked; SimMIM, MaskFeat,
    CAE) and has a `tokens` method giving unmasked features [B, 1 + L, D], cls first."""

    def forward(
        self,
        params: Params,
        inputs: jax.Array,
        rngs: Mapping[str, jax.Array] | None = None,
        mask: jax.Array | None = None,
        train: bool = False,
    ) -> dict[str, jax.Array]:
        """Full pretraining forward with the mask [B, L] given or drawn from
        rngs["masking"]: the parity API."""
        return self.model.apply({"params": params}, inputs, mask, train, rngs=rngs)

    def given_masks(self, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """A batch may carry the mask ("bool_masked_pos" [B, L], True = masked)."""
        return {"mask": batch["bool_masked_pos"]} if "bool_masked_pos" in batch else {}

    def features(self, params: Params, inputs: jax.Array, pool: str = "cls") -> jax.Array:
        """Unmasked encoder features [B, D]: the cls token or the mean of the others."""
        return pool_tokens(self.model.apply({"params": params}, inputs, method="tokens"), pool)
