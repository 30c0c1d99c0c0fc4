import numpy as np
import torch
from PIL import Image

from modules import masking


def square_mask(size=64, box=(20, 20, 40, 40)) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, box)
    return mask


def test_invert_and_blur():
    mask = square_mask()
    inverted = masking.prepare_mask(mask, invert=True, blur=0)
    assert inverted.getpixel((0, 0)) == 255 and inverted.getpixel((30, 30)) == 0
    blurred = np.asarray(masking.prepare_mask(mask, invert=False, blur=4))
    assert 0 < blurred[30, 18] < 255 and blurred[30, 30] > 240 and blurred[0, 0] == 0


def test_blur_across_and_down_may_differ():
    blurred = np.asarray(masking.prepare_mask(square_mask(), invert=False, blur=6, blur_y=0))
    assert 0 < blurred[30, 18] < 255, "blurred across"
    assert blurred[18, 30] == 0 and blurred[20, 30] == blurred[30, 30], "a sharp edge downwards"


def test_mask_from_alpha_or_luminance_and_resized():
    rgba = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 16, 32))
    mask = masking.to_mask(rgba, (64, 64))
    assert mask.size == (64, 64) and mask.getpixel((5, 5)) == 255 and mask.getpixel((60, 5)) == 0
    assert masking.to_mask(Image.new("RGB", (8, 8), "white"), (8, 8)).getpixel((1, 1)) == 255


def test_a_soft_alpha_mask_is_hardened_at_128_unless_asked_not_to():
    """A1111's create_binary_mask with mask_round: an RGBA mask's alpha becomes 255 above 128, else 0."""
    rgba = Image.new("RGBA", (4, 1))
    for x, alpha in enumerate((0, 128, 129, 200)):
        rgba.putpixel((x, 0), (9, 9, 9, alpha))
    assert np.asarray(masking.to_mask(rgba, (4, 1)))[0].tolist() == [0, 0, 255, 255]
    assert np.asarray(masking.to_mask(rgba, (4, 1), rounded=False))[0].tolist() == [0, 128, 129, 200]


def test_the_blur_is_a1111s_opencv_gaussian_across_then_down():
    import cv2

    values = np.asarray(square_mask())
    across = cv2.GaussianBlur(values, (21, 1), 4)  # A1111's kernel: 2 * int(2.5 * 4 + 0.5) + 1 pixels
    expected = cv2.GaussianBlur(across, (1, 31), 6)
    assert np.array_equal(np.asarray(masking.prepare_mask(square_mask(), False, 4, 6)), expected)


def test_whole_picture_overlays_the_original_through_the_doubled_mask():
    """A1111's mask_for_overlay for "Whole picture" is the mask doubled, so where the blurred mask is 64 the
    original covers half the result (not three quarters)."""
    original, generated = Image.new("RGB", (4, 1), (0, 0, 0)), Image.new("RGB", (4, 1), (200, 200, 200))
    mask = Image.new("L", (4, 1))
    mask.putdata([0, 64, 128, 255])
    out = np.asarray(masking.composite(original, generated, mask, None))[0, :, 0].tolist()
    assert out[0] == 0 and abs(out[1] - 100) <= 1 and out[2] == out[3] == 200


def test_crop_region_pads_keeps_aspect_and_stays_inside():
    box = masking.crop_region(square_mask(), padding=4, width=64, height=32)
    x0, y0, x1, y1 = box
    assert (x1 - x0) == 2 * (y1 - y0)  # 2:1 like the target size
    assert x0 <= 16 and x1 >= 44 and y0 <= 16 and y1 >= 44
    edge = masking.crop_region(square_mask(box=(0, 0, 10, 10)), padding=8, width=32, height=32)
    assert edge[0] == 0 and edge[1] == 0
    assert masking.crop_region(Image.new("L", (8, 8)), 4, 8, 8) is None


