"""MAE-ST (Feichtenhofer et al., "Masked Autoencoders As Spatiotemporal Learners",
NeurIPS 2022): space-time-agnostic random masking of 2x16x16 cubes at 0.9.

Default: a small MAE-ST on the embedded moving Fashion-MNIST:

    python -m mim_jax.main --config=configs/mae_st.py --workdir=workdirs/mae_st

ViT-L recipe (facebookresearch/mae_st PRETRAIN.md) on Kinetics-400:

    python -m mim_jax.main --config=configs/mae_st.py:variant=L/16,data=k400 \
        --config.data.root=/data/k400 --workdir=workdirs/mae_st_l16

Args: variant (B/16, L/16, H/14), data (k400, ssv2, folder, array_record, synthetic).
"""

from configs import common, videomae

# (patch, width, depth, heads): models_mae.py mae_vit_{base_patch16,large_patch16,huge_patch14}.
VARIANTS = {
    "B/16": (16, 768, 12, 12),
    "L/16": (16, 1024, 24, 16),
    "H/14": (14, 1280, 32, 16),
}


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="", data="")
    config = common.get_base_config()
    config.method = "mae_st"
    m = config.model
    m.tubelet = 2  # --t_patch_size 2
    m.mask_ratio = 0.9  # --mask_ratio 0.9, random over all space-time tokens
    m.pred_t_dim = 8  # --pred_t_dim 8: each token predicts 1 of its 2 frames
    m.norm_pix_loss = True  # --norm_pix_loss
    m.mlp_ratio = 4.0
    m.update(decoder_width=512, decoder_depth=4, decoder_heads=16)  # 512 x 4, 16 heads
    common.set_video_data(config, arg.data, arg.variant)
    d = config.data
    d.num_samples = 4  # --repeat_aug 4: four clips (own window, crop, flip) per decode
    d.video_crop = "rrc"  # kinetics.py pretrain: random_resized_crop + horizontal flip
    d.crop_scale = (0.5, 1.0)  # jitter_scales_relative
    d.crop_ratio = (0.75, 1.3333)  # jitter_aspect_relative
    d.flip = True
    config.optim.update(b1=0.9, b2=0.95, weight_decay=0.05)  # main_pretrain.py
    config.optim.grad_clip = 0.02  # --clip_grad 0.02

    if arg.variant:
        if arg.variant not in VARIANTS:
            raise ValueError(f"variant={arg.variant!r}; valid: {sorted(VARIANTS)}")
        patch, width, depth, heads = VARIANTS[arg.variant]
        m.update(patch_size=patch, width=width, depth=depth, num_heads=heads)
        d.mean, d.std = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)  # kinetics.py
        d.target_fps = 30.0  # clip spans 4 x 16 frames at 30 fps (float stride elsewhere)
        # PRETRAIN.md: 2 videos per GPU x repeat_aug 4, blr 1.6e-3 x videos / 256 (the
        # repeats are not counted), 100 epochs, 5 warmup. The GPU count is not stated:
        # 64 GPUs give 128 videos = 512 clips per step.
        config.batch_size = 512
        config.total_epochs = 100.0
        config.optim.update(base_lr=1.6e-3, lr_base_batch=256, min_lr=0.0, warmup_epochs=5.0)
        videomae.set_large_scale(config)
        config.dtype = "float32"  # main_pretrain.py forces fp32; pass bfloat16 for speed
    else:
        # Embedded default: the geometry of configs/videomae.py's default model.
        m.update(patch_size=8, width=128, depth=4, num_heads=4)
        m.update(decoder_width=64, decoder_depth=2, decoder_heads=2)
        m.pred_t_dim = 4  # one frame of each 2-frame cube, as 8 of 16 in the recipe
        d.crop_scale = (0.75, 1.0)  # the items fill the 32 px frame: keep them whole
        videomae.set_small_default(config)
        # 4 clips per video: a quarter epoch of videos is the same 937 steps of 64 clips.
        config.total_epochs = 0.25
        config.ckpt.every_epochs = config.viz.every_epochs = 0.0625
    if arg.data == "synthetic":
        config.batch_size = 8 if arg.variant else 16
    return config
