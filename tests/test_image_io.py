"""Decoding image files: JPEG draft, EXIF orientation, the dataset's decoding pool."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from sktransfer._image_io import read_image
from sktransfer.inputs import ImagePathDataset


def _smooth(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (h + w)],
                    axis=-1).astype(np.uint8)


@pytest.fixture
def big_jpeg(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(_smooth(900, 1200)).save(path, quality=95)
    return path


@pytest.mark.parametrize("size", [224, (200, 300), 450])
def test_draft_decoding_keeps_the_size_and_the_picture(big_jpeg, size):
    fast = read_image(big_jpeg, image_size=size)
    with Image.open(big_jpeg) as img:  # full decode, then the same resize
        img.load()
        from sktransfer._image_io import _resize

        slow = np.asarray(_resize(img.convert("RGB"), size))
    assert fast.shape == slow.shape
    assert np.abs(fast.astype(int) - slow.astype(int)).mean() < 3


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    Image.fromarray(_smooth(40, 80)).save(path, exif=exif)
    assert read_image(path).shape == (80, 40, 3)
    assert read_image(path, image_size=(60, 30)).shape == (60, 30, 3)


def test_dataset_keeps_one_pool_and_channels_last_batches(tmp_path):
    paths = []
    for i in range(6):
        p = tmp_path / f"{i}.png"
        Image.fromarray(np.full((20, 30, 3), i * 40, np.uint8)).save(p)
        paths.append(str(p))
    ds = ImagePathDataset(np.array(paths, dtype=object), 16, n_threads=2)
    (x1, _), (x2, _) = ds[torch.arange(3)], ds[torch.arange(3, 6)]
    assert x1["x"].shape == (3, 3, 16, 16) and x1["x"].dtype == torch.uint8
    assert x1["x"].is_contiguous(memory_format=torch.channels_last)
    assert [int(x[0, 0, 0]) for x in (*x1["x"], *x2["x"])] == [0, 40, 80, 120, 160, 200]
    if ds._pool is not None:  # one CPU: decoding runs in the calling thread
        pool = ds._pool
        ds[torch.arange(6)]
        assert ds._pool is pool
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._pool is None and torch.equal(copy[torch.arange(3)][0]["x"], x1["x"])


def test_float_tiff_in_0_1_reads_as_its_grey_level(tmp_path):
    path = tmp_path / "half.tif"
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(path)  # mode "F"
    assert abs(int(read_image(path)[0, 0, 0]) - 128) <= 1  # was 0: scaled as 0-255 values
    Image.fromarray(np.full((8, 8), 200.0, np.float32)).save(path)
    assert read_image(path)[0, 0, 0] == 200


@pytest.mark.parametrize("shape", [(40, 80), (80, 40)])
def test_arrays_and_paths_of_non_square_images_give_the_network_the_same_pixels(
        tmp_path, shape):
    from sktransfer.backbones import ImagePreprocess

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (6, shape[0] // 10, shape[1] // 10, 3), dtype=np.uint8)
    images = np.stack([np.asarray(Image.fromarray(a).resize(shape[::-1], Image.BILINEAR))
                       for a in small])  # smooth: the two resizers differ in detail only
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(paths[-1])
    prep = ImagePreprocess(32)
    from_arrays = prep(torch.as_tensor(images).permute(0, 3, 1, 2))
    read = np.stack([read_image(p, image_size=32) for p in paths])
    from_paths = prep(torch.as_tensor(read).permute(0, 3, 1, 2))
    assert from_arrays.shape == from_paths.shape == (6, 3, 32, 32)
    # centre crop of the resized image, not a stretch (which differs by ~1 std)
    assert float((from_arrays - from_paths).abs().mean()) < 0.05


def test_a_batch_of_files_of_different_sizes_without_image_size_is_explained(tmp_path):
    paths = []
    for i, width in enumerate((12, 16)):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (width, 12)).save(paths[-1])
    ds = ImagePathDataset(np.array(paths, dtype=object), None, n_threads=1)
    with pytest.raises(ValueError, match=r"different sizes.*0.png' is 12 wide and 12 high, "
                                         r".*1.png' 16 by 12; pass image_size="):
        ds[torch.arange(2)]  # was numpy's "all input arrays must have the same shape"
