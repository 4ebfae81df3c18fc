"""A user's own ``torch.nn.Module`` used as a backbone."""

from __future__ import annotations

import copy

from torch import nn

from ._base import Backbone, BackboneInfo, ImagePreprocess, Standardize, infer_num_features


def from_module(module: nn.Module, input_shape: tuple[int, ...]) -> Backbone:
    """Wrap a feature-extracting module (a copy of it: the original is never touched).

    The module maps a batch of ``input_shape`` samples to embeddings (any shape, flattened).
    Tabular inputs are standardised first; images are scaled to [0, 1] and not normalised,
    since nothing is known of the statistics the module expects.
    """
    if isinstance(module, Backbone):
        return copy.deepcopy(module)
    body = copy.deepcopy(module).cpu()
    if len(input_shape) == 1:
        kind, preprocess = "tabular", Standardize(input_shape[0])
    elif len(input_shape) == 3:
        # one mean and deviation for any number of channels: the module gets the channels
        # the images have (grey stays one channel, RGBA four)
        kind, preprocess = "image", ImagePreprocess(None, mean=(0.0,), std=(1.0,))
    else:
        raise ValueError(f"cannot tell tabular from image data with input_shape={input_shape}")
    try:
        num_features = infer_num_features(body, tuple(input_shape))
    except Exception as exc:
        raise ValueError(
            f"the backbone module {type(module).__name__} failed on inputs of shape "
            f"{tuple(input_shape)}: {exc}"
        ) from exc
    return Backbone(body, num_features, kind, input_shape, preprocess,
                    info=BackboneInfo("<module>", {}))
