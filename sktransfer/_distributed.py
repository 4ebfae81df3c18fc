"""One fit spread over several processes (or GPUs) with Hugging Face Accelerate.

The estimators' ``accelerator=`` parameter swaps their skorch net for one built on
skorch's :class:`skorch.hf.AccelerateMixin`: Accelerate sets up the process group, wraps
the network for DistributedDataParallel, places it on each process's device and runs mixed
precision; this module only fits that mixin to the estimator's own training net:

- the network skorch holds (``net.module_``) stays the plain :class:`TransferNetwork`, so
  everything that reads its backbone and head (freeze policies, L2-SP, layer-wise learning
  rates, ``forward_head`` on cached features) keeps working. What Accelerate prepares is
  :class:`_TrainForward`, a view of it whose ``forward`` runs either the whole network or
  its head: every training forward goes through DDP, as its gradient hooks require;
- DDP syncs only the parameters that require gradients when it is built, so the wrapper
  is rebuilt whenever the trainable set changes (the second stage of
  ``freeze="gradual"``, a policy's callback);
- each process trains on its share of every epoch's batches (:class:`BatchLoader`'s
  ``num_shards``), all with the same permutation: the batch size is per process, and the
  global batch ``batch_size * num_processes``;
- validation and predictions are not split: every process scores all rows (the weights
  are the same everywhere), so early stopping, ``history_`` and predictions agree on every
  process without gathering. ``train_loss`` and ``train_acc`` are summed over processes
  before they are recorded;
- the net's own mixed precision (``amp_dtype``, its ``GradScaler``) steps aside: that is
  Accelerate's (``Accelerator(mixed_precision="bf16")``).

Nothing here imports ``accelerate`` at module level: the package is an optional extra.
"""

from __future__ import annotations

import torch
from skorch.callbacks import PassthroughScoring
from skorch.hf import AccelerateMixin
from skorch.utils import to_tensor
from torch import nn

from ._training import WeightedNet
from .regressor import RegressionNet

#: how to install the optional dependency, for error messages
INSTALL_HINT = 'pip install "sktransfer[accelerate]" (or pip install "accelerate>=0.26")'


def make_accelerator(spec):
    """The ``Accelerator`` of ``accelerator=spec``: ``"auto"`` builds one from the launch
    environment (``accelerate launch``/``torchrun`` variables; one process otherwise)."""
    if spec is None:
        return None
    if spec == "auto":
        try:
            from accelerate import Accelerator
        except ImportError:
            raise ImportError(
                f"accelerator='auto' needs Hugging Face Accelerate: {INSTALL_HINT}"
            ) from None
        return Accelerator()
    return spec


def check_accelerate_installed() -> None:
    """A clear ImportError naming the extra when ``accelerate`` is missing."""
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise ImportError(f"accelerator= needs Hugging Face Accelerate: {INSTALL_HINT}") from None


def broadcast_seed(accelerator, seed: int) -> int:
    """Process 0's ``seed`` on every process: the same initialisation, split and shuffles."""
    if accelerator.num_processes == 1:
        return seed
    from accelerate.utils import broadcast_object_list

    box = [int(seed)]
    broadcast_object_list(box, from_process=0)
    return int(box[0])


