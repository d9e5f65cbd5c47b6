"""The trainer end to end on 8 fake CPU devices with a tiny MAE."""

import importlib
import json

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from configs import mae as mae_config
from mim_jax import methods, optim, profiling, sharding, train
from mim_jax.data import sources


def tiny_config(root, **overrides):
    c = mae_config.get_config()
    c.data.root = str(root)
    c.model.update(
        patch_size=4,
        width=32,
        depth=2,
        num_heads=2,
        decoder_width=16,
        decoder_depth=1,
        decoder_heads=2,
    )
    c.batch_size = 32
    c.total_epochs = None
    c.total_steps = 16
    c.optim.base_lr = 1e-2  # lr 1.25e-3 at batch 32
    c.optim.warmup_epochs = None
    c.optim.warmup_steps = 2
    c.log_every_steps = 4
    c.ckpt.every_epochs, c.viz.every_epochs, c.eval.every_epochs = None, None, None
    c.ckpt.every_steps = 8
    c.viz.every_steps = 8
    c.viz.num_images = 4
    c.eval.baselines = False
    c.eval.batch_size = 64
    c.eval.max_train_examples, c.eval.max_test_examples = 256, 128
    c.eval.linear_l2 = (1e-3,)
    for k, v in overrides.items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return c


def read_metrics(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def final_params(workdir):
    steps = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
    return ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(max(steps)) / "state")[
        "params"
    ]


def test_trains_on_8_devices_loss_falls_and_writes_outputs(fake_fmnist, tmp_path):
    config = tiny_config(fake_fmnist, **{"eval.baselines": True})
    summary = train.train_and_evaluate(config, tmp_path)
    losses = [m["loss"] for m in read_metrics(tmp_path) if "loss" in m]
    assert losses[-1] < 0.8 * losses[0]
    assert (tmp_path / "config.json").exists() and list((tmp_path / "tb").iterdir())
    assert sorted(p.name for p in (tmp_path / "reconstructions").iterdir()) == [
        "step_0000008.png",
        "step_0000016.png",
    ]
    # first grid column = the original test images, un-normalised back to uint8
    grid = np.asarray(Image.open(tmp_path / "reconstructions" / "step_0000016.png"))
    tile = grid[16 : 16 + 112 : 4, 2 : 2 + 112 : 4, 0]  # 28 px upscaled x4, under a 14 px header
    np.testing.assert_array_equal(
        tile, sources.fashion_mnist("test", str(fake_fmnist))[0]["image"][..., 0]
    )
    saved = json.loads((tmp_path / "eval_summary.json").read_text())
    assert saved == summary and saved["step"] == 16
    for key in ("knn_top1", "linear_top1"):
        assert 0.0 <= saved[key] <= 1.0
        assert key in saved["raw_pixels"] and key in saved["random_init"]
    assert saved["raw_pixels"]["knn_top1"] > 0.9  # the 4 fake classes are trivially separable
    assert (tmp_path / "checkpoints" / "16").is_dir()


def test_resume_continues_exactly_where_it_stopped(fake_fmnist, tmp_path, monkeypatch):
    config = tiny_config(fake_fmnist, **{"eval.at_end": False, "viz.every_steps": None})
    straight = tmp_path / "straight"
    train.train_and_evaluate(config, straight)

    resumed = tmp_path / "resumed"
    calls = {"n": 0}
    real = sharding.global_batch

    def crash_after_ten(*args):
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt("simulated kill")
        return real(*args)

    monkeypatch.setattr(sharding, "global_batch", crash_after_ten)
    with pytest.raises(KeyboardInterrupt):
        train.train_and_evaluate(config, resumed)
    monkeypatch.setattr(sharding, "global_batch", real)
    train.train_and_evaluate(config, resumed)  # restores step 8, reruns 9..16

    jax.tree.map(np.testing.assert_array_equal, final_params(straight), final_params(resumed))
    a = {m["step"]: m["loss"] for m in read_metrics(straight)}
    b = {m["step"]: m["loss"] for m in read_metrics(resumed) if m["step"] > 8}
    assert b[12] == a[12] and b[16] == a[16]


