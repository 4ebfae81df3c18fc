"""Tests for read_image and load_image_folder."""

import numpy as np
import pytest
from PIL import Image, ImageOps

from sktransfer._image_io import read_image
from sktransfer.datasets import load_image_folder


def _save(path, size=(40, 30), color=(10, 20, 30), mode="RGB", fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format=fmt)
    return path


# --------------------------------------------------------------------------------------
# read_image


@pytest.mark.parametrize(
    "mode, color, expected, suffix",
    [
        ("RGB", (1, 2, 3), (1, 2, 3), ".png"),
        ("L", 128, (128, 128, 128), ".png"),
        ("RGBA", (5, 6, 7, 0), (5, 6, 7), ".png"),
        ("LA", (9, 255), (9, 9, 9), ".png"),
        ("P", 3, None, ".gif"),
        ("CMYK", (0, 0, 0, 0), (255, 255, 255), ".jpg"),
        ("I;16", 65535, (255, 255, 255), ".png"),
        ("1", 1, (255, 255, 255), ".bmp"),
    ],
)
def test_read_image_modes(tmp_path, mode, color, expected, suffix):
    path = _save(tmp_path / f"img{suffix}", size=(12, 8), color=color, mode=mode)
    img = read_image(path)
    assert img.shape == (8, 12, 3) and img.dtype == np.uint8
    if expected is not None:
        np.testing.assert_allclose(img[4, 6], expected, atol=2)


def test_read_image_resize_int_crops_centre(tmp_path):
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    path = tmp_path / "halves.png"
    Image.fromarray(arr).save(path)
    img = read_image(path, image_size=20)  # shorter side already 20: crop the centre
    assert img.shape == (20, 20, 3)
    assert (img[:, :10] == (255, 0, 0)).all() and (img[:, 10:] == (0, 0, 255)).all()
    small = read_image(path, image_size=10)
    assert small.shape == (10, 10, 3)


def test_read_image_resize_tuple(tmp_path):
    path = _save(tmp_path / "a.jpg", size=(40, 30))
    assert read_image(path, image_size=(10, 25)).shape == (10, 25, 3)
    assert read_image(str(path), image_size=np.int64(7)).shape == (7, 7, 3)


def test_read_image_matches_torchvision_resize(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)).save(path)
    img = read_image(path, image_size=16)
    # Pillow bilinear (antialiased) resize of the shorter side, then centre crop.
    ref = Image.open(path).convert("RGB").resize((26, 16), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(img, np.asarray(ref)[:, 5:21])


@pytest.mark.parametrize("size", [0, -3, True, "32", (32,), (32, 0), (1, 2, 3), 2.5])
def test_read_image_bad_size(tmp_path, size):
    path = _save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="image_size"):
        read_image(path, image_size=size)


def test_read_image_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(missing)

    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="notes.jpg"):
        read_image(text)

    full = _save(tmp_path / "big.jpg", size=(64, 64))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full)
    data = full.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.jpg"):
        read_image(truncated)

    with pytest.raises(ValueError, match="directory"):
        read_image(tmp_path)


# --------------------------------------------------------------------------------------
# load_image_folder


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "images"
    _save(root / "zebra" / "b.png", color=(2, 0, 0))
    _save(root / "zebra" / "a.PNG", color=(1, 0, 0))
    _save(root / "zebra" / "nested" / "c.jpg", color=(3, 0, 0))
    _save(root / "ant" / "x.bmp", color=(4, 0, 0))
    _save(root / "ant" / ".hidden.png")
    (root / "ant" / "readme.txt").write_text("not an image")
    _save(root / ".git" / "z.png")
    (root / "stray.png").write_bytes(b"")  # files at the root are not samples
    return root


def test_load_image_folder_arrays(tree):
    data = load_image_folder(tree, image_size=16, verbose=0)
    assert data.target_names == ["ant", "zebra"]
    assert data.images.shape == (4, 16, 16, 3) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.target, [0, 1, 1, 1])
    names = [p.replace(str(tree), "") for p in data.filenames]
    assert names == ["/ant/x.bmp", "/zebra/a.PNG", "/zebra/b.png", "/zebra/nested/c.jpg"]
    np.testing.assert_allclose(data.images[:, 8, 8, 0], [4, 1, 2, 3], atol=2)
    assert data.filenames.ndim == 1 and str(tree) in data.DESCR


def test_load_image_folder_paths(tree):
    data = load_image_folder(tree, as_paths=True)
    assert data.images.shape == (4, 1) and data.images.dtype == object
    assert all(isinstance(p, str) for p in data.images[:, 0])
    np.testing.assert_array_equal(data.images[:, 0], data.filenames)
    X, y = load_image_folder(tree, as_paths=True, return_X_y=True)
    assert X.shape == (4, 1) and y.tolist() == [0, 1, 1, 1]


def test_load_image_folder_same_size_decoded_at_original_size(tree):
    data = load_image_folder(tree, as_paths=False, verbose=0)
    assert data.images.shape == (4, 30, 40, 3)


