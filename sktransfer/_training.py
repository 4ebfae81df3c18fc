"""The pieces of a skorch training run that the estimator assembles: net, loss, split.

Everything here is plain skorch; the estimator decides what goes in.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.model_selection import StratifiedShuffleSplit
from skorch import NeuralNet, NeuralNetClassifier
from skorch.callbacks import Callback, PrintLog
from skorch.dataset import get_len, unpack_data
from skorch.history import History
from skorch.utils import to_tensor
from torch import nn

from .augment import soft_target_loss
from .schedules import PARTIAL_EPOCH

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


class WeightedNet(NeuralNetClassifier):
    """skorch's classifier with a per-sample weighted loss and optional mixed precision.

    When samples carry weights, each batch's ``X`` is a dict holding ``sample_weight``
    (class weights folded in) and the loss is ``sum(w * ce) / sum(w)``. When all weights are
    equal that is the plain mean, and the batch carries no weights: the estimator decides
    this once per fit from the weights themselves, so ``sample_weight=ones`` and no weights
    take the same path and give identical models.

    ``amp_dtype`` (``torch.bfloat16`` or ``torch.float16``) runs forward passes under
    ``torch.autocast``; float16 also scales the loss with a ``GradScaler``. Batches move to
    the device with ``non_blocking=True`` (the loader pins host memory on CUDA).

    ``head_only=True`` says the batches hold a frozen backbone's cached embeddings: they go
    through the module's ``forward_head`` instead of its ``forward``.

    The fine-tuning toolkit lives in the loss and the training step:

    - ``label_smoothing``: as ``CrossEntropyLoss(label_smoothing=...)`` (Szegedy et al. 2016);
    - ``mixer``: a :class:`sktransfer.augment.BatchMixer` (MixUp / CutMix) applied to each
      training batch; the loss mixes the weighted one-hot targets alike, so per-sample
      weights still count (see :func:`sktransfer.augment.soft_target_loss`);
    - ``l2sp``: L2-SP (Li, Grandvalet & Davoine, ICML 2018), ``l2sp / 2 * ||w - w0||^2``
      over the backbone's trainable parameters, ``w0`` their values when training starts;
      added to the training loss only (validation losses stay comparable).
    """

    def __init__(self, *args, amp_dtype=None, head_only=False, label_smoothing=0.0,
                 mixer=None, l2sp=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.amp_dtype = amp_dtype
        self.head_only = head_only
        self.label_smoothing = label_smoothing
        self.mixer = mixer
        self.l2sp = l2sp
        self._mode_set = None
        self._batch_mix = None

    @property
    def _default_callbacks(self):
        return [(name, QuietPrintLog() if name == "print_log" else cb)
                for name, cb in super()._default_callbacks]

    # skorch sets train/eval mode on the whole module before every batch. Walking every
    # submodule costs about 5% of a small tabular network's step (measured with
    # benchmarks/bench_training_loop.py), so within one epoch or one prediction the mode is
    # only set when it changes. Both start with a full, unconditional call.
    def _set_training(self, training=True):
        if self._mode_set is not training:
            super()._set_training(training)
            self._mode_set = training

    # skorch's ``notify`` calls every callback's method for every event, three times per
    # batch, although most callbacks leave the per-batch methods as Callback's no-ops. The
    # callbacks that define a method are looked up once per list of callbacks
    # (``initialize_callbacks`` builds a new list) and only they are called; on the gas
    # MLP this is part of what brings the estimator to within a few percent of a
    # hand-written loop (benchmarks/bench_training_loop.py).
    def notify(self, method_name, **cb_kwargs):
        getattr(self, method_name)(self, **cb_kwargs)
        for method in self._callback_plan(method_name):
            method(self, **cb_kwargs)

    def _callback_plan(self, method_name):
        callbacks = self.__dict__.get("callbacks_", ())
        plan = self.__dict__.get("_notify_plan")
        if plan is None or plan[0] is not callbacks or plan[1] != len(callbacks):
            plan = (callbacks, len(callbacks), {})
            self.__dict__["_notify_plan"] = plan
        methods = plan[2].get(method_name)
        if methods is None:
            noop = getattr(Callback, method_name, None)
            methods = [getattr(cb, method_name) for _, cb in callbacks
                       if noop is None or method_name in vars(cb)
                       or getattr(type(cb), method_name, None) is not noop]
            plan[2][method_name] = methods
        return methods

    def __getstate__(self):  # the plan holds bound methods: rebuilt after unpickling
        state = super().__getstate__()
        state.pop("_notify_plan", None)
        state.pop("thread_tuner", None)  # a measure of this machine's load, not the model
        return state

    # skorch's own epoch loop, less per-batch work: the history's current batch is written
    # directly (``History.record_batch`` resolves ``[-1]["batches"][-1]`` through its
    # indexing machinery twice per batch) and the batch size is read off the targets
    # instead of ``get_len`` walking the input dict. Same records, same callback events; a
    # distributed history (Accelerate) keeps skorch's loop. Measured with
    # benchmarks/bench_training_loop.py.
    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        self._mode_set = None
        if iterator is None or type(self.history) is not History:
            return super().run_single_epoch(iterator, training, prefix, step_fn,
                                            **fit_params)
        loss_key, size_key = prefix + "_loss", prefix + "_batch_size"
        # what ``notify`` would call for each batch, looked up once per epoch: the net's
        # own batch hooks unless they are skorch's no-op (or, for ``on_batch_begin``, this
        # class's, done inline), then the listening callbacks
        new_batch = type(self).on_batch_begin is WeightedNet.on_batch_begin
        begin = (self._callback_plan("on_batch_begin") if new_batch
                 else self._batch_hooks("on_batch_begin"))
        end = self._batch_hooks("on_batch_end")
        history = self.history
        batch_count = 0
        lean_step = (self._lean_train_step() if training and not fit_params
                     and getattr(step_fn, "__func__", None) is WeightedNet.train_step
                     else None)
        # n_threads="tune": a long epoch times its first batches to choose the threads
        tuner = self.__dict__.get("thread_tuner") if training else None
        if tuner is not None:
            tuner.new_pass(len(iterator))
        for batch in iterator:
            if new_batch:
                list.__getitem__(history, -1)["batches"].append({})
            for hook in begin:
                hook(self, batch=batch, training=training)
            probing = tuner is not None and tuner.probing
            if probing:
                tuner.before_batch()
            step = (lean_step(batch) if lean_step is not None
                    else step_fn(batch, **fit_params))
            record = list.__getitem__(history, -1)["batches"][-1]
            record[loss_key] = step["loss"].item()
            record[size_key] = _batch_size(batch)
            if probing:
                tuner.after_batch(record[size_key])
            for hook in end:
                hook(self, batch=batch, training=training, **step)
            batch_count += 1
        history.record(prefix + "_batch_count", batch_count)
        if tuner is not None:
            history.record("threads", torch.get_num_threads())

    def _batch_hooks(self, method_name):
        own = getattr(type(self), method_name)
        hooks = [] if own is getattr(NeuralNet, method_name) else [getattr(self, method_name)]
        return hooks + self._callback_plan(method_name)

    def on_batch_begin(self, net, **kwargs):
        # skorch's ``history.new_batch()``, without its indexing machinery
        if type(self.history) is History:
            list.__getitem__(self.history, -1)["batches"].append({})
        else:
            super().on_batch_begin(net, **kwargs)

    def _lean_train_step(self):
        """The training step of the plainest, most common fit as one function, or None.

        When nothing customises it (no sample weights, label smoothing, MixUp/CutMix,
        L2-SP, mixed precision or gradient callbacks; Adam, AdamW or SGD; none of skorch's
        step methods overridden), a training step is: zero the gradients, forward,
        cross-entropy, backward, step. skorch reaches that through a chain of method
        calls per batch (``train_step``, ``train_step_single``, ``infer``, ``get_loss``,
        device moves); on the gas MLP the estimator is about 1.04x a hand-written loop with
        this step and 1.044-1.063x without it (benchmarks/bench_training_loop.py,
        ``--without-lean-step``). Decided once per epoch; a batch it does not cover (one
        carrying weights) takes skorch's path.
        """
        cls = type(self)
        if (not self._steps_without_closure() or self._callback_plan("on_grad_computed")
                or self.amp_dtype is not None or self.l2sp or self.label_smoothing
                or str(self.device) != "cpu"
                or type(self.criterion_) is not nn.CrossEntropyLoss
                or any(getattr(cls, name) is not getattr(WeightedNet, name)
                       for name in ("train_step", "infer", "_call_module", "get_loss",
                                    "_set_training"))):
            return None
        optimizer, criterion = self.optimizer_, self.criterion_
        forward = self.module_.forward_head if self.head_only else self.module_
        train_step, set_training = self.train_step, self._set_training

        def lean_step(batch):
            Xi, yi = batch
            if (type(Xi) is not dict or len(Xi) != 1 or type(yi) is not torch.Tensor
                    or type(Xi.get("x")) is not torch.Tensor or Xi["x"].is_cuda):
                return train_step(batch)
            optimizer.zero_grad()
            # every batch, as skorch does: a callback may have predicted (eval mode)
            # since the last one; a no-op unless the mode changed
            set_training(True)
            y_pred = forward(Xi["x"])
            loss = criterion(y_pred if y_pred.dtype == torch.float32 else y_pred.float(),
                             yi)
            loss.backward()
            optimizer.step()
            return {"loss": loss, "y_pred": y_pred}

        return lean_step

    def _steps_without_closure(self) -> bool:
        """Whether a training step may be zero, ``train_step_single``, ``step()`` instead
        of skorch's ``optimizer.step(closure)`` (see :meth:`train_step`)."""
        return (self.grad_scaler_ is None and self.mixer is None
                and type(self.optimizer_) in _CLOSURE_ONCE and _direct_steps(type(self))
                and len(self._optimizers) == 1)

    def train_step(self, batch, **fit_params):
        # skorch notifies ``on_grad_computed`` after every backward pass, building a
        # generator over all parameters for it; skipped when no callback listens.
        if self._callback_plan("on_grad_computed"):
            return super().train_step(batch, **fit_params)
        if self._steps_without_closure():
            # skorch hands the step to ``optimizer.step(closure)`` (through a step
            # accumulator), which LBFGS-like optimizers need; Adam, AdamW and SGD call the
            # closure once before updating, so here the closure's work
            # (``train_step_single``) is done first, then ``step()``: the same step with
            # less per-batch machinery (measured with benchmarks/bench_training_loop.py).
            self.optimizer_.zero_grad()
            step = self.train_step_single(batch, **fit_params)
            self.optimizer_.step()
            return step
        step_accumulator = self.get_train_step_accumulator()

        def step_fn():
            self._zero_grad_optimizer()
            step = self.train_step_single(batch, **fit_params)
            step_accumulator.store_step(step)
            return step["loss"]

        self._step_optimizer(step_fn)
        return step_accumulator.get_step()

    def forward_iter(self, X, training=False, device="cpu"):
        self._mode_set = None
        yield from super().forward_iter(X, training=training, device=device)

    def initialize(self):
        super().initialize()
        return self._initialize_extras()

    def _initialize_extras(self):
        """What this net adds to skorch's initialisation: the gradient scaler, L2-SP's
        reference weights (also run by the accelerated nets, whose ``initialize`` is
        skorch's ``AccelerateMixin``'s)."""
        use_scaler = self.amp_dtype == torch.float16 and str(self.device).startswith("cuda")
        self.grad_scaler_ = torch.amp.GradScaler("cuda") if use_scaler else None
        self.l2sp_reference_ = None
        if self.l2sp:
            self.set_l2sp_reference()
        return self

    def set_l2sp_reference(self) -> None:
        """The starting point L2-SP pulls toward: the (pretrained) backbone as it is now."""
        self.l2sp_reference_ = {
            name: p.detach().clone() for name, p in self.module_.backbone.named_parameters()
        }

    def l2sp_penalty(self) -> torch.Tensor | float:
        """``l2sp / 2 * sum ||w - w0||^2`` over the backbone's trainable parameters."""
        ref = getattr(self, "l2sp_reference_", None)
        if not self.l2sp or not ref:
            return 0.0
        terms = [(p - ref[name]).pow(2).sum()
                 for name, p in self.module_.backbone.named_parameters() if p.requires_grad]
        if not terms:
            return 0.0
        return 0.5 * float(self.l2sp) * torch.stack(terms).sum()

    def infer(self, x, **fit_params):
        if isinstance(x, dict) and self.device != "cpu":
            x = {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                 for k, v in x.items()}
        if self.amp_dtype is None:  # no autocast context at all: it costs time every batch
            return self._call_module(x, **fit_params)
        with autocast(self.device, self.amp_dtype):
            out = self._call_module(x, **fit_params)
        return out.float() if isinstance(out, torch.Tensor) else out

    def _call_module(self, x, **fit_params):
        # skorch's ``infer`` minus its argument merging when there is nothing to merge (the
        # usual case: every batch), and through ``forward_head`` for cached embeddings
        x = _to_device(x, self.device)
        forward = self.module_.forward_head if self.head_only else self.module_
        if isinstance(x, dict):
            if not fit_params and len(x) == 1 and "x" in x:
                return forward(x["x"])
            kwargs = self._merge_x_and_fit_params(x, fit_params) if fit_params else dict(x)
            return forward(kwargs.pop("x"), **kwargs) if "x" in kwargs else forward(**kwargs)
        return forward(x, **fit_params)

    def _mixed_batch(self, batch):
        """``(X, y)`` of a training batch, its images mixed when MixUp/CutMix is on.

        The mixing matrix is kept in ``_batch_mix`` for :meth:`get_loss`; the caller clears it.
        """
        Xi, yi = unpack_data(batch)
        if self.mixer is not None:
            Xi = dict(Xi)
            x = Xi["x"].to(self.device, non_blocking=True)
            Xi["x"], self._batch_mix = self.mixer(x)
        return Xi, yi

    def train_step_single(self, batch, **fit_params):
        if self.grad_scaler_ is None and self.mixer is None:
            return super().train_step_single(batch, **fit_params)
        self._set_training(True)
        Xi, yi = self._mixed_batch(batch)
        try:
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        finally:
            self._batch_mix = None
        if self.grad_scaler_ is None:
            loss.backward()
        else:
            self.grad_scaler_.scale(loss).backward()
        return {"loss": loss, "y_pred": y_pred}

    def _step_optimizer(self, step_fn):
        if self.grad_scaler_ is None:
            return super()._step_optimizer(step_fn)
        step_fn()
        self.grad_scaler_.step(self.optimizer_)
        self.grad_scaler_.update()

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = _to_device(y_true, self.device)
        weights = None
        if isinstance(X, dict) and "sample_weight" in X:
            weights = _to_device(X["sample_weight"], self.device)
        mix = self._batch_mix if training else None
        smoothing = float(self.label_smoothing or 0.0)
        if mix is not None or (weights is not None and smoothing):
            loss = soft_target_loss(y_pred, y_true, weights, mix, smoothing)
        elif weights is not None:
            losses = nn.functional.cross_entropy(y_pred.float(), y_true, reduction="none")
            w = weights.to(losses.dtype)
            loss = (losses * w).sum() / w.sum().clamp_min(1e-12)
        elif smoothing:
            loss = nn.functional.cross_entropy(y_pred.float(), y_true,
                                               label_smoothing=smoothing)
        else:
            loss = self.criterion_(y_pred.float(), y_true)
        if training and self.l2sp:
            loss = loss + self.l2sp_penalty()
        return loss


