"""Tests for fetch_monkeys (the Kaggle "10 Monkey Species" layout)."""

import numpy as np
import pytest
from PIL import Image

from sktransfer._image_io import read_image
from sktransfer.datasets import fetch_monkeys

# The original file: CRLF, tab-padded fields, trailing blank lines.
LABELS = (
    "Label,  Latin Name           , Common Name                   , Train Images , "
    "Validation Images\r\n"
    "n0   , alouatta_palliata\t , mantled_howler                , 131          , 26\r\n"
    "n1   , erythrocebus_patas\t , patas_monkey                  , 139          , 28\r\n"
    "n2   , cacajao_calvus\t     , bald_uakari                   , 137          , 27\r\n"
    "n3   , macaca_fuscata\t     , japanese_macaque              , 152          , 30\r\n"
    "n4   , cebuella_pygmea\t     , pygmy_marmoset                , 131          , 26\r\n"
    "n5   , cebus_capucinus\t     , white_headed_capuchin         , 141          , 28\r\n"
    "n6   , mico_argentatus\t     , silvery_marmoset              , 132          , 26\r\n"
    "n7   , saimiri_sciureus\t     , common_squirrel_monkey        , 142          , 28\r\n"
    "n8   , aotus_nigriceps\t     , black_headed_night_monkey     , 133          , 27\r\n"
    "n9   , trachypithecus_johnii , nilgiri_langur                , 132          , 26\r\n"
    "\r\n\r\n\r\n"
)
COMMON = [
    "mantled_howler",
    "patas_monkey",
    "bald_uakari",
    "japanese_macaque",
    "pygmy_marmoset",
    "white_headed_capuchin",
    "silvery_marmoset",
    "common_squirrel_monkey",
    "black_headed_night_monkey",
    "nilgiri_langur",
]


def _make_monkeys(root, subsets=("training", "validation"), nested=True, n=2, labels=True):
    """Kaggle's layout: ``<subset>/<subset>/n0..n9/*.jpg`` (or flat) and the labels file."""
    root.mkdir(parents=True, exist_ok=True)
    if labels:
        (root / "monkey_labels.txt").write_bytes(LABELS.encode())
    for subset in subsets:
        base = root / subset / subset if nested else root / subset
        for c in range(10):
            for i in range(n):
                path = base / f"n{c}" / f"n{c}{i:03d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                # Photographs have different sizes.
                Image.new("RGB", (40 + i, 30), (25 * c, 0, 0)).save(path)
    return root


def test_fetch_monkeys_paths(tmp_path):
    _make_monkeys(tmp_path / "10-monkey-species")
    data = fetch_monkeys("training", data_home=tmp_path, as_paths=True)
    assert data.images.shape == (20, 1) and data.images.dtype == object
    assert data.filenames.shape == (20,)
    np.testing.assert_array_equal(data.images[:, 0], data.filenames)
    np.testing.assert_array_equal(data.target, np.repeat(np.arange(10), 2))
    assert data.target_names == COMMON
    assert data.latin_names[0] == "alouatta_palliata"
    assert data.latin_names[9] == "trachypithecus_johnii"
    assert "10 Monkey Species" in data.DESCR
    assert all("/training/training/n" in p for p in data.filenames)


def test_fetch_monkeys_arrays(tmp_path):
    _make_monkeys(tmp_path / "10-monkey-species")
    data = fetch_monkeys("validation", data_home=tmp_path, image_size=16, verbose=0)
    assert data.images.shape == (20, 16, 16, 3) and data.images.dtype == np.uint8
    np.testing.assert_allclose(data.images[::2, 8, 8, 0], 25 * np.arange(10), atol=3)
    X, y = fetch_monkeys("validation", data_home=tmp_path, image_size=(8, 12), return_X_y=True)
    assert X.shape == (20, 8, 12, 3) and y.shape == (20,)


def test_fetch_monkeys_different_sizes_need_image_size(tmp_path):
    _make_monkeys(tmp_path / "10-monkey-species")
    with pytest.raises(ValueError, match="different sizes.*image_size"):
        fetch_monkeys(data_home=tmp_path, as_paths=False, verbose=0)


def test_fetch_monkeys_defaults_work_on_photos_of_different_sizes(tmp_path):
    _make_monkeys(tmp_path / "10-monkey-species")
    data = fetch_monkeys(data_home=tmp_path)  # the first call a user makes
    assert data.images.shape == (20, 1) and data.images.dtype == object
    np.testing.assert_array_equal(data.images[:, 0], data.filenames)
    X, y = fetch_monkeys(data_home=tmp_path, image_size=16, return_X_y=True, verbose=0)
    assert X.shape == (20, 16, 16, 3) and X.dtype == np.uint8 and y.shape == (20,)


