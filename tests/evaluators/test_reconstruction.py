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


def test_clips_become_strips_one_row_per_clip_and_view(tmp_path):
    clips = np.zeros((2, 5, 16, 16, 1), np.uint8)
    clips[:, 3] = 255  # frame 3 is white in every clip
    views = {"original": clips, "masked": np.zeros_like(clips)}
    image = np.asarray(Image.open(reconstruction.save_grid(views, tmp_path / "strip.png")))
    label = 8 + 6 * len("original")
    cell = 48  # 16 px upscaled x3 (half the image cell, 48)
    assert image.shape[1] == label + 5 * (cell + 2) + 2
    assert image.shape[0] == 2 * 2 * (cell + 2) + 6 + 2  # 4 rows and one gap
    row = 2 + cell // 2  # clip 0, view "original"
    assert image[row, label + 3 * (cell + 2) + 10].tolist() == [255, 255, 255]
    assert image[row, label + 2 * (cell + 2) + 10].tolist() == [0, 0, 0]
    assert image[row + cell + 2, label + 3 * (cell + 2) + 10].tolist() == [0, 0, 0]  # masked
