"""CrossMAE (Fu et al., "Rethinking Patch Dependence for Masked Autoencoders", 2024).

Default: a small CrossMAE on the embedded Fashion-MNIST (MAE's default model with a
cross-attention decoder that reconstructs a quarter of the patches), with kNN /
linear-probe evaluation against its random init and raw pixels:

    python -m mim_jax.main --config=configs/crossmae.py --workdir=workdirs/crossmae_fmnist

ImageNet-1k recipe (TonyLianLong/CrossMAE README pre-training command), via TFDS:

    python -m mim_jax.main --config=configs/crossmae.py:variant=B/16 --workdir=W

Args: variant (B/16, L/16, H/14), data (fashion_mnist, synthetic, imagenet2012, folder,
array_record).
"""

from configs import common
from configs import mae as mae_config


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, variant="", data="")
    config = mae_config.get_config(f"variant={arg.variant},data={arg.data}")
    config.method = "crossmae"
    m = config.model
    m.update(mask_ratio=0.75, kept_mask_ratio=0.25, norm_pix_loss=True, use_input=True)
    if arg.variant:
        # README: --decoder_depth 12 (512-d, 16 heads), --weight_fm --use_input, 800 epochs,
        # 40 warmup, blr 1.5e-4 scaled by kept/mask ratio (main_pretrain.py): 5e-5 x batch/256.
        m.decoder_depth = 12
        config.optim.base_lr = 1.5e-4 * m.kept_mask_ratio / m.mask_ratio
    else:
        # MAE's small default; 4 of 16 patches visible, 4 reconstructed.
        m.update(decoder_width=64, decoder_depth=2, decoder_heads=4)
    return config
