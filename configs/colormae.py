"""ColorMAE (Hinojosa, Liu, Ghanem, "ColorMAE: Exploring Data-Independent Masking
Strategies in Masked AutoEncoders", ECCV 2024): MAE with colored-noise masks.

Default: MAE's small model on the embedded Fashion-MNIST with green-noise masks, with
kNN / linear-probe evaluation against its random init and raw pixels:

    python -m mim_jax.main --config=configs/colormae.py --workdir=workdirs/colormae_fmnist
    python -m mim_jax.main --config=configs/colormae.py:color=red --workdir=W

ImageNet-1k recipe (mmpretrain's MAE ViT-B, which the official configs inherit):

    python -m mim_jax.main --config=configs/colormae.py:variant=B/16 --workdir=W

Args: color (red, blue, green, purple), variant (B/16, L/16, H/14), data (fashion_mnist,
synthetic, imagenet2012, folder, array_record).
"""

from configs import common
from configs import mae as mae_config


def get_config(arg: str | None = None):
    arg = common.parse_arg(arg, color="green", variant="", data="")
    config = mae_config.get_config(f"variant={arg.variant},data={arg.data}")
    config.method = "colormae"
    # colormae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py: green noise, mask ratio 0.75.
    config.model.update(color=arg.color, mask_ratio=0.75, noise_patterns=1024, noise_size=64)
    return config
