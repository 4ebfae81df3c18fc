"""What every backbone is: a feature extractor that carries its own preprocessing.

A backbone maps a batch of inputs to a (n_samples, num_features) tensor of embeddings.
Like torchvision's weights, it brings the preprocessing its weights expect (image size,
normalisation, or the input standardisation of a tabular network), so a transferred
backbone sees its inputs the way it saw them when it was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

InputKind = Literal["tabular", "image"]


class Standardize(nn.Module):
    """Per-feature standardisation whose statistics travel with the backbone's weights.

    The statistics are buffers, not parameters: no freeze policy touches them, and an
    exported backbone carries the source data's scaling to the target data.

    Parameters
    ----------
    num_features : int
        Number of input columns.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.backbones import Standardize
    >>> scale = Standardize(2).fit(torch.tensor([[0.0, 10.0], [2.0, 30.0]]))
    >>> scale(torch.tensor([[1.0, 20.0]]))
    tensor([[0., 0.]])
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("scale", torch.ones(num_features))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> Standardize:
        """Learn per-feature mean and standard deviation from ``x`` (n_samples, n_features).

        Constant features get a scale of 1, so they pass through centred but not blown up.
        """
        x = x.to(torch.float64)
        self.mean.copy_(x.mean(dim=0).to(self.mean.dtype))
        std = x.std(dim=0, unbiased=False)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        self.scale.copy_(std.to(self.scale.dtype))
        self.fitted.fill_(True)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class ImagePreprocess(nn.Module):
    """uint8 or [0, 1] float NCHW images -> resized, normalised float tensors.

    A non-square image and a square ``image_size`` meet as image files do: the
    shorter side is resized to the size and the centre is cropped.

    It runs inside the network, so uint8 images travel to the device as bytes (four
    times less to copy) and are converted there.

    Parameters
    ----------
    image_size : int, (height, width) or None
        Resolution the images are resized to (bilinear, antialiased when shrinking);
        ``None`` keeps their size.
    mean, std : tuple of float
        Per-channel normalisation, in the [0, 1] scale, as the weights expect it.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.backbones import ImagePreprocess
    >>> prep = ImagePreprocess(16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    >>> prep(torch.full((1, 3, 32, 32), 255, dtype=torch.uint8)).shape
    torch.Size([1, 3, 16, 16])
    """

    def __init__(
        self,
        image_size: int | tuple[int, int] | None,
        mean: tuple[float, ...] = (0.0, 0.0, 0.0),
        std: tuple[float, ...] = (1.0, 1.0, 1.0),
    ):
        super().__init__()
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = tuple(image_size) if image_size is not None else None
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        if self.image_size is not None and tuple(x.shape[-2:]) != self.image_size:
            x = self._resize(x)
        if x.shape[1] == 1 and self.mean.shape[1] == 3:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        if x.is_cuda:  # the estimator puts convolutional networks in channels-last on CUDA
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        """To ``image_size`` as an image file path is read (``ImagePathDataset``): a
        non-square image meets a square size with its shorter side, and its centre is
        cropped (no distortion); other sizes are stretched to. So arrays and paths of the
        same photos give the network the same pixels."""
        (h, w), (th, tw) = x.shape[-2:], self.image_size
        size = (th, tw)
        if th == tw and h != w:
            size = (th, int(th * w / h)) if h < w else (int(th * h / w), th)
        shrink = h > size[0] or w > size[1]
        x = nn.functional.interpolate(
            x, size=size, mode="bilinear", align_corners=False, antialias=shrink
        )
        if size != (th, tw):
            top, left = int(round((size[0] - th) / 2.0)), int(round((size[1] - tw) / 2.0))
            x = x[..., top:top + th, left:left + tw]
        return x

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}"


@dataclass
class BackboneInfo:
    """How a backbone was made, so it can be made again (export, checkpoints, repr).

    Parameters
    ----------
    name : str
        Registry name of the factory (``"mlp"``, ``"resnet18"``...).
    kwargs : dict
        Keyword arguments that rebuild the architecture through the registry.

    Examples
    --------
    >>> from sktransfer.backbones import BackboneInfo
    >>> BackboneInfo("mlp", {"hidden": (64,)})
    BackboneInfo(name='mlp', kwargs={'hidden': (64,)})
    """

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


