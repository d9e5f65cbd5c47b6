import json
import subprocess
import sys
from pathlib import Path

import pytest
from ml_collections import ConfigDict

from configs import common
from configs import mae as mae_config
from mim_jax import config_lib


def test_parse_arg_types_values_by_their_defaults():
    arg = common.parse_arg(
        "variant=B/16,steps=7,fast,scale=0.5", variant="", steps=1, fast=False, scale=1.0
    )
    assert (arg.variant, arg.steps, arg.fast, arg.scale) == ("B/16", 7, True, 0.5)


def test_parse_arg_unknown_key_names_the_closest():
    with pytest.raises(ValueError, match="Did you mean 'variant'"):
        common.parse_arg("varaint=B/16", variant="", data="")


def test_parse_arg_bad_value():
    with pytest.raises(ValueError, match="steps='x'.*int"):
        common.parse_arg("steps=x", steps=1)


def test_official_imagenet_recipe_values():
    c = mae_config.get_config("variant=L/16")
    m = c.model
    assert (m.patch_size, m.width, m.depth, m.num_heads) == (16, 1024, 24, 16)
    assert (m.decoder_width, m.decoder_depth, m.decoder_heads) == (512, 8, 16)
    assert m.mask_ratio == 0.75 and m.norm_pix_loss
    o = c.optim
    assert (o.b1, o.b2, o.weight_decay, o.base_lr, o.lr_base_batch) == (
        0.9,
        0.95,
        0.05,
        1.5e-4,
        256,
    )
    assert (c.batch_size, c.total_epochs, o.warmup_epochs, o.min_lr) == (4096, 800, 40, 0.0)
    assert c.data.crop_scale == (0.2, 1.0) and c.data.flip and c.data.image_size == 224
    assert mae_config.get_config("variant=H/14").model.patch_size == 14


def test_large_recipes_default_to_the_mesh_and_remat_measured_in_docs_scaling():
    from configs import videomae

    h14, b16 = mae_config.get_config("variant=H/14"), mae_config.get_config("variant=B/16")
    assert (h14.mesh.fsdp, h14.model.remat, b16.mesh.fsdp, b16.model.remat) == (
        8,
        "none",
        1,
        "none",
    )
    large = videomae.get_config("variant=L/16,data=k400")
    assert (large.mesh.fsdp, large.model.remat) == (8, "dots")
    assert videomae.get_config("variant=B/16,data=k400").mesh.fsdp == 1


def test_unknown_variant_and_data_are_rejected():
    with pytest.raises(ValueError, match="variant='B/32'"):
        mae_config.get_config("variant=B/32")
    with pytest.raises(ValueError, match="data='cifar'"):
        mae_config.get_config("data=cifar")


def test_synthetic_works_with_any_variant():
    for arg in ("data=synthetic", "variant=B/16,data=synthetic"):
        c = mae_config.get_config(arg)
        assert c.data.name == "synthetic" and not c.eval.at_end


def test_configs_are_locked_with_a_suggestion():
    c = mae_config.get_config()
    c.lock()
    with pytest.raises(AttributeError, match='Did you mean "batch_size"'):
        c.batch_sise = 3


def test_steps_win_over_epochs_and_epochs_convert():
    cfg = ConfigDict({"total_steps": None, "total_epochs": 2.5})
    assert config_lib.get_steps(cfg, "total", 100) == 250
    cfg.total_steps = 7
    assert config_lib.get_steps(cfg, "total", 100) == 7
    assert config_lib.get_steps(ConfigDict({"x_steps": None, "x_epochs": None}), "x", 10) is None


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("method", "maee", "Did you mean 'mae'"),
        ("dtype", "float16", "config.dtype"),
        ("batch_size", 12, "divisible by grad_accum_steps"),
        ("data.name", "cifar", "config.data.name"),
        ("eval.features", "max", "config.eval.features"),
        ("model.remat", "some", "config.model.remat='some'; valid: \\['none', 'full', 'dots'\\]"),
        ("optim.name", "adam", "config.optim.name='adam'; valid: \\('adamw', 'lars', 'sgd'\\)"),
        ("optim.layer_decay", 1.5, "config.optim.layer_decay must be in \\(0, 1\\]"),
    ],
)
def test_validate_names_the_bad_key(key, value, message):
    c = mae_config.get_config()
    node, *_ = [c]
    *path, last = key.split(".")
    for p in path:
        node = node[p]
    node[last] = value
    with pytest.raises(ValueError, match=message):
        config_lib.validate(c, num_devices=8)


