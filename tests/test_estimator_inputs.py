"""Inputs that used to give silent wrong results: each is now correct or a clear error."""

import warnings

import numpy as np
import pytest
import torch
from conftest import FAST, TINY_CNN

from sktransfer import TransferClassifier
from sktransfer._base_estimator import TrainingDivergedError
from sktransfer.inputs import to_inputs

CNN = {"backbone": "cnn", "backbone_kwargs": TINY_CNN, "max_epochs": 2, "random_state": 0}


# ---------------------------------------------------------------- float32 range and NaN loss
def test_values_beyond_float32_are_refused_at_fit_and_predict(blobs):
    X, y = blobs
    X_big = X.copy()
    X_big[5, 1] = 1e39  # finite in float64, infinite in float32
    with pytest.raises(ValueError, match="beyond float32's range"):
        TransferClassifier(**FAST).fit(X_big, y)
    clf = TransferClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    with pytest.raises(ValueError, match="beyond float32's range"):
        clf.predict(X_big)



def test_finite_values_whose_sum_overflows_float32_are_accepted():
    # the check sums first: a sum beyond float32's range must not refuse finite values
    X = np.full((50, 3), 3e38)
    assert to_inputs(X).kind == "tabular"
    X[7, 2] = np.inf
    with pytest.raises(ValueError):
        to_inputs(X)

def test_a_diverging_fit_is_an_error_not_a_model(blobs):
    X, y = blobs
    clf = TransferClassifier(**{**FAST, "lr": 1e30}, optimizer="sgd")
    with pytest.raises(TrainingDivergedError, match=r"training diverged.*lr=1e\+30") as info:
        clf.fit(X, y)
    assert not hasattr(clf, "net_")
    assert "train_loss" in info.value.history.columns
    assert not np.isfinite(info.value.history["train_loss"].iloc[-1])


# ---------------------------------------------------------------- image layouts
@pytest.mark.parametrize("shape", [(3, 3, 3), (4, 4, 3), (1, 1, 3)])
def test_small_nhwc_images_honour_input_shape(shape):
    h, w, c = shape
    X = np.random.RandomState(0).randint(0, 255, size=(5, h, w, c)).astype(np.uint8)
    if h == w == c:
        with pytest.raises(ValueError, match="read the same as NCHW and NHWC"):
            to_inputs(X, input_shape=(c, h, w))
        # the way out the message gives: NCHW, flattened, with input_shape
        flat = X.transpose(0, 3, 1, 2).reshape(len(X), -1)
        inputs = to_inputs(flat, input_shape=(c, h, w))
    else:
        with pytest.raises(ValueError, match="could be NCHW .* or NHWC"):
            to_inputs(X)
        inputs = to_inputs(X, input_shape=(c, h, w))
    assert inputs.sample_shape == (c, h, w)
    np.testing.assert_array_equal(inputs.data.numpy(), X.transpose(0, 3, 1, 2))


def test_ambiguous_images_fit_with_input_shape_as_their_nchw_twin(tiny_images):
    X, y = tiny_images
    small = X[:, :4, :4, :]  # (n, 4, 4, 3): the first axis could be channels too
    with pytest.raises(ValueError, match="pass input_shape"):
        TransferClassifier(**CNN).fit(small, y)
    a = TransferClassifier(**CNN, input_shape=(3, 4, 4)).fit(small, y)
    b = TransferClassifier(**CNN, input_shape=(3, 4, 4)).fit(small.transpose(0, 3, 1, 2), y)
    assert a.input_shape_ == (3, 4, 4)
    np.testing.assert_allclose(a.predict_proba(small),
                               b.predict_proba(small.transpose(0, 3, 1, 2)), rtol=1e-5)


# ---------------------------------------------------------------- one rule for image values
@pytest.mark.parametrize("form", ["nhwc", "flat"])
@pytest.mark.parametrize("scale", ["0-255", "minus-one-one"])
def test_float_images_outside_0_1_are_refused_in_every_form(tiny_images, form, scale):
    X, y = tiny_images
    Xf = X.astype(np.float64) if scale == "0-255" else X / 127.5 - 1.0
    kwargs = {}
    if form == "flat":
        Xf = Xf.transpose(0, 3, 1, 2).reshape(len(Xf), -1)
        kwargs["input_shape"] = (3, 8, 8)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\].*divide 0-255 images by 255"):
        TransferClassifier(**CNN, **kwargs).fit(Xf, y)


def test_uint8_and_0_1_floats_are_the_same_images(tiny_images):
    X, y = tiny_images
    flat = X.transpose(0, 3, 1, 2).reshape(len(X), -1)
    a = to_inputs(flat, input_shape=(3, 8, 8))
    b = to_inputs(flat / 255.0, input_shape=(3, 8, 8))
    assert a.data.dtype == torch.uint8 and b.data.dtype == torch.float32
    np.testing.assert_allclose(a.data.float().numpy() / 255, b.data.numpy(), atol=1e-6)


