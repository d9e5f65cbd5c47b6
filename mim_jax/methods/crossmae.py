"""CrossMAE: Rethinking Patch Dependence for Masked Autoencoders (Fu et al., 2024).

Follows the official `TonyLianLong/CrossMAE` `models_cross.py` (with `--cross_mae
--weight_fm --use_input`, the README recipe): MAE's encoder (no final norm) on the visible
25% of patches; the decoder predicts only a random `kept_mask_ratio` share of all patches,
each a mask-token query that reads the encoder through cross-attention alone (queries never
attend to each other). Every decoder block reads its own learned linear combination of
the encoder's input embeddings and block outputs, LayerNorm'd.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from mim_jax import masking, targets
from mim_jax.methods import base
from mim_jax.models import posemb
from mim_jax.models.cross import CrossBlock
from mim_jax.models.patch import PatchEmbed, patchify, torch_conv_bias_init
from mim_jax.models.vit import Encoder, dense_init, layer_norm, remat_block, token_init

Params = Any


class CrossMAEModel(base.ImageModel):
    """Images are [B, H, W, C] float, already normalised."""

    decoder_width: int
    decoder_depth: int
    decoder_heads: int
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.75
    kept_mask_ratio: float = 0.25  # share of ALL patches reconstructed (<= mask_ratio)
    norm_pix_loss: bool = True
    use_input: bool = True  # the patch embeddings are one of the combined feature maps
    dtype: jnp.dtype = jnp.float32

    @property
    def counts(self) -> tuple[int, int, int]:
        """(visible, masked and dropped, predicted) tokens: models_cross.py random_masking."""
        length = self.grid[0] * self.grid[1]
        if not 0 < self.kept_mask_ratio <= self.mask_ratio:
            raise ValueError(
                f"model.kept_mask_ratio={self.kept_mask_ratio} must be in (0, model.mask_ratio="
                f"{self.mask_ratio}]"
            )
        keep = masking.num_kept(length, self.mask_ratio)
        dropped = int(length * (self.mask_ratio - self.kept_mask_ratio))
        return keep, dropped, length - keep - dropped

    def setup(self):
        p = self.patch_size
        self.patch_embed = PatchEmbed(
            p,
            self.width,
            dtype=self.dtype,
            bias_init=torch_conv_bias_init(p * p * self.channels),
            name="patch_embed",
        )
        self.cls_token = self.param("cls_token", token_init, (1, 1, self.width))
        self.encoder = Encoder(
            self.depth,
            self.num_heads,
            self.mlp_ratio,
            dtype=self.dtype,
            final_norm=False,
            remat=self.remat,
            attention=self.attention,
        )
        # WeightedFeatureMaps: Linear(k, decoder_depth, bias=False), xavier after init.
        self.feature_weights = nn.Dense(
            self.decoder_depth,
            use_bias=False,
            kernel_init=dense_init,
            dtype=self.dtype,
            name="feature_weights",
        )
        self.dec_norms = [
            layer_norm(f"dec_norms_{i}", self.dtype) for i in range(self.decoder_depth)
        ]
        self.mask_token = self.param("mask_token", token_init, (1, 1, self.decoder_width))
        block = remat_block(CrossBlock, self.remat, static_argnums=())
        self.decoder_blocks = [
            block(
                self.decoder_heads,
                self.mlp_ratio,
                self.dtype,
                attention=self.attention,
                name=f"decoder_{i}",
            )
            for i in range(self.decoder_depth)
        ]
        self.decoder_norm = layer_norm("decoder_norm", self.dtype)
        out_dim = p * p * self.channels
        self.decoder_pred = nn.Dense(out_dim, kernel_init=dense_init, dtype=self.dtype)

    def encode(self, images: jax.Array, ids_keep: jax.Array | None = None, train: bool = False):
        """[B, H, W, C] -> (last block output [B, 1 + K, D], feature maps [k x [B, 1 + K, D]])."""
        pos = posemb.sincos_2d(self.width, self.grid, cls_token=True)
        x = (self.patch_embed(images) + pos[1:]).astype(self.dtype)
        if ids_keep is not None:
            x = masking.gather_tokens(x, ids_keep)
        cls = jnp.broadcast_to(self.cls_token, (x.shape[0], 1, self.width)).astype(x.dtype)
        x = jnp.concatenate([cls, x], axis=1)
        out, hidden = self.encoder(x, train, return_hidden=True)
        return out, ([x] if self.use_input else []) + hidden

    def tokens(self, images: jax.Array) -> jax.Array:
        """Unmasked features for probes: the last block's output [B, 1 + L, D]."""
        return self.encode(images)[0]

    def decode(self, features: list[jax.Array], ids_pred: jax.Array) -> jax.Array:
        """Feature maps [k x [B, 1 + K, D]], ids_pred [B, M] -> predictions [B, M, p*p*C]."""
        stacked = jnp.stack(features, axis=-1)  # [B, 1 + K, D, k]
        mixed = self.feature_weights(stacked)  # [B, 1 + K, D, decoder_depth]
        pos = jnp.asarray(posemb.sincos_2d(self.decoder_width, self.grid))  # [L, Dd]
        x = self.mask_token + pos[ids_pred]  # [B, M, Dd]
        for i, block in enumerate(self.decoder_blocks):
            x = block(x.astype(self.dtype), self.dec_norms[i](mixed[..., i]))
        return self.decoder_pred(self.decoder_norm(x))

    def __call__(
        self, images: jax.Array, noise: jax.Array | None = None, train: bool = True
    ) -> dict[str, jax.Array]:
        """Pretraining forward; noise [B, L] (optional) fixes the masking. Returns loss, pred
        [B, M, P] at ids_pred [B, M] (raster order), and the visible / predicted masks."""
        b = len(images)
        length = self.grid[0] * self.grid[1]
        if noise is None:
            noise = jax.random.uniform(self.make_rng("masking"), (b, length))
        keep, dropped, _ = self.counts
        ids_shuffle = jnp.argsort(noise, axis=1)  # small noise: visible; largest: predicted
        ids_keep = ids_shuffle[:, :keep]
        ids_pred = jnp.sort(ids_shuffle[:, keep + dropped :], axis=1)  # raster order
        _, feats = self.encode(images, ids_keep, train)
        pred = self.decode(feats, ids_pred)
        target = targets.pixel_targets(patchify(images, self.patch_size), self.norm_pix_loss)
        target = masking.gather_tokens(target, ids_pred)
        loss = jnp.mean((pred.astype(jnp.float32) - target) ** 2)
        rows = jnp.arange(b)[:, None]
        visible = jnp.zeros((b, length)).at[rows, ids_keep].set(1.0)
        predicted = jnp.zeros((b, length)).at[rows, ids_pred].set(1.0)
        return dict(loss=loss, pred=pred, ids_pred=ids_pred, visible=visible, mask=predicted)