def test_cli_typo_fails_before_jax_starts(tmp_path):
    """A misspelt override fails at flag parsing, naming the closest valid key."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mim_jax.main",
            "--config=configs/mae.py",
            f"--workdir={tmp_path}",
            "--config.optim.weigth_decay=0.1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[1],
    )
    assert out.returncode != 0
    assert "weigth_decay" in out.stderr and 'Did you mean "weight_decay"' in out.stderr
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize(("backend", "expected"), [("cpu", "float32"), ("gpu", "bfloat16")])
def test_auto_dtype_is_bf16_on_accelerators(monkeypatch, backend, expected):
    monkeypatch.setattr(config_lib.jax, "default_backend", lambda: backend)
    assert config_lib.compute_dtype("auto") == expected
    assert config_lib.compute_dtype("float32") == "float32"  # an explicit dtype is kept


def test_folder_data_needs_a_root_and_a_variant():
    config = mae_config.get_config("variant=B/16,data=folder")
    assert (config.data.name, config.data.train_split, config.data.eval_split) == (
        "folder",
        "train",
        "val",
    )
    with pytest.raises(ValueError, match="config.data.root"):
        config_lib.validate(config, 1)
    with pytest.raises(ValueError, match="needs a variant"):
        mae_config.get_config("data=array_record")


def test_video_method_needs_clips_and_image_method_images():
    from configs import mae, videomae

    config = videomae.get_config()
    config.data.num_frames = 0
    with pytest.raises(ValueError, match="takes clips"):
        config_lib.validate(config, 1)
    config = mae.get_config()
    config.data.num_frames = 8
    with pytest.raises(ValueError, match="takes images"):
        config_lib.validate(config, 1)


def test_clips_per_process_must_divide_by_num_samples():
    from configs import mae_st

    config = mae_st.get_config()
    config.batch_size = 66  # 4 samples per video
    with pytest.raises(ValueError, match="num_samples"):
        config_lib.validate(config, 1)


def test_video_recipes_follow_the_official_scripts():
    from configs import mae_st, videomae, videomae_v2
    from mim_jax import optim

    k400 = videomae.get_config("variant=B/16,data=k400")
    assert (k400.data.sampling_rate, k400.model.mask_ratio, k400.data.flip) == (4, 0.9, False)
    assert optim.peak_lr(k400) == pytest.approx(1.2e-3)  # 1.5e-4 x 2048 / 256
    assert videomae.get_config("variant=B/16,data=ssv2").data.sampling_rate == 2
    g = videomae_v2.get_config("variant=g/14,data=k400")
    assert (g.model.decoder_mask_ratio, g.optim.grad_clip, g.data.num_samples) == (0.5, 0.02, 4)
    assert optim.peak_lr(g) == pytest.approx(4.8e-3)  # 6e-4 x 2048 videos / 256
    st = mae_st.get_config("variant=L/16,data=k400")
    assert (st.data.num_samples, st.optim.grad_clip, st.model.mask_ratio) == (4, 0.02, 0.9)
    assert optim.peak_lr(st) == pytest.approx(1.6e-3 * 128 / 256)  # repeats not counted


def test_video_fine_tuning_recipes_follow_the_official_scripts():
    from configs import videomae_finetune as vft
    from mim_jax import optim

    k400 = vft.get_config("variant=B/16,data=k400")
    m, d, o = k400.model, k400.data, k400.optim
    assert (m.backbone, m.pool, m.head_init_std, m.drop_path) == ("videomae", "gap", 2e-5, 0.1)
    assert (m.mixup, m.cutmix, m.label_smoothing, m.erase_prob) == (0.8, 1.0, 0.1, 0.25)
    assert (k400.batch_size, k400.total_epochs, o.layer_decay) == (768, 75, 0.75)  # 384 x 2
    assert optim.peak_lr(k400) == pytest.approx(7.5e-4)  # 5e-4 x 384 videos / 256
    assert o.min_lr == pytest.approx(1.5e-6) and (o.b1, o.b2, o.weight_decay) == (0.9, 0.999, 0.05)
    assert (d.num_samples, d.samples_share_frames, d.clip_sampling, d.flip) == (
        2,
        True,
        "span",
        True,
    )
    assert (d.test_clips, d.test_crops, d.randaugment) == (5, 3, "rand-m7-n4-mstd0.5-inc1")
    assert (d.video_crop, d.crop_scale) == ("rrc", (0.08, 1.0))
    ssv2 = vft.get_config("variant=B/16,data=ssv2")
    assert (ssv2.data.clip_sampling, ssv2.data.flip, ssv2.total_epochs) == ("segments", False, 30)
    assert (ssv2.data.test_clips, ssv2.data.test_crops) == (2, 3)
    assert optim.peak_lr(vft.get_config("variant=L/16,data=k400")) == pytest.approx(1e-3)
    huge = vft.get_config("variant=H/16,data=k400")
    assert (huge.model.head_dropout, huge.model.drop_path) == (0.5, 0.2)
    assert huge.optim.min_lr == pytest.approx(2e-5)  # 1e-5 x 512 / 256
    for config in (k400, ssv2, huge, vft.get_config()):
        config_lib.validate(config, 8)


def test_audio_fine_tuning_recipes_follow_the_official_scripts():
    from configs import audiomae_finetune as aft
    from mim_jax import optim

    as2m = aft.get_config("variant=B,data=audioset")
    m, d, o = as2m.model, as2m.data, as2m.optim
    assert (m.backbone, m.loss, m.mask_t_prob, m.mask_f_prob) == ("audiomae", "bce", 0.2, 0.2)
    assert (m.width, m.depth, m.drop_path, m.head_init_std) == (768, 12, 0.1, 2e-5)
    assert (as2m.batch_size, as2m.total_epochs, o.warmup_epochs) == (256, 100, 10)
    assert optim.peak_lr(as2m) == pytest.approx(2e-4)
    assert (o.b1, o.b2, o.weight_decay, o.layer_decay, o.min_lr) == (0.9, 0.999, 5e-4, 0.75, 1e-6)
    assert (d.mixup, d.freqm, d.timem, d.gain_aug) == (0.5, 48, 192, True)
    assert (d.balanced_sampling, d.epoch_len, d.train_list) == (True, 200_000, "train_all.json")
    assert (d.target_length, d.mean, d.std) == (1024, (-4.2677393,), (2 * 4.5689974,))
    as20k = aft.get_config("variant=B,data=audioset20k")
    assert optim.peak_lr(as20k) == pytest.approx(1.25e-4)  # 1e-3 x 32 / 256
    assert not as20k.data.balanced_sampling and as20k.total_epochs == 60
    for config in (as2m, as20k, aft.get_config()):
        config_lib.validate(config, 8)


def test_official_audioset_recipe_values():
    from configs import audiomae

    c = audiomae.get_config("variant=B,data=audioset")
    m, d, o = c.model, c.data, c.optim
    assert (m.patch_size, m.width, m.depth, m.num_heads) == (16, 768, 12, 12)
    assert (m.decoder_type, m.decoder_width, m.decoder_depth, m.decoder_heads) == (
        "swin",
        512,
        16,
        16,
    )
    assert (m.window, m.shift, m.mask_ratio, m.mask_2d, m.norm_pix_loss) == (
        (4, 4),
        (2, 0),
        0.8,
        False,
        True,
    )
    assert (d.num_mel_bins, d.target_length, d.sample_rate, d.num_classes) == (
        128,
        1024,
        16000,
        527,
    )
    assert d.mean == (-4.2677393,) and d.std == (2 * 4.5689974,) and d.gain_aug and not d.time_roll
    assert (c.batch_size, c.total_epochs, o.warmup_epochs, o.base_lr, o.lr_base_batch) == (
        512,
        33,
        3,
        2e-4,
        256,
    )
    assert (o.b1, o.b2, o.weight_decay, o.grad_clip) == (0.9, 0.95, 1e-4, None)
    config_lib.validate(c, 8)
    assert audiomae.get_config("variant=B,decoder=global,data=folder").model.decoder_depth == 8


def test_audio_method_and_audio_data_go_together():
    from configs import audiomae, mae

    config = audiomae.get_config()
    config_lib.validate(config, 1)
    config.data.num_mel_bins = 0
    with pytest.raises(ValueError, match="takes spectrograms"):
        config_lib.validate(config, 1)
    config = mae.get_config()
    config.data.name = "spoken_keywords"
    with pytest.raises(ValueError, match="holds audio data"):
        config_lib.validate(config, 1)
    with pytest.raises(ValueError, match="needs variant=B"):
        audiomae.get_config("data=audioset")


@pytest.mark.parametrize(
    "config_file, key, value, message",
    [
        # audio geometry: target_length not a multiple of the 16-frame patch, etc.
        ("audiomae", "data.target_length", 100, "target_length=100 and num_mel_bins=128"),
        ("audiomae", "model.mask_t_prob", 1.0, "config.model.mask_t_prob"),
        ("audiomae", "data.num_frames", 4, "num_frames must be 0"),
        # multistep milestones without the multistep schedule; an unknown schedule
        ("mae", "optim.milestone_epochs", (5.0,), "schedule='multistep'"),
        ("mae", "optim.schedule", "step", "config.optim.schedule='step'"),
        # classifier backbones, loss; video view and sampling settings
        ("finetune", "model.backbone", "resnet", "config.model.backbone='resnet'"),
        ("audiomae_finetune", "model.loss", "focal", "config.model.loss='focal'"),
        ("videomae_finetune", "data.clip_sampling", "dense", "clip_sampling='dense'"),
        ("videomae_finetune", "data.test_clips", 0, "test_clips and test_crops must be >= 1"),
        ("finetune", "model.backbone", "videomae", "takes clips"),
    ],
)
def test_bad_values_fail_before_anything_runs(config_file, key, value, message):
    import importlib

    config = importlib.import_module(f"configs.{config_file}").get_config()
    section, name = key.split(".")
    config[section][name] = value
    with pytest.raises(ValueError, match=message):
        config_lib.validate(config, 1)


def test_a_run_saved_before_the_optimizer_keys_existed_resumes_unchanged():
    config = mae_config.get_config()
    saved = json.loads(config.to_json_best_effort())
    for key in ("name", "momentum", "trust_coefficient", "layer_decay"):
        del saved["optim"][key]
    del saved["data"]["randaugment"]
    assert config_lib.config_changes(saved, config) == []
    config.optim.name = "lars"
    assert config_lib.config_changes(saved, config) == ["optim.name: 'adamw' -> 'lars'"]