#: optimizers whose ``step(closure)`` evaluates the closure once, before updating
_CLOSURE_ONCE = frozenset({torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD})


@functools.cache
def _direct_steps(net_class) -> bool:
    """Whether ``net_class`` computes, zeroes, steps and accumulates as skorch and
    WeightedNet do (a subclass that changes any of them keeps skorch's closure-based
    train step)."""
    return (net_class.train_step_single is WeightedNet.train_step_single
            and net_class._step_optimizer is WeightedNet._step_optimizer
            and net_class._zero_grad_optimizer is NeuralNet._zero_grad_optimizer
            and net_class.get_train_step_accumulator is NeuralNet.get_train_step_accumulator)


def _to_device(x, device):
    """skorch's ``to_tensor(x, device)``, which returns the usual batch unchanged: a
    tensor, or a dict of tensors, on the CPU when ``device`` is the CPU. That batch skips
    its walk through the data types it handles (twice per training step)."""
    if device == "cpu":
        if type(x) is torch.Tensor:
            if x.is_cpu:
                return x
        elif type(x) is dict:
            for v in x.values():
                if type(v) is not torch.Tensor or not v.is_cpu:
                    break
            else:
                return x
    return to_tensor(x, device=device)


class QuietPrintLog(PrintLog):
    """skorch's ``PrintLog``, which formats its table only when it will be shown.

    skorch's builds the epoch's table with ``tabulate`` at every epoch and drops it when
    ``verbose=0``, although a frozen-backbone search runs many short head-only epochs.
    """

    def on_epoch_end(self, net, **kwargs):
        if self.sink is print and not net.verbose:
            return
        super().on_epoch_end(net, **kwargs)


