"""
=====================================================================
Your own backbone and freeze policy, registered as plugins
=====================================================================

sktransfer finds backbones and freeze policies by name in two registries. The built-in
ones (``"mlp"``, ``"cnn"``, ``"efficientnet_lite0"``, every torchvision model; ``"none"``,
``"backbone"``, ``"last:k"``, ``"gradual"``) register exactly the way a third-party
package does, so a plugin is a first-class citizen: it works in grids, survives
``clone``, and its exported backbones can be saved to and loaded from checkpoint files.

This example writes

- a **backbone** for the gas sensor data: a small 1-D convolution that slides along the
  16 sensors and shares its weights between them;
- a **freeze policy** for drift: sensor drift changes the *inputs*, so retrain the first
  layer (and the new head) and keep the layers in between.

and registers them at run time with :func:`~sktransfer.register_backbone` and
:func:`~sktransfer.register_freeze_policy`. A package registers them with entry points
instead (see the end of this example, and :ref:`plugins`).

This example uses only the gas data shipped with sktransfer; it runs in seconds.
"""

# Authors: the sktransfer developers
# License: BSD-3-Clause

import os
import tempfile

import numpy as np
import torch
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from torch import nn

from sktransfer import (
    ExportedBackbone,
    FreezePolicy,
    TransferClassifier,
    available_backbones,
    available_freeze_policies,
    register_backbone,
    register_freeze_policy,
)
from sktransfer.backbones import Backbone, BackboneInfo, Standardize
from sktransfer.datasets import load_gas_drift, split_gas_batches

FAST = os.environ.get("SKTRANSFER_EXAMPLE_FAST", "0") not in ("", "0")

# %%
# A backbone factory
# ------------------
# A factory takes the keyword arguments ``input_shape`` (the shape of one sample, here
# ``(128,)``) and ``weights`` (``None``, or a path), plus its own architecture options
# (what users pass as ``backbone_kwargs``), and returns a
# :class:`~sktransfer.backbones.Backbone`: the network, the size of its embeddings, the
# kind of input it takes, and the preprocessing its weights expect. Here
# :class:`~sktransfer.backbones.Standardize` scales each feature with statistics that are
# learnt on the first training data and then travel with the weights.
#
# :class:`~sktransfer.backbones.BackboneInfo` records the registry name and the options,
# so that an exported backbone can be rebuilt from a checkpoint file.

N_SENSORS, N_FEATURES_PER_SENSOR = 16, 8


def sensor_conv(*, input_shape=None, weights=None, channels=32, kernel_size=3):
    """A 1-D CNN over the 16 sensors of the gas data (8 features each)."""
    if input_shape != (N_SENSORS * N_FEATURES_PER_SENSOR,):
        raise ValueError(f"sensor_conv takes the 128 gas sensor features, got {input_shape}")
    body = nn.Sequential(
        # (n, 128) -> (n, 16 sensors, 8 features) -> (n, 8 channels, 16 positions)
        nn.Unflatten(1, (N_SENSORS, N_FEATURES_PER_SENSOR)),
        _SwapAxes(),
        nn.Conv1d(N_FEATURES_PER_SENSOR, channels, kernel_size, padding="same"),
        nn.ReLU(),
        nn.Conv1d(channels, channels, kernel_size, padding="same"),
        nn.ReLU(),
        nn.AdaptiveMaxPool1d(4),
        nn.Flatten(),
    )
    backbone = Backbone(
        body,
        num_features=channels * 4,
        kind="tabular",
        input_shape=input_shape,
        preprocess=Standardize(input_shape[0]),
        info=BackboneInfo("sensor_conv", {"channels": channels, "kernel_size": kernel_size}),
    )
    if weights is not None:  # a state dict saved from this architecture
        backbone.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return backbone


class _SwapAxes(nn.Module):
    def forward(self, x):
        return x.transpose(1, 2)


register_backbone("sensor_conv", sensor_conv)
print("sensor_conv" in available_backbones())

# %%
# A freeze policy
# ---------------
# A policy subclasses :class:`~sktransfer.FreezePolicy` and sets ``requires_grad`` in
# :meth:`~sktransfer.FreezePolicy.apply`. The network's
# :meth:`~sktransfer.network.TransferNetwork.layer_groups` lists its parameterised
# layers from input to output, the new head last; ``set_trainable`` also keeps frozen
# BatchNorm layers in evaluation mode. ``from_string`` lets users write
# ``freeze="first:2"``; the constructor's parameters make it a scikit-learn style
# object whose parameters can go in a grid.


