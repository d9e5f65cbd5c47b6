"""VideoMAE (Tong et al., NeurIPS 2022) and VideoMAE V2 dual masking (Wang et al., CVPR 2023).

Follows the official `MCG-NJU/VideoMAE` `modeling_pretrain.py` and `OpenGVLab/VideoMAEv2`
`models/modeling_pretrain.py`: a 2x16x16 tubelet embedding, a fixed 1-D sinusoid position
table over the flattened (t, h, w) tokens (no cls token), tube masking (one spatial mask
repeated over time) at 0.9, q/v attention biases, an encoder->decoder projection without
bias, and a decoder that predicts per-cube normalised pixels of the masked cubes.

V2 is the same network with a second mask: the decoder reconstructs only the tokens a
running-cell pattern selects (`decoder_mask_ratio` = 0.5 drops half of all positions), so
its cost no longer grows with the number of masked tokens. One file serves both because
the V2 repository is VideoMAE plus this decoder mask.
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
from mim_jax.models.patch import (
    TubeletEmbed,
    patchify_video,
    torch_default_init,
    unpatchify_video,
)
from mim_jax.models.vit import Encoder, dense_init, trunc_std_init

Params = Any
CUBE_STD_EPS = 1e-6  # engine_for_pretraining.py: (x - mean) / (var.sqrt() + 1e-6)


def cube_normalized_targets(patches: jax.Array, channels: int) -> jax.Array:
    """Per-cube, per-channel normalised pixels: [B, L, u*p*p*C] -> same shape, float32.

    Statistics over the u*p*p pixels of each channel of each cube, unbiased variance, eps
    added to the std (not the variance): VideoMAE `engine_for_pretraining.py`.
    """
    b, n, dim = patches.shape
    x = patches.astype(jnp.float32).reshape(b, n, dim // channels, channels)
    mean = x.mean(axis=-2, keepdims=True)
    std = jnp.sqrt(x.var(axis=-2, ddof=1, keepdims=True))
    return ((x - mean) / (std + CUBE_STD_EPS)).reshape(b, n, dim)


def cube_denormalize(pred: jax.Array, patches: jax.Array, channels: int) -> jax.Array:
    """Maps per-cube normalised predictions back to pixels with the true cubes' statistics."""
    b, n, dim = patches.shape
    x = patches.astype(jnp.float32).reshape(b, n, dim // channels, channels)
    mean = x.mean(axis=-2, keepdims=True)
    std = jnp.sqrt(x.var(axis=-2, ddof=1, keepdims=True))
    y = pred.astype(jnp.float32).reshape(b, n, dim // channels, channels)
    return (y * (std + CUBE_STD_EPS) + mean).reshape(b, n, dim)


class VideoMAEModel(base.VideoAutoencoder):
    """VideoMAE encoder + decoder. Videos are [B, T, H, W, C] float, normalised with
    (`mean`, `std`), which the target computation undoes (targets are built in [0, 1])."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.9
    decoder_mask_ratio: float = 0.0  # V2 running-cell decoder mask; 0 = decode all masked
    norm_target: bool = True
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.patch_embed = TubeletEmbed(
            self.tubelet, self.patch_size, self.width, weight_init="torch", dtype=self.dtype
        )
        self.encoder = Encoder(
            self.depth,
            self.num_heads,
            self.mlp_ratio,
            dtype=self.dtype,
            qkv_bias="qv",
            remat=self.remat,
            attention=self.attention,
        )
        self.encoder_to_decoder = nn.Dense(
            self.decoder_width, use_bias=False, kernel_init=torch_default_init, dtype=self.dtype
        )
        self.mask_token = self.param("mask_token", trunc_std_init, (1, 1, self.decoder_width))
        self.decoder = Encoder(
            self.decoder_depth,
            self.decoder_heads,
            self.mlp_ratio,
            dtype=self.dtype,
            qkv_bias="qv",
            remat=self.remat,
            attention=self.attention,
        )
        out_dim = self.tubelet * self.patch_size**2 * self.channels
        self.head = nn.Dense(out_dim, kernel_init=dense_init, dtype=self.dtype)

    def encode(self, videos: jax.Array, ids_keep: jax.Array | None = None) -> jax.Array:
        """[B, T, H, W, C] -> [B, K, D]: the visible tokens (all of them with ids_keep=None)."""
        pos = posemb.sinusoid_table(self.num_tokens, self.width)
        x = (self.patch_embed(videos) + pos).astype(self.dtype)
        if ids_keep is not None:
            x = masking.gather_tokens(x, ids_keep)
        return self.encoder(x, False)

    def decode(self, latent: jax.Array, ids_keep: jax.Array, ids_pred: jax.Array) -> jax.Array:
        """latent [B, K, D] at positions ids_keep; ids_pred [B, M] -> predictions [B, M, P].

        The decoder sees the visible tokens then one mask token per predicted position, each
        plus its position embedding (VideoMAE `PretrainVisionTransformer.forward`)."""
        pos = jnp.asarray(posemb.sinusoid_table(self.num_tokens, self.decoder_width))
        pos = jnp.broadcast_to(pos, (latent.shape[0], *pos.shape))
        vis = self.encoder_to_decoder(latent) + masking.gather_tokens(pos, ids_keep)
        queries = self.mask_token + masking.gather_tokens(pos, ids_pred)
        x = jnp.concatenate([vis, queries.astype(vis.dtype)], axis=1).astype(self.dtype)
        x = self.decoder(x, False)
        return self.head(x[:, -ids_pred.shape[1] :])

    def __call__(
        self,
        videos: jax.Array,
        mask: jax.Array | None = None,
        decode_mask: jax.Array | None = None,
        train: bool = True,
    ) -> dict[str, jax.Array]:
        """Pretraining forward. mask [B, L] bool (True = hidden from the encoder, the
        official `bool_masked_pos`) and, for V2, decode_mask [B, L] bool (True = not
        reconstructed); drawn from the "masking" RNG stream when None.

        Returns loss, pred [B, M, P], target [B, M, P], mask [B, L], ids_pred [B, M] (the
        positions predicted, ascending) and latent [B, K, D]. Unlike MAE, the decoder
        output holds only the predicted positions (official VideoMAE)."""
        del train  # no dropout or drop path in pretraining (official defaults)
        b, grid = videos.shape[0], self.grid
        per_frame = grid[1] * grid[2]
        num_keep = grid[0] * (per_frame - int(self.mask_ratio * per_frame))
        if mask is None:
            key = self.make_rng("masking")
            noise = jax.random.uniform(jax.random.fold_in(key, 0), (b, per_frame))
            mask = masking.tube_mask(noise, grid[0], self.mask_ratio)
            if self.decoder_mask_ratio and decode_mask is None:
                decode_mask = masking.running_cell_mask(
                    jax.random.fold_in(key, 1), b, grid, self.decoder_mask_ratio
                )
        mask = mask.astype(bool)
        ids_keep = jnp.argsort(mask, axis=1, stable=True)[:, :num_keep]  # ascending positions
        if decode_mask is None:  # V1 (and V2 at inference): predict every masked token
            num_pred, pred_from = self.num_tokens - num_keep, mask
        else:
            decode_mask = decode_mask.astype(bool)
            cells = masking.running_cell_patterns(grid, self.decoder_mask_ratio or 0.5)
            num_pred, pred_from = self.num_tokens - int(cells[0].sum()), ~decode_mask
        ids_pred = jnp.argsort(~pred_from, axis=1, stable=True)[:, :num_pred]

        latent = self.encode(videos, ids_keep)
        pred = self.decode(latent, ids_keep, ids_pred)
        target = masking.gather_tokens(self.targets(videos), ids_pred)
        # V1: every predicted token is masked, so this is nn.MSELoss over them. V2: the
        # loss counts decoded tokens the encoder did not see, averaged over the batch.
        counted = jnp.take_along_axis(mask, ids_pred, axis=1).astype(jnp.float32)
        loss = targets.masked_mse(pred, target, counted)
        return dict(
            loss=loss,
            pred=pred,
            target=target,
            mask=mask.astype(jnp.float32),
            ids_pred=ids_pred.astype(jnp.int32),
            latent=latent,
        )

    def pixel_cubes(self, videos: jax.Array) -> jax.Array:
        """Normalised videos -> [0, 1] pixels per cube: [B, L, u*p*p*C], float32."""
        mean = jnp.asarray(self.mean, jnp.float32)
        std = jnp.asarray(self.std, jnp.float32)
        unnorm = videos.astype(jnp.float32) * std + mean
        return patchify_video(unnorm, self.tubelet, self.patch_size)

    def targets(self, videos: jax.Array) -> jax.Array:
        """[B, L, u*p*p*C] float32 regression targets for every token."""
        cubes = self.pixel_cubes(videos)
        return cube_normalized_targets(cubes, self.channels) if self.norm_target else cubes


@dataclasses.dataclass(frozen=True)
class VideoMAE(base.PixelMethod):
    """The method interface for VideoMAE / VideoMAE V2 (pure functions of params)."""

    model: VideoMAEModel
    reconstruction_views = ("original", "masked", "reconstruction", "recon + visible")
    encoder_keys = ("patch_embed", "encoder")
    # modeling_pretrain.py `no_weight_decay()`; biases and norms are exempt by shape anyway.
    no_weight_decay = ("mask_token",)

    def forward(
        self,
        params: Params,
        videos: jax.Array,
        rngs: Mapping[str, jax.Array] | None = None,
        mask: jax.Array | None = None,
        decode_mask: jax.Array | None = None,
        train: bool = False,
    ) -> dict[str, jax.Array]:
        """Full pretraining forward with optional explicit masks: the parity API."""
        return self.model.apply({"params": params}, videos, mask, decode_mask, train, rngs=rngs)

    def features(self, params: Params, videos: jax.Array, pool: str = "mean") -> jax.Array:
        """Unmasked encoder features [B, D]: the mean of all tokens (VideoMAE has no cls)."""
        if pool != "mean":
            raise ValueError(
                f"VideoMAE has no cls token: set config.eval.features='mean', not {pool!r}"
            )
        x = self.model.apply({"params": params}, videos, method=VideoMAEModel.encode)
        return x.mean(axis=1)

    def reconstruct(
        self, params: Params, videos: jax.Array, rngs: Mapping[str, jax.Array]
    ) -> dict[str, jax.Array]:
        """Clips [B, T, H, W, C] (normalised space) for the reconstruction strips; every
        encoder-masked cube is predicted (V2's decoder mask is a training-time saving)."""
        m = self.model
        mask = m.apply({"params": params}, videos, rngs=rngs, method=_draw_mask)
        out = self.forward(params, videos, mask=mask)
        cubes = m.pixel_cubes(videos)
        pred = out["pred"]
        if m.norm_target:
            pred = cube_denormalize(pred, masking.gather_tokens(cubes, out["ids_pred"]), m.channels)
        full = _scatter(jnp.zeros_like(cubes), out["ids_pred"], pred)  # predicted cubes only
        mean, std = jnp.asarray(m.mean), jnp.asarray(m.std)
        to_video = lambda x: (unpatchify_video(x, m.tubelet, m.patch_size, m.grid) - mean) / std
        return base.reconstruction_views(cubes, full, out["mask"], to_video)


def _draw_mask(model: VideoMAEModel, videos: jax.Array) -> jax.Array:
    g = model.grid
    noise = jax.random.uniform(model.make_rng("masking"), (videos.shape[0], g[1] * g[2]))
    return masking.tube_mask(noise, g[0], model.mask_ratio)


def _scatter(x: jax.Array, ids: jax.Array, values: jax.Array) -> jax.Array:
    """x [B, L, P] with rows ids [B, M] replaced by values [B, M, P]."""
    return jax.vmap(lambda row, i, v: row.at[i].set(v.astype(row.dtype)))(x, ids, values)


def from_config(config: ml_collections.ConfigDict) -> VideoMAE:
    """VideoMAE (or V2, when `model.decoder_mask_ratio` > 0) from `config`."""
    return VideoMAE(base.build_model(VideoMAEModel, config))
