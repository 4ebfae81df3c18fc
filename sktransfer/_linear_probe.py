"""A linear head fitted exactly on a frozen backbone's embeddings (a linear probe).

With the backbone frozen and a linear head, training the head is multinomial logistic
regression on the embeddings: a convex problem. :func:`fit_linear_probe` solves it to
convergence with full-batch L-BFGS on standardised embeddings and an L2 penalty, as
scikit-learn's ``LogisticRegression`` does and as linear probes are fitted in the
transfer-learning literature (Kornblith et al., CVPR 2019; Radford et al. 2021; Kumar et
al., ICLR 2022), instead of a fixed number of mini-batch epochs whose result depends on
the learning rate and the epoch count.
"""

from __future__ import annotations

import time

import torch
from torch import nn


def fit_linear_probe(linear: nn.Linear, features: torch.Tensor, y: torch.Tensor,
                     sample_weight: torch.Tensor | None = None, C: float = 1.0,
                     label_smoothing: float = 0.0, max_iter: int = 1000,
                     tol: float = 1e-5) -> dict:
    """Set ``linear``'s weights to the minimiser of the L2-regularised cross-entropy.

    The objective, on embeddings standardised with the fit set's per-feature mean and
    standard deviation, is ``mean_w(CE) + ||W||^2 / (2 * C * n)`` (bias not penalised):
    without sample weights it is scikit-learn's ``LogisticRegression(C=C)`` objective
    divided by ``C * n``, so both have the same solution for three classes or more (for
    two, ``LogisticRegression`` fits one weight vector, not two: its ``2 * C`` matches).
    The standardisation is folded back into ``linear`` afterwards: it takes the raw
    embeddings.

    Parameters
    ----------
    linear : torch.nn.Linear
        The head's output layer (``n_features -> n_classes``), overwritten in place.
    features : torch.Tensor of shape (n_samples, n_features)
        Embeddings of the training samples.
    y : torch.Tensor of shape (n_samples,)
        Class indices.
    sample_weight : torch.Tensor of shape (n_samples,), default=None
        Per-sample loss weights.
    C : float, default=1.0
        Inverse L2 strength, as in ``LogisticRegression``.
    label_smoothing : float, default=0.0
        As in ``torch.nn.functional.cross_entropy``.
    max_iter : int, default=1000
        L-BFGS iterations at most.
    tol : float, default=1e-5
        Stop when the largest gradient entry is below this.

    Returns
    -------
    dict
        ``train_loss`` (the mean weighted cross-entropy at the solution, without the
        penalty), ``train_acc`` and ``dur`` (seconds).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from sktransfer._linear_probe import fit_linear_probe
    >>> x = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    >>> y = (x[:, 0] > 0).long()
    >>> head = nn.Linear(3, 2)
    >>> fit_linear_probe(head, x, y)["train_acc"] >= 0.95
    True
    """
    start = time.perf_counter()
    device = linear.weight.device
    x = features.detach().to(device=device, dtype=torch.float32)
    y = y.to(device)
    n = len(y)
    mean = x.mean(0)
    std = x.std(0, unbiased=False)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    z = (x - mean) / std
    w = None
    if sample_weight is not None:
        w = sample_weight.to(device=device, dtype=torch.float32)
        w = w / w.sum().clamp_min(1e-12)
    weight = torch.zeros_like(linear.weight, dtype=torch.float32, requires_grad=True)
    bias = torch.zeros(linear.out_features, device=device, requires_grad=True)
    penalty = 1.0 / (2.0 * float(C) * n)

    def data_loss():
        losses = nn.functional.cross_entropy(z @ weight.T + bias, y, reduction="none",
                                             label_smoothing=float(label_smoothing))
        return losses.mean() if w is None else (losses * w).sum()

    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=int(max_iter),
                            tolerance_grad=float(tol), tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = data_loss() + penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        w_raw = weight / std
        linear.weight.copy_(w_raw.to(linear.weight.dtype))
        linear.bias.copy_((bias - w_raw @ mean).to(linear.bias.dtype))
        logits = z @ weight.T + bias
        loss = float(data_loss())
        acc = float((logits.argmax(1) == y).float().mean())
    return {"train_loss": loss, "train_acc": acc, "dur": time.perf_counter() - start}
