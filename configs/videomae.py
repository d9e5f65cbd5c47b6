"""VideoMAE (Tong et al., "VideoMAE: Masked Autoencoders are Data-Efficient Learners for
Self-Supervised Video Pre-Training", NeurIPS 2022).

Default: a small VideoMAE on the embedded moving Fashion-MNIST (8 frames of 32x32, one
or two items bouncing), with kNN / linear-probe evaluation against its random init:

    python -m mim_jax.main --config=configs/videomae.py --workdir=workdirs/videomae_mfmnist

Kinetics-400 recipe (MCG-NJU/VideoMAE scripts/kinetics/videomae_vit_base_patch16_224_
tubemasking_ratio_0.9_epoch_800/pretrain.sh); `root` holds the videos and the official
`train.csv` / `val.csv` lists (`path label` per line):

    python -m mim_jax.main --config=configs/videomae.py:variant=B/16,data=k400 \
        --config.data.root=/data/k400 --workdir=workdirs/videomae_b16_k400

Args: variant (S/16, B/16, L/16, H/16), data (k400, ssv2, folder, array_record, synthetic).
"""

from configs import common

# (patch, width, depth, heads, decoder width, decoder heads):
# modeling_pretrain.py pretrain_videomae_{small,base,large,huge}_patch16_224.
VARIANTS = {
    "S/16": (16, 384, 12, 6, 192, 3),
    "B/16": (16, 768, 12, 12, 384, 6),
    "L/16": (16, 1024, 24, 16, 512, 8),
    "H/16": (16, 1280, 32, 16, 640, 8),
}


def set_variant(config, variant: str, variants: dict = VARIANTS) -> None:
    if variant not in variants:
        raise ValueError(f"variant={variant!r}; valid: {sorted(variants)}")
    patch, width, depth, heads, dec_width, dec_heads = variants[variant]
    config.model.update(
        patch_size=patch,
        width=width,
        depth=depth,
        num_heads=heads,
        decoder_width=dec_width,
        decoder_heads=dec_heads,
    )


def set_large_scale(config) -> None:
    """Logging, checkpoint and eval cadence for multi-day pod runs."""
    config.dtype = "bfloat16"  # the official runs use fp16 autocast with fp32 master weights
    config.log_every_steps = 100
    config.ckpt.every_epochs = 1.0
    config.viz.every_epochs = 20.0
    config.viz.num_images = 4
    config.eval.at_end = False  # probes over K400 are separate jobs
    config.eval.features = "mean"
    config.eval.batch_size = 64


def set_small_default(config) -> None:
    """Schedule and evaluation of the small CPU default on moving Fashion-MNIST, sized
    for a few minutes on 2 cores; lr chosen by measured kNN / linear-probe accuracy."""
    config.batch_size = 64
    config.total_epochs = 1.0  # 937 steps, 60k clips
    config.optim.update(base_lr=1.2e-2, warmup_epochs=0.03, weight_decay=0.05)  # peak 3e-3
    config.log_every_steps = 50
    config.ckpt.every_epochs = 0.25
    config.viz.every_epochs = 0.25
    config.viz.num_images = 4
    config.eval.features = "mean"
    config.eval.baselines = True  # the encoder at random init, for reference
    config.eval.raw_pixels = True  # 8k-dim pixels
    config.eval.max_train_examples = 3000
    config.eval.max_test_examples = 1000
    config.eval.batch_size = 200


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="", data="")
    config = common.get_base_config()
    config.method = "videomae"
    m = config.model
    m.tubelet = 2  # 2x16x16 cubes
    m.mask_ratio = 0.9  # tube masking, run_mae_pretraining.py --mask_ratio 0.9
    m.decoder_mask_ratio = 0.0  # V1: decode every masked token
    m.decoder_depth = 4  # run_mae_pretraining.py --decoder_depth 4
    m.norm_target = True  # normlize_target=True (per-cube, per-channel)
    m.mlp_ratio = 4.0
    common.set_video_data(config, arg.data, arg.variant)
    d = config.data
    d.video_crop = "multiscale"  # GroupMultiScaleCrop(224, [1, .875, .75, .66]), no flip
    d.crop_scales = (1.0, 0.875, 0.75, 0.66)
    d.flip = False

    if arg.variant:
        set_variant(config, arg.variant)
        if arg.variant in ("L/16", "H/16"):
            m.decoder_depth = 12  # scripts/kinetics/videomae_vit_{large,huge}*/pretrain.sh
            # At 2048 clips on v5e-256, data-parallel L/16 peaks at 14.3 of 16 GiB per chip;
            # FSDP over 8 + "dots" remat: 4.4 GiB for 7% more FLOPs (docs/scaling.md).
            config.mesh.fsdp = 8
            m.remat = "dots"
        # pretrain.sh (K400 and SSv2 alike): 32 clips per GPU x 64 GPUs, lr 1.5e-4 x
        # batch / 256 (min_lr 1e-5 likewise scaled), 800 epochs, 40 warmup, AdamW (0.9,
        # 0.95), wd 0.05, no gradient clipping.
        config.batch_size = 2048
        config.total_epochs = 800.0
        config.optim.update(base_lr=1.5e-4, lr_base_batch=256, min_lr=8e-5, warmup_epochs=40.0)
        config.optim.update(b1=0.9, b2=0.95, weight_decay=0.05)
        set_large_scale(config)
    else:
        # Embedded default: 8 grey 32x32 frames, 2x8x8 cubes, a small ViT. Mask 0.75, not
        # 0.9: on a 4x4 grid 0.9 leaves 2 patches per slice (the image MAE default also
        # keeps 4 of 16); measured, 0.9 learns nothing useful in this budget.
        m.update(patch_size=8, width=128, depth=4, num_heads=4, decoder_width=64)
        m.update(decoder_depth=2, decoder_heads=2, mask_ratio=0.75)
        d.crop_scales = (1.0,)  # the items fill the frame: no crop, as the image default's
        set_small_default(config)
    if arg.data == "synthetic":
        config.batch_size = 8 if arg.variant else 16  # pass --config.batch_size for the recipe
    return config
