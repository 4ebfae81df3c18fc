"""Learning-rate schedules stepped per batch, and layer-wise learning-rate decay.

Both keep the ratios between parameter groups: a schedule multiplies every group's own
learning rate by the same factor (``torch.optim.lr_scheduler.LambdaLR``), so a backbone
trained at a tenth of the head's rate stays at a tenth all along.

- ``"constant"``: the rate set by ``lr`` (after an optional linear warmup).
- ``"cosine"``: linear warmup, then half a cosine down to zero (Loshchilov & Hutter, SGDR,
  ICLR 2017), the usual fine-tuning schedule of BEiT, ConvNeXt and timm.
- ``"onecycle"``: the one-cycle policy (Smith & Topin 2019, "Super-convergence"), as in
  ``torch.optim.lr_scheduler.OneCycleLR`` and fastai's ``fit_one_cycle``: from ``lr / 25`` up
  to ``lr`` over the warmup (30% of the steps when ``warmup`` is 0), then a cosine down to
  ``lr / 25e4``.

Layer-wise decay (ULMFiT's discriminative rates, Howard & Ruder 2018; BEiT, Bao et al. 2022;
ELECTRA, Clark et al. 2020) gives the layer ``k`` groups below the head ``lr * decay**k``:
the lowest, most general layers of a pretrained backbone move least.
"""

from __future__ import annotations

import math

from skorch.callbacks import Callback, LRScheduler
from torch.optim.lr_scheduler import LambdaLR

SCHEDULES = ("constant", "cosine", "onecycle")

#: one-cycle's start and end rates as fractions of ``lr`` (OneCycleLR's defaults)
_ONECYCLE_DIV = 25.0
_ONECYCLE_FINAL_DIV = 1e4
_ONECYCLE_DEFAULT_WARMUP = 0.3


class ScheduleFactor:
    """The multiplier of the base learning rates after ``step`` optimizer steps.

    A plain picklable object (not a closure), so fitted estimators pickle and clone.

    Parameters
    ----------
    kind : {"constant", "cosine", "onecycle"}
        Shape of the schedule.
    total_steps : int
        Optimizer steps in the whole run.
    warmup_steps : int
        Steps of linear warmup at the start.

    Examples
    --------
    >>> from sktransfer.schedules import ScheduleFactor
    >>> f = ScheduleFactor("cosine", total_steps=10, warmup_steps=2)
    >>> [round(f(s), 2) for s in (0, 1, 2, 6, 10)]
    [0.33, 0.67, 1.0, 0.5, 0.0]
    """

    def __init__(self, kind: str, total_steps: int, warmup_steps: int = 0):
        if kind not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {kind!r}")
        self.kind = kind
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = min(max(int(warmup_steps), 0), self.total_steps)

    def __call__(self, step: int) -> float:
        total, warm = self.total_steps, self.warmup_steps
        step = min(max(int(step), 0), total)
        if self.kind == "onecycle":
            warm = warm or round(_ONECYCLE_DEFAULT_WARMUP * total)
            start = 1.0 / _ONECYCLE_DIV
            end = start / _ONECYCLE_FINAL_DIV
            if step < warm:
                return start + (1.0 - start) * _cos_ramp(step / warm)
            rest = max(total - warm, 1)
            return end + (1.0 - end) * (1.0 - _cos_ramp((step - warm) / rest))
        if step < warm:  # linear warmup, never exactly 0 so the first step moves
            return (step + 1) / (warm + 1)
        if self.kind == "constant":
            return 1.0
        rest = max(total - warm, 1)
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / rest))

    def __repr__(self) -> str:
        return (f"ScheduleFactor({self.kind!r}, total_steps={self.total_steps}, "
                f"warmup_steps={self.warmup_steps})")


def _cos_ramp(t: float) -> float:
    """0 -> 1 along half a cosine (one-cycle's annealing shape)."""
    return 0.5 * (1.0 - math.cos(math.pi * min(max(t, 0.0), 1.0)))


#: Key of an optimizer parameter group holding the rate it was built with.
_BASE_LR = "sktransfer_base_lr"

#: History key marking an epoch trained by a ``partial_fit`` call under a schedule.
PARTIAL_EPOCH = "partial_fit_epoch"