class _TrainForward(nn.Module):
    """The network as Accelerate prepares it: ``forward`` is the whole network, or only
    its head on cached embeddings (``head_only``), so both go through DDP's forward."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x, head_only: bool = False, **kwargs):
        if head_only:
            return self.network.forward_head(x, **kwargs)
        return self.network(x, **kwargs)


class _GlobalPassthroughScoring(PassthroughScoring):
    """``train_loss`` over every process's batches (skorch averages one process's)."""

    def get_avg_score(self, history):
        key = "train_batch_size" if self.on_train else "valid_batch_size"
        rows = history[-1, "batches", :, [key, self.name]]
        total = sum(float(n) * float(v) for n, v in rows)
        count = sum(float(n) for n, _ in rows)
        total, count = self.net_.sum_over_processes([total, count])
        return total / count if count else float("nan")

    def on_epoch_end(self, net, **kwargs):
        self.net_ = net
        try:
            super().on_epoch_end(net, **kwargs)
        finally:
            self.net_ = None


class AcceleratedMixin(AccelerateMixin):
    """skorch's ``AccelerateMixin`` fitted to :class:`WeightedNet` (see the module doc).

    Use it before the net class: ``class Net(AcceleratedMixin, WeightedNet)``.
    """

    def __init__(self, *args, accelerator, **kwargs):
        super().__init__(*args, accelerator=accelerator, **kwargs)
        self._train_forward = None
        self._trainable = None
        self._in_train_step = False

    # -- set-up ---------------------------------------------------------------------------
    @property
    def _default_callbacks(self):
        return [
            (name, _GlobalPassthroughScoring(name="train_loss", on_train=True)
             if name == "train_loss" else cb)
            for name, cb in super()._default_callbacks
        ]

    def _validate_params(self):
        # AccelerateMixin asks for device=None; this net keeps the accelerator's device so
        # batches, losses and cached features land where the network is
        super(AccelerateMixin, self)._validate_params()
        if self.device is not None and torch.device(self.device) != self.accelerator.device:
            raise ValueError(
                f"device={self.device!r} but this process's accelerator runs on "
                f"{self.accelerator.device}; leave device='auto'"
            )

    def initialize(self):
        if self.amp_dtype is not None:
            raise ValueError(
                "an accelerated net runs mixed precision through its accelerator "
                "(Accelerator(mixed_precision=...)); pass amp_dtype=None"
            )
        super().initialize()  # AccelerateMixin's: skorch's steps, then the accelerator
        return self._initialize_extras()

    def initialize_optimizer(self, *args, **kwargs):
        super().initialize_optimizer(*args, **kwargs)
        if self._wrapped_with_accelerator:  # a new optimizer mid-run (a new stage)
            self._prepare_optimizers()
        return self

    def _prepare_optimizers(self):
        from accelerate.optimizer import AcceleratedOptimizer

        for name in self._optimizers:
            opt = getattr(self, name + "_")
            if isinstance(opt, torch.optim.Optimizer) and not isinstance(
                    opt, AcceleratedOptimizer):
                setattr(self, name + "_", self.accelerator.prepare_optimizer(opt))

    def _initialize_accelerator(self):
        if self._wrapped_with_accelerator:
            return self
        self._prepare_optimizers()
        self._wrap_module()
        self._wrapped_with_accelerator = True
        return self

    def _trainable_now(self) -> tuple[bool, ...]:
        return tuple(p.requires_grad for p in self.module_.parameters())

    def _wrap_module(self):
        self._drop_wrapper()
        self._trainable = self._trainable_now()
        if any(self._trainable):
            wrapper = self.accelerator.prepare_model(_TrainForward(self.module_))
            # not a component of the net (skorch would register it): a view of module_
            object.__setattr__(self, "_train_forward", wrapper)

    def _drop_wrapper(self):
        wrapper = self._train_forward
        object.__setattr__(self, "_train_forward", None)
        if wrapper is not None:  # the accelerator keeps a list of what it prepared
            self.accelerator._models[:] = [m for m in self.accelerator._models
                                           if m is not wrapper]

    def _unwrap_accelerator(self):
        if not self._wrapped_with_accelerator:
            return
        from accelerate.optimizer import AcceleratedOptimizer

        self._drop_wrapper()
        for name in self._optimizers:
            opt = getattr(self, name + "_")
            if isinstance(opt, AcceleratedOptimizer):
                self.accelerator._optimizers[:] = [o for o in self.accelerator._optimizers
                                                   if o is not opt]
                setattr(self, name + "_", opt.optimizer)
        self._wrapped_with_accelerator = False

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self._initialize_accelerator()  # partial_fit after an unwrapped fit

    # -- training -------------------------------------------------------------------------
    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if training and self._trainable != self._trainable_now():
            self._wrap_module()  # layers were frozen or unfrozen: DDP must know
        return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)

    def train_step(self, batch, **fit_params):
        with self.accelerator.accumulate(self._train_forward or self.module_):
            return super(AccelerateMixin, self).train_step(batch, **fit_params)

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = self._mixed_batch(batch)
        self._in_train_step = True
        try:
            with self.accelerator.autocast():
                y_pred = self.infer(Xi, **fit_params)
                loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        finally:
            self._batch_mix = None
            self._in_train_step = False
        self.accelerator.backward(loss)
        return {"loss": loss, "y_pred": y_pred}

    def _call_module(self, x, **fit_params):
        wrapper = self._train_forward if self._in_train_step else None
        if wrapper is None:  # validation and predictions: the plain network
            return super()._call_module(x, **fit_params)
        x = to_tensor(x, device=self.device)
        if isinstance(x, dict):
            kwargs = self._merge_x_and_fit_params(x, fit_params)
            return wrapper(kwargs.pop("x"), head_only=self.head_only, **kwargs)
        return wrapper(x, head_only=self.head_only, **fit_params)

    # -- evaluation: not split, so nothing to gather ---------------------------------------
    def get_iterator(self, dataset, training=False):
        return super(AccelerateMixin, self).get_iterator(dataset, training=training)

    def evaluation_step(self, batch, training=False):
        return super(AccelerateMixin, self).evaluation_step(batch, training=training)

    def sum_over_processes(self, values: list[float]) -> list[float]:
        """``values`` summed element-wise over the processes (themselves on one)."""
        if self.accelerator.num_processes == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return self.accelerator.reduce(t, reduction="sum").tolist()

    # -- pickling: the accelerator belongs to the launch, not to the model -----------------
    def __getstate__(self):
        from accelerate.optimizer import AcceleratedOptimizer

        swapped = {"accelerator": None, "_train_forward": None, "_trainable": None}
        for name in self._optimizers:
            opt = getattr(self, name + "_", None)
            if isinstance(opt, AcceleratedOptimizer):
                swapped[name + "_"] = opt.optimizer
        saved = {k: self.__dict__.get(k) for k in swapped}
        self.__dict__.update(swapped)
        try:
            state = super().__getstate__()
        finally:
            self.__dict__.update(saved)
        state["_wrapped_with_accelerator"] = False
        return state


class AcceleratedWeightedNet(AcceleratedMixin, WeightedNet):
    """The classifier's training net, spread over processes by Accelerate."""


class AcceleratedRegressionNet(AcceleratedMixin, RegressionNet):
    """The regressor's training net, spread over processes by Accelerate."""


def accelerated_net_class(base: type) -> type:
    """The accelerated twin of the estimator's net class ``base``.

    A net class of the project's own has a module-level twin (picklable); another
    ``WeightedNet`` subclass gets one made on the spot.
    """
    known = {WeightedNet: AcceleratedWeightedNet, RegressionNet: AcceleratedRegressionNet}
    if base in known:
        return known[base]
    return type(f"Accelerated{base.__name__}", (AcceleratedMixin, base), {})
