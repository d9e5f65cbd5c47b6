"""SimMIM: a Simple Framework for Masked Image Modeling (Xie et al., CVPR 2022).

Follows the official `microsoft/SimMIM` `models/simmim.py`: the encoder sees every patch,
masked ones replaced by a learned mask token right after the patch embedding; masks are
drawn on a coarse grid (32-pixel cells, `data/data_simmim.py` MaskGenerator) and
upsampled to the model's patches; a one-layer head (1x1 conv to stride^2 * C channels,
then pixel shuffle) predicts the normalised image from the final feature map, and the
loss is L1 on the masked pixels. Backbones: a BEiT-style ViT (relative position bias
shared by all blocks, layer scale) or a Swin Transformer (stride 32).
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from mim_jax import masking, targets
from mim_jax.methods import base
from mim_jax.models.patch import (
    patch_grid,
    patchify,
    torch_conv_bias_init,
    torch_default_init,
)
from mim_jax.models.swin import SwinTransformer
from mim_jax.models.vit import MaskTokenViT

Params = Any
BACKBONES = ("vit", "swin")


class SimMIMModel(nn.Module):
    """Backbone + pixel-shuffle head. Images are [B, H, W, C] float, already normalised."""

    image_size: tuple[int, int]
    channels: int
    backbone: str = "vit"
    patch_size: int = 16
    width: int = 768  # ViT width, or Swin's first-stage embed dim
    depth: int = 12  # ViT only
    num_heads: int = 12  # ViT only
    depths: tuple[int, ...] = (2, 2, 18, 2)  # Swin only
    heads: tuple[int, ...] = (4, 8, 16, 32)  # Swin only
    window: int = 6  # Swin only
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    layer_scale: float | None = 0.1  # ViT only
    rel_pos_bias: bool = True  # ViT only
    pos_embed: str = "none"  # ViT only
    mask_patch_size: int = 32
    mask_ratio: float = 0.6
    dtype: jnp.dtype = jnp.float32
    remat: str = "none"  # vit.REMAT_POLICIES
    attention: str = "auto"  # attention.IMPLEMENTATIONS (ViT; Swin's windows use XLA)

    @property
    def grid(self) -> tuple[int, int]:
        return patch_grid(self.image_size, self.patch_size)

    @property
    def stride(self) -> int:
        """Pixels per position of the encoder's output map (ViT: a patch; Swin: 8 patches)."""
        return self.patch_size * (2 ** (len(self.depths) - 1) if self.backbone == "swin" else 1)

    def setup(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"model.backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.backbone == "vit":
            self.encoder = MaskTokenViT(
                self.image_size,
                self.patch_size,
                self.width,
                self.depth,
                self.num_heads,
                self.mlp_ratio,
                self.drop_path,
                pos_embed=self.pos_embed,
                rel_pos_bias=self.rel_pos_bias,
                layer_scale=self.layer_scale,
                dtype=self.dtype,
                remat=self.remat,
                attention=self.attention,
            )
            dim = self.width
        else:
            self.encoder = SwinTransformer(
                image_size=self.image_size,
                patch_size=self.patch_size,
                channels=self.channels,
                embed_dim=self.width,
                depths=self.depths,
                num_heads=self.heads,
                window_size=self.window,
                mlp_ratio=self.mlp_ratio,
                drop_path=self.drop_path,
                dtype=self.dtype,
                remat=self.remat,
            )
            dim = self.width * 2 ** (len(self.depths) - 1)
        # nn.Conv2d(dim, stride^2 * C, 1) with torch's default init (SimMIM leaves it).
        self.decoder = nn.Dense(
            self.stride**2 * self.channels,
            kernel_init=torch_default_init,
            bias_init=torch_conv_bias_init(dim),
            dtype=self.dtype,
        )

    def feature_map(
        self, images: jax.Array, mask: jax.Array | None = None, train: bool = False
    ) -> jax.Array:
        """[B, H, W, C], mask [B, L] -> the encoder's final map [B, H/s, W/s, D]."""
        if self.backbone == "swin":
            return self.encoder(images, mask, train)
        x = self.encoder(images, mask, train)[:, 1:]  # drop cls
        return x.reshape(x.shape[0], *self.grid, x.shape[-1])

    def tokens(self, images: jax.Array) -> jax.Array:
        """Unmasked features for probes: ViT [B, 1 + L, D] (cls first); Swin's map flattened
        behind its mean (standing in for a cls token) [B, 1 + h*w, D]."""
        if self.backbone == "vit":
            return self.encoder(images, None, False)
        x = self.encoder(images, None, False)
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        return jnp.concatenate([x.mean(axis=1, keepdims=True), x], axis=1)

    def draw_mask(self, batch: int) -> jax.Array:
        return masking.simmim_mask(
            self.make_rng("masking"),
            batch,
            self.image_size,
            self.mask_patch_size,
            self.patch_size,
            self.mask_ratio,
        )

    def __call__(
        self, images: jax.Array, mask: jax.Array | None = None, train: bool = True
    ) -> dict[str, jax.Array]:
        """Pretraining forward. mask bool [B, L] (True = masked) fixes the masking; else the
        "masking" RNG draws it. Returns loss, the reconstruction [B, H, W, C] and mask."""
        if mask is None:
            mask = self.draw_mask(len(images))
        z = self.feature_map(images, mask, train)
        s = self.stride
        # PixelShuffle reads channel c * s^2 + i * s + j as pixel (i, j) of channel c.
        recon = einops.rearrange(
            self.decoder(z), "b h w (c p q) -> b (h p) (w q) c", p=s, q=s, c=self.channels
        )
        p = self.patch_size
        pixel_mask = jnp.repeat(jnp.repeat(mask.reshape(-1, *self.grid), p, 1), p, 2)
        loss = targets.masked_l1_pixels(images, recon, pixel_mask)
        return dict(loss=loss, recon=recon, mask=mask.astype(jnp.float32))


@dataclasses.dataclass(frozen=True)
class SimMIM(base.BoolMaskedMethod):
    """The method interface the trainer and evaluators use (pure functions of params)."""

    model: SimMIMModel
    reconstruction_views = ("original", "masked", "reconstruction", "recon + visible")
    encoder_keys = ("encoder",)

    @property
    def no_weight_decay(self) -> tuple[str, ...]:
        """optimizer.py skip lists: ViT its cls token and position embedding; Swin its mask
        token and relative-position tables (1-D params and biases are exempt anyway)."""
        if self.model.backbone == "swin":
            return ("mask_token", "relative_position_bias_table")
        return ("cls_token", "pos_embed")

    def reconstruct(
        self, params: Params, images: jax.Array, rngs: Mapping[str, jax.Array]
    ) -> dict[str, jax.Array]:
        out = self.forward(params, images, rngs, train=False)
        m = self.model
        patches, to_image = base.patch_io(m, images)
        pred = patchify(out["recon"], m.patch_size)
        return base.reconstruction_views(patches, pred, out["mask"], to_image)


def from_config(config: ml_collections.ConfigDict) -> SimMIM:
    """SimMIM from `config.model` plus the input geometry in `config.data`."""
    model = base.build_model(SimMIMModel, config)
    size, cell, p = config.data.image_size, model.mask_patch_size, model.patch_size
    if size % cell or cell % p or size % model.stride:
        raise ValueError(
            f"config.data.image_size={size} must be a multiple of config.model.mask_patch_size="
            f"{cell}, itself a multiple of config.model.patch_size={p}, and of the encoder "
            f"stride {model.stride}"
        )
    return SimMIM(model)
