"""Classification on a pretrained ViT encoder: fine-tuning, linear probing and attentive
probing as one method, so every protocol runs through the same trainer.

The encoder's params are named as the pretraining checkpoints name them (`patch_embed`,
`cls_token`, `encoder/blocks_i`, `encoder/norm`), so `config.init_from` loads an MAE-layout
run (MAE, ColorMAE, CrossMAE) or export; the head is fresh.

- finetune (MAE `main_finetune.py` + `models_vit.py`): all params train, drop path, mean of
  the patch tokens then `fc_norm` (no final encoder norm), a linear head (init std 2e-5),
  label smoothing, mixup/cutmix and random erasing on the device.
- linprobe (MAE `main_linprobe.py`): frozen encoder, the cls token after the final norm,
  BatchNorm without affine params (eps 1e-6), a linear head (init std 0.01).
- attentive (CAE `run_attentive.py`): frozen encoder, one learned query cross-attending
  to all tokens (CAE `AttentiveBlock`: LayerNorms on q, k and v, no MLP), BatchNorm
  without affine params, a linear head.

`backbone` names the pretraining layout the encoder reproduces: "vit" (the above),
"videomae" (VideoMAE `modeling_finetune.py`: tubelets, the fixed 1-D sinusoid table, no
cls token, q/v biases; the mean of all tokens + fc_norm) or "audiomae" (Audio-MAE
`models_vit.py`: spectrogram patches, the fixed sin-cos table of pretraining, a cls
token, and in training whole time rows / frequency columns of patches dropped from the
encoder). `loss`: "softmax" (cross-entropy on soft targets) or "bce" (multi-label,
Audio-MAE's BCEWithLogitsLoss on the multi-hot "labels").
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from mim_jax import augment, masking, optim
from mim_jax.methods import base
from mim_jax.models import posemb
from mim_jax.models.cross import CrossAttention
from mim_jax.models.patch import PatchEmbed, TubeletEmbed, video_grid
from mim_jax.models.vit import Encoder, layer_norm

Params = Any
HEADS = ("linear", "bn_linear", "attentive")
POOLS = ("gap", "cls")
BACKBONES = ("vit", "videomae", "audiomae")
LOSSES = ("softmax", "bce")


class ViTClassifier(base.ImageModel):
    """inputs [B, H, W, C] images, [B, T, H, W, C] clips or [B, T, F, 1] spectrograms
    (normalised) -> logits [B, num_classes]."""

    num_classes: int
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    pool: str = "gap"  # gap: mean of patch tokens + fc_norm | cls: cls token after the norm
    head: str = "linear"  # HEADS
    freeze_encoder: bool = False
    head_init_std: float = 2e-5  # MAE main_finetune.py: trunc_normal_(head.weight, std=2e-5)
    backbone: str = "vit"  # BACKBONES
    num_frames: int = 0  # videomae: frames per clip
    tubelet: int = 2  # videomae: frames per cube
    # audiomae, training only: fraction of time rows / frequency columns of patches dropped
    # from the encoder (models_vit.py forward_features_mask; 0 = keep all).
    mask_t_prob: float = 0.0
    mask_f_prob: float = 0.0
    head_dropout: float = 0.0  # before the head, in training (VideoMAE --fc_drop_rate)
    dtype: jnp.dtype = jnp.float32

    @property
    def token_grid(self) -> tuple[int, ...]:
        if self.backbone == "videomae":
            return video_grid(self.num_frames, self.image_size, self.tubelet, self.patch_size)
        return self.grid

    @property
    def has_cls(self) -> bool:
        return self.backbone != "videomae"  # VideoMAE fine-tunes without a cls token

    def patch_tokens(self, inputs: jax.Array, pos: jax.Array | None) -> jax.Array:
        """inputs -> [B, L, D] patch tokens plus their position embeddings (`pos` [1, 1 + L,
        D] with the cls row, or the videomae table)."""
        if self.backbone == "videomae":
            embed = TubeletEmbed(
                self.tubelet, self.patch_size, self.width, "torch", self.dtype, name="patch_embed"
            )
            # modeling_finetune.py: the fixed sinusoid table (use_learnable_pos_emb=False).
            table = posemb.sinusoid_table(int(np.prod(self.token_grid)), self.width)
            return embed(inputs) + jnp.asarray(table)
        x = PatchEmbed(self.patch_size, self.width, dtype=self.dtype, name="patch_embed")(inputs)
        return x + pos[:, 1:]

    def pos_embed(self) -> jax.Array:
        """[1, 1 + L, D], the cls row first."""
        if self.backbone == "audiomae":
            # Audio-MAE keeps pretraining's frozen table (requires_grad=False), laid out on
            # the transposed (F', T') grid as models_mae.py builds it (methods/audiomae.py).
            t, f = self.grid
            return jnp.asarray(posemb.sincos_2d(self.width, (f, t), cls_token=True)[None])
        # Learned, initialised to the fixed 2-D sin-cos table: the values an MAE checkpoint
        # holds in `pos_embed` and fine-tuning then trains (models_vit.py, timm ViT).
        table = posemb.sincos_2d(self.width, self.grid, cls_token=True)[None]
        return self.param("pos_embed", lambda *_: jnp.asarray(table), table.shape)

    def drop_tokens(self, x: jax.Array) -> jax.Array:
        """[B, T'*F', D] -> [B, kept, D]: Audio-MAE's 2-D masking in fine-tuning, random
        time rows then frequency columns per example (static counts)."""
        t, f = self.grid
        key_t, key_f = jax.random.split(self.make_rng("dropout"))
        noise_t = jax.random.uniform(key_t, (x.shape[0], t))
        noise_f = jax.random.uniform(key_f, (x.shape[0], f))
        spec = masking.time_freq_masking(noise_t, noise_f, self.mask_t_prob, self.mask_f_prob)
        return masking.gather_tokens(x, spec.ids_keep)

    def tokens(self, inputs: jax.Array, train: bool) -> jax.Array:
        """inputs -> [B, (1 +) L, D], cls first where there is one; after the final norm
        unless pool=gap."""
        pos = self.pos_embed() if self.has_cls else None
        x = self.patch_tokens(inputs, pos)
        if train and self.backbone == "audiomae" and (self.mask_t_prob or self.mask_f_prob):
            x = self.drop_tokens(x)
        if self.has_cls:
            cls = self.param("cls_token", nn.initializers.normal(0.02), (1, 1, self.width))
            cls = cls + pos[:, :1]
            x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, self.width)), x], axis=1)
        encoder = Encoder(
            self.depth,
            self.num_heads,
            self.mlp_ratio,
            self.drop_path,
            self.dtype,
            final_norm=self.pool == "cls",
            qkv_bias="qv" if self.backbone == "videomae" else "qkv",
            remat=self.remat,
            attention=self.attention,
            name="encoder",
        )
        return encoder(x.astype(self.dtype), train)

    @nn.compact
    def __call__(
        self, images: jax.Array, train: bool = False, tokens_only: bool = False
    ) -> jax.Array:
        """Logits [B, num_classes]; with `tokens_only`, the encoder's tokens (`tokens`)."""
        check_model(self.pool, self.head, self.backbone)
        x = self.tokens(images, train and not self.freeze_encoder)
        if tokens_only:
            return x
        if self.freeze_encoder:
            x = jax.lax.stop_gradient(x)
        if self.head == "attentive":
            query = self.param("query_token", nn.initializers.zeros, (1, 1, self.width))
            query = jnp.broadcast_to(query, (x.shape[0], 1, self.width)).astype(x.dtype)
            attend = CrossAttention(
                self.num_heads,
                fused_kv=False,
                dtype=self.dtype,
                attention=self.attention,
                name="attentive_pool",
            )
            feats = attend(
                layer_norm("norm_q", self.dtype)(query),
                layer_norm("norm_k", self.dtype)(x),
                layer_norm("norm_v", self.dtype)(x),
            )[:, 0]
        elif self.pool == "cls":
            feats = x[:, 0]
        else:
            feats = layer_norm("fc_norm", self.dtype)(x[:, int(self.has_cls) :].mean(axis=1))
        if self.head in ("bn_linear", "attentive"):
            # BatchNorm1d(affine=False, eps=1e-6), torch momentum 0.1 (MAE main_linprobe.py).
            feats = nn.BatchNorm(
                use_running_average=not train,
                momentum=0.9,
                epsilon=1e-6,
                use_scale=False,
                use_bias=False,
                dtype=jnp.float32,
                name="head_norm",
            )(feats.astype(jnp.float32))
        if self.head_dropout > 0:
            feats = nn.Dropout(self.head_dropout, deterministic=not train)(feats)
        head = nn.Dense(
            self.num_classes,
            kernel_init=nn.initializers.normal(self.head_init_std),
            dtype=jnp.float32,
            name="head",
        )
        return head(feats.astype(jnp.float32))