class TrainFirstAndHead(FreezePolicy):
    """Train the first ``k`` layers of the backbone and the new head; freeze the rest.

    Parameters
    ----------
    k : int
        Number of layers, counted from the input, that train.
    """

    def __init__(self, k=1):
        self.k = k

    @classmethod
    def from_string(cls, arg):
        return cls(int(arg))

    def apply(self, network):
        groups = network.layer_groups()
        network.set_trainable(network.parameters(), False)
        for group in groups[: self.k] + groups[-1:]:
            for module in group:
                network.set_trainable(module.parameters(), True)


register_freeze_policy("first", TrainFirstAndHead)
print(available_freeze_policies())

# %%
# Use them by name
# ----------------
# Train the convolutional backbone on batches 1-3, export it, and write it to a
# checkpoint file: the file holds the registry name, the options and the weights, and
# ``backbone=<path>`` rebuilds it through the registry.
gas = load_gas_drift()
X_source, y_source, targets = split_gas_batches(
    gas.data, gas.target, gas.batch, source_batches=[1, 2, 3], target_batches=[4]
)
source = TransferClassifier(
    "sensor_conv", backbone_kwargs={"channels": 16}, max_epochs=5 if FAST else 30,
    random_state=0,
)
source.fit(X_source, y_source)
print(source.history_[["epoch", "train_loss", "train_acc"]].tail(3).round(3))

checkpoint = os.path.join(tempfile.mkdtemp(), "sensor_conv_batches_1-3.pt")
source.export_backbone().save(checkpoint)
print(ExportedBackbone.load(checkpoint))

# %%
# Then adapt it to batch 4 from 10% of its labels, with the built-in policies and the
# new one, on the same splits.
X_target, y_target = targets[4]
splits = StratifiedShuffleSplit(n_splits=2 if FAST else 5, train_size=0.1, random_state=0)
common = dict(max_epochs=20 if FAST else 100, lr=3e-3, validation_fraction=None,
              random_state=0)
for freeze in ["backbone", "last:2", "first:1", "none"]:
    model = TransferClassifier(checkpoint, freeze=freeze, **common)
    scores = cross_val_score(model, X_target, y_target, cv=splits,
                             scoring="balanced_accuracy")
    print(f"freeze={freeze!r:>11}: balanced accuracy {np.mean(scores):.3f}")

# %%
# With the full settings: 0.937 for the frozen backbone, 0.930 for ``"last:2"``, 0.923
# for the new ``"first:1"`` and 0.917 for fine-tuning everything. On this batch,
# retraining the input layer does not beat freezing everything: a plugin is an idea to
# test, and the same cross-validation as for the built-ins tells whether it helps.
#
# The policy object, rather than its name, works too, and its parameter can be tuned:
# ``GridSearchCV(..., {"freeze": [TrainFirstAndHead(1), TrainFirstAndHead(2)]})``.
model = TransferClassifier(checkpoint, freeze=TrainFirstAndHead(k=1), **common)
model.fit(X_target[:60], y_target[:60])
trainable = [name for name, p in model.net_.module_.named_parameters() if p.requires_grad]
print("trainable:", trainable)

# %%
# Registering through entry points
# --------------------------------
# :func:`~sktransfer.register_backbone` lasts for the Python session. To make the
# backbone and the policy available everywhere once your package is installed (in every
# session, in the ``sktransfer`` command line, in joblib workers), declare them as entry
# points in your package's ``pyproject.toml``:
#
# .. code-block:: toml
#
#     [project.entry-points."sktransfer.backbones"]
#     sensor_conv = "my_sensors.backbones:sensor_conv"
#
#     [project.entry-points."sktransfer.freeze_policies"]
#     first = "my_sensors.freeze:TrainFirstAndHead"
#
# After ``pip install my-sensors``, ``TransferClassifier("sensor_conv",
# freeze="first:1")`` works without importing ``my_sensors``. A broken plugin never hides
# the others: its name is listed, and using it raises an error that names the entry
# point. In a live session, :func:`sktransfer.registry.reload_plugins` re-reads the entry
# points after an install.
#
# An entry point may also name a *family* of backbones: an object with ``names()`` and
# ``create(name, *, input_shape, weights, **kwargs)``, which is how every torchvision
# model becomes a backbone name.
