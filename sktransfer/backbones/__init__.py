"""Backbone families. Each registers through the ``sktransfer.backbones`` entry points."""

from ._base import Backbone, BackboneInfo, ImagePreprocess, Standardize
from .exported import ExportedBackbone

__all__ = ["Backbone", "BackboneInfo", "ExportedBackbone", "ImagePreprocess", "Standardize"]
