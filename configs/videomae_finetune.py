"""VideoMAE fine-tuning: the official protocol (Tong et al., NeurIPS 2022, Appendix; MCG-NJU/
VideoMAE run_class_finetuning.py, modeling_finetune.py and scripts/*/finetune.sh).

A classifier on the VideoMAE encoder (tubelets, fixed sinusoid positions, q/v biases, no
cls token), mean of all tokens + fc_norm, a linear head. Training clips: RandAugment
rand-m7-n4-mstd0.5-inc1 (the same ops on every frame), RandomResizedCrop (0.08-1) and flip
(not for SSv2), two clips per decoded video (repeated sampling), random erasing 0.25 (one
box per clip), mixup 0.8 / cutmix 1.0, label smoothing 0.1. Testing: 5 clips x 3 crops
(K400) or 2 x 3 (SSv2), softmax per view averaged per video.

Default: the small encoder of configs/videomae.py on the embedded moving Fashion-MNIST,
from a pretraining run (without init_from: the from-scratch baseline at the same budget):

    python -m mim_jax.main --config=configs/videomae_finetune.py \\
        --config.init_from=workdirs/videomae_mfmnist --workdir=workdirs/videomae_ft_mfmnist

Kinetics-400, ViT-B/16 (`root` holds the videos and the official train.csv / val.csv):

    python -m mim_jax.main --config=configs/videomae_finetune.py:variant=B/16,data=k400 \\
        --config.data.root=/data/k400 --config.init_from=gs://bucket/videomae_b16_k400 \\
        --workdir=workdirs/videomae_ft_b16_k400

Args: variant (S/16, B/16, L/16, H/16), data (k400, ssv2, folder, array_record, synthetic).
"""

from configs import common, videomae

# scripts/{kinetics,ssv2}/videomae_vit_*_patch16_224_*/finetune.sh, (data, variant) ->
# (lr per 256 videos, epochs, videos per batch, layer decay, drop path, head dropout).
# All: 2 clips per video (--num_sample 2), 5 warmup epochs, min_lr 1e-6 per 256 videos.
RECIPES = {
    ("k400", "S/16"): (5e-4, 150.0, 384, 0.75, 0.1, 0.0),  # 32 GPUs x 12
    ("k400", "B/16"): (5e-4, 75.0, 384, 0.75, 0.1, 0.0),  # 64 GPUs x 6
    ("k400", "L/16"): (2e-3, 35.0, 128, 0.75, 0.1, 0.0),  # 64 GPUs x 2
    ("k400", "H/16"): (1e-3, 50.0, 512, 0.75, 0.2, 0.5),  # 64 GPUs x 8, --fc_drop_rate 0.5
    ("ssv2", "S/16"): (1e-3, 40.0, 384, 0.7, 0.1, 0.0),  # 32 GPUs x 12
    ("ssv2", "B/16"): (5e-4, 30.0, 384, 0.75, 0.1, 0.0),  # 64 GPUs x 6
}
NUM_SAMPLE = 2  # run_class_finetuning.py --num_sample 2 (repeated sampling)
TEST_VIEWS = {"k400": (5, 3), "ssv2": (2, 3)}  # --test_num_segment x --test_num_crop


