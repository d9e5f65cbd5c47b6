"""MaskFeat: Masked Feature Prediction for Self-Supervised Visual Pre-Training (Wei et al.,
CVPR 2022), the image (ViT) model.

Follows the official `facebookresearch/SlowFast` (`slowfast/models/masked.py` MaskMViT
with a 2-D patch, `configs/masked_ssl/in1k_VIT_B_MaskFeat_PT.yaml`): a ViT with a cls token
and learned position embeddings encodes every patch, masked ones replaced by a learned mask
token; BEiT-style block-wise masks cover 40% of the patches; a LayerNorm + linear head
predicts each masked patch's HOG (`mim_jax.hog`: 9 orientation bins of 8x8 cells per colour
channel, L2-normalised per cell) and the loss is their mean squared error.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from mim_jax import hog, masking, targets
from mim_jax.methods import base
from mim_jax.models.vit import MaskTokenViT, token_init

Params = Any


class MaskFeatModel(base.ImageModel):
    """ViT + HOG head. Images are [B, H, W, C] float, normalised (HOG is computed on them,
    as officially; it is invariant to per-channel affine maps anyway)."""

    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    mask_ratio: float = 0.4  # MASK.MASK_RATIO
    min_block_patches: int | None = None  # None: num_masked // 5 (transform.py MaskingGenerator)
    hog_bins: int = 9
    hog_cell: int = 8
    hog_window: int = 0  # Gaussian weighting of magnitudes; the official image model has none
    dtype: jnp.dtype = jnp.float32

    @property
    def num_masked(self) -> int:
        """round(L * ratio): 78 of 196 at 0.4 (SlowFast masking: `round`)."""
        return round(self.grid[0] * self.grid[1] * self.mask_ratio)

    def setup(self):
        # MViT-style init: trunc_normal(.02) weights (effectively N(0, .02)), no layer scale.
        self.encoder = MaskTokenViT(
            self.image_size,
            self.patch_size,
            self.width,
            self.depth,
            self.num_heads,
            self.mlp_ratio,
            self.drop_path,
            pos_embed="learn",
            rel_pos_bias=False,
            layer_scale=None,
            qkv_bias="qkv",
            rescale_init=False,
            weight_init=token_init,
            dtype=self.dtype,
            remat=self.remat,
            attention=self.attention,
        )
        out_dim = (self.patch_size // self.hog_cell) ** 2 * self.channels * self.hog_bins
        self.head = nn.Dense(out_dim, kernel_init=token_init, dtype=self.dtype)

    def tokens(self, images: jax.Array) -> jax.Array:
        """Unmasked features for probes: [B, 1 + L, D], cls first."""
        return self.encoder(images, None, False)

    def draw_mask(self, batch: int) -> jax.Array:
        """BEiT block-wise masks as MaskFeat draws them (no fix-up of the count)."""
        n = self.num_masked
        return masking.block_mask_batch(
            self.make_rng("masking"),
            batch,
            self.grid,
            n,
            min_patches=n // 5 if self.min_block_patches is None else self.min_block_patches,
            exact=False,
        )

    def hog_targets(self, images: jax.Array) -> jax.Array:
        """[B, H, W, C] -> [B, L, (p/cell)^2 * C * bins], (channel, bin, cell row, col)."""
        return hog.hog_patch_targets(
            images, self.patch_size, self.hog_bins, self.hog_cell, self.hog_window
        )

    def __call__(
        self, images: jax.Array, mask: jax.Array | None = None, train: bool = True
    ) -> dict[str, jax.Array]:
        """Pretraining forward. mask bool [B, L] (True = masked) fixes the masking; else the
        "masking" RNG draws it. Returns loss, pred [B, L, F] (HOG features), target, mask."""
        if mask is None:
            mask = self.draw_mask(len(images))
        x = self.encoder(images, mask, train)[:, 1:]  # [B, L, D], final norm = head norm
        pred = self.head(x)
        target = self.hog_targets(images)
        mask = mask.astype(jnp.float32)
        loss = targets.masked_mse(pred, target, mask)  # == MSE over hog[mask] (multi_mse)
        return dict(loss=loss, pred=pred, target=target, mask=mask)


@dataclasses.dataclass(frozen=True)
class MaskFeat(base.BoolMaskedMethod):
    """The method interface the trainer and evaluators use (pure functions of params)."""

    model: MaskFeatModel
    # HOG is not an image: the grid shows the input, what the encoder saw and the
    # per-patch HOG energy error, brighter where the predicted histograms are wrong.
    reconstruction_views = ("original", "masked", "hog error")
    encoder_keys = ("encoder",)

    def reconstruct(
        self, params: Params, images: jax.Array, rngs: Mapping[str, jax.Array]
    ) -> dict[str, jax.Array]:
        out = self.forward(params, images, rngs, train=False)
        m = self.model
        patches, to_image = base.patch_io(m, images)
        mask = out["mask"][..., None]
        err = jnp.mean((out["pred"] - out["target"]) ** 2, axis=-1, keepdims=True)  # [B, L, 1]
        lo, hi = patches.min(), patches.max()
        err_img = lo + (hi - lo) * err / jnp.maximum(err.max(), 1e-12)
        return {
            "original": to_image(patches),
            "masked": to_image(patches * (1 - mask)),
            "hog error": to_image(jnp.broadcast_to(err_img, patches.shape)),
        }


def from_config(config: ml_collections.ConfigDict) -> MaskFeat:
    """MaskFeat from `config.model` plus the input geometry in `config.data`."""
    return MaskFeat(base.build_model(MaskFeatModel, config))
