import numpy as np
from PIL import Image

from mim_jax.evaluators import reconstruction


def test_grid_has_one_row_per_image_and_one_column_per_view(tmp_path):
    views = {
        "original": np.zeros((3, 28, 28, 1), np.uint8),
        "masked": np.full((3, 28, 28, 1), 255, np.uint8),
    }
    path = reconstruction.save_grid(views, tmp_path / "grid.png")
    image = Image.open(path)
    # 28 px upscaled x4 to 112 >= 96; 2 px padding; 14 px header
    assert image.size == (2 + 2 * (112 + 2), 14 + 2 + 3 * (112 + 2))
    pixels = np.asarray(image)
    assert pixels[14 + 2 + 50, 2 + 50].tolist() == [0, 0, 0]  # first column: black
    assert pixels[14 + 2 + 50, 2 + 114 + 50].tolist() == [255, 255, 255]
