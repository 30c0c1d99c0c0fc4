import numpy as np
from PIL import Image

from modules.imaging.image_resize import CROP_AND_RESIZE, JUST_RESIZE, LATENT_UPSCALE, RESIZE_AND_FILL, resize_image


def stripes(width: int, height: int) -> Image.Image:
    """Left half red, right half blue, green top rows: easy to check geometry on."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = (255, 0, 0)
    array[:, width // 2 :] = (0, 0, 255)
    array[:4] = (0, 255, 0)
    return Image.fromarray(array)


def test_just_resize_stretches():
    out = resize_image(stripes(100, 50), JUST_RESIZE, 64, 64)
    assert out.size == (64, 64)
    assert out.getpixel((5, 32))[0] > 200 and out.getpixel((60, 32))[2] > 200


def test_crop_and_resize_covers_and_crops_the_middle():
    out = resize_image(stripes(200, 50), CROP_AND_RESIZE, 64, 64)  # 4:1 into 1:1: the middle quarter stays
    assert out.size == (64, 64)
    left, right = np.asarray(out)[32, 2], np.asarray(out)[32, 61]
    assert left[0] > 200 and right[2] > 200  # the red/blue border is still in the middle
    tall = resize_image(stripes(50, 200), CROP_AND_RESIZE, 64, 64)
    assert np.asarray(tall)[0, 10][1] < 50  # the green top row was cropped away


def test_resize_and_fill_keeps_everything_and_stretches_the_edges():
    out = np.asarray(resize_image(stripes(128, 64), RESIZE_AND_FILL, 64, 64))
    assert out.shape == (64, 64, 3)
    assert out[8, 10][1] > 200 and out[0, 10][1] > 200  # the green rows are stretched into the top bar
    assert out[40, 5][0] > 200 and out[40, 60][2] > 200
    assert out[63, 5][0] > 200  # the bottom bar repeats the last row


def test_latent_upscale_mode_leaves_the_image_for_latent_space():
    image = stripes(30, 20)
    assert resize_image(image, LATENT_UPSCALE, 64, 64) is image
