"""Load-time crops: exact geometry of ADM center_crop_arr, torchvision TenCrop and the training augmentation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from alitok.data.transforms import (
    adm_center_crop,
    resize_random_crop_flip,
    resize_shorter,
    ten_crop,
    to_uint8_chw,
)


def random_image(width, height, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def reference_center_crop_arr(pil_image, image_size):
    """guided-diffusion's center_crop_arr, verbatim apart from names (numpy slicing for the crop)."""
    while min(*pil_image.size) >= 2 * image_size:
        pil_image = pil_image.resize(tuple(x // 2 for x in pil_image.size), resample=Image.BOX)
    scale = image_size / min(*pil_image.size)
    pil_image = pil_image.resize(tuple(round(x * scale) for x in pil_image.size), resample=Image.BICUBIC)
    arr = np.array(pil_image)
    crop_y = (arr.shape[0] - image_size) // 2
    crop_x = (arr.shape[1] - image_size) // 2
    return arr[crop_y : crop_y + image_size, crop_x : crop_x + image_size]


A_ = np.asarray  # pixels of a PIL image


# ------------------------------------------------------------------------------------ ADM centre crop


@pytest.mark.parametrize("wh", [(300, 200), (200, 301), (97, 64), (20, 30), (1000, 130), (64, 64)])
@pytest.mark.parametrize("size", [32, 37])
def test_adm_center_crop_matches_reference(wh, size):
    img = random_image(*wh, seed=wh[0] + size)
    out = adm_center_crop(img, size)
    assert out.size == (size, size)
    np.testing.assert_array_equal(A_(out), reference_center_crop_arr(img, size))


def test_adm_center_crop_box_halving_known_answer():
    # 128x64 made of constant 4x4 blocks: two BOX halvings (64 >= 2*16, then 32 >= 2*16) are exact and give
    # the 32x16 block image; the BICUBIC step is then the identity and the crop starts at column (32-16)//2.
    blocks = np.random.default_rng(1).integers(0, 256, (16, 32, 3), dtype=np.uint8)
    img = Image.fromarray(blocks.repeat(4, axis=0).repeat(4, axis=1))
    assert img.size == (128, 64)
    np.testing.assert_array_equal(A_(adm_center_crop(img, 16)), blocks[:, 8:24])


def test_adm_center_crop_halving_changes_the_result():
    # Without the BOX steps a single BICUBIC downscale gives different pixels: the halving is not optional.
    img = random_image(300, 260, seed=3)
    direct = img.resize((round(300 * 32 / 260), 32), resample=Image.BICUBIC)
    left = (direct.size[0] - 32) // 2
    assert not np.array_equal(A_(adm_center_crop(img, 32)), A_(direct)[:, left : left + 32])


# -------------------------------------------------------------------------------------------- ten-crop


@pytest.fixture(scope="module")
def released_ten_crop():
    """The README's setting: 256 px crops from the 281 px (int(1.1*256)) ADM centre crop A."""
    img = random_image(333, 290, seed=7)
    return A_(adm_center_crop(img, 281)), [A_(c) for c in ten_crop(img, 256, 1.1)]


def test_ten_crop_count_and_size():
    crops = ten_crop(random_image(90, 70), 32, 1.1)
    assert len(crops) == 10 and all(c.size == (32, 32) for c in crops)


def test_ten_crop_order_against_slices_of_a(released_ten_crop):
    a, crops = released_ten_crop
    assert a.shape == (281, 281, 3)
    expected = [
        a[0:256, 0:256],  # 0 top-left
        a[0:256, 25:281],  # 1 top-right
        a[25:281, 0:256],  # 2 bottom-left
        a[25:281, 25:281],  # 3 bottom-right
        a[12:268, 12:268],  # 4 centre: int(round(12.5)) == 12
    ]
    for k, want in enumerate(expected):
        np.testing.assert_array_equal(crops[k], want, err_msg=f"crop {k}")


def test_ten_crop_mirror_relations(released_ten_crop):
    a, crops = released_ten_crop
    for flipped, unflipped in ((5, 1), (6, 0), (7, 3), (8, 2)):
        np.testing.assert_array_equal(crops[flipped], crops[unflipped][:, ::-1], err_msg=f"crop {flipped}")
    # Crop 9 mirrors A rows 12-267, cols 13-268: one pixel right of crop 4's window, so it is NOT crop 4 mirrored.
    np.testing.assert_array_equal(crops[9], a[12:268, 13:269][:, ::-1])
    assert not np.array_equal(crops[9], crops[4][:, ::-1])


def test_ten_crop_rejects_scale_below_one():
    with pytest.raises(ValueError, match="smaller than the crop size"):
        ten_crop(random_image(64, 64), 32, 0.9)


# --------------------------------------------------------------------------------- training augmentation


def test_resize_shorter_truncates_like_torchvision():
    assert resize_shorter(random_image(333, 200), 32).size == (53, 32)  # int(53.28)
    assert resize_shorter(random_image(200, 333), 32).size == (32, 53)
    assert resize_shorter(random_image(47, 20), 32).size == (75, 32)  # upscales: int(75.2)


@pytest.mark.parametrize("wh", [(333, 200), (200, 333), (40, 40), (20, 50)])
def test_random_crop_is_reproducible_and_square(wh):
    img = random_image(*wh)
    for seed in range(8):
        a = resize_random_crop_flip(img, 32, np.random.default_rng(seed))
        b = resize_random_crop_flip(img, 32, np.random.default_rng(seed))
        assert a.size == (32, 32)
        np.testing.assert_array_equal(A_(a), A_(b))


def test_random_crop_is_a_window_of_the_resized_image_flipped_half_the_time():
    img = random_image(120, 60, seed=5)
    resized = A_(resize_shorter(img, 32))  # 64 wide, 32 high: only the column offset varies
    flips, offsets = 0, set()
    for seed in range(40):
        out = A_(resize_random_crop_flip(img, 32, np.random.default_rng(seed)))
        windows = [j for j in range(resized.shape[1] - 31) if np.array_equal(out, resized[:, j : j + 32])]
        mirrored = [j for j in range(resized.shape[1] - 31) if np.array_equal(out, resized[:, j : j + 32][:, ::-1])]
        assert windows or mirrored, f"seed {seed}: not a window of the resized image"
        flips += not windows
        offsets.update(windows or mirrored)
    assert 5 < flips < 35 and len(offsets) > 5


def test_to_uint8_chw():
    img = random_image(7, 5)
    t = to_uint8_chw(img)
    assert tuple(t.shape) == (3, 5, 7) and str(t.dtype) == "torch.uint8"
    np.testing.assert_array_equal(t.permute(1, 2, 0).numpy(), A_(img))
    assert tuple(to_uint8_chw(img.convert("L")).shape) == (3, 5, 7)
