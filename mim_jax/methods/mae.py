"""MAE: Masked Autoencoders Are Scalable Vision Learners (He et al., CVPR 2022).

Follows the official `facebookresearch/mae` `models_mae.py`: conv patch embedding,
fixed 2-D sin-cos position embeddings (cls slot = 0) in encoder and decoder, per-sample
masking by argsort of uniform noise, a cls token, a light decoder with a shared mask
token, and the loss = mean over masked patches of the per-patch MSE against (optionally
per-patch normalised) pixels.
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
from mim_jax.models.patch import PatchEmbed, patchify
from mim_jax.models.vit import Encoder, dense_init, token_init

Params = Any


class MaskedAutoencoder(base.ImageModel):
    """MAE encoder + decoder. Images are [B, H, W, C] float, already normalised."""

    decoder_width: int
    decoder_depth: int
    decoder_heads: int
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True
    dtype: jnp.dtype = jnp.float32

    def pos_table(self, dim: int) -> np.ndarray:
        """[1 + L, dim] fixed 2-D sin-cos position embeddings, the cls row zero."""
        return posemb.sincos_2d(dim, self.grid, cls_token=True)

    def setup(self):
        self.patch_embed = self.make_patch_embed()
        self.cls_token = self.param("cls_token", token_init, (1, 1, self.width))
        self.encoder = Encoder(
            self.depth,
            self.num_heads,
            self.mlp_ratio,
            dtype=self.dtype,
            remat=self.remat,
            attention=self.attention,
            name="encoder",
        )
        self.decoder_embed = nn.Dense(self.decoder_width, kernel_init=dense_init, dtype=self.dtype)
        self.mask_token = self.param("mask_token", token_init, (1, 1, self.decoder_width))
        self.decoder = self.make_decoder()
        out_dim = self.patch_size**2 * self.channels
        self.decoder_pred = nn.Dense(out_dim, kernel_init=dense_init, dtype=self.dtype)

    def make_patch_embed(self) -> nn.Module:
        return PatchEmbed(self.patch_size, self.width, dtype=self.dtype, name="patch_embed")

    def make_decoder(self) -> nn.Module:
        """The decoder blocks and final norm: [B, 1 + L, Dd] -> [B, 1 + L, Dd]."""
        return Encoder(
            self.decoder_depth,
            self.decoder_heads,
            self.mlp_ratio,
            dtype=self.dtype,
            remat=self.remat,
            attention=self.attention,
            name="decoder",
        )

    def encode(
        self, images: jax.Array, mask: masking.MaskSpec | None = None, train: bool = False
    ) -> jax.Array:
        """[B, H, W, C] -> latent [B, 1 + K, D]: cls token then the visible tokens.

        With `mask=None` every patch is encoded (features for probes).
        """
        pos = self.pos_table(self.width)  # [1 + L, D]
        x = (self.patch_embed(images) + pos[1:]).astype(self.dtype)
        if mask is not None:
            x = masking.gather_tokens(x, mask.ids_keep)
        cls = jnp.broadcast_to(self.cls_token + pos[:1], (x.shape[0], 1, self.width))
        x = jnp.concatenate([cls.astype(x.dtype), x], axis=1)
        return self.encoder(x, train)

    def decoder_input(self, latent: jax.Array, ids_restore: jax.Array) -> jax.Array:
        """latent [B, 1 + K, D] -> decoder tokens [B, 1 + L, Dd]: embedded, mask tokens
        appended, unshuffled to image order, position embeddings added."""
        x = self.decoder_embed(latent)
        b, length = ids_restore.shape
        tokens = jnp.concatenate(
            [x[:, 1:], jnp.broadcast_to(self.mask_token, (b, length + 1 - x.shape[1], x.shape[2]))],
            axis=1,
        ).astype(x.dtype)
        tokens = masking.gather_tokens(tokens, ids_restore)  # unshuffle to image order
        x = jnp.concatenate([x[:, :1], tokens], axis=1)
        return (x + self.pos_table(self.decoder_width)).astype(self.dtype)

    def decode(self, latent: jax.Array, ids_restore: jax.Array, train: bool = False) -> jax.Array:
        """latent [B, 1 + K, D], ids_restore [B, L] -> per-patch predictions [B, L, p*p*C]."""
        x = self.decoder(self.decoder_input(latent, ids_restore), train)
        return self.decoder_pred(x)[:, 1:]

    def noise_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of the masking noise for `batch` inputs (one value per patch)."""
        return (batch, self.num_patches)

    def draw_noise(self, batch: int) -> jax.Array:
        """Masking noise from the "masking" RNG stream: uniform (random masking)."""
        return jax.random.uniform(self.make_rng("masking"), self.noise_shape(batch))

    def mask_spec(self, noise: jax.Array) -> masking.MaskSpec:
        return masking.mask_from_noise(noise, self.mask_ratio)

    def __call__(
        self, images: jax.Array, noise: jax.Array | None = None, train: bool = True
    ) -> dict[str, jax.Array]:
        """Pretraining forward. noise [B, L] (optional) fixes the masking; else the
        "masking" RNG stream draws it. Returns loss, pred [B, L, P], mask [B, L],
        latent [B, 1 + K, D] and ids_restore [B, L]."""
        if noise is None:
            noise = self.draw_noise(len(images))
        spec = self.mask_spec(noise)
        latent = self.encode(images, spec, train)
        pred = self.decode(latent, spec.ids_restore, train)
        target = targets.pixel_targets(patchify(images, self.patch_size), self.norm_pix_loss)
        loss = targets.masked_mse(pred, target, spec.mask)
        return dict(
            loss=loss, pred=pred, mask=spec.mask, latent=latent, ids_restore=spec.ids_restore
        )


@dataclasses.dataclass(frozen=True)
class MAE(base.NoiseMaskedMethod):
    """The method interface the trainer and evaluators use (pure functions of params)."""

    model: MaskedAutoencoder
    # Column order of the reconstruction grid (jit returns dicts with sorted keys).
    reconstruction_views = ("original", "masked", "reconstruction", "recon + visible")
    # Top-level params of the encoder (what `--mode=export` writes; the rest is decoder).
    encoder_keys = ("patch_embed", "cls_token", "encoder")

    def reconstruct(
        self, params: Params, images: jax.Array, rngs: Mapping[str, jax.Array]
    ) -> dict[str, jax.Array]:
        """Images [B, H, W, C] (normalised space) for the reconstruction grid."""
        out = self.forward(params, images, rngs, train=False)
        m = self.model
        patches, to_image = base.patch_io(m, images)
        pred = targets.denormalize_predictions(out["pred"], patches, m.norm_pix_loss)
        return base.reconstruction_views(patches, pred, out["mask"], to_image)


def from_config(config: ml_collections.ConfigDict) -> MAE:
    """MAE from `config.model` plus the input geometry in `config.data`."""
    return MAE(base.build_model(MaskedAutoencoder, config))
