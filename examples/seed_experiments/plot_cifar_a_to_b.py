"""
=====================================================================
CIFAR-10 A -> B: how many layers to fine-tune
=====================================================================

A classic transfer experiment (in the spirit of Yosinski et al., 2014): split CIFAR-10's
ten classes into two tasks,

- **task A**: the eight classes other than airplane and horse, with plenty of images;
- **task B**: airplane vs horse, with only 200 labelled images,

train a small CNN on A, then reuse it for B. We compare a CNN trained on B from scratch
with the A network whose last layer (``freeze="last:1"``: the new head only), last two
layers (``"last:2"``: the head and the fully connected layer below it) or all layers
(``"none"``) are trained on B.

.. note::

   **Data.** This example needs CIFAR-10 (see :ref:`cifar10_dataset_page`). It looks in
   ``$SKTRANSFER_DATA/cifar10/`` (default ``~/sktransfer_data/cifar10/``) for
   torchvision's ``cifar-10-batches-py/`` folder, a ``train/<class name>/`` image
   folder or a ``.tar.gz`` of one. With network access the full run downloads it through
   torchvision (170 MB). When the data are missing the script says where to put them
   and exits; the gallery then shows the code and the figures below, which
   ``make gallery-figures`` (``scripts/make_gallery_figures.py``) made from this
   script with the tiny settings on the project's copy of the data.

   The gallery is built with tiny settings (``SKTRANSFER_EXAMPLE_FAST=1``); run the
   script itself for the full settings (about 3 minutes on a CPU); the numbers quoted
   in the text come from such a run.

**What it draws** (committed figures, tiny settings):

.. image:: /images/gallery/plot_cifar_a_to_b_2.png
   :alt: scores of the four models on task B
   :width: 100%

.. image:: /images/gallery/plot_cifar_a_to_b_3.png
   :alt: training curves on task B
   :width: 100%
"""

# Authors: the sktransfer developers
# License: BSD-3-Clause

import os

from matplotlib import pyplot as plt
from sklearn.model_selection import StratifiedShuffleSplit

from sktransfer import TransferClassifier
from sktransfer.compare import compare
from sktransfer.datasets import CIFAR10_CLASSES, fetch_cifar10, split_classes
from sktransfer.report import format_table, plot_metrics, plot_overlay

FAST = os.environ.get("SKTRANSFER_EXAMPLE_FAST", "0") not in ("", "0")
PER_CLASS = 60 if FAST else 1000  # images of each class loaded
B_TRAIN = 20 if FAST else 200  # labelled images of task B
N_SPLITS = 2 if FAST else 3
A_EPOCHS = 2 if FAST else 10
B_EPOCHS = 5 if FAST else 20

# %%
# Load the images
# ---------------
# :func:`~sktransfer.datasets.fetch_cifar10` returns uint8 images, channels last. The
# full run downloads the data when it is missing (through torchvision); the fast run
# (tests, the docs build) never touches the network.
try:
    cifar = fetch_cifar10("train", max_per_class=PER_CLASS, download=not FAST, verbose=0)
except (FileNotFoundError, OSError) as exc:
    data_home = os.path.expanduser(os.environ.get("SKTRANSFER_DATA") or "~/sktransfer_data")
    print(
        "This example needs CIFAR-10, which was not found or could not be downloaded.\n"
        f"  {exc}\n"
        f"Put torchvision's cifar-10-batches-py/ folder (from "
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, unpacked), or an image "
        f"folder train/<class name>/*.png, in {os.path.join(data_home, 'cifar10')} "
        "(set SKTRANSFER_DATA to use another data home), or run this script once with "
        "network access."
    )
    raise SystemExit(0) from None
print(cifar.images.shape, cifar.images.dtype)

# %%
# Task A and task B
# -----------------
# :func:`~sktransfer.datasets.split_classes` keeps some classes and numbers them from 0.
b_classes = [CIFAR10_CLASSES.index("airplane"), CIFAR10_CLASSES.index("horse")]
a_classes = [c for c in range(10) if c not in b_classes]
X_a, y_a = split_classes(cifar.images, cifar.target, a_classes)
X_b, y_b = split_classes(cifar.images, cifar.target, b_classes)
print(f"task A: {len(y_a)} images of {', '.join(CIFAR10_CLASSES[c] for c in a_classes)}")
print(f"task B: {len(y_b)} images of airplane (0) and horse (1)")

fig, axes = plt.subplots(2, 8, figsize=(8, 2.3), layout="constrained")
for row, label in enumerate((0, 1)):
    for ax, image in zip(axes[row], X_b[y_b == label][:8]):
        ax.imshow(image)
        ax.axis("off")
    axes[row, 0].set_title(CIFAR10_CLASSES[b_classes[label]], fontsize="small", loc="left")

# %%
# Train the CNN on task A
# -----------------------
# The ``"cnn"`` backbone is three convolution blocks and a fully connected embedding
# layer; with the new head that makes two fully connected layers on top, which is what
# ``"last:1"`` and ``"last:2"`` count.
source = TransferClassifier("cnn", max_epochs=A_EPOCHS, random_state=0, verbose=0)
source.fit(X_a, y_a)
print(source.history_[["epoch", "train_loss", "train_acc"]].round(3))
backbone = source.export_backbone()

# %%
# Transfer to task B
# ------------------
# Each split labels ``B_TRAIN`` images of B (stratified) and scores on the others.
common = dict(max_epochs=B_EPOCHS, random_state=0)
models = {
    "scratch": TransferClassifier("cnn", **common),
    "A, last:1 (head only)": TransferClassifier(backbone, freeze="last:1", **common),
    "A, last:2": TransferClassifier(backbone, freeze="last:2", **common),
    "A, all layers": TransferClassifier(backbone, freeze="none", **common),
}
splits = StratifiedShuffleSplit(n_splits=N_SPLITS, train_size=B_TRAIN, random_state=0)
result = compare(
    models, X_b, y_b,
    cv=list(splits.split(X_b, y_b)),
    class_names=["airplane", "horse"],
    experiment=f"CIFAR-10 A -> B, {B_TRAIN} labelled B images",
)
print(format_table(result, metrics=["balanced_accuracy", "roc_auc"]))

# %%
# Scores, mean and standard deviation over the splits:
fig_metrics = plot_metrics(result, metrics=["accuracy", "balanced_accuracy", "roc_auc"])

# %%
# And the training curves of every model (training loss solid, validation dashed),
# averaged over the splits:
fig_curves = plot_overlay(result)

# %%
# What to expect
# --------------
# In a full run on a CPU (task A: 1000 images per class, 10 epochs; task B: 200
# labelled images, 3 splits), the balanced accuracy on B was 0.882 from scratch, 0.900
# with the head alone trained on the A network's features, 0.916 with the top two
# layers trained and 0.918 with every layer fine-tuned. Features learnt on eight other
# classes of small natural images carry over to airplane vs horse, and letting the top
# fully connected layer adapt gets most of what fine-tuning everything gets, for half
# the training time. It depends on the source, though: with 500 images per class of
# task A, the head-only model fell *below* the scratch model (0.882 against 0.888),
# while the top-two-layers and all-layers models still beat it (0.903 and 0.912).
#
# ``freeze="backbone"`` is the same as ``"last:1"`` here; both train the head on
# embeddings that the frozen-feature cache computes once (:ref:`feature_cache`), which
# is why that row trains in a fraction of a second.
