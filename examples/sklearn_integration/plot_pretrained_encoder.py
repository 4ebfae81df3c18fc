"""
=====================================================================
A pretrained encoder in front of any scikit-learn model
=====================================================================

:class:`~sktransfer.PretrainedEncoder` turns a pretrained backbone into an unsupervised
scikit-learn transformer, as embetter's encoders do: ``fit`` needs no labels and trains
nothing, ``transform`` returns the embeddings. Any model goes on top, and the feature
cache computes each row's embedding once however many folds and candidates a grid search
tries.

Here the backbone is an MLP pretrained on gas sensor batches 1-3; the encoder feeds a
logistic regression and a k-nearest-neighbours vote that learn batch 5, months of sensor
drift later, from 10% of its labels. The same code takes an ImageNet network
(``PretrainedEncoder("efficientnet_lite0")``) and a column of photo paths.

This example uses only the gas data shipped with sktransfer. The gallery is built with
tiny settings (``SKTRANSFER_EXAMPLE_FAST=1``).
"""

# Authors: the sktransfer developers
# License: BSD-3-Clause

import os

from matplotlib import pyplot as plt
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedShuffleSplit
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from sktransfer import PretrainedEncoder, TransferClassifier
from sktransfer.cache import clear_cache, get_cache
from sktransfer.datasets import load_gas_drift, split_gas_batches

FAST = os.environ.get("SKTRANSFER_EXAMPLE_FAST", "0") not in ("", "0")
SOURCE_EPOCHS = 5 if FAST else 30

gas = load_gas_drift()
X_source, y_source, targets = split_gas_batches(
    gas.data, gas.target, gas.batch, source_batches=[1, 2, 3], target_batches=[5]
)
X_target, y_target = targets[5]
train, test = next(StratifiedShuffleSplit(1, train_size=0.1, random_state=0)
                   .split(X_target, y_target))

# %%
# Pretrain once, encode anywhere
# ------------------------------
source = TransferClassifier("mlp", max_epochs=SOURCE_EPOCHS, random_state=0)
source.fit(X_source, y_source)
encoder = PretrainedEncoder(source.export_backbone()).set_output(transform="pandas")
embeddings = encoder.fit_transform(X_target)
print(embeddings.iloc[:3, :4])

# %%
# A grid search over the models on top
# ------------------------------------
# The encoder is an ordinary pipeline step, so the grid can swap the final model. Every
# candidate and fold embeds the same rows: the cache computes each of them once.
clear_cache()
pipe = Pipeline([("encode", PretrainedEncoder(source.export_backbone())),
                 ("model", LogisticRegression(max_iter=2000))])
grid = GridSearchCV(
    pipe,
    [{"model": [LogisticRegression(max_iter=2000)], "model__C": [0.1, 1.0, 10.0]},
     {"model": [KNeighborsClassifier()], "model__n_neighbors": [1, 3, 5]}],
    cv=3,
).fit(X_target[train], y_target[train])
cache = get_cache()
print(f"best: {grid.best_params_['model']} (CV accuracy {grid.best_score_:.3f})")
print(f"held-out accuracy on the other 90%: "
      f"{grid.score(X_target[test], y_target[test]):.3f}")
print(f"embeddings computed: {cache.misses}, served from the cache: {cache.hits}")

# %%
# What the embeddings look like
# -----------------------------
# Two principal components of the embeddings of batch 5, coloured by gas: the source
# network separates most gases even though it never saw this batch.
points = PCA(2).fit_transform(embeddings.to_numpy())
fig, ax = plt.subplots(figsize=(6, 4.5))
for gas_index, name in enumerate(gas.target_names):
    mask = y_target == gas_index
    ax.scatter(points[mask, 0], points[mask, 1], s=10, label=name)
ax.set_xlabel("first principal component of the embeddings")
ax.set_ylabel("second principal component")
ax.set_title("Gas batch 5 through a backbone pretrained on batches 1-3")
ax.legend(title="gas", fontsize=8, markerscale=1.5)
fig.tight_layout()
plt.show()