def set_recipe(config, data: str, variant: str) -> None:
    """The official recipe of `variant` fine-tuned on `data` (K400's for other datasets)."""
    blr, epochs, videos, decay, drop_path, head_dropout = RECIPES.get(
        (data, variant), RECIPES[("k400", variant)]
    )
    # lr = lr x (videos per batch) / 256: the repeated clips do not count (main(); our
    # optim.peak_lr counts videos too).
    o = config.optim
    o.update(base_lr=blr, lr_base_batch=256, layer_decay=decay)
    o.min_lr = 1e-6 * videos / 256  # min_lr is scaled with the batch too
    if variant == "H/16":
        o.min_lr = 1e-5 * videos / 256  # the H/16 script: --min_lr 1e-5
        config.mesh.fsdp = 8  # as the L/H pretraining recipes (docs/scaling.md)
        config.model.remat = "dots"
    config.model.update(drop_path=drop_path, head_dropout=head_dropout)
    config.batch_size = videos * NUM_SAMPLE
    config.total_epochs = epochs
    config.dtype = "bfloat16"  # the official runs: DeepSpeed fp16 with fp32 master weights
    config.log_every_steps = 100
    config.ckpt.every_epochs = 1.0
    config.eval.every_epochs = 5.0  # the centre view; the final eval runs every view
    config.eval.batch_size = 16  # videos (x 15 views at the end)
    d = config.data
    d.num_samples, d.samples_share_frames = NUM_SAMPLE, True  # one decode, two augmentations
    d.clip_sampling = "segments" if data == "ssv2" else "span"  # ssv2.py TSN / kinetics.py
    d.test_clips, d.test_crops = TEST_VIEWS.get(data, TEST_VIEWS["k400"])
    d.flip = data != "ssv2"  # spatial_sampling(random_horizontal_flip=False if SSV2)


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="", data="")
    config = common.get_base_config()
    common.set_classifier_model(config)
    m, o, d = config.model, config.optim, config.data
    m.backbone = "videomae"
    m.tubelet = 2  # --tubelet_size 2
    m.pool = "gap"  # use_mean_pooling: fc_norm(x.mean(1)) over all tokens
    m.head_init_std = 0.02 * 0.001  # trunc_normal_(std=.02) x --init_scale 0.001
    m.label_smoothing = 0.1  # --smoothing 0.1
    m.mixup, m.cutmix, m.mix_prob, m.mix_switch_prob = 0.8, 1.0, 1.0, 0.5  # --mixup/--cutmix
    m.erase_prob = 0.25  # --reprob 0.25, mode pixel, one box per clip
    # AdamW (0.9, 0.999) (finetune.sh --opt_betas), wd 0.05 (not on 1-D params), 5 warmup
    # epochs from 0 (warmup_lr is never used), cosine per step, no clipping, no EMA.
    o.update(name="adamw", b1=0.9, b2=0.999, weight_decay=0.05, warmup_epochs=5.0)
    common.set_video_data(config, arg.data, arg.variant)
    d.video_crop = "rrc"  # spatial_sampling -> random_resized_crop
    d.crop_scale, d.crop_ratio = (0.08, 1.0), (0.75, 4.0 / 3.0)
    d.randaugment = "rand-m7-n4-mstd0.5-inc1"  # --aa, on the frames before the crop
    d.eval_crop_pct = 1.0  # Resize(224) + CenterCrop(224) (short_side_size 224)
    config.eval.features = "mean"
    if arg.variant:
        if arg.variant not in videomae.VARIANTS:
            raise ValueError(f"variant={arg.variant!r}; valid: {sorted(videomae.VARIANTS)}")
        patch, width, depth, heads, _, _ = videomae.VARIANTS[arg.variant]
        m.update(patch_size=patch, width=width, depth=depth, num_heads=heads)
        set_recipe(config, arg.data, arg.variant)
    else:
        # Moving Fashion-MNIST: configs/videomae.py's small encoder, 32-frame videos so that
        # two test clips (8 frames every 2nd) differ; the items fill the 32 px frame, so
        # the crop keeps 60-100% and RandAugment is off (as the image default).
        m.update(patch_size=8, width=128, depth=4, num_heads=4)
        m.drop_path = 0.1
        d.video_frames = 32
        d.crop_scale = (0.6, 1.0)
        d.randaugment = ""
        d.num_samples, d.samples_share_frames = NUM_SAMPLE, True
        d.clip_sampling = "span"
        d.test_clips, d.test_crops = 2, 1  # square frames: every crop would be the same
        o.update(base_lr=8e-3, lr_base_batch=256, layer_decay=0.75)  # peak 1e-3 at 32 videos
        o.update(warmup_epochs=0.025, min_lr=1e-6)  # 94 warmup steps
        config.batch_size = 64  # 32 videos x 2 clips
        config.total_epochs = 0.25  # 469 steps: 15k videos, 30k clips
        config.log_every_steps = 50
        config.ckpt.every_epochs = 0.125
        config.eval.every_epochs = 0.125
        config.eval.batch_size = 200
        config.eval.max_test_examples = 2000
    return config
