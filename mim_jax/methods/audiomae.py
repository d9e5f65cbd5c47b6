"""Audio-MAE: Masked Autoencoders that Listen (Huang et al., NeurIPS 2022).

MAE on Kaldi log-mel spectrograms [B, T, F, 1] (time x mel, 1024 x 128 officially), cut
into 16 x 16 patches in time-major order (token k = t * F' + f). Follows the official
`facebookresearch/AudioMAE` `models_mae.py` as its pretraining script builds it:
- encoder: ViT with fixed sin-cos position embeddings and a cls token; the patch
  conv's bias keeps torch's default U(+-1/sqrt(fan_in)) (only its weight is xavier'd);
- masking: 1-D random 0.8 (pretraining), or 2-D whole time rows + frequency columns
  (`mask_2d`, the fine-tuning option);
- decoder: "swin" (decoder_mode=1, the official pretraining) = Swin-V2-CR blocks with
  4x4 windows, shifts alternating (0, 0) / (2, 0) along time, on the patch tokens only
  (the cls token is dropped); or "global" (decoder_mode=0) = MAE's ViT decoder;
- loss: MSE on masked patches against per-patch normalised targets (norm_pix_loss).
"""

import dataclasses

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from mim_jax import masking
from mim_jax.methods import base, mae
from mim_jax.models import posemb
from mim_jax.models.patch import PatchEmbed, torch_conv_bias_init
from mim_jax.models.window import CosineWindowDecoder

DECODERS = ("swin", "global")


class AudioMaskedAutoencoder(mae.MaskedAutoencoder):
    """Audio-MAE encoder + decoder on normalised spectrograms [B, T, F, 1]."""

    decoder_type: str = "swin"
    window: tuple[int, int] = (4, 4)  # (time, freq) patches per decoder window
    shift: tuple[int, int] = (2, 0)  # of every second decoder block
    meta_hidden: int = 384  # hidden width of the Swin-V2-CR position-bias MLP
    meta_dropout: float = 0.1  # its dropout (active in pretraining, as officially)
    mask_2d: bool = False
    mask_t_prob: float = 0.7  # 2-D masking: fraction of time rows masked
    mask_f_prob: float = 0.3  # and of frequency columns (main_pretrain.py defaults)

    def make_patch_embed(self) -> nn.Module:
        fan_in = self.patch_size**2 * self.channels
        return PatchEmbed(
            self.patch_size,
            self.width,
            dtype=self.dtype,
            bias_init=torch_conv_bias_init(fan_in),
            name="patch_embed",
        )

    def make_decoder(self) -> nn.Module:
        if self.decoder_type == "global":
            return super().make_decoder()
        if self.decoder_type != "swin":
            raise ValueError(f"config.model.decoder_type={self.decoder_type!r}; valid: {DECODERS}")
        return CosineWindowDecoder(
            self.decoder_depth,
            self.decoder_heads,
            self.grid,
            tuple(self.window),
            tuple(self.shift),
            self.mlp_ratio,
            self.meta_hidden,
            self.meta_dropout,
            self.dtype,
            remat=self.remat,
            name="decoder",
        )

    def pos_table(self, dim: int) -> np.ndarray:
        # The official table is built on the patch embedding's `patch_hw` = (F', T') grid
        # while tokens run (t, f), so token k gets [sincos(k mod T'), sincos(k div T')]:
        # reproduced by laying MAE's table out on the transposed grid.
        t, f = self.grid
        return posemb.sincos_2d(dim, (f, t), cls_token=True)

    def decode(self, latent: jax.Array, ids_restore: jax.Array, train: bool = False) -> jax.Array:
        if self.decoder_type == "global":
            return super().decode(latent, ids_restore, train)
        x = self.decoder_input(latent, ids_restore)[:, 1:]  # the windows see patches only
        return self.decoder_pred(self.decoder(x, train))

    def noise_shape(self, batch: int) -> tuple[int, ...]:
        """[B, T' * F'] per-patch noise, or [B, T' + F'] (time rows, then freq columns)."""
        t, f = self.grid
        return (batch, t + f) if self.mask_2d else (batch, t * f)

    def mask_spec(self, noise: jax.Array) -> masking.MaskSpec:
        if not self.mask_2d:
            return masking.mask_from_noise(noise, self.mask_ratio)
        t = self.grid[0]
        return masking.time_freq_masking(
            noise[:, :t], noise[:, t:], self.mask_t_prob, self.mask_f_prob
        )


@dataclasses.dataclass(frozen=True)
class AudioMAE(mae.MAE):
    """MAE's method interface on spectrograms; reconstructions are [B, T, F, 1]."""

    model: AudioMaskedAutoencoder


def from_config(config: ml_collections.ConfigDict) -> AudioMAE:
    """Audio-MAE from `config.model` plus the spectrogram geometry in `config.data`."""
    return AudioMAE(base.build_model(AudioMaskedAutoencoder, config))
