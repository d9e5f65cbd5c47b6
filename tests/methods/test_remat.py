"""config.model.remat reaches every transformer block of every method, and changes what
the backward pass stores, not what it computes."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mim_jax import methods
from mim_jax.models import vit

# (config module, its arg): each default small model, SimMIM with both backbones.
CONFIGS = [
    ("mae", ""),
    ("colormae", ""),
    ("crossmae", ""),
    ("cae", ""),
    ("maskfeat", ""),
    ("simmim", ""),
    ("simmim", "variant=Swin-B"),
    ("audiomae", ""),
    ("videomae", ""),
    ("videomae_v2", ""),
    ("mae_st", ""),
]


def _config(name: str, arg: str, remat: str):
    config = importlib.import_module(f"configs.{name}").get_config(arg or None)
    config.model.remat = remat
    config.batch_size = 2
    return config


def _blocks(config) -> int:
    m = config.model
    if m.get("backbone") == "swin":
        return sum(m.depths)
    blocks = sum(m.get(k, 0) for k in ("depth", "decoder_depth", "regressor_depth"))
    if config.method == "cae":  # the encoder runs twice: also on the masked patches (targets)
        blocks += m.depth
    return blocks


def _remat_calls(jaxpr) -> int:
    """`checkpoint` (remat) equations in a jaxpr, nested ones included."""
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name in ("checkpoint", "remat", "remat2")
        for value in eqn.params.values():
            for sub in value if isinstance(value, list | tuple) else [value]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    count += _remat_calls(inner)
    return count


def _loss_jaxpr(config):
    from mim_jax import config_lib

    method = methods.build(config)
    shape = (config.batch_size, *config_lib.input_shape(config.data))
    batch = {"image": jnp.zeros(shape), "label": jnp.zeros((shape[0],), jnp.int32)}
    rngs = {"masking": jax.random.PRNGKey(1), "dropout": jax.random.PRNGKey(2)}
    params = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    return jax.make_jaxpr(lambda p: method.loss(p, batch, rngs))(params).jaxpr


@pytest.mark.parametrize(
    "name, arg", CONFIGS, ids=[f"{n}{':' + a if a else ''}" for n, a in CONFIGS]
)
def test_every_block_is_rematerialized(name, arg):
    config = _config(name, arg, "dots")
    assert _remat_calls(_loss_jaxpr(config)) == _blocks(config)


def test_the_default_rematerializes_nothing():
    config = importlib.import_module("configs.mae").get_config()
    config.batch_size = 2
    assert config.model.remat == "none" and _remat_calls(_loss_jaxpr(config)) == 0


@pytest.mark.parametrize("remat", ["full", "dots"])
def test_remat_keeps_params_outputs_and_gradients(remat):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 16))
    plain, checkpointed = vit.Encoder(2, 2), vit.Encoder(2, 2, remat=remat)
    params = plain.init(jax.random.PRNGKey(1), x)
    assert jax.tree.structure(params) == jax.tree.structure(
        checkpointed.init(jax.random.PRNGKey(1), x)
    )
    loss = lambda model: lambda p: jnp.sum(model.apply(p, x, True) ** 2)
    np.testing.assert_allclose(loss(checkpointed)(params), loss(plain)(params), rtol=1e-6)
    a, b = jax.grad(loss(plain))(params), jax.grad(loss(checkpointed))(params)
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7), a, b)


def test_an_unknown_policy_names_the_key():
    with pytest.raises(ValueError, match=r"model.remat='some'"):
        vit.Encoder(1, 2, remat="some").init(jax.random.PRNGKey(0), jnp.zeros((1, 3, 8)))
