"""mim_jax: masked-modeling pretraining (MAE and its family) in JAX/Flax."""

__version__ = "0.1.0"