def _step_once(config, mesh, batch):
    """The parameter update of one step. eps=1 makes Adam's first step ~ lr * grad (not
    lr * sign(grad), which would amplify float noise in near-zero gradients)."""
    config.optim.eps = 1.0
    method = methods.build(config)
    tx, schedule = optim.make(config, 10, 0)
    state = train.initial_state(method, tx, jax.random.PRNGKey(0), batch)
    shardings = sharding.tree_shardings(mesh, state, min_size=1)
    state = jax.device_put(state, shardings)
    step = jax.jit(
        train.make_train_step(method, tx, schedule, config, mesh),
        in_shardings=(shardings, sharding.batch_sharding(mesh)),
        out_shardings=(shardings, sharding.replicated(mesh)),
    )
    old = jax.device_get(state["params"])
    new_state, metrics = step(state, sharding.global_batch(batch, mesh))
    # differences of float32 params: compare with atol ~ one ulp of a param (~1e-8)
    update = jax.tree.map(np.subtract, jax.device_get(new_state["params"]), old)
    return update, jax.device_get(metrics)


def _batch(n=16, with_noise=False):
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 255, (n, 28, 28, 1), dtype=np.uint8),
        "label": np.zeros(n, np.int32),
    }
    if with_noise:
        batch["mask_noise"] = rng.uniform(size=(n, 49)).astype(np.float32)  # 7x7 patches of 4px
    return batch


def test_sharded_step_equals_single_device_step(fake_fmnist):
    config = tiny_config(fake_fmnist)
    one = sharding.make_mesh(config.mesh, devices=jax.devices()[:1])
    config.mesh.data, config.mesh.fsdp = 4, 2
    eight = sharding.make_mesh(config.mesh)
    p1, m1 = _step_once(config, one, _batch())
    p8, m8 = _step_once(config, eight, _batch())
    np.testing.assert_allclose(m1["loss"], m8["loss"], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-8), p1, p8)


def test_gradient_accumulation_matches_one_big_batch(fake_fmnist):
    config = tiny_config(fake_fmnist)
    mesh = sharding.make_mesh(config.mesh)
    batch = _batch(16, with_noise=True)  # same masks either way
    p1, m1 = _step_once(config, mesh, batch)
    config.grad_accum_steps = 2
    p2, m2 = _step_once(config, mesh, batch)
    np.testing.assert_allclose(m1["loss"], m2["loss"], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-8), p1, p2)


def test_bfloat16_compute_keeps_float32_params_and_a_close_loss(fake_fmnist):
    config = tiny_config(fake_fmnist)
    mesh = sharding.make_mesh(config.mesh)
    batch = _batch(16, with_noise=True)
    _, m32 = _step_once(config, mesh, batch)
    config.dtype = "bfloat16"
    u16, m16 = _step_once(config, mesh, batch)
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(u16))
    np.testing.assert_allclose(m16["loss"], m32["loss"], rtol=2e-2)


def test_trains_on_an_image_folder_skipping_a_corrupt_file(tmp_path):
    from tests.data.image_tree import write_tree

    root = tmp_path / "data"
    write_tree(root, "train", {"a": 20, "b": 20}, bad={"a/torn.jpg": b"\xff\xd8\xff\xe0 torn"})
    write_tree(root, "val", {"a": 4, "b": 4})
    config = tiny_config(root, **{"eval.at_end": True, "viz.every_steps": None})
    config.data.update(
        name="folder",
        train_split="train",
        eval_split="val",
        image_size=16,
        channels=3,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        index_cache_dir=str(tmp_path / "index"),
    )
    config.batch_size, config.total_steps = 8, 12
    summary = train.train_and_evaluate(config, tmp_path / "run")
    logged = [m for m in read_metrics(tmp_path / "run") if "loss" in m]
    assert logged[-1]["step"] == 12 and logged[-1]["bad_examples"] >= 1  # 40 good per epoch
    assert 0.0 <= summary["knn_top1"] <= 1.0