def _batch_size(batch) -> int:
    """Rows in a ``(X, y)`` batch, as skorch's ``get_len(X)``; the estimator's datasets
    always yield a target tensor, its length is the batch's."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[1],
                                                                          torch.Tensor):
        return batch[1].shape[0]  # len(tensor) goes through Python-level __len__
    return get_len(batch[0]) if isinstance(batch, (tuple, list)) else get_len(batch)


def float_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy, on the CPU, of ``module``'s floating-point parameters and buffers."""
    return {name: tensor.detach().to("cpu", copy=True)
            for name, tensor in module.state_dict().items() if tensor.is_floating_point()}


@torch.no_grad()
def interpolate_weights(module: nn.Module, start: dict[str, torch.Tensor],
                        alpha: float) -> None:
    """WiSE-FT (Wortsman et al., CVPR 2022): ``module``'s floating-point weights become
    ``(1 - alpha) * start + alpha * current``, in place.

    Integer buffers (BatchNorm's batch counters) keep their current values; running
    statistics are averaged like the weights.
    """
    for name, tensor in module.state_dict().items():
        if name in start:
            tensor.copy_(torch.lerp(start[name].to(tensor.device, tensor.dtype), tensor,
                                    float(alpha)))


def run_stages(net, y, stages, initialized: bool = False) -> None:
    """Train ``net`` through consecutive stages, continuing one history.

    Each stage is ``(epochs, dataset, head_only, before)``: ``before(net)`` (or None) runs
    first, e.g. to unfreeze the backbone and start a fresh optimizer; ``head_only`` says
    the dataset holds cached embeddings. The first stage is a ``fit``, the others
    ``partial_fit`` calls, so callbacks (schedules, early stopping) see each stage as a
    training run of its own, planned over its own ``epochs``. ``initialized``: the net
    was initialised and already trained (e.g. a head solved exactly), so the first stage
    is a ``partial_fit`` too (a ``fit`` would re-initialise the module).
    """
    total = net.max_epochs
    try:
        for i, (epochs, dataset, head_only, before) in enumerate(stages):
            if before is not None:
                before(net)
            net.head_only = head_only
            net.max_epochs = int(epochs)
            if i == 0 and not initialized:
                net.fit(dataset, y)
            else:
                net.partial_fit(dataset, y)
    finally:
        net.max_epochs = total