def test_int64_images_say_how_to_convert(tiny_images):
    X, y = tiny_images
    with pytest.raises(ValueError, match=r"got dtype int64.*X.astype\(np.uint8\)"):
        TransferClassifier(**CNN).fit(X.astype(np.int64), y)
    flat = X.transpose(0, 3, 1, 2).reshape(len(X), -1).astype(np.int64)
    with pytest.raises(ValueError, match="flattened images .* got dtype int64"):
        TransferClassifier(**CNN, input_shape=(3, 8, 8)).fit(flat, y)


# ---------------------------------------------------------------- hold-out sizes
@pytest.mark.parametrize("fraction, message", [
    (0.99, "leaves 0 row.* to train on"),
    (0.01, "rounds to no validation row"),
])
def test_validation_fraction_that_does_not_fit_the_data(blobs, fraction, message):
    X, y = blobs
    X, y = X[::4][:40], y[::4][:40]
    with pytest.raises(ValueError, match=f"validation_fraction={fraction} of 40 rows {message}"):
        TransferClassifier(**FAST, validation_fraction=fraction).fit(X, y)


def test_early_stopping_without_rows_to_validate_fails_before_training(blobs):
    X, y = blobs
    idx = [0, 1, 60, 61]  # 4 rows: 10% rounds to none
    clf = TransferClassifier(**FAST, early_stopping=2)
    with pytest.raises(ValueError, match="early_stopping=2 validates on a hold-out of 0.1"):
        clf.fit(X[idx], y[idx])
    assert not hasattr(clf, "net_")


# ---------------------------------------------------------------- augment on tables
def test_augment_on_tabular_data_warns_and_keeps_the_cache(blobs):
    X, y = blobs
    source = TransferClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    with pytest.warns(UserWarning, match="augment=True does nothing on tabular data"):
        clf = TransferClassifier(source.export_backbone(), freeze="backbone", augment=True,
                                 max_epochs=1).fit(X, y)
    assert clf.feature_cache_used_
    assert clf.net_.module_.augment is None


def test_image_size_on_tabular_data_warns(blobs):
    X, y = blobs
    with pytest.warns(UserWarning, match="image_size=32 sets the side images are resized"):
        TransferClassifier(**{**FAST, "max_epochs": 1}, image_size=32).fit(X, y)


# ---------------------------------------------------------------- forms of X that are mistakes
def test_a_column_of_non_path_strings_is_explained(blobs):
    _, y = blobs
    colours = np.array(["red", "green", "blue"])[y].reshape(-1, 1)
    with pytest.raises(ValueError, match="strings that are not file paths.*OneHotEncoder"):
        TransferClassifier(**FAST).fit(colours, y)


def test_a_channels_last_input_shape_for_flattened_images_is_explained():
    flat = np.zeros((4, 8 * 8 * 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"looks like \(H, W, C\).*transpose\(0, 3, 1, 2\)"
                                         r".*input_shape=\(3, 8, 8\)"):
        to_inputs(flat, input_shape=(8, 8, 3))
    assert to_inputs(flat, input_shape=(3, 8, 8)).sample_shape == (3, 8, 8)
    assert to_inputs(np.zeros((4, 80)), input_shape=(10, 8, 1)).kind == "image"  # signals


def test_predict_on_a_table_after_fitting_on_paths(tiny_images, tmp_path):
    from PIL import Image

    X, y = tiny_images
    paths = []
    for i, img in enumerate(X):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    clf = TransferClassifier(**CNN).fit(np.array(paths, dtype=object), y)
    with pytest.raises(ValueError, match="fitted on image file paths but X holds tabular"):
        clf.predict(np.random.rand(3, 5))
    # a one-column DataFrame of paths, object or pandas string dtype, is the same column
    pd = pytest.importorskip("pandas")
    expected = clf.predict_proba(np.array(paths, dtype=object))
    for dtype in (object, "string"):
        frame = pd.DataFrame({"path": pd.Series(paths, dtype=dtype)})
        assert to_inputs(frame).kind == "paths"
        np.testing.assert_allclose(clf.predict_proba(frame), expected, rtol=1e-6)


def test_predict_on_a_torch_dataset_is_explained(blobs):
    X, y = blobs
    clf = TransferClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    dataset = torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(y))
    with pytest.raises(TypeError, match="torch TensorDataset.*np.stack"):
        clf.predict(dataset)


# ---------------------------------------------------------------- defaults as in scikit-learn
def test_by_default_every_row_trains(blobs):
    X, y = blobs
    clf = TransferClassifier(**{**FAST, "max_epochs": 2}).fit(X, y)
    assert "valid_loss" not in clf.history_
    assert clf.net_.train_split is None
    # early stopping asks for a hold-out: 10% unless validation_fraction says otherwise
    es = TransferClassifier(**{**FAST, "max_epochs": 2}, early_stopping=3).fit(X, y)
    assert es.history_["valid_loss"].notna().all()
    assert es.net_.train_split.fraction == 0.1
    own = TransferClassifier(**{**FAST, "max_epochs": 2}, early_stopping=3,
                             validation_fraction=0.25).fit(X, y)
    assert own.net_.train_split.fraction == 0.25