def _four_steps_with_a_picture(config) -> None:
    """4 steps of 16 examples (losses logged every 2), a reconstruction PNG of 2 at step 4."""
    config.batch_size = 16
    config.total_epochs, config.total_steps = None, 4
    config.optim.warmup_epochs, config.optim.warmup_steps = None, 1
    config.ckpt.every_epochs, config.viz.every_epochs = None, None
    config.viz.every_steps, config.viz.num_images = 4, 2
    config.log_every_steps = 2


def _train_four_steps(config, workdir) -> Image.Image:
    """Trains `_four_steps_with_a_picture`, checks the 3 logged losses are finite and
    returns the step-4 reconstruction grid."""
    _four_steps_with_a_picture(config)
    summary = train.train_and_evaluate(config, workdir)
    losses = [m["loss"] for m in read_metrics(workdir) if "loss" in m]
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert "knn_top1" not in summary  # synthetic labels: no probes
    return Image.open(workdir / "reconstructions" / "step_0000004.png")


@pytest.mark.parametrize("name", ["videomae", "videomae_v2", "mae_st"])
def test_video_methods_train_on_8_devices(name, tmp_path):
    """Sharded steps of each video method on synthetic clips, with repeated sampling (2
    clips per video) and a reconstruction strip."""
    import importlib

    config = importlib.import_module(f"configs.{name}").get_config("data=synthetic")
    config.data.update(image_size=16, channels=3, num_frames=4, sampling_rate=2, num_samples=2)
    config.data.mean, config.data.std = (0.5,) * 3, (0.25,) * 3
    config.data.synthetic_examples = 64
    config.model.update(patch_size=8, width=32, depth=1, num_heads=2, decoder_width=16)
    config.model.update(decoder_depth=1, decoder_heads=2)
    if name == "mae_st":
        config.model.pred_t_dim = 2
    strip = _train_four_steps(config, tmp_path)
    frames = 2 if name == "mae_st" else 4  # MAE-ST shows its pred_t_dim frames
    assert strip.width > frames * 16 and strip.height > 2 * 4 * 16  # 2 clips x 4 views


def test_videomae_trains_on_mp4_files_and_skips_a_corrupt_one(tmp_path):
    """data=folder: root/<split>/<class>/<video>; a broken file is skipped and counted."""
    from configs import videomae as videomae_config
    from tests.data.test_video_io import write_video

    root = tmp_path / "videos"
    for split, per_class in (("train", 6), ("val", 2)):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(per_class):
                write_video(root / split / label / f"{i}.mp4", n=20)
    (root / "train" / "a" / "broken.mp4").write_bytes(b"not a video" * 100)
    config = videomae_config.get_config("variant=S/16,data=folder")
    config.data.update(root=str(root), image_size=16, num_frames=4, sampling_rate=2)
    config.data.update(num_workers=0, max_bad_fraction=0.9)
    config.model.update(patch_size=8, width=32, depth=1, num_heads=2, decoder_width=16)
    config.model.update(decoder_depth=1, decoder_heads=2)
    config.dtype = "float32"
    config.batch_size = 8
    config.total_epochs, config.total_steps = None, 3
    config.optim.warmup_epochs, config.optim.warmup_steps = None, 1
    config.ckpt.every_epochs, config.viz.every_epochs = None, None
    config.log_every_steps = 1
    config.eval.update(at_end=True, batch_size=8, linear_l2=(1e-3,), knn_k=3)
    summary = train.train_and_evaluate(config, tmp_path / "work")
    metrics = read_metrics(tmp_path / "work")
    assert sum(m.get("bad_examples", 0) for m in metrics) >= 1  # 13 files, 12 good
    assert 0.0 <= summary["knn_top1"] <= 1.0 and "linear_top1" in summary