class HoldOut:
    """skorch ``train_split``: hold out a fraction of the rows for validation.

    Stratified by ``y`` when ``stratify`` is true and every class has at least two rows,
    else a plain random split. A fraction that leaves no validation row, or fewer than two
    training rows, is an error (see :meth:`sizes`), never a silent fit without validation.

    Parameters
    ----------
    fraction : float
        Share of the rows held out, in (0, 1).
    random_state : int
        Seed of the split.
    stratify : bool, default=True
        Keep class proportions (classification); regressors pass False.

    Examples
    --------
    >>> from sktransfer._training import HoldOut
    >>> HoldOut.sizes(40, 0.1)
    (36, 4)
    """

    def __init__(self, fraction: float, random_state: int, stratify: bool = True):
        self.fraction = fraction
        self.random_state = random_state
        self.stratify = stratify

    @staticmethod
    def sizes(n: int, fraction: float) -> tuple[int, int]:
        """``(n_train, n_valid)`` for ``n`` rows, or a ValueError naming the fraction."""
        n_valid = int(round(fraction * n))
        if n_valid < 1:
            raise ValueError(
                f"validation_fraction={fraction} of {n} rows rounds to no validation row; "
                f"use at least {1.0 / n:.3g} (one row), or validation_fraction=None"
            )
        if n - n_valid < 2:
            raise ValueError(
                f"validation_fraction={fraction} of {n} rows leaves {n - n_valid} row(s) to "
                "train on; use a smaller fraction, or validation_fraction=None"
            )
        return n - n_valid, n_valid

    def __call__(self, dataset, y=None, **_):
        n = len(dataset)
        _, n_valid = self.sizes(n, self.fraction)
        rng = np.random.RandomState(self.random_state)
        y = None if y is None or not self.stratify else np.asarray(y)
        idx_train = idx_valid = None
        if y is not None:
            counts = np.unique(y, return_counts=True)[1]
            if counts.min() >= 2 and n_valid >= len(counts) and n - n_valid >= len(counts):
                sss = StratifiedShuffleSplit(1, test_size=n_valid, random_state=rng)
                idx_train, idx_valid = next(sss.split(np.zeros(n), y))
        if idx_train is None:
            perm = rng.permutation(n)
            idx_valid, idx_train = perm[:n_valid], perm[n_valid:]
        return (
            torch.utils.data.Subset(dataset, np.sort(idx_train)),
            torch.utils.data.Subset(dataset, np.sort(idx_valid)),
        )


