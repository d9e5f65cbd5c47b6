import jax
import jax.numpy as jnp
import numpy as np
import optax

from configs import mae as mae_config
from mim_jax import methods
from mim_jax.methods.online_probe import KEY, OnlineProbe


def _config(online: bool):
    c = mae_config.get_config()
    c.model.update(patch_size=7, width=32, depth=1, num_heads=2, decoder_width=16, decoder_depth=1)
    c.eval.online_probe = online
    return c


def test_online_probe_sends_no_gradient_into_the_encoder():
    probed, plain = methods.build(_config(True)), methods.build(_config(False))
    assert isinstance(probed, OnlineProbe) and not isinstance(plain, OnlineProbe)
    rng = np.random.default_rng(0)
    batch = {
        "image": jnp.asarray(rng.normal(size=(4, 28, 28, 1)), jnp.float32),
        "label": jnp.asarray([0, 1, 2, 3], jnp.int32),
    }
    params = jax.jit(probed.init)(jax.random.PRNGKey(0), batch)
    params[KEY] = jax.tree.map(lambda x: x + 0.1, params[KEY])  # a non-trivial head
    rngs = {"masking": jax.random.PRNGKey(1)}
    inner = {k: v for k, v in params.items() if k != KEY}
    value_and_grad = lambda m: jax.jit(
        jax.value_and_grad(lambda p: m.loss(p, batch, rngs), has_aux=True)
    )
    (_, metrics), grad_probed = value_and_grad(probed)(params)
    (plain_loss, plain_metrics), grad_plain = value_and_grad(plain)(inner)
    jax.tree.map(np.testing.assert_array_equal, {k: grad_probed[k] for k in inner}, grad_plain)
    assert optax.global_norm(grad_probed[KEY]) > 0
    np.testing.assert_allclose(metrics["loss"], plain_loss, rtol=1e-6)
    assert 0 <= metrics["online_probe_top1"] <= 1 and metrics["online_probe_loss"] > 0
    assert set(plain_metrics) < set(metrics)


def test_online_probe_keeps_features_and_reconstructions_of_the_inner_method():
    probed = methods.build(_config(True))
    images = jnp.zeros((2, 28, 28, 1))
    params = jax.jit(probed.init)(jax.random.PRNGKey(0), {"image": images})
    inner = {k: v for k, v in params.items() if k != KEY}
    ours = jax.jit(lambda p: probed.features(p, images, "mean"))(params)
    theirs = jax.jit(lambda p: probed.inner.features(p, images, "mean"))(inner)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert probed.encoder_keys == probed.inner.encoder_keys