@pytest.mark.parametrize("decoder", ["swin", "global"])
def test_audiomae_trains_on_8_devices(decoder, tmp_path):
    """Sharded steps of Audio-MAE on synthetic noise through the whole audio pipeline
    (Kaldi fbank on the host), with a spectrogram reconstruction grid."""
    from configs import audiomae as audiomae_config

    config = audiomae_config.get_config(f"variant=B,decoder={decoder},data=synthetic")
    config.data.update(target_length=32, num_mel_bins=16, synthetic_examples=32)
    config.model.update(patch_size=8, width=32, depth=1, num_heads=2, decoder_width=16)
    config.model.update(decoder_depth=2, decoder_heads=2, meta_hidden=16)
    config.model.window = (2, 2)
    config.model.shift = (1, 0)
    config.dtype = "float32"
    grid = _train_four_steps(config, tmp_path)
    assert grid.width > 4 * 32 and grid.height > 2 * 16  # 4 views of 16 bins x 32 frames


def test_audiomae_on_an_audioset_style_list_reports_map_and_skips_a_broken_file(tmp_path):
    """data=audioset: official json lists and class csv under root, multi-label targets
    through the sharded batches, probes scored by mAP; a broken file is skipped, counted."""
    import json

    import soundfile

    from configs import audiomae as audiomae_config

    root = tmp_path / "audioset"
    root.mkdir()
    rng = np.random.default_rng(0)
    mids = ["/m/a", "/m/b", "/m/c"]
    (root / "class_labels_indices.csv").write_text(
        "index,mid,display_name\n" + "".join(f"{i},{m},{m[3:]}\n" for i, m in enumerate(mids))
    )
    for split, n in (("train", 16), ("eval", 8)):
        entries = []
        for i in range(n):
            labels = [mids[i % 3]] + ([mids[(i + 1) % 3]] if i % 2 else [])
            t = np.arange(8000) / 16000
            wave = sum(np.sin(2 * np.pi * 300 * (1 + mids.index(m)) * t) for m in labels)
            wave = (0.3 * wave + 0.01 * rng.normal(size=8000)).astype(np.float32)
            soundfile.write(root / f"{split}{i}.flac", wave, 16000)
            entries.append({"wav": f"{split}{i}.flac", "labels": ",".join(labels)})
        if split == "train":
            (root / "broken.flac").write_bytes(b"fLaC" + bytes(100))
            entries.append({"wav": "broken.flac", "labels": mids[0]})
        (root / f"{split}.json").write_text(json.dumps({"data": entries}))
    config = audiomae_config.get_config("variant=B,data=audioset")
    config.data.update(root=str(root), target_length=32, num_mel_bins=16, num_classes=3)
    config.data.update(num_workers=0, max_bad_fraction=0.9)
    config.model.update(patch_size=8, width=32, depth=1, num_heads=2, decoder_width=16)
    config.model.update(decoder_depth=2, decoder_heads=2, meta_hidden=16)
    config.model.window, config.model.shift = (2, 2), (1, 0)
    config.dtype = "float32"
    _four_steps_with_a_picture(config)
    config.batch_size = 8
    config.eval.update(at_end=True, batch_size=8, linear_l2=(1e-3,), knn_k=3)
    summary = train.train_and_evaluate(config, tmp_path / "work")
    assert 0.0 < summary["knn_mAP"] <= 1.0 and 0.0 < summary["linear_mAP"] <= 1.0
    assert "knn_top1" not in summary
    metrics = read_metrics(tmp_path / "work")
    assert sum(m.get("bad_examples", 0) for m in metrics) >= 1


# Tiny shapes per image-family config (16 px RGB synthetic images).
TINY_IMAGE_METHODS = {
    "simmim": ("", dict(patch_size=4, mask_patch_size=8)),
    "simmim_swin": (
        "variant=Swin-B",
        dict(patch_size=2, width=8, depths=(1, 1, 1), heads=(1, 1, 2), window=2, mask_patch_size=8),
    ),
    "maskfeat": ("", dict(patch_size=8, hog_cell=4)),
    "crossmae": ("", dict(patch_size=4, decoder_width=16, decoder_heads=2)),
    "cae": ("", dict(patch_size=4, num_masked=8, min_block_patches=2)),
    "colormae": ("color=purple", dict(patch_size=4, decoder_width=16, decoder_heads=2)),
}


