"""The classifier method: fine-tuning, linear and attentive probes on a ViT encoder."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import attentive_probe, finetune, linprobe
from configs import mae as mae_config
from mim_jax import config_lib, methods, optim, train
from mim_jax.methods import classifier


def _tiny(config, **model):
    config.model.update(patch_size=7, width=32, depth=2, num_heads=2, **model)
    config.batch_size = 8
    return config


def _batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": jnp.asarray(rng.normal(size=(n, 28, 28, 1)), jnp.float32),
        "label": jnp.asarray(rng.integers(0, 10, n), jnp.int32),
    }


def _setup(config):
    method = methods.build(config)
    example = {"image": jax.ShapeDtypeStruct((8, 28, 28, 1), jnp.float32)}
    tx, _ = train.make_optimizer(method, config, example, 100, 0, ())
    state = jax.jit(lambda k: train.initial_state(method, tx, k, example))(jax.random.PRNGKey(0))
    return method, tx, state


def _loss_and_grads(method, state, batch):
    """((loss, aux), grads) of one training loss on `batch`, jitted."""
    loss_fn = lambda p: method.loss(p, batch, _rngs(), model_state=state["model_state"])
    return jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(state["params"])


def _rngs(seed=1):
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    return dict(zip(("masking", "dropout", "augment"), keys))


def test_encoder_params_are_named_as_maes_encoder():
    mae = methods.build(_tiny(mae_config.get_config(), decoder_width=16, decoder_depth=1))
    example = {"image": jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32)}
    mae_params = jax.eval_shape(mae.init, jax.random.PRNGKey(0), example)
    classifier_method = methods.build(_tiny(finetune.get_config()))
    state = jax.eval_shape(classifier_method.init_variables, jax.random.PRNGKey(0), example)
    flat = lambda t: {
        jax.tree_util.keystr(p): v.shape for p, v in jax.tree_util.tree_leaves_with_path(t)
    }
    ours, theirs = flat(state["params"]), flat(mae_params)
    encoder = {k: s for k, s in theirs.items() if not k.startswith(("['decoder", "['mask_token"))}
    encoder = {k: s for k, s in encoder.items() if "['norm']" not in k}  # gap: no final norm
    assert encoder and all(ours.get(k) == s for k, s in encoder.items())


def test_pos_embed_starts_as_the_sincos_table_mae_checkpoints_hold():
    _, _, state = _setup(_tiny(finetune.get_config()))
    from mim_jax.models import posemb

    expected = posemb.sincos_2d(32, (4, 4), cls_token=True)[None]
    np.testing.assert_array_equal(state["params"]["pos_embed"], expected)


def test_linprobe_updates_only_the_head_and_tracks_batchnorm_statistics():
    config = _tiny(linprobe.get_config())
    method, tx, state = _setup(config)
    (_, aux), grads = _loss_and_grads(method, state, _batch())
    for key, tree in grads.items():
        norm = optax.global_norm(tree)
        assert (norm > 0) if key == "head" else (norm == 0), key
    updates, _ = tx.update(grads, state["opt_state"], state["params"])
    assert optax.global_norm({k: v for k, v in updates.items() if k != "head"}) == 0
    stats = aux["model_state"]["batch_stats"]["head_norm"]
    before = state["model_state"]["batch_stats"]["head_norm"]
    assert not np.allclose(stats["mean"], before["mean"])  # momentum 0.9 toward the batch mean
    assert set(state["model_state"]["batch_stats"]) == {"head_norm"}


def test_linprobe_eval_uses_running_statistics():
    config = _tiny(linprobe.get_config())
    method, _, state = _setup(config)
    images = _batch()["image"]
    one = method.predict(state["params"], state["model_state"], images[:1])
    many = method.predict(state["params"], state["model_state"], images)
    np.testing.assert_allclose(one[0], many[0], rtol=1e-5, atol=1e-6)  # no batch coupling


def test_attentive_probe_trains_its_query_and_head_only():
    config = _tiny(attentive_probe.get_config())
    method, _, state = _setup(config)
    _, grads = _loss_and_grads(method, state, _batch())
    trained = {k for k, v in grads.items() if optax.global_norm(v) > 0}
    # (the zero query attends uniformly at init, so the key norm gets no gradient yet)
    assert {"head", "attentive_pool", "query_token"} <= trained <= set(classifier.HEAD_KEYS)
    flags = method.trainable(state["params"])
    assert all(
        jax.tree.leaves(flags[k]) == [k in classifier.HEAD_KEYS] * len(jax.tree.leaves(flags[k]))
        for k in flags
    )
    assert not all(jax.tree.leaves(flags["encoder"]))


def test_finetune_trains_everything_with_layer_decay_from_the_config():
    config = _tiny(finetune.get_config())
    method, _, state = _setup(config)
    _, grads = _loss_and_grads(method, state, _batch())
    assert all(optax.global_norm(v) > 0 for v in grads.values())
    scales = method.layer_scales(state["params"], config.optim.layer_decay)
    assert scales["patch_embed"]["proj"]["kernel"] == pytest.approx(0.75**3)
    assert scales["encoder"]["blocks_1"]["mlp"]["fc1"]["kernel"] == pytest.approx(0.75)


def test_finetune_loss_is_cross_entropy_on_smoothed_mixed_targets():
    config = _tiny(finetune.get_config())
    config.model.update(mixup=0.0, cutmix=0.0, erase_prob=0.0, label_smoothing=0.1)
    method, _, state = _setup(config)
    batch = _batch()
    loss, _ = method.loss(state["params"], batch, _rngs(), train=False, model_state={})
    logits = method.predict(state["params"], {}, batch["image"])
    targets = np.full((8, 10), 0.01)
    targets[np.arange(8), np.asarray(batch["label"])] = 0.91
    expected = -(targets * jax.nn.log_softmax(logits)).sum(-1).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_layer_decay_on_a_method_without_layers_fails_before_compiling():
    config = _tiny(mae_config.get_config(), decoder_width=16, decoder_depth=1)
    config.optim.layer_decay = 0.75
    method = methods.build(config)
    example = {"image": jax.ShapeDtypeStruct((8, 28, 28, 1), jnp.float32)}
    with pytest.raises(ValueError, match="layer_decay"):
        train.make_optimizer(method, config, example, 10, 0, ())


def test_recipes_follow_the_official_scripts():
    b = finetune.get_config("variant=B/16")
    assert (b.optim.base_lr, b.optim.layer_decay, b.model.drop_path) == (5e-4, 0.65, 0.1)
    assert (b.optim.b2, b.optim.weight_decay, b.batch_size, b.total_epochs) == (
        0.999,
        0.05,
        1024,
        100,
    )
    assert (b.model.mixup, b.model.cutmix, b.model.erase_prob, b.model.label_smoothing) == (
        0.8,
        1.0,
        0.25,
        0.1,
    )
    assert b.data.randaugment == "rand-m9-mstd0.5-inc1" and b.data.eval_crop_pct == 224 / 256
    h = finetune.get_config("variant=H/14")
    assert (h.optim.base_lr, h.optim.layer_decay, h.model.drop_path, h.total_epochs) == (
        1e-3,
        0.75,
        0.3,
        50,
    )
    lp = linprobe.get_config("variant=B/16")
    assert (lp.optim.name, lp.optim.base_lr, lp.optim.weight_decay) == ("lars", 0.1, 0.0)
    assert (lp.batch_size, lp.total_epochs, lp.optim.warmup_epochs) == (16384, 90, 10)
    assert lp.model.head == "bn_linear" and lp.model.freeze_encoder and lp.model.pool == "cls"
    assert linprobe.get_config("variant=L/16").total_epochs == 50
    assert optim.peak_lr(lp) == pytest.approx(0.1 * 16384 / 256)


def test_vit_b16_classifier_has_timms_parameter_count():
    """timm vit_base_patch16_224 (learned pos-embed, 1000-way head): 86,567,656."""
    method = methods.build(finetune.get_config("variant=B/16"))
    example = {"image": jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)}
    shapes = jax.eval_shape(method.init_variables, jax.random.PRNGKey(0), example)["params"]
    assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes)) == 86_567_656


def test_a_bad_head_or_pool_fails_in_validation_before_compiling():
    from mim_jax import config_lib

    for key, value in (("head", "mlp"), ("pool", "max")):
        config = finetune.get_config()
        config.model[key] = value
        with pytest.raises(ValueError, match=f"config.model.{key}='{value}'; valid"):
            config_lib.validate(config, num_devices=8)


def _encoder_parity(pretrain_config, finetune_config, inputs):
    """(classifier tokens after the pretraining encoder's final norm, the pretraining
    encoder's unmasked output) with the classifier loaded from the pretraining params by
    name, as init_from does."""
    pretrain = methods.build(pretrain_config)
    params = pretrain.init(jax.random.PRNGKey(0), {"image": inputs})
    method = methods.build(finetune_config)
    state = method.init_variables(jax.random.PRNGKey(1), {"image": inputs})
    ours = dict(state["params"])
    for key in ours:
        if key in params:  # patch_embed, cls_token, encoder (fc_norm and head stay fresh)
            ours[key] = params[key]
    theirs = pretrain.model.apply({"params": params}, inputs, method="encode")
    tokens = method.model.apply({"params": ours}, inputs, tokens_only=True)
    norm = nn.LayerNorm(epsilon=1e-6).apply({"params": params["encoder"]["norm"]}, tokens)
    return norm, theirs


def test_videomae_backbone_reproduces_the_pretrained_videomae_encoder():
    from configs import videomae as videomae_config
    from configs import videomae_finetune

    small = dict(patch_size=8, width=32, depth=2, num_heads=2)
    pre = videomae_config.get_config()
    pre.model.update(**small, decoder_width=16, decoder_depth=1, decoder_heads=2)
    ft = videomae_finetune.get_config()
    ft.model.update(**small)
    clips = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 32, 32, 1)), jnp.float32)
    ours, theirs = _encoder_parity(pre, ft, clips)
    assert ours.shape == theirs.shape == (2, 64, 32)  # 4 x 4 x 4 tokens, no cls
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_audiomae_backbone_reproduces_the_pretrained_audiomae_encoder():
    from configs import audiomae as audiomae_config
    from configs import audiomae_finetune

    small = dict(patch_size=16, width=32, depth=2, num_heads=2)
    pre = audiomae_config.get_config("decoder=global")
    pre.model.update(**small, decoder_width=16, decoder_depth=1, decoder_heads=2)
    ft = audiomae_finetune.get_config()
    ft.model.update(**small)
    specs = jnp.asarray(np.random.default_rng(0).normal(size=(2, 128, 128, 1)), jnp.float32)
    ours, theirs = _encoder_parity(pre, ft, specs)
    assert ours.shape == theirs.shape == (2, 65, 32)  # cls + 8 x 8 patches
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_audiomae_fine_tuning_drops_time_rows_and_frequency_columns_in_training_only():
    from configs import audiomae_finetune

    config = audiomae_finetune.get_config()
    config.model.update(patch_size=16, width=32, depth=1, num_heads=2)
    config.model.update(mask_t_prob=0.3, mask_f_prob=0.2)
    method = methods.build(config)
    specs = jnp.zeros((2, 128, 128, 1))
    variables = method.init_variables(jax.random.PRNGKey(0), {"image": specs})
    apply = lambda train: method.model.apply(
        variables, specs, train, tokens_only=True, rngs={"dropout": jax.random.PRNGKey(2)}
    )
    assert apply(True).shape == (2, 1 + int(8 * 0.7) * int(8 * 0.8), 32)  # 5 rows x 6 columns
    assert apply(False).shape == (2, 65, 32)


def test_bce_loss_uses_the_multi_hot_labels():
    from configs import audiomae_finetune

    config = audiomae_finetune.get_config("variant=B,data=synthetic")
    config.model.update(width=32, depth=1, num_heads=2, mask_t_prob=0.0, mask_f_prob=0.0)
    config.data.update(target_length=128, num_classes=10)
    assert config.model.loss == "bce"  # the AudioSet recipe
    method = methods.build(config)
    rng = np.random.default_rng(0)
    batch = {
        "image": jnp.asarray(rng.normal(size=(4, 128, 128, 1)), jnp.float32),
        "label": jnp.zeros(4, jnp.int32),
        "labels": jnp.asarray(rng.random((4, 10)), jnp.float32),  # mixed, soft
    }
    variables = method.init_variables(jax.random.PRNGKey(0), batch)
    loss, _ = method.loss(variables["params"], batch, _rngs(), train=False, model_state={})
    logits = method.predict(variables["params"], {}, batch["image"])
    expected = optax.sigmoid_binary_cross_entropy(logits, batch["labels"]).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-6)


def test_videomae_backbone_has_no_cls_token_to_pool():
    from configs import videomae_finetune

    config = videomae_finetune.get_config()
    config.model.pool = "cls"
    with pytest.raises(ValueError, match="backbone=videomae"):
        config_lib.validate(config, 1)


def test_softmax_targets_are_the_batchs_mixed_labels_smoothed():
    config = _tiny(finetune.get_config())
    config.model.update(mixup=0.0, cutmix=0.0, erase_prob=0.0, label_smoothing=0.1)
    method = methods.build(config)
    labels = np.zeros((8, 10), np.float32)
    labels[:, 2], labels[:, 7] = 0.3, 0.7  # a waveform-mixed pair
    targets = method.targets({**_batch(), "labels": jnp.asarray(labels)})
    np.testing.assert_allclose(targets, labels * 0.9 + 0.01, rtol=1e-6)