def test_fill_uses_surrounding_colours_and_keeps_the_rest():
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    image.paste((0, 0, 0), (20, 20, 40, 40))
    filled = np.asarray(masking.fill(image, square_mask()))
    # the black hole takes the red around it, a few levels darker (A1111's fill loses them to alpha rounding)
    assert np.abs(filled[30, 30].astype(int) - (200, 30, 30)).max() <= 5
    mask = np.asarray(square_mask()) > 0
    assert np.array_equal(filled[~mask], np.asarray(image)[~mask])  # the rest exactly as it was


def test_latent_mask_is_rounded():
    lm = masking.latent_mask(square_mask(), 8, 8, torch.device("cpu"), torch.float32)
    assert lm.shape == (1, 1, 8, 8) and set(lm.unique().tolist()) == {0.0, 1.0}
    assert lm[0, 0, 3, 3] == 1 and lm[0, 0, 0, 0] == 0
    soft = masking.prepare_mask(square_mask(), invert=False, blur=8)
    bicubic = np.asarray(soft.resize((8, 8), Image.BICUBIC), dtype=np.float32) / 255  # Pillow's default, as A1111
    unrounded = masking.latent_mask(soft, 8, 8, torch.device("cpu"), torch.float32, rounded=False)
    assert np.array_equal(unrounded[0, 0].numpy(), bicubic)


def test_an_unrounded_latent_mask_keeps_the_soft_edge():
    soft = masking.prepare_mask(square_mask(), invert=False, blur=8)
    lm = masking.latent_mask(soft, 8, 8, torch.device("cpu"), torch.float32, rounded=False)
    assert any(0.05 < value < 0.95 for value in lm.flatten().tolist())


def test_composite_keeps_the_original_outside_the_mask():
    original = Image.new("RGB", (64, 64), (10, 20, 30))
    generated = Image.new("RGB", (32, 32), (250, 250, 250))
    mask = masking.prepare_mask(square_mask(), False, 2)
    out = np.asarray(masking.composite(original, generated, mask, (16, 16, 48, 48)))
    outside = np.asarray(mask) == 0
    assert (out[outside] == (10, 20, 30)).all()
    assert tuple(out[30, 30]) == (250, 250, 250)


def test_outpainting_canvas_grows_the_chosen_sides_to_multiples_of_8():
    from modules.imaging.outpainting import expand_canvas

    image = Image.new("RGB", (60, 40), (0, 128, 0))
    canvas, mask = expand_canvas(image, 30, ["left", "down"])
    assert canvas.size == (96, 72) and canvas.width % 8 == 0 and canvas.height % 8 == 0
    assert mask.getbbox() == (0, 0, 96, 72)
    assert mask.getpixel((36 + 59, 0)) == 0 and mask.getpixel((35, 0)) == 255  # the image sits top right
    red, green, blue = canvas.getpixel((5, 60))  # the new area starts from the image's colours
    assert red == blue == 0 and abs(green - 128) <= 5


def test_outpainting_noise_grows_away_from_the_image_and_repeats_by_seed():
    from modules.imaging.outpainting import add_falloff_noise, expand_canvas

    canvas, mask = expand_canvas(Image.new("RGB", (64, 64), (120, 90, 60)), 64, ["right"])
    noisy = np.asarray(add_falloff_noise(canvas, mask, 64, 1.0, 0.2, seed=3), dtype=float)
    plain = np.asarray(canvas, dtype=float)
    assert (noisy[:, :64] == plain[:, :64]).all(), "the image itself gets no noise"
    near, far = np.abs(noisy - plain)[:, 64:72].mean(), np.abs(noisy - plain)[:, 120:].mean()
    assert 0 < near < far / 3
    assert np.array_equal(noisy, np.asarray(add_falloff_noise(canvas, mask, 64, 1.0, 0.2, seed=3)))
    assert add_falloff_noise(canvas, mask, 64, 1.0, 0.0, seed=3) is canvas
