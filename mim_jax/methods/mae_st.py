"""MAE-ST: Masked Autoencoders As Spatiotemporal Learners (Feichtenhofer et al., NeurIPS 2022).

Follows the official `facebookresearch/mae_st` `models_mae.py` with the pretraining flags of
its PRETRAIN.md (`--sep_pos_embed --cls_embed --t_patch_size 2 --norm_pix_loss`):
space-time-agnostic random masking (MAE's argsort of noise over all T*H*W tokens),
learned separable position embeddings (spatial table repeated over time + temporal table
repeated over space, plus one for the cls token) in both encoder and decoder, a decoder
cls token of its own, and a target of `pred_t_dim` frames picked from the clip (8 of 16:
each token predicts one frame of its 2-frame cube).
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
from mim_jax.models.patch import TubeletEmbed, patchify_video, unpatchify_video
from mim_jax.models.vit import Encoder, dense_init

Params = Any
# models_mae.py initialize_weights: trunc_normal_(std=.02) for cls and position tables
# (timm's default bounds are +-2 absolute, so effectively untruncated).
pos_init = nn.initializers.truncated_normal(stddev=0.02, lower=-100.0, upper=100.0)
mask_token_init = nn.initializers.normal(stddev=0.02)  # normal_(mask_token, std=.02)


def target_frames(num_frames: int, pred_t_dim: int) -> np.ndarray:
    """Frame indices the decoder predicts: torch.linspace(0, T-1, pred_t_dim).long()."""
    return np.linspace(0, num_frames - 1, pred_t_dim).astype(np.int64)


class SeparablePosEmbed(nn.Module):
    """Learned spatial [H*W, D] + temporal [T, D] tables (+ a cls row): [(1+)T*H*W, D]."""

    grid: tuple[int, int, int]
    dim: int
    cls_token: bool = True

    @nn.compact
    def __call__(self) -> jax.Array:
        t, h, w = self.grid
        spatial = self.param("spatial", pos_init, (1, h * w, self.dim))
        temporal = self.param("temporal", pos_init, (1, t, self.dim))
        # spatial.repeat(1, T, 1) + repeat_interleave(temporal, H*W, dim=1): token (t, s)
        table = (spatial[:, None] + temporal[:, :, None]).reshape(t * h * w, self.dim)
        if self.cls_token:
            table = jnp.concatenate([self.param("cls", pos_init, (1, 1, self.dim))[0], table])
        return table


class MAESTModel(base.VideoAutoencoder):
    """MAE-ST encoder + decoder on clips [B, T, H, W, C] (normalised)."""

    mlp_ratio: float = 4.0
    mask_ratio: float = 0.9
    pred_t_dim: int = 8
    norm_pix_loss: bool = True
    dtype: jnp.dtype = jnp.float32

    @property
    def pred_tubelet(self) -> int:
        """Frames each token predicts: t_patch_size * pred_t_dim // num_frames."""
        u = self.tubelet * self.pred_t_dim // self.num_frames
        if u < 1 or self.pred_t_dim != u * self.grid[0]:
            raise ValueError(
                f"pred_t_dim={self.pred_t_dim} must be a multiple of the {self.grid[0]} "
                f"temporal tokens of {self.num_frames} frames / tubelet {self.tubelet}"
            )
        return u

    def setup(self):
        self.patch_embed = TubeletEmbed(
            self.tubelet, self.patch_size, self.width, weight_init="xavier", dtype=self.dtype
        )
        self.cls_token = self.param("cls_token", pos_init, (1, 1, self.width))
        self.pos_embed = SeparablePosEmbed(self.grid, self.width)
        # video_vit.Attention: separate q, k, v Linears (with bias), each xavier-initialised.
        self.encoder = Encoder(
            self.depth,
            self.num_heads,
            self.mlp_ratio,
            dtype=self.dtype,
            split_init=True,
            remat=self.remat,
            attention=self.attention,
        )
        self.decoder_embed = nn.Dense(self.decoder_width, kernel_init=dense_init, dtype=self.dtype)
        self.mask_token = self.param("mask_token", mask_token_init, (1, 1, self.decoder_width))
        self.decoder_cls_token = self.param("decoder_cls_token", nn.initializers.zeros,
                                            (1, 1, self.decoder_width))  # fmt: skip
        self.decoder_pos_embed = SeparablePosEmbed(self.grid, self.decoder_width)
        self.decoder = Encoder(
            self.decoder_depth,
            self.decoder_heads,
            self.mlp_ratio,
            dtype=self.dtype,
            split_init=True,
            remat=self.remat,
            attention=self.attention,
        )
        out_dim = self.pred_tubelet * self.patch_size**2 * self.channels
        self.decoder_pred = nn.Dense(out_dim, kernel_init=dense_init, dtype=self.dtype)

    def encode(self, videos: jax.Array, ids_keep: jax.Array | None = None) -> jax.Array:
        """[B, T, H, W, C] -> [B, 1 + K, D]: cls then the visible tokens (all if None)."""
        pos = self.pos_embed()  # [1 + L, D]
        x = self.patch_embed(videos) + pos[1:]
        if ids_keep is not None:
            x = masking.gather_tokens(x, ids_keep)
        cls = jnp.broadcast_to(self.cls_token + pos[:1], (x.shape[0], 1, self.width))
        x = jnp.concatenate([cls.astype(x.dtype), x], axis=1).astype(self.dtype)
        return self.encoder(x, False)

    def decode(self, latent: jax.Array, ids_restore: jax.Array) -> jax.Array:
        """latent [B, 1 + K, D] -> per-token predictions [B, L, u'*p*p*C]; the encoder's cls
        output is dropped and the decoder's own cls token takes its place (official)."""
        x = self.decoder_embed(latent[:, 1:])
        b, length = ids_restore.shape
        mask_tokens = jnp.broadcast_to(self.mask_token, (b, length - x.shape[1], x.shape[2]))
        x = masking.gather_tokens(jnp.concatenate([x, mask_tokens.astype(x.dtype)], 1), ids_restore)
        cls = jnp.broadcast_to(self.decoder_cls_token, (b, 1, x.shape[2]))
        x = jnp.concatenate([cls.astype(x.dtype), x], axis=1) + self.decoder_pos_embed()
        x = self.decoder(x.astype(self.dtype), False)
        return self.decoder_pred(x)[:, 1:]

    def target_patches(self, videos: jax.Array) -> jax.Array:
        """The predicted frames as patches [B, L, u'*p*p*C] (unnormalised by patch)."""
        frames = videos[:, target_frames(self.num_frames, self.pred_t_dim)]
        return patchify_video(frames, self.pred_tubelet, self.patch_size).astype(jnp.float32)

    def __call__(
        self, videos: jax.Array, noise: jax.Array | None = None, train: bool = True
    ) -> dict[str, jax.Array]:
        """Pretraining forward; noise [B, L] (optional) fixes the masking as the official
        `random_masking` would. Returns loss, pred [B, L, P], mask [B, L], latent,
        ids_restore."""
        del train  # no dropout or drop path in pretraining (official defaults)
        if noise is None:
            noise = jax.random.uniform(self.make_rng("masking"), (videos.shape[0], self.num_tokens))
        spec = masking.mask_from_noise(noise, self.mask_ratio)
        latent = self.encode(videos, spec.ids_keep)
        pred = self.decode(latent, spec.ids_restore)
        target = targets.pixel_targets(self.target_patches(videos), self.norm_pix_loss)
        loss = targets.masked_mse(pred, target, spec.mask)
        return dict(
            loss=loss, pred=pred, mask=spec.mask, latent=latent, ids_restore=spec.ids_restore
        )


@dataclasses.dataclass(frozen=True)
class MAEST(base.NoiseMaskedMethod):
    """The method interface for MAE-ST (pure functions of params)."""

    model: MAESTModel
    reconstruction_views = ("original", "masked", "reconstruction", "recon + visible")
    encoder_keys = ("patch_embed", "cls_token", "pos_embed", "encoder")

    def reconstruct(
        self, params: Params, videos: jax.Array, rngs: Mapping[str, jax.Array]
    ) -> dict[str, jax.Array]:
        """The predicted frames (pred_t_dim of them) as clips [B, T', H, W, C]."""
        m = self.model
        out = self.forward(params, videos, rngs)
        patches = m.target_patches(videos)
        pred = targets.denormalize_predictions(out["pred"], patches, m.norm_pix_loss)
        to_video = lambda x: unpatchify_video(x, m.pred_tubelet, m.patch_size, m.grid)
        return base.reconstruction_views(patches, pred, out["mask"], to_video)


def from_config(config: ml_collections.ConfigDict) -> MAEST:
    """MAE-ST from `config.model` and the clip geometry in `config.data`."""
    return MAEST(base.build_model(MAESTModel, config))