def test_load_image_folder_defaults_work_on_images_of_different_sizes(tree):
    # The first call a user makes must work: by default, paths (read lazily later).
    _save(tree / "ant" / "y.png", size=(50, 50))
    data = load_image_folder(tree)
    assert data.images.shape == (5, 1) and data.images.dtype == object
    np.testing.assert_array_equal(data.images[:, 0], data.filenames)
    # image_size alone gives decoded arrays of that size.
    assert load_image_folder(tree, image_size=(8, 12), verbose=0).images.shape == (5, 8, 12, 3)
    assert load_image_folder(tree, image_size=8, verbose=0).images.shape == (5, 8, 8, 3)
    # Decoding at the original sizes is asked for explicitly, and explains itself.
    with pytest.raises(ValueError, match="different sizes.*image_size"):
        load_image_folder(tree, as_paths=False, verbose=0)
    with pytest.raises(ValueError, match="as_paths"):
        load_image_folder(tree, as_paths="yes")


def _exif_image(path, orientation, size=(40, 30)):
    """Left half red, right half blue, stored with an EXIF orientation tag."""
    array = np.zeros((size[1], size[0], 3), np.uint8)
    array[:, : size[0] // 2] = (255, 0, 0)
    array[:, size[0] // 2 :] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, exif=exif)
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_read_image_applies_exif_orientation(tmp_path, suffix):
    # Orientation 6: the camera was turned; the stored 40x30 picture is shown 30x40,
    # turned 90 degrees clockwise, so its left (red) half is on top.
    path = _exif_image(tmp_path / f"photo{suffix}", orientation=6)
    img = read_image(path)
    assert img.shape == (40, 30, 3)
    top, bottom = img[5, 15], img[35, 15]
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60
    with Image.open(path) as raw:
        expected = np.asarray(ImageOps.exif_transpose(raw).convert("RGB"))
    np.testing.assert_array_equal(img, expected)
    assert read_image(path, image_size=(20, 10)).shape == (20, 10, 3)


def test_read_image_without_exif_orientation_is_unchanged(tmp_path):
    path = _exif_image(tmp_path / "photo.png", orientation=1)
    assert read_image(path).shape == (30, 40, 3)
    plain = _save(tmp_path / "plain.png", size=(40, 30))
    assert read_image(plain).shape == (30, 40, 3)


def test_load_image_folder_applies_exif_orientation(tmp_path):
    _exif_image(tmp_path / "root" / "a" / "turned.jpg", orientation=8)
    _save(tmp_path / "root" / "b" / "upright.jpg", size=(30, 40))
    data = load_image_folder(tmp_path / "root", as_paths=False, verbose=0)
    assert data.images.shape == (2, 40, 30, 3)  # same size once turned upright


def test_load_image_folder_preserves_order_with_threads(tmp_path):
    root = tmp_path / "many"
    for i in range(40):
        _save(root / f"c{i % 3}" / f"{i:03d}.png", size=(8, 8), color=(i, 0, 0))
    data = load_image_folder(root, as_paths=False, verbose=0)
    expected = [int(p.rsplit("/", 1)[1][:3]) for p in data.filenames]
    np.testing.assert_array_equal(data.images[:, 0, 0, 0], expected)


def test_load_image_folder_errors(tmp_path, tree):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="No class sub-folders"):
        load_image_folder(tree / "ant")
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    with pytest.warns(UserWarning, match="no images"), pytest.raises(ValueError, match="No image"):
        load_image_folder(empty)
    with pytest.raises(ValueError, match="file"):
        load_image_folder(tree / "ant" / "x.bmp")


def test_load_image_folder_corrupt_image_named(tree):
    bad = tree / "ant" / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ValueError, match="bad.jpg"):
        load_image_folder(tree, image_size=8, verbose=0)


def test_load_image_folder_verbose(tree, capsys):
    load_image_folder(tree, image_size=8, verbose=0)
    assert capsys.readouterr().err == ""
    load_image_folder(tree, image_size=8, verbose=1)
    assert "4/4" in capsys.readouterr().err


@pytest.mark.realdata
def test_load_image_folder_defaults_on_real_photos(shared_data, no_network):
    folder = shared_data / "monkeys" / "training"
    data = load_image_folder(folder)
    assert data.images.shape == (1080, 1)
    assert data.target_names == [f"n{i}" for i in range(10)]
    sizes = set()
    for path in data.images[::60, 0]:
        with Image.open(path) as img:
            sizes.add(img.size)
    assert len(sizes) > 1  # real photographs of different sizes


def test_load_image_folder_follows_linked_sub_folders_once(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.new("RGB", (4, 4)).save(elsewhere / "linked.png")
    root = tmp_path / "root"
    (root / "cat").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "cat" / "own.png")
    (root / "cat" / "more").symlink_to(elsewhere, target_is_directory=True)
    (root / "cat" / "loop").symlink_to(root / "cat", target_is_directory=True)
    (root / "dog").mkdir()
    Image.new("RGB", (4, 4)).save(root / "dog" / "bark.png")
    (root / "cat" / "up").symlink_to(root, target_is_directory=True)  # the whole data set
    data = load_image_folder(root)
    cats = sorted(p.rsplit("/", 1)[1] for p, t in zip(data.filenames, data.target) if t == 0)
    assert cats == ["linked.png", "own.png"]  # the linked folder was skipped; no loop,
    assert list(data.target).count(1) == 1  # and no dog filed under cat


def test_load_image_folder_warns_at_the_callers_line(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "b" / "x.png")
    with pytest.warns(UserWarning, match="holds no images") as record:
        load_image_folder(tmp_path)
    assert record[0].filename == __file__  # was sklearn's _param_validation.py