class BatchLRSchedule(LRScheduler):
    """skorch ``LRScheduler`` with a :class:`ScheduleFactor`, stepped after every batch.

    The number of steps is only known once the data is: at the start of each training
    run (a ``fit``, a continued fit, the fine-tuning stage of ``freeze="gradual"``) this
    callback counts the training batches of one epoch from the net's own train split and
    plans ``net.max_epochs`` epochs of them from the rates the optimizer was built with,
    so each run gets its own warmup and decay. ``partial_fit`` calls (one epoch each)
    walk through one such schedule, epoch by epoch, then start another.

    Parameters
    ----------
    kind : {"constant", "cosine", "onecycle"}
        Shape of the schedule.
    warmup : float, default=0.0
        Share of the steps spent warming up linearly from ``lr / (warmup_steps + 1)``.

    Examples
    --------
    >>> from sktransfer.schedules import BatchLRSchedule
    >>> cb = BatchLRSchedule("cosine", warmup=0.1)
    >>> cb.step_every
    'batch'
    """

    def __init__(self, kind: str = "cosine", warmup: float = 0.0):
        super().__init__(policy=LambdaLR, step_every="batch", event_name=None)
        self.kind = kind
        self.warmup = warmup

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        batches = _batches_per_epoch(net, X, y)
        epochs = int(net.max_epochs)
        # partial_fit (one epoch per call): call k is epoch k of one schedule of
        # max_epochs epochs, sized by its own chunk's batches, so chunks of any size follow
        # the same curve; after max_epochs calls the next starts another. Any other run
        # (a fit, a continued fit, LP-FT's second stage) runs a whole schedule.
        # The position is read from the history (its partial_fit epochs since the last
        # other run), which travels with every copy of the model: pickles, save/load, a
        # net rebuilt for changed settings, a failed call rolled back.
        partial = bool(getattr(net, "continue_schedule_", False))
        self.partial_run_ = partial
        done = _trailing_partial_epochs(net.history) % epochs if partial else 0
        steps = batches * epochs
        factor = ScheduleFactor(self.kind, steps, round(float(self.warmup) * steps))
        for group in net.optimizer_.param_groups:
            # from the rates the optimizer was built with, kept in the group itself (it
            # travels with the optimizer's state dict): a continued fit would otherwise
            # start from where the last schedule ended, near zero
            group.setdefault(_BASE_LR, group["lr"])
            group["lr"] = group["initial_lr"] = group[_BASE_LR]
        self.lr_scheduler_ = LambdaLR(net.optimizer_, lr_lambda=factor,
                                      last_epoch=done * batches - 1 if done else -1)
        self.factor_ = factor
        self.batch_idx_ = 0

    def on_epoch_end(self, net, **kwargs):
        if getattr(self, "partial_run_", False):
            net.history.record(PARTIAL_EPOCH, True)
        # the head's rate at the epoch's last step (skorch puts parameters no pattern
        # names, the head, last). The optimizer already holds the next step's rate, so
        # the rate used is computed from the schedule's factor of the step taken.
        group = net.optimizer_.param_groups[-1]
        taken = self.lr_scheduler_.last_epoch  # LambdaLR counts steps as "epochs"
        net.history.record("lr", group["initial_lr"] * self.factor_(max(taken - 1, 0)))


class RecordLR(Callback):
    """Records the head's learning rate in ``history_`` when no schedule changes it."""

    def on_epoch_end(self, net, **kwargs):
        net.history.record("lr", net.optimizer_.param_groups[-1]["lr"])


def _trailing_partial_epochs(history) -> int:
    """Epochs at the end of ``history`` trained by partial_fit calls in a row."""
    count = 0
    for row in reversed(history):
        if not row.get(PARTIAL_EPOCH):
            break
        count += 1
    return count


def _batches_per_epoch(net, X, y) -> int:
    """Training batches of one epoch of ``net`` on ``X`` (its own train split applied)."""
    n = len(X)
    if X is not None and net.train_split is not None:
        train, _ = net.train_split(X, y)
        n = len(train)
    params = net.get_params_for("iterator_train")
    batches = math.ceil(n / int(params.get("batch_size", net.batch_size)))
    # a distributed fit: each process steps through its share of the batches
    return max(1, math.ceil(batches / int(params.get("num_shards", 1))))


def make_schedule(kind: str | None, warmup: float = 0.0) -> BatchLRSchedule | None:
    """The callback for ``lr_schedule=kind``, or None when nothing changes the rate."""
    if kind is None or (kind == "constant" and not warmup):
        return None
    return BatchLRSchedule(kind, warmup=warmup)