@pytest.mark.parametrize("name", sorted(TINY_IMAGE_METHODS))
def test_image_methods_train_on_8_devices(name, tmp_path):
    """Sharded steps of each image-family method on synthetic images, with a
    reconstruction grid, through the user's config."""
    import importlib

    arg, model = TINY_IMAGE_METHODS[name]
    module = importlib.import_module(f"configs.{name.split('_')[0]}")
    config = module.get_config(",".join(filter(None, [arg, "data=synthetic"])))
    config.data.update(image_size=16, channels=3, synthetic_examples=64)
    config.data.mean, config.data.std = (0.5,) * 3, (0.25,) * 3
    if "width" not in model:
        model.update(width=32, depth=1, num_heads=2)
    config.model.update(**model)
    config.dtype = "float32"
    grid = _train_four_steps(config, tmp_path)
    assert grid.width >= 3 * 16 and grid.height >= 2 * 16


def _classifier_config(module, root, init_from, **overrides):
    c = module.get_config()
    c.data.root = str(root)
    c.model.update(patch_size=4, width=32, depth=2, num_heads=2)
    c.batch_size, c.total_epochs, c.total_steps = 32, None, 4
    c.optim.warmup_epochs, c.optim.warmup_steps = None, 1
    c.log_every_steps = 2
    c.ckpt.every_epochs, c.eval.every_epochs, c.ckpt.every_steps = None, None, 4
    c.eval.batch_size, c.eval.max_test_examples = 64, 128
    c.init_from = str(init_from)
    c.data.num_classes = 4  # the fake Fashion-MNIST has 4 classes
    for k, v in overrides.items():
        c[k.split(".")[0]][k.split(".")[1]] = v
    return c


def test_linprobe_from_a_pretraining_run_keeps_its_encoder_and_reports_top1(fake_fmnist, tmp_path):
    from configs import linprobe

    pretrain = tmp_path / "mae"
    train.train_and_evaluate(
        tiny_config(fake_fmnist, total_steps=4, **{"eval.at_end": False}), pretrain
    )
    config = _classifier_config(linprobe, fake_fmnist, pretrain)
    config.grad_accum_steps = 2  # BatchNorm statistics carried through the micro-batches
    config.optim.ema_decay = 0.5  # an EMA of the weights, scored next to them
    summary = train.train_and_evaluate(config, tmp_path / "probe")
    report = json.loads((tmp_path / "probe" / "init_report.json").read_text())
    assert (
        "encoder/blocks_1/attn/qkv/kernel" in report["loaded"] and "cls_token" in report["loaded"]
    )
    assert any(k.startswith("decoder/") for k in report["skipped"])
    saved = json.loads((tmp_path / "probe" / "eval_summary.json").read_text())
    assert saved == summary
    assert saved["protocol"] == "linprobe" and saved["checkpoint"] == str(pretrain)
    assert saved["dataset"] == "fashion_mnist" and saved["num_examples"] == 128
    assert 0 <= saved["top1"] <= saved["top5"] <= 1 and 0 <= saved["ema_top1"] <= 1
    before, after = final_params(pretrain), final_params(tmp_path / "probe")
    jax.tree.map(np.testing.assert_array_equal, before["encoder"], after["encoder"])
    assert not np.allclose(after["head"]["kernel"], 0)
    state = ocp.StandardCheckpointer().restore(tmp_path / "probe" / "checkpoints" / "4" / "state")
    assert np.any(state["model_state"]["batch_stats"]["head_norm"]["var"] != 1.0)
    # the export of a classifier holds the whole model and its BatchNorm statistics
    from mim_jax import checkpoint, export

    out = export.export(str(tmp_path / "probe"), str(tmp_path / "export"))
    assert json.loads((out / "export.json").read_text())["parts"] == [
        "encoder",
        "head",
        "model_state",
    ]
    params, _ = export.load(str(out))
    assert {"encoder", "head", "cls_token"} <= set(params)
    np.testing.assert_array_equal(
        checkpoint.read_model_state(out)["batch_stats"]["head_norm"]["var"],
        state["model_state"]["batch_stats"]["head_norm"]["var"],
    )


