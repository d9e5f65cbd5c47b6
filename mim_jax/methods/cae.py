"""CAE: Context Autoencoder for Self-Supervised Representation Learning (Chen et al., IJCV
2023).

Follows the official `Atten4Vis/CAE` (`models/modeling_cae.py`, `modeling_cae_helper.py`,
`scripts/cae_base_800e.sh`): a BEiT-style encoder (q/v biases, layer scale 0.1, fixed
sin-cos positions) sees only the visible patches of a block-wise mask (98 of 196); a latent
regressor of cross-attention blocks predicts the masked patches' latents from the visible
ones and the positions; those predictions are aligned (MSE, weight 2) with the encoder's own
latents of the masked patches under stop-gradient (the official "alignment encoder" copies
the encoder's weights every step, momentum 0); a decoder of self-attention blocks over the
masked tokens alone predicts their targets.

Target: the official CAE predicts DALL-E tokenizer codes (cross-entropy over 8192), which
needs the tokenizer's weights; here the decoder predicts per-patch normalised pixels (MSE,
as MAE's norm-pix target), so it runs with nothing downloaded. The recipe card says so.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mim_jax import masking, targets
from mim_jax.methods import base
from mim_jax.models import posemb
from mim_jax.models.cross import RegressorBlock
from mim_jax.models.patch import PatchEmbed, patchify
from mim_jax.models.vit import Encoder, dense_init, layer_norm, remat_block, trunc_std_init

Params = Any


class ContextAutoencoder(base.ImageModel):
    """Images are [B, H, W, C] float, already normalised."""

    regressor_depth: int = 4
    decoder_depth: int = 4
    mlp_ratio: float = 4.0
    drop_path: float = 0.1
    layer_scale: float = 0.1
    num_masked: int = 98  # --num_mask_patches
    min_block_patches: int = 16
    align_weight: float = 2.0  # --align_loss_weight
    norm_pix_loss: bool = True
    dtype: jnp.dtype = jnp.float32

    def pos_table(self) -> np.ndarray:
        """[1 + L, D] fixed sin-cos table, rows first, zero cls row (CAE's layout)."""
        return posemb.sincos_2d(self.width, self.grid, cls_token=True, rows_first=True)

    def setup(self):
        if not 0 < self.num_masked < self.num_patches:
            raise ValueError(
                f"model.num_masked={self.num_masked} must be in (0, {self.num_patches}) "
                f"for a {self.grid[0]}x{self.grid[1]} patch grid"
            )
        # Official: every Linear re-initialised xavier-uniform (the BEiT rescale is lost);
        # the patch conv, cls and mask tokens keep trunc-normal(.02) cut at +-1 std.
        self.patch_embed = PatchEmbed(
            self.patch_size, self.width, dtype=self.dtype, kernel_init=trunc_std_init
        )
        self.cls_token = self.param("cls_token", trunc_std_init, (1, 1, self.width))
        common = dict(
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            drop_path=self.drop_path,
            dtype=self.dtype,
            qkv_bias="qv",
            layer_scale=self.layer_scale,
            remat=self.remat,
            attention=self.attention,
        )
        self.encoder = Encoder(self.depth, **common)
        self.mask_token = self.param("mask_token", trunc_std_init, (1, 1, self.width))
        rates = np.linspace(0.0, self.drop_path, self.regressor_depth)
        regressor = remat_block(RegressorBlock, self.remat, static_argnums=(5,))  # 5: train
        self.regressor = [
            regressor(
                self.num_heads,
                self.mlp_ratio,
                self.layer_scale,
                float(rate),
                self.dtype,
                attention=self.attention,
                name=f"regressor_{i}",
            )
            for i, rate in enumerate(rates)
        ]
        self.regressor_norm = layer_norm("regressor_norm", self.dtype)
        self.decoder = Encoder(self.decoder_depth, **common)
        out_dim = self.patch_size**2 * self.channels
        self.head = nn.Dense(out_dim, kernel_init=dense_init, dtype=self.dtype)

    def encode(
        self, images: jax.Array, ids: jax.Array | None = None, train: bool = False
    ) -> jax.Array:
        """[B, H, W, C], the patches to encode ids [B, K] (None: all) -> [B, 1 + K, D]."""
        pos = self.pos_table()
        x = self.patch_embed(images) + pos[1:]
        if ids is not None:
            x = masking.gather_tokens(x, ids)
        cls = jnp.broadcast_to(self.cls_token, (x.shape[0], 1, self.width))
        return self.encoder(jnp.concatenate([cls, x], axis=1).astype(self.dtype), train)

    def regress(
        self, latent: jax.Array, ids_keep: jax.Array, ids_masked: jax.Array, train: bool
    ) -> jax.Array:
        """Visible latents [B, K, D] -> predicted latents of the masked patches [B, M, D].
        Keys/values: [visible ; current queries], positions added to queries and keys."""
        pos = jnp.asarray(self.pos_table()[1:])
        pos_vis, pos_mask = pos[ids_keep], pos[ids_masked]  # [B, K, D], [B, M, D]
        x = jnp.broadcast_to(self.mask_token, pos_mask.shape).astype(self.dtype)
        pos_k = jnp.concatenate([pos_vis, pos_mask], axis=1)
        for block in self.regressor:
            x = block(x, jnp.concatenate([latent, x], axis=1), pos_mask, pos_k, train)
        return self.regressor_norm(x)

    def decode(self, predicted: jax.Array, ids_masked: jax.Array, train: bool) -> jax.Array:
        """Predicted latents [B, M, D] -> targets of the masked patches [B, M, p*p*C]."""
        pos = jnp.asarray(self.pos_table()[1:])[ids_masked]
        return self.head(self.decoder((predicted + pos).astype(self.dtype), train))

    def tokens(self, images: jax.Array) -> jax.Array:
        """Unmasked features for probes: [B, 1 + L, D], cls first."""
        return self.encode(images)

    def __call__(
        self, images: jax.Array, mask: jax.Array | None = None, train: bool = True
    ) -> dict[str, jax.Array]:
        """Pretraining forward. mask bool [B, L] (True = masked, exactly `num_masked` per
        row) fixes the masking; else block-wise masks are drawn from the "masking" RNG.
        Returns loss (= pixel + align_weight x alignment), both parts, pred [B, M, P] at the
        masked positions in raster order, and the mask."""
        b = len(images)
        keep = self.num_patches - self.num_masked
        if mask is None:
            mask = masking.block_mask_batch(
                self.make_rng("masking"),
                b,
                self.grid,
                self.num_masked,
                min_patches=self.min_block_patches,
            )
        order = jnp.argsort(mask.astype(jnp.int32), axis=1, stable=True)  # visible, masked
        ids_keep, ids_masked = order[:, :keep], order[:, keep:]  # each in raster order
        latent = self.encode(images, ids_keep, train)[:, 1:]
        # The alignment target: the same encoder on the masked patches, no gradient.
        target_latent = jax.lax.stop_gradient(self.encode(images, ids_masked, train)[:, 1:])
        predicted = self.regress(latent, ids_keep, ids_masked, train)
        pred = self.decode(predicted, ids_masked, train)
        target = targets.pixel_targets(patchify(images, self.patch_size), self.norm_pix_loss)
        target = masking.gather_tokens(target, ids_masked)
        loss_main = jnp.mean((pred.astype(jnp.float32) - target) ** 2)
        diff = predicted.astype(jnp.float32) - target_latent.astype(jnp.float32)
        loss_align = jnp.mean(diff**2)
        return dict(
            loss=loss_main + self.align_weight * loss_align,
            loss_main=loss_main,
            loss_align=loss_align,
            pred=pred,
            ids_masked=ids_masked,
            mask=mask.astype(jnp.float32),
        )


@dataclasses.dataclass(frozen=True)
class CAE(base.BoolMaskedMethod):
    """The method interface the trainer and evaluators use (pure functions of params)."""

    model: ContextAutoencoder
    reconstruction_views = ("original", "masked", "reconstruction", "recon + visible")
    encoder_keys = ("patch_embed", "cls_token", "encoder")

    def loss(self, params, batch, rngs, train: bool = True):
        out = self.forward(params, batch["image"], rngs, train=train, **self.given_masks(batch))
        return out["loss"], {"loss_main": out["loss_main"], "loss_align": out["loss_align"]}

    def reconstruct(
        self, params: Params, images: jax.Array, rngs: Mapping[str, jax.Array]
    ) -> dict[str, jax.Array]:
        out = self.forward(params, images, rngs, train=False)
        m = self.model
        patches, to_image = base.patch_io(m, images)
        pred = masking.scatter_tokens(out["pred"], out["ids_masked"], patches.shape[1])
        pred = targets.denormalize_predictions(pred, patches, m.norm_pix_loss)
        pred = pred * out["mask"][..., None]  # visible patches are not predicted
        return base.reconstruction_views(patches, pred, out["mask"], to_image)


def from_config(config: ml_collections.ConfigDict) -> CAE:
    """CAE from `config.model` plus the input geometry in `config.data`."""
    return CAE(base.build_model(ContextAutoencoder, config))