def layerwise_param_groups(network, lr: float, backbone_lr_mult: float = 1.0,
                           layer_decay: float | None = None,
                           backbone_weight_decay: float | None = None,
                           ) -> list[tuple[str, dict]]:
    """skorch ``optimizer__param_groups`` giving each backbone layer group its own rate.

    The head trains at ``lr``; the backbone's layer groups (from
    :meth:`Backbone.layer_groups`, input to output), counted ``k = 1, 2, ...`` down from the
    top, at ``lr * backbone_lr_mult * layer_decay ** k``. Without ``layer_decay`` the whole
    backbone shares ``lr * backbone_lr_mult``. Parameters that no group names (a class token,
    a positional embedding) sit with the lowest group.

    Parameters
    ----------
    network : TransferNetwork
        The network whose backbone is at ``network.backbone``.
    lr : float
        The head's learning rate.
    backbone_lr_mult : float, default=1.0
        Multiplier for the whole backbone.
    layer_decay : float or None, default=None
        Per-group decay factor in (0, 1]; None or 1 for none.
    backbone_weight_decay : float or None, default=None
        Weight decay of the backbone's groups when it differs from the optimizer's (0 with
        L2-SP, which regularises the backbone toward its starting weights instead).

    Returns
    -------
    list of (pattern, dict)
        What skorch's ``optimizer__param_groups`` takes; empty when every parameter gets
        ``lr``.

    Examples
    --------
    >>> from sktransfer.network import TransferNetwork, make_head
    >>> from sktransfer.registry import create_backbone
    >>> from sktransfer.schedules import layerwise_param_groups
    >>> net = TransferNetwork(create_backbone("mlp", input_shape=(4,), hidden=(8, 8)),
    ...                       make_head(8, 2))
    >>> [g["lr"] for _, g in layerwise_param_groups(net, 1.0, layer_decay=0.5)]
    [0.25, 0.5]
    """
    mult = 1.0 if backbone_lr_mult is None else float(backbone_lr_mult)
    decay = 1.0 if layer_decay is None else float(layer_decay)
    extra = {} if backbone_weight_decay is None else {"weight_decay": backbone_weight_decay}
    if decay == 1.0:
        if mult == 1.0 and not extra:
            return []
        return [("backbone.*", {"lr": lr * mult, **extra})]
    backbone = network.backbone
    module_names = {id(m): n for n, m in network.named_modules()}
    param_names = {id(p): n for n, p in network.named_parameters()}
    seen: set[int] = set()
    per_group: list[list[str]] = []
    for group in backbone.layer_groups():
        patterns = []
        for module in group:
            params = [p for p in module.parameters() if id(p) not in seen]
            if not params:
                continue
            seen.update(id(p) for p in params)
            patterns.append(module_names[id(module)] + ".*")
        if patterns:
            per_group.append(patterns)
    leftover = [param_names[id(p)] for p in backbone.parameters() if id(p) not in seen]
    if per_group:
        per_group[0] = leftover + per_group[0]
    elif leftover:
        per_group = [leftover]
    n = len(per_group)
    return [(pattern, {"lr": lr * mult * decay ** (n - i), **extra})
            for i, patterns in enumerate(per_group) for pattern in patterns]


#: The fine-tuning recipe ``"auto"`` resolves to when a pretrained backbone trains.
#: Measured in benchmarks/bench_finetune_defaults.py (results/bench_finetune_defaults.json):
#: at the estimator's default budget (20 epochs; tens of optimizer steps on small targets)
#: AdamW + cosine + 10% warmup lost to a constant rate (gas batch 4: 0.862 vs 0.924; batch
#: 5: 0.978 vs 0.985; monkeys: 0.325 vs 0.330), and so did layer decay 0.7 and a 0.1
#: backbone rate; so the measured winner, a constant Adam rate, stays the default.
FINETUNE_RECIPE = {"optimizer": "adam", "lr_schedule": "constant", "warmup": 0.0,
                   "layer_decay": None}
#: ... and otherwise (training from scratch, or a frozen backbone).
PLAIN_RECIPE = {"optimizer": "adam", "lr_schedule": "constant", "warmup": 0.0,
                "layer_decay": None}


def resolve_recipe(params: dict, fine_tuning: bool) -> dict:
    """Replace ``"auto"`` in the estimator's training parameters by the recipe's values.

    Parameters
    ----------
    params : dict
        ``optimizer``, ``lr_schedule``, ``warmup`` and ``layer_decay`` as set.
    fine_tuning : bool
        Whether a pretrained backbone trains in this fit.

    Returns
    -------
    dict
        The same keys, nothing left ``"auto"``.

    Examples
    --------
    >>> from sktransfer.schedules import resolve_recipe
    >>> resolve_recipe({"optimizer": "auto", "lr_schedule": "auto", "warmup": "auto",
    ...                 "layer_decay": 0.8}, fine_tuning=True)
    {'optimizer': 'adam', 'lr_schedule': 'constant', 'warmup': 0.0, 'layer_decay': 0.8}
    """
    defaults = FINETUNE_RECIPE if fine_tuning else PLAIN_RECIPE
    return {key: defaults[key] if isinstance(value, str) and value == "auto" else value
            for key, value in params.items()}