class TrainAccuracy(Callback):
    """``train_acc`` in the history: accuracy of the training batches' own predictions.

    The same number skorch's ``EpochScoring("accuracy", on_train=True, use_caching=True)``
    gives, counted as batches pass instead of re-scoring cached predictions at each epoch's
    end (which measurably slows small networks; see benchmarks/bench_training_loop.py).
    """

    # The batches' outputs are kept as they come (a detach: no tensor operation, no sync
    # with the device) and scored in chunks of ``chunk`` batches, then once more at the
    # epoch's end: one argmax and one comparison per chunk instead of per batch, while the
    # memory held stays at ``chunk`` batches of logits. On a small network each tensor
    # operation's dispatch is a visible share of a step (benchmarks/bench_training_loop.py).
    chunk = 64

    def on_epoch_begin(self, net, **kwargs):
        self.outputs_, self.targets_ = [], []
        self.correct_, self.seen_ = 0, 0  # correct_ becomes a tensor: no sync per chunk

    def on_batch_end(self, net, batch, training, y_pred=None, **kwargs):
        if training and y_pred is not None:
            self.outputs_.append(y_pred.detach())
            self.targets_.append(batch[1])
            if len(self.outputs_) >= self.chunk:
                self._score_chunk()

    def _score_chunk(self):
        if not self.outputs_:
            return
        predicted = torch.cat(self.outputs_).argmax(1)
        targets = torch.cat(self.targets_).to(predicted.device)
        self.correct_ = self.correct_ + (predicted == targets).sum()
        self.seen_ += len(targets)
        self.outputs_, self.targets_ = [], []

    def on_epoch_end(self, net, **kwargs):
        self._score_chunk()  # the epoch's last batches; leaves nothing held
        correct, seen = float(self.correct_), self.seen_
        self.correct_, self.seen_ = 0, 0
        reduce = getattr(net, "sum_over_processes", None)
        if reduce is not None:  # a distributed fit: every process saw its own batches
            correct, seen = reduce([float(correct), float(seen)])
        if seen:
            net.history.record("train_acc", float(correct) / seen)


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is there, else ``"cpu"``; anything else checked."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {device!r}"
        ) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} but CUDA is not available here; use device='auto' or 'cpu'"
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return str(parsed)