def check_model(pool: str, head: str, backbone: str) -> None:
    """Fails naming the config.model key whose value is not one of the valid ones."""
    for key, value, valid in (
        ("pool", pool, POOLS),
        ("head", head, HEADS),
        ("backbone", backbone, BACKBONES),
    ):
        if value not in valid:
            raise ValueError(f"config.model.{key}={value!r}; valid: {valid}")
    if backbone == "videomae" and pool == "cls":
        raise ValueError("config.model.pool='cls' needs a cls token; backbone=videomae has none")


# Top-level params that train when the encoder is frozen.
HEAD_KEYS = ("head", "attentive_pool", "query_token", "norm_q", "norm_k", "norm_v")


@dataclasses.dataclass(frozen=True)
class Classifier:
    """Cross-entropy on (smoothed, mixed) soft targets; `predict` gives eval logits."""

    model: ViTClassifier
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0
    switch_prob: float = 0.5
    erase_prob: float = 0.0
    loss_type: str = "softmax"  # LOSSES
    # timm VisionTransformer.no_weight_decay (MAE param_groups_lrd): no decay on these.
    no_weight_decay = ("pos_embed", "cls_token", "query_token")
    stateful = True  # BatchNorm statistics live in state["model_state"]

    def init_variables(self, rng: jax.Array, batch: Mapping[str, jax.Array]) -> dict:
        inputs = jnp.zeros((1, *batch["image"].shape[1:]), jnp.float32)
        return dict(self.model.init({"params": rng}, inputs, train=False))

    def trainable(self, params: Params):
        """Bool tree: the head only when the encoder is frozen, else everything."""
        frozen = self.model.freeze_encoder
        flag = lambda tree, value: jax.tree.map(lambda _: value, tree)
        return {k: flag(v, not frozen or k in HEAD_KEYS) for k, v in params.items()}

    def layer_scales(self, params: Params, decay: float):
        return optim.layer_decay_scales(params, self.model.depth, decay)

    @property
    def protocol(self) -> str:
        """The evaluation protocol this head and freezing make, for eval_summary.json."""
        if not self.model.freeze_encoder:
            return "finetune"
        return "attentive_probe" if self.model.head == "attentive" else "linprobe"

    def loss(
        self,
        params: Params,
        batch: Mapping[str, jax.Array],
        rngs: Mapping[str, jax.Array],
        train: bool = True,
        model_state: dict | None = None,
    ) -> tuple[jax.Array, dict]:
        images = batch["image"]
        targets = self.targets(batch)
        if train:
            erase_key, mix_key = jax.random.split(rngs["augment"])
            if self.erase_prob > 0:  # timm RandomErasing comes before Mixup (per sample)
                images = augment.random_erasing(erase_key, images, prob=self.erase_prob)
            if self.mixup_alpha > 0 or self.cutmix_alpha > 0:
                images, targets, _ = augment.mixup_cutmix(
                    mix_key,
                    images,
                    targets,
                    mixup_alpha=self.mixup_alpha,
                    cutmix_alpha=self.cutmix_alpha,
                    switch_prob=self.switch_prob,
                    prob=self.mix_prob,
                )
        variables = {"params": params, **(model_state or {})}
        logits, updates = self.model.apply(
            variables,
            images,
            train=train,
            rngs={"dropout": rngs["dropout"]},
            mutable=list(model_state or ()),
        )
        if self.loss_type == "bce":  # mean over examples and classes, as BCEWithLogitsLoss
            loss = optax.sigmoid_binary_cross_entropy(logits, targets).mean()
        else:
            loss = optax.softmax_cross_entropy(logits, targets).mean()
        top1 = jnp.mean(logits.argmax(-1) == batch["label"])
        return loss, {"train_top1": top1, "model_state": dict(updates)}

    def targets(self, batch: Mapping[str, jax.Array]) -> jax.Array:
        """[B, C] float32 targets: the batch's "labels" where it has them (multi-hot, or
        mixed in the dataset: Audio-MAE's waveform mixup), else the one-hot "label"; then
        timm's label smoothing (linear, so smoothing mixed targets = mixing smoothed ones)."""
        if "labels" not in batch:
            return augment.smooth_targets(
                batch["label"], self.model.num_classes, self.label_smoothing
            )
        targets = batch["labels"].astype(jnp.float32)
        s = self.label_smoothing
        return targets * (1.0 - s) + s / self.model.num_classes if s else targets

    def predict(self, params: Params, model_state: dict, images: jax.Array) -> jax.Array:
        """Eval logits [B, num_classes] for normalised images (running BN statistics)."""
        return self.model.apply({"params": params, **model_state}, images, train=False)


def from_config(config: ml_collections.ConfigDict) -> Classifier:
    m = config.model
    return Classifier(
        base.build_model(ViTClassifier, config),
        label_smoothing=m.label_smoothing,
        mixup_alpha=m.mixup,
        cutmix_alpha=m.cutmix,
        mix_prob=m.mix_prob,
        switch_prob=m.mix_switch_prob,
        erase_prob=m.erase_prob,
        loss_type=m.get("loss", "softmax"),
    )
