"""What the method files share: building a model from a config, and the method interface
parts that are the same for every pixel-reconstruction method."""

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from mim_jax import config_lib

Params = Any


def build_model(cls: type[nn.Module], config: ml_collections.ConfigDict) -> nn.Module:
    """`cls(...)` with each field taken from `config.model`, else from the input geometry
    in `config.data` (image_size, channels, num_frames, mean, std) and `config.dtype`."""
    d = config.data
    geometry = dict(
        image_size=(d.image_size, d.image_size),
        channels=d.channels,
        num_frames=d.num_frames,
        mean=tuple(d.mean),
        std=tuple(d.std),
        dtype=config_lib.compute_dtype(config.dtype),
    )
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name in config.model:
            value = config.model[field.name]
            kwargs[field.name] = tuple(value) if isinstance(value, list) else value
        elif field.name in geometry:
            kwargs[field.name] = geometry[field.name]
    return cls(**kwargs)


def pool_tokens(x: jax.Array, pool: str) -> jax.Array:
    """[B, 1 + N, D] (cls first) -> [B, D]: the cls token or the mean of the others."""
    if pool == "cls":
        return x[:, 0]
    if pool == "mean":
        return x[:, 1:].mean(axis=1)
    raise ValueError(f"eval.features must be 'cls' or 'mean', got {pool!r}")


@dataclasses.dataclass(frozen=True)
class PixelMethod:
    """init and loss for a model whose `__call__(inputs, ..., train)` returns a dict with
    "loss"; subclasses add `forward(params, inputs, rngs, ..., train)`."""

    model: nn.Module

    def init(self, rng: jax.Array, batch: Mapping[str, jax.Array]) -> Params:
        inputs = jnp.zeros((1, *batch["image"].shape[1:]), jnp.float32)
        rngs = dict(zip(("params", "masking"), jax.random.split(rng)))
        return self.model.init(rngs, inputs, train=False)["params"]

    def loss(
        self,
        params: Params,
        batch: Mapping[str, jax.Array],
        rngs: Mapping[str, jax.Array],
        train: bool = True,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        out = self.forward(params, batch["image"], rngs, train=train)
        return out["loss"], {}


@dataclasses.dataclass(frozen=True)
class NoiseMaskedMethod(PixelMethod):
    """A method whose model masks by argsort of per-token noise (MAE, MAE-ST) and has an
    `encode` giving [B, 1 + N, D] with the cls token first."""

    def forward(
        self,
        params: Params,
        inputs: jax.Array,
        rngs: Mapping[str, jax.Array] | None = None,
        noise: jax.Array | None = None,
        train: bool = False,
    ) -> dict[str, jax.Array]:
        """Full pretraining forward (loss, pred, mask, latent), with the masking noise
        [B, L] given explicitly or drawn from rngs["masking"]: the parity API."""
        return self.model.apply({"params": params}, inputs, noise, train, rngs=rngs)

    def loss(
        self,
        params: Params,
        batch: Mapping[str, jax.Array],
        rngs: Mapping[str, jax.Array],
        train: bool = True,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        out = self.forward(params, batch["image"], rngs, batch.get("mask_noise"), train)
        return out["loss"], {}

    def features(self, params: Params, inputs: jax.Array, pool: str = "cls") -> jax.Array:
        """Unmasked encoder features [B, D]: the cls token or the mean of the others."""
        return pool_tokens(self.model.apply({"params": params}, inputs, method="encode"), pool)
