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
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from mim_jax import augment, optim
from mim_jax.methods import base
from mim_jax.models import posemb
from mim_jax.models.cross import CrossAttention
from mim_jax.models.patch import PatchEmbed
from mim_jax.models.vit import Encoder, layer_norm

Params = Any
HEADS = ("linear", "bn_linear", "attentive")
POOLS = ("gap", "cls")


class ViTClassifier(base.ImageModel):
    """images [B, H, W, C] (normalised) -> logits [B, num_classes]."""

    num_classes: int
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    pool: str = "gap"  # gap: mean of patch tokens + fc_norm | cls: cls token after the norm
    head: str = "linear"  # HEADS
    freeze_encoder: bool = False
    head_init_std: float = 2e-5  # MAE main_finetune.py: trunc_normal_(head.weight, std=2e-5)
    dtype: jnp.dtype = jnp.float32

    def tokens(self, images: jax.Array, train: bool) -> jax.Array:
        """[B, H, W, C] -> [B, 1 + L, D], cls first; after the final norm unless pool=gap."""
        x = PatchEmbed(self.patch_size, self.width, dtype=self.dtype, name="patch_embed")(images)
        cls = self.param("cls_token", nn.initializers.normal(0.02), (1, 1, self.width))
        x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, self.width)), x], axis=1)
        # Learned, initialised to the fixed 2-D sin-cos table: the values an MAE checkpoint
        # holds in `pos_embed` and fine-tuning then trains (models_vit.py, timm ViT).
        table = posemb.sincos_2d(self.width, self.grid, cls_token=True)[None]
        pos = self.param("pos_embed", lambda *_: jnp.asarray(table), table.shape)
        encoder = Encoder(
            self.depth,
            self.num_heads,
            self.mlp_ratio,
            self.drop_path,
            self.dtype,
            final_norm=self.pool == "cls",
            remat=self.remat,
            name="encoder",
        )
        return encoder((x + pos).astype(self.dtype), train)

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        if self.pool not in POOLS:
            raise ValueError(f"config.model.pool={self.pool!r}; valid: {POOLS}")
        if self.head not in HEADS:
            raise ValueError(f"config.model.head={self.head!r}; valid: {HEADS}")
        x = self.tokens(images, train and not self.freeze_encoder)
        if self.freeze_encoder:
            x = jax.lax.stop_gradient(x)
        if self.head == "attentive":
            query = self.param("query_token", nn.initializers.zeros, (1, 1, self.width))
            query = jnp.broadcast_to(query, (x.shape[0], 1, self.width)).astype(x.dtype)
            attend = CrossAttention(
                self.num_heads, fused_kv=False, dtype=self.dtype, name="attentive_pool"
            )
            feats = attend(
                layer_norm("norm_q", self.dtype)(query),
                layer_norm("norm_k", self.dtype)(x),
                layer_norm("norm_v", self.dtype)(x),
            )[:, 0]
        elif self.pool == "cls":
            feats = x[:, 0]
        else:
            feats = layer_norm("fc_norm", self.dtype)(x[:, 1:].mean(axis=1))
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
        head = nn.Dense(
            self.num_classes,
            kernel_init=nn.initializers.normal(self.head_init_std),
            dtype=jnp.float32,
            name="head",
        )
        return head(feats.astype(jnp.float32))


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
        targets = augment.smooth_targets(
            batch["label"], self.model.num_classes, self.label_smoothing
        )
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
        loss = optax.softmax_cross_entropy(logits, targets).mean()
        top1 = jnp.mean(logits.argmax(-1) == batch["label"])
        return loss, {"train_top1": top1, "model_state": dict(updates)}

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
    )