def test_freezing_an_untrained_registry_backbone_warns(blobs):
    X, y = blobs
    with pytest.warns(UserWarning, match="weights=None: those layers keep their random"):
        TransferClassifier(**FAST, freeze="backbone").fit(X, y)
    deeper = {**FAST, "backbone_kwargs": {"hidden": (16, 8)}}
    with pytest.warns(UserWarning, match="random initial weights"):
        TransferClassifier(**deeper, freeze="last:2").fit(X, y)
    source = TransferClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TransferClassifier(source.export_backbone(), freeze="backbone", max_epochs=1).fit(X, y)
        TransferClassifier(**FAST, freeze="none").fit(X, y)


def test_mistaken_settings_name_what_to_do(blobs, tiny_images):
    """Each mistake a new user makes once gets a message that says what to pass."""
    from sklearn.linear_model import LogisticRegression

    from sktransfer import compare, lr_find

    X, y = blobs
    images, labels = tiny_images
    with pytest.raises(ValueError, match="mlp backbone takes tabular data.*image backbone"):
        TransferClassifier("mlp", max_epochs=1).fit(images, labels)
    with pytest.raises(ValueError, match="hidden must be an int or a sequence of ints"):
        TransferClassifier(backbone_kwargs={"hidden": "wide"}, max_epochs=1).fit(X, y)
    # an int is one hidden layer, as in scikit-learn's MLPClassifier
    clf = TransferClassifier(backbone_kwargs={"hidden": 8}, max_epochs=1).fit(X, y)
    assert clf.net_.module_.backbone.num_features == 8
    with pytest.raises(FileNotFoundError, match="weights file not found: none .*'imagenet'"):
        TransferClassifier(weights="none", max_epochs=1).fit(X, y)
    with pytest.raises(TypeError, match="LogisticRegression has no lr"):
        lr_find(LogisticRegression(), X, y)
    with pytest.raises(TypeError, match=r"these are not: \{'x': 'int'\}"):
        compare({"x": 3}, X, y)


def test_images_of_channels_the_network_cannot_take_are_a_clear_error(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    y = np.arange(8) % 2
    paths = []
    for i in range(8):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(paths[-1])
    grey = rng.integers(0, 256, (8, 12, 12), dtype=np.uint8)
    rgba = rng.integers(0, 256, (8, 12, 12, 4), dtype=np.uint8)
    params = {"backbone_kwargs": TINY_CNN, "max_epochs": 1, "random_state": 0}
    on_grey = TransferClassifier("cnn", **params).fit(grey, y)
    with pytest.raises(ValueError, match="3-channel images \\(image files are read as "
                                         "3-channel RGB\\).*takes 1-channel"):
        on_grey.predict(np.array(paths))  # was a convolution's RuntimeError
    with pytest.raises(ValueError, match="takes 1-channel images: convert them to grey"):
        TransferClassifier(on_grey.export_backbone(), max_epochs=1).fit(
            rng.integers(0, 256, (8, 12, 12, 3), dtype=np.uint8), y)
    on_files = TransferClassifier("cnn", image_size=12, **params).fit(np.array(paths), y)
    with pytest.raises(ValueError, match="4-channel images.*drop the alpha channel"):
        on_files.predict(rgba)  # was a broadcasting RuntimeError
    assert on_files.predict(grey).shape == (8,)  # grey goes to an RGB network


@pytest.mark.parametrize("missing", [None, np.nan])
def test_a_missing_entry_in_a_column_of_paths_is_named(missing):
    import pandas as pd

    X = pd.DataFrame({"path": ["a.png", "b.png", missing]})
    with pytest.raises(ValueError, match=r"1 of its 3 entries are not paths \(rows \[2\]"):
        to_inputs(X)  # was a bare TypeError from os.fspath


def test_an_image_size_below_what_the_network_downsamples_by_is_refused():
    X = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    y = np.arange(8) % 2
    with pytest.raises(ValueError, match="image_size 4 is too small for cnn, which "
                                         "downsamples by 8: use image_size >= 8"):
        TransferClassifier("cnn", image_size=4, max_epochs=1).fit(X, y)
    TransferClassifier("cnn", image_size=8, max_epochs=1).fit(X, y)  # the least that runs
    pytest.importorskip("efficientnet_lite_pytorch", reason="the efficientnet extra")
    with pytest.raises(ValueError, match="too small for efficientnet_lite0.*>= 32"):
        TransferClassifier("efficientnet_lite0", weights=None, image_size=16,
                           max_epochs=1).fit(X, y)  # was a RuntimeError from a kernel