def test_fetch_monkeys_flat_layout_and_alias(tmp_path):
    _make_monkeys(tmp_path / "monkeys", subsets=("training",), nested=False, n=1)
    data = fetch_monkeys(data_home=tmp_path, as_paths=True)
    assert len(data.filenames) == 10
    assert all("/monkeys/training/n" in p for p in data.filenames)
    # The canonical folder, when present, comes first.
    _make_monkeys(tmp_path / "10-monkey-species", subsets=("training",), n=2)
    assert len(fetch_monkeys(data_home=tmp_path, as_paths=True).filenames) == 20


def test_fetch_monkeys_uses_data_home_env(tmp_path, monkeypatch):
    _make_monkeys(tmp_path / "10-monkey-species", subsets=("training",), n=1)
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path))
    assert len(fetch_monkeys(as_paths=True).target) == 10


@pytest.mark.parametrize("download", [False, True])
def test_fetch_monkeys_missing_split(tmp_path, download, no_network):
    _make_monkeys(tmp_path / "10-monkey-species", subsets=("training",))
    with pytest.raises(FileNotFoundError) as excinfo:
        fetch_monkeys("validation", data_home=tmp_path, download=download)
    message = str(excinfo.value)
    assert "10 Monkey Species" in message
    assert "kaggle.com/datasets/slothkong/10-monkey-species" in message
    assert str(tmp_path / "10-monkey-species" / "validation") in message
    assert str(tmp_path / "monkeys" / "validation") in message
    assert "n0" in message and "monkey_labels.txt" in message


def test_fetch_monkeys_missing_labels_file(tmp_path):
    _make_monkeys(tmp_path / "10-monkey-species", subsets=("training",), labels=False, n=1)
    with pytest.warns(UserWarning, match="monkey_labels.txt"):
        data = fetch_monkeys(data_home=tmp_path, as_paths=True)
    assert data.target_names == COMMON


def test_fetch_monkeys_bad_labels_file(tmp_path):
    root = _make_monkeys(tmp_path / "10-monkey-species", subsets=("training",), n=1)
    (root / "monkey_labels.txt").write_text("Label, Latin, Common\nn0, a, b\n")
    with pytest.raises(ValueError, match="monkey_labels.txt"):
        fetch_monkeys(data_home=tmp_path, as_paths=True)


def test_fetch_monkeys_corrupt_image(tmp_path):
    root = _make_monkeys(tmp_path / "10-monkey-species", subsets=("training",), n=1)
    bad = root / "training" / "training" / "n3" / "n3999.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ValueError, match="n3999.jpg"):
        fetch_monkeys(data_home=tmp_path, image_size=8, verbose=0)


def test_fetch_monkeys_bad_subset(tmp_path):
    with pytest.raises(ValueError, match="subset"):
        fetch_monkeys("train", data_home=tmp_path)


@pytest.mark.realdata
def test_real_monkeys_training(shared_data, no_network):
    data = fetch_monkeys("training", data_home=shared_data, as_paths=True)
    assert data.images.shape == (1080, 1)
    assert data.target_names[0] == "mantled_howler" and len(data.latin_names) == 10
    assert set(np.unique(data.target)) == set(range(10))
    assert all(p.startswith(str(shared_data)) for p in data.filenames)
    # Decode a handful, as an estimator would from the paths.
    for path in data.images[::270, 0]:
        img = read_image(path, image_size=64)
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8


@pytest.mark.realdata
def test_real_monkeys_defaults(shared_data, no_network):
    data = fetch_monkeys(data_home=shared_data)  # default arguments on real photos
    assert data.images.shape == (1080, 1) and data.images.dtype == object
    sizes = set()
    for path in data.images[::60, 0]:
        with Image.open(path) as img:
            sizes.add(img.size)
    assert len(sizes) > 1  # they do have different sizes


@pytest.mark.realdata
def test_real_monkeys_validation_is_explained(shared_data, no_network):
    if (shared_data / "monkeys" / "validation").exists():
        pytest.skip("the validation split is present here")
    with pytest.raises(FileNotFoundError, match="slothkong/10-monkey-species"):
        fetch_monkeys("validation", data_home=shared_data)
