"""
=====================================================================
Choosing a fine-tuning learning rate with the LR finder
=====================================================================

The first question of fine-tuning is the learning rate. :func:`sktransfer.lr_find` runs
the learning-rate range test (Smith 2017; fastai's ``lr_find``): a clone of the estimator
trains for a hundred mini-batches while the rate grows exponentially, and the loss curve
shows where learning is fastest. The estimator itself stays unfitted.

Here an MLP pretrained on gas sensor batches 1-3 is fine-tuned on 10% of batch 5, months
of sensor drift later. The sweep suggests a rate; the fine-tuned model using it is scored
on the other 90% of the batch, against the default rate.

This example uses only the gas data shipped with sktransfer. The gallery is built with
tiny settings (``SKTRANSFER_EXAMPLE_FAST=1``); the full run takes well under a minute.
"""

# Authors: the sktransfer developers
# License: BSD-3-Clause

import os

from matplotlib import pyplot as plt
from sklearn.model_selection import train_test_split

from sktransfer import TransferClassifier, lr_find
from sktransfer.datasets import load_gas_drift

FAST = os.environ.get("SKTRANSFER_EXAMPLE_FAST", "0") not in ("", "0")
SOURCE_EPOCHS = 5 if FAST else 40
EPOCHS = 5 if FAST else 30
NUM_ITER = 30 if FAST else 100

# %%
# A source model on batches 1-3, and 10% of batch 5 to fine-tune on
# -------------------------------------------------------------------
X_src, y_src = load_gas_drift([1, 2, 3], return_X_y=True)
source = TransferClassifier("mlp", max_epochs=SOURCE_EPOCHS, random_state=0).fit(X_src, y_src)
X, y = load_gas_drift(5, return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, train_size=0.1, stratify=y, random_state=0)

# %%
# The sweep
# ---------
# ``lr_find`` keeps the estimator's parameter groups: with layer-wise decay the backbone's
# layers sweep at their fixed fractions of the head's rate, which is what is plotted.
clf = TransferClassifier(source.export_backbone(), batch_size=8, max_epochs=EPOCHS,
                         random_state=0)
result = lr_find(clf, X_train, y_train, num_iter=NUM_ITER)
print(f"suggested learning rate: {result.suggestion:.2g} (minimum/10: {result.lr_min:.2g})")
ax = result.plot()
ax.set_title("Gas batch 5, 10% labels: loss while the rate grows")
plt.tight_layout()

# %%
# Fine-tuning at the suggested rate
# ---------------------------------
for name, lr in [("default lr", clf.lr), ("suggested lr", result.suggestion)]:
    score = clf.set_params(lr=lr).fit(X_train, y_train).score(X_test, y_test)
    print(f"{name} {lr:.2g}: accuracy on the other 90% of batch 5 = {score:.3f}")