def test_frozen_eval_trains_nothing_and_reports_knn_linear_and_few_shot(fake_fmnist, tmp_path):
    from configs import frozen_eval

    config = frozen_eval.get_config("method=mae")
    config.data.root = str(fake_fmnist)
    config.model.update(patch_size=4, width=32, depth=1, num_heads=2, decoder_depth=1)
    config.eval.update(baselines=False, max_train_examples=256, max_test_examples=128)
    config.eval.update(batch_size=64, linear_l2=(1e-3,), few_shot=(1, 5))
    summary = train.train_and_evaluate(config, tmp_path)
    assert summary["protocol"].startswith("frozen_eval") and summary["step"] == 0
    assert {"knn_top1", "linear_top1", "fewshot_1", "fewshot_5"} <= set(summary)
    assert not list((tmp_path / "checkpoints").glob("[0-9]*"))


def test_ema_of_the_weights_follows_each_update(fake_fmnist):
    config = tiny_config(fake_fmnist, **{"optim.ema_decay": 0.75})
    mesh = sharding.make_mesh(config.mesh, devices=jax.devices()[:1])
    method = methods.build(config)
    tx, schedule = optim.make(config, 10, 0)
    batch = _batch()
    state = train.initial_state(method, tx, jax.random.PRNGKey(0), batch, ema=True)
    step = jax.jit(train.make_train_step(method, tx, schedule, config, mesh))
    p0 = jax.device_get(state["params"])
    jax.tree.map(np.testing.assert_array_equal, p0, jax.device_get(state["ema_params"]))
    state, _ = step(state, batch)
    p1 = jax.device_get(state["params"])
    state, _ = step(state, batch)
    p2, ema = jax.device_get(state["params"]), jax.device_get(state["ema_params"])
    expected = jax.tree.map(lambda a, b, c: 0.75 * (0.75 * a + 0.25 * b) + 0.25 * c, p0, p1, p2)
    jax.tree.map(lambda e, x: np.testing.assert_allclose(e, x, rtol=1e-6, atol=1e-7), ema, expected)


def test_the_train_step_compiles_once_in_the_training_loop(fake_fmnist, tmp_path):
    """Through logging, checkpoints and reconstructions, the jitted train step compiles
    at step 1 only: any change of a state or batch shape, dtype or sharding between
    steps would compile it again and fail here."""
    from mim_jax import bench

    config = tiny_config(fake_fmnist, **{"eval.at_end": False})
    config.total_steps, config.log_every_steps = 6, 2
    config.ckpt.every_steps, config.viz.every_steps = 3, 3
    with bench.count_compiles() as compiles:
        train.train_and_evaluate(config, tmp_path)
    assert bench.compiles_of(compiles) == 1, dict(compiles)
    assert len(read_metrics(tmp_path)) >= 3  # steps 1, 2, 4, 6 logged: the loop ran


@pytest.mark.parametrize(
    "name",
    ["mae", "crossmae", "cae", "maskfeat", "simmim", "videomae", "videomae_v2", "mae_st",
     "audiomae", "finetune", "videomae_finetune", "audiomae_finetune"],
)  # fmt: skip
def test_the_train_step_never_talks_to_the_host(name):
    """No callbacks, infeed or outfeed inside any method's jitted step (lowered on the 8
    test devices, with the recipe's bf16 compute)."""
    config = importlib.import_module(f"configs.{name}").get_config()
    config.dtype, config.batch_size = "bfloat16", 8
    mesh = sharding.make_mesh(config.mesh)
    parts = train.build_step(config, mesh, steps_per_epoch=10, total_steps=100, warmup_steps=5)
    lowered = parts.train_step.lower(parts.abstract_state, parts.abstract_batch)
    assert profiling.host_transfers(lowered.as_text()) == []