class Backbone(nn.Module):
    """A feature extractor with its preprocessing: ``forward_features(x) -> (n, num_features)``.

    Parameters
    ----------
    body : torch.nn.Module
        The network proper; its output is flattened to (n_samples, num_features).
    num_features : int
        Size of the embedding the body produces.
    kind : {"tabular", "image"}
        What inputs it takes.
    input_shape : tuple of int
        Shape of one sample: ``(n_features,)`` or ``(C, H, W)``.
    preprocess : torch.nn.Module, optional
        Runs before the body: a :class:`Standardize` or an :class:`ImagePreprocess`.
    info : BackboneInfo, optional
        Registry name and keyword arguments that rebuild this architecture.
    layer_groups : sequence of sequence of str, optional
        The body's layers from input to output, each a list of submodule names of ``body``
        that train as one (a convolution and its BatchNorm, a residual block). Used by
        layer-wise learning-rate decay; see :meth:`layer_groups`.
    min_image_size : int, default=1
        Smallest side the network can run at (it downsamples by this factor); a smaller
        ``image_size`` is refused with a clear error before training.

    Examples
    --------
    A plugin factory returns one of these:

    >>> import torch
    >>> from sktransfer.backbones import Backbone, Standardize
    >>> body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
    >>> backbone = Backbone(body, num_features=8, kind="tabular", input_shape=(4,),
    ...                     preprocess=Standardize(4))
    >>> backbone.forward_features(torch.zeros(2, 4)).shape
    torch.Size([2, 8])
    """

    def __init__(
        self,
        body: nn.Module,
        num_features: int,
        kind: InputKind,
        input_shape: tuple[int, ...],
        preprocess: nn.Module | None = None,
        info: BackboneInfo | None = None,
        layer_groups: Sequence[Sequence[str]] | None = None,
        min_image_size: int = 1,
    ):
        super().__init__()
        if kind not in ("tabular", "image"):
            raise ValueError(f"kind must be 'tabular' or 'image', got {kind!r}")
        self.preprocess = preprocess if preprocess is not None else nn.Identity()
        self.body = body
        self.num_features = int(num_features)
        self.kind = kind
        self.input_shape = tuple(int(s) for s in input_shape)
        self.info = info
        self.layer_group_names = (
            None if layer_groups is None else tuple(tuple(g) for g in layer_groups)
        )
        self.min_image_size = int(min_image_size)

    def layer_groups(self) -> list[list[nn.Module]]:
        """The body's layers from input to output, each a list of modules that go together.

        Declared by the backbone's factory (``layer_groups=`` names), or by a body that has
        its own ``layer_groups()`` method; otherwise found by walking the body: children of
        ``nn.Sequential`` and ``nn.ModuleList`` containers are separate layers, any other
        module with parameters is one, and a normalisation layer joins the layer before it.
        Layer-wise learning-rate decay gives each group its own rate.

        Examples
        --------
        >>> from sktransfer.registry import create_backbone
        >>> backbone = create_backbone("mlp", input_shape=(4,), hidden=(8, 8))
        >>> [[type(m).__name__ for m in g] for g in backbone.layer_groups()]
        [['Linear'], ['Linear']]
        """
        if self.layer_group_names is not None:
            return [[self.body.get_submodule(name) for name in group]
                    for group in self.layer_group_names]
        own = getattr(self.body, "layer_groups", None)
        if callable(own):
            return [list(group) for group in own()]
        return [[self.body.get_submodule(n) for n in g] for g in sequential_layer_groups(self.body)]

    @property
    def image_size(self) -> tuple[int, int] | None:
        return getattr(self.preprocess, "image_size", None)

    def check_channels(self, channels: int, holder: str, from_files: bool = False) -> None:
        """Refuse images of ``channels`` channels that this network cannot take.

        It takes its own number; a grey image also goes to a network normalised for RGB
        (it is repeated three times). ``holder`` starts the message (``"X holds"``).
        """
        if self.kind != "image":
            return
        expected = int(self.input_shape[0])
        grey_to_rgb = (channels == 1 and expected == 3
                       and isinstance(self.preprocess, ImagePreprocess)
                       and self.preprocess.mean.shape[1] == 3)
        if channels != expected and not grey_to_rgb:
            read = " (image files are read as 3-channel RGB)" if from_files else ""
            if channels == 4 and expected == 3:
                hint = "drop the alpha channel (X[..., :3] for channels-last arrays)"
            elif expected == 1:
                hint = ("convert them to grey" + (", and pass them as arrays"
                                                  if from_files else ""))
            elif channels == 1:
                hint = f"repeat the grey channel {expected} times"
            else:
                hint = f"convert them to {expected} channels"
            raise ValueError(
                f"{holder} {channels}-channel images{read}, but the network takes "
                f"{expected}-channel images: {hint}"
            )

    def check_image_size(self) -> None:
        """Refuse an ``image_size`` smaller than the network can run at."""
        size = self.image_size
        least = getattr(self, "min_image_size", 1)  # Backbones pickled before it existed
        if size is not None and min(size) < least:
            name = self.info.name if self.info is not None else "this backbone"
            raise ValueError(
                f"image_size {size[0] if size[0] == size[1] else size} is too small for "
                f"{name}, which downsamples by {least}: use image_size >= {least}"
            )

    def prepare(self, x: torch.Tensor) -> None:
        """Fit data-dependent preprocessing (input standardisation) once, on training data."""
        if isinstance(self.preprocess, Standardize) and not bool(self.preprocess.fitted):
            self.preprocess.fit(x)

    def forward_body(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of already preprocessed inputs (what the network's augmentation feeds)."""
        return self.body(x).flatten(1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of raw inputs: preprocessing, then the body."""
        return self.forward_body(self.preprocess(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def infer_num_features(body: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Run one zero sample through ``body`` to learn its embedding size."""
    was_training = body.training
    body.eval()
    with torch.no_grad():
        out = body(torch.zeros((2, *input_shape)))
    body.train(was_training)
    return int(out.flatten(1).shape[1])


_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def sequential_layer_groups(body: nn.Module) -> list[list[str]]:
    """Names of ``body``'s layers from input to output, for :meth:`Backbone.layer_groups`.

    Containers (``nn.Sequential``, ``nn.ModuleList``, the body itself, and a module holding
    a stack of four or more alike blocks, such as a ViT encoder) are opened; any other
    module with parameters is one layer (a residual block stays whole); a normalisation
    layer joins the layer before it. Registration order is taken as forward
    order, which holds for sequential networks and torchvision's classification models.

    Examples
    --------
    >>> from torch import nn
    >>> from sktransfer.backbones._base import sequential_layer_groups
    >>> body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
    ...                      nn.Flatten(), nn.Linear(8, 4))
    >>> sequential_layer_groups(body)
    [['0', '1'], ['4']]
    """
    groups: list[list[str]] = []

    def walk(module: nn.Module, prefix: str, is_container: bool) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if not any(True for _ in child.parameters()):
                continue
            if isinstance(child, (nn.Sequential, nn.ModuleList)) or _holds_a_stack(child):
                walk(child, full + ".", True)
            elif isinstance(child, _NORM_TYPES) and groups:
                groups[-1].append(full)
            else:
                groups.append([full])

    walk(body, "", True)
    return groups


def _holds_a_stack(module: nn.Module) -> bool:
    """Whether a child container holds >= 4 parameterised blocks of one type (a ViT's
    encoder layers): those are layers of their own, not parts of one block."""
    for child in module.children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            blocks = [m for m in child.children() if any(True for _ in m.parameters())]
            if len(blocks) >= 4 and len({type(m) for m in blocks}) == 1:
                return True
    return False
