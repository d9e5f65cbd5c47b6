"""End-to-end fine-tuning of a pretrained ViT: the MAE protocol (He et al., CVPR 2022,
Appendix A.1; facebookresearch/mae FINETUNE.md and main_finetune.py).

Default: the encoder of configs/mae.py's small model on the embedded Fashion-MNIST, from
a pretraining run (without init_from: the from-scratch baseline at the same budget):

    python -m mim_jax.main --config=configs/finetune.py \\
        --config.init_from=workdirs/mae_fmnist --workdir=workdirs/finetune_fmnist

ImageNet-1k (ViT-B/16 from an MAE ViT-B/16 run or export), via TFDS:

    python -m mim_jax.main --config=configs/finetune.py:variant=B/16 \\
        --config.init_from=gs://bucket/mae_b16 --workdir=workdirs/finetune_b16

Args: variant (B/16, L/16, H/14), data (fashion_mnist, synthetic, imagenet2012, folder,
array_record).
"""

from configs import common

# FINETUNE.md: (blr, layer decay, drop path, epochs) per model; batch 1024 in all.
RECIPES = {
    "B/16": (5e-4, 0.65, 0.1, 100.0),
    "L/16": (1e-3, 0.75, 0.2, 50.0),
    "H/14": (1e-3, 0.75, 0.3, 50.0),
}


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="", data="")
    config = common.get_classifier_config(arg.variant, arg.data)
    m, o = config.model, config.optim
    m.pool = "gap"  # main_finetune.py --global_pool (default): mean of patches + fc_norm
    m.head = "linear"
    m.head_init_std = 2e-5  # main_finetune.py: trunc_normal_(head.weight, std=2e-5)
    m.label_smoothing = 0.1  # --smoothing 0.1
    m.mixup, m.cutmix, m.mix_prob, m.mix_switch_prob = 0.8, 1.0, 1.0, 0.5  # FINETUNE.md
    m.erase_prob = 0.25  # --reprob 0.25 (mode pixel, count 1)
    o.update(name="adamw", b1=0.9, b2=0.999, weight_decay=0.05)  # main_finetune.py
    o.update(lr_base_batch=256, min_lr=1e-6, warmup_epochs=5.0)  # --min_lr 1e-6, 5 warmup
    config.data.randaugment = "rand-m9-mstd0.5-inc1"  # --aa (timm create_transform)
    if arg.variant:
        blr, decay, drop_path, epochs = RECIPES[arg.variant]
        o.update(base_lr=blr, layer_decay=decay)
        m.drop_path = drop_path
        config.batch_size = 1024
        config.total_epochs = epochs
        if arg.variant == "H/14":
            config.mesh.fsdp = 8  # as the H/14 pretraining recipe (docs/scaling.md)
    else:
        # Fashion-MNIST, 28 px: the same protocol at a CPU budget. RandAugment's geometric
        # ops and the 0.08 crop scale destroy a 28 px item, so the crop keeps 60-100% (as
        # pretraining) and RandAugment is off; lr and epochs set by measured accuracy.
        config.data.crop_scale = (0.6, 1.0)
        config.data.randaugment = ""
        o.update(base_lr=1e-3, layer_decay=0.75, warmup_epochs=1.0)
        m.drop_path = 0.1
        config.batch_size = 256
        config.total_epochs = 5.0
    return config