def resolve_amp(mixed_precision, device: str):
    """The autocast dtype for ``mixed_precision`` on ``device``, or None for float32."""
    if mixed_precision in (False, None):
        return None
    cuda = device.startswith("cuda")
    if mixed_precision == "auto":
        if not cuda:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    names = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
             "float16": torch.float16}
    if mixed_precision is True:
        return resolve_amp("auto", device) if cuda else torch.bfloat16
    if mixed_precision not in names:
        raise ValueError(
            f"mixed_precision must be 'auto', 'bf16', 'fp16', True or False, got "
            f"{mixed_precision!r}"
        )
    if names[mixed_precision] == torch.float16 and not cuda:
        raise ValueError("mixed_precision='fp16' needs CUDA; on the CPU use 'bf16' or False")
    return names[mixed_precision]


def autocast(device, amp_dtype):
    """``torch.autocast`` for ``device`` with ``amp_dtype``; disabled when it is None."""
    return torch.autocast(torch.device(device).type, dtype=amp_dtype,
                          enabled=amp_dtype is not None)


def release_device_memory(device: str) -> None:
    """Give cached CUDA blocks back, so many fits in a row (a grid search) do not grow."""
    if device.startswith("cuda"):
        import gc

        gc.collect()
        torch.cuda.empty_cache()