@dataclasses.dataclass(frozen=True)
class CrossMAE(base.NoiseMaskedMethod):
    """The method interface the trainer and evaluators use (pure functions of params)."""

    model: CrossMAEModel
    reconstruction_views = ("original", "masked", "reconstruction", "recon + visible")
    encoder_keys = ("patch_embed", "cls_token", "encoder")

    def features(self, params: Params, inputs: jax.Array, pool: str = "cls") -> jax.Array:
        return base.pool_tokens(self.model.apply({"params": params}, inputs, method="tokens"), pool)

    def reconstruct(
        self, params: Params, images: jax.Array, rngs: Mapping[str, jax.Array]
    ) -> dict[str, jax.Array]:
        """Views of the visible patches and the predicted ones (dropped patches stay grey)."""
        out = self.forward(params, images, rngs, train=False)
        m = self.model
        patches, to_image = base.patch_io(m, images)
        pred = masking.scatter_tokens(out["pred"], out["ids_pred"], patches.shape[1])
        if m.norm_pix_loss:
            pred = targets.denormalize_predictions(pred, patches, True) * out["mask"][..., None]
        vis = out["visible"][..., None]
        return {
            "original": to_image(patches),
            "masked": to_image(patches * vis),
            "reconstruction": to_image(pred),
            "recon + visible": to_image(pred + patches * vis),
        }


def from_config(config: ml_collections.ConfigDict) -> CrossMAE:
    """CrossMAE from `config.model` plus the input geometry in `config.data`."""
    return CrossMAE(base.build_model(CrossMAEModel, config))
