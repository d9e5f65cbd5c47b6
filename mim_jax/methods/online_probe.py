"""An online linear probe for any pretraining method with `features`: a linear head on
stop-gradient features of the unmasked inputs, trained alongside on the batch labels, so
the representation's linear accuracy shows in the training logs without a separate run."""

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

KEY = "online_probe"  # top-level params of the head; export and init_from skip them


@dataclasses.dataclass(frozen=True)
class OnlineProbe:
    """`inner`'s loss plus the probe's cross-entropy; the probe's input is detached, so the
    encoder's gradients are those of the pretraining loss alone."""

    inner: Any
    num_classes: int
    pool: str = "cls"

    def __getattr__(self, name: str):  # everything else is the inner method's
        if name == "inner":  # not yet set (copy/unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    @staticmethod
    def split(params: Mapping) -> tuple[dict, dict]:
        """(the inner method's params, the probe's)."""
        return {k: v for k, v in params.items() if k != KEY}, params[KEY]

    def init(self, rng: jax.Array, batch: Mapping[str, jax.Array]) -> dict:
        params = self.inner.init(rng, batch)
        inputs = jnp.zeros((1, *batch["image"].shape[1:]), jnp.float32)
        dim = jax.eval_shape(lambda p: self.inner.features(p, inputs, self.pool), params).shape[-1]
        head = {"kernel": jnp.zeros((dim, self.num_classes)), "bias": jnp.zeros(self.num_classes)}
        return {**params, KEY: head}

    def loss(
        self,
        params: Mapping,
        batch: Mapping[str, jax.Array],
        rngs: Mapping[str, jax.Array],
        train: bool = True,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        inner, head = self.split(params)
        loss, aux = self.inner.loss(inner, batch, rngs, train=train)
        feats = jax.lax.stop_gradient(self.inner.features(inner, batch["image"], self.pool))
        logits = feats.astype(jnp.float32) @ head["kernel"] + head["bias"]  # [B, C]
        # The logged "loss" stays the pretraining loss (also what the spike guard watches).
        metrics = {**aux, "loss": loss}
        if "labels" in batch:  # multi-label (AudioSet): independent sigmoids
            targets = batch["labels"].astype(jnp.float32)
            probe_loss = optax.sigmoid_binary_cross_entropy(logits, targets).sum(-1).mean()
        else:
            labels = batch["label"]
            probe_loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            metrics["online_probe_top1"] = jnp.mean(logits.argmax(-1) == labels)
        metrics["online_probe_loss"] = probe_loss
        return loss + probe_loss, metrics

    def features(self, params: Mapping, inputs: jax.Array, pool: str = "cls") -> jax.Array:
        return self.inner.features(self.split(params)[0], inputs, pool)

    def reconstruct(self, params: Mapping, images: jax.Array, rngs) -> dict[str, jax.Array]:
        return self.inner.reconstruct(self.split(params)[0], images, rngs)