#: history keys of skorch and sktransfer that are no metric
_BOOKKEEPING = frozenset({"batches", "train_batch_count", "valid_batch_count", "unfrozen",
                          PARTIAL_EPOCH})


def history_frame(history):
    """skorch ``History`` -> one pandas row per epoch with the metrics users plot."""
    import pandas as pd

    columns = ["epoch", "train_loss", "valid_loss", "train_acc", "valid_acc", "lr", "dur",
               "threads"]
    # metrics of the user's callbacks (an EpochScoring's "roc_auc"): numbers skorch
    # recorded beside these, not its bookkeeping ("*_best" flags, batch counts)
    extra = list(dict.fromkeys(
        key for row in history for key, value in row.items()
        if key not in columns and key not in _BOOKKEEPING and not key.endswith("_best")
        and isinstance(value, (int, float, np.number)) and not isinstance(value, bool)))
    rows = []
    for row in history:
        record = {c: row.get(c, np.nan) for c in (*columns, *extra)}
        record["unfrozen"] = bool(row.get("unfrozen", False))
        rows.append(record)
    frame = pd.DataFrame(rows, columns=[*columns, *extra, "unfrozen"])
    # Optional columns go when absent; the loss stays, NaN and all, so a failure shows.
    absent = [c for c in ("valid_loss", "train_acc", "valid_acc", "dur", "threads")
              if frame[c].isna().all()]
    frame = frame.drop(columns=absent)
    if "threads" in frame:  # the CPU threads each epoch ended on (n_threads="tune")
        frame["threads"] = frame["threads"].astype("Int64")
    return frame
