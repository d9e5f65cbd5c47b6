"""Attentive probing of a frozen pretrained ViT (CAE, Chen et al., IJCV 2023, Sec. 4.1;
Atten4Vis/CAE scripts/cae_base_attentive.sh): one learned query cross-attends to all
tokens, then BatchNorm without affine params and a linear head, trained with SGD.

Default: the encoder of configs/mae.py's small model on the embedded Fashion-MNIST:

    python -m mim_jax.main --config=configs/attentive_probe.py \\
        --config.init_from=workdirs/mae_fmnist --workdir=workdirs/attentive_fmnist

Args: variant (B/16, L/16, H/14), data (fashion_mnist, synthetic, imagenet2012, folder,
array_record).
"""

from configs import common


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="", data="")
    config = common.get_classifier_config(arg.variant, arg.data)
    m, o = config.model, config.optim
    m.pool = "cls"  # encoder tokens after its final norm
    m.head = "attentive"
    m.freeze_encoder = True
    m.head_init_std = 0.01
    # cae_base_attentive.sh: --opt sgd --momentum 0.9 --lr 0.4 --weight_decay 0, 90 epochs,
    # 10 warmup, batch 256 x 8 GPUs, no smoothing/mixup/cutmix/erasing.
    o.update(name="sgd", momentum=0.9, weight_decay=0.0, min_lr=0.0)
    o.update(base_lr=0.4, lr_base_batch=2048, warmup_epochs=10.0)
    config.data.randaugment = ""
    if arg.variant:
        config.batch_size = 2048
        config.total_epochs = 90.0
    else:
        config.data.crop_scale = (0.6, 1.0)
        config.batch_size = 256
        config.total_epochs = 5.0
        o.update(lr_base_batch=256, warmup_epochs=1.0)
    return config
