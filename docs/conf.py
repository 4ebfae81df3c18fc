"""Sphinx configuration of the sktransfer documentation.

Build it with ``make docs`` (warnings are errors). The build needs no network: there is no
intersphinx inventory to fetch, and the gallery examples run offline on small settings
(``SKTRANSFER_EXAMPLE_FAST=1``, set below unless you set it yourself; set it to ``0`` to
run them with their full settings). Examples whose data set is absent from the data home
(``$SKTRANSFER_DATA`` or ``~/sktransfer_data``) are shown without being run.
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "sphinxext"))

# Before sktransfer or the examples are imported: small settings for the gallery, no GUI.
os.environ.setdefault("SKTRANSFER_EXAMPLE_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# The gallery trains many tiny networks in this process: one torch thread each is faster
# than several fighting for the cores (on a busy 2-core machine, by more than 10x).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from sktransfer_sphinxext import (
    MARKDOWN_PAGES,
    constant_docstring,
    executable_examples_pattern,
    markdown_to_rst,
    missing_example_data,
    skip_metadata_request_methods,
)
from sphinx.util import logging

import sktransfer

logger = logging.getLogger(__name__)

# -- Project ---------------------------------------------------------------------------------
project = "sktransfer"
author = "sktransfer developers"
copyright = "sktransfer developers, BSD-3-Clause licence"
release = sktransfer.__version__
version = ".".join(release.split(".")[:2])

# -- General ---------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
# No sphinx.ext.intersphinx: the build must not download inventories.

templates_path = ["_templates"]
exclude_patterns = ["_build", "sphinxext", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "literal"
pygments_style = "sphinx"
suppress_warnings = []

# autodoc / autosummary / numpydoc
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # types are in the numpydoc "Parameters" sections
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- Gallery ---------------------------------------------------------------------------------
_examples = DOCS.parent / "examples"
_missing = missing_example_data()
for _name, _reason in sorted(_missing.items()):
    logger.info(f"[sktransfer] {_name} is shown without being run: {_reason}")

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Run every plot_*.py whose data is here; the others are rendered without output.
    "filename_pattern": executable_examples_pattern(_examples, set(_missing)),
    "ignore_pattern": r"__init__\.py",
    "subsection_order": [
        "../examples/seed_experiments",
        "../examples/sklearn_integration",
        "../examples/extending",
    ],
    "within_subsection_order": "FileNameSortKey",
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("sktransfer",),
    # sktransfer.report's figures are made without pyplot: a scraper of ours saves them
    # (it must come before sphinx-gallery's matplotlib scraper, see its docstring).
    "image_scrapers": ("sktransfer_sphinxext.figure_scraper", "matplotlib"),
    "remove_config_comments": True,
    "download_all_examples": True,
    "show_memory": False,
    "min_reported_time": 1,
    "plot_gallery": "True",
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
}

# -- HTML ------------------------------------------------------------------------------------
try:
    import pydata_sphinx_theme  # noqa: F401

    html_theme = "pydata_sphinx_theme"
    html_theme_options = {
        "navbar_align": "left",
        "show_toc_level": 2,
        "navigation_with_keys": False,
        "footer_start": ["copyright"],
        "footer_end": ["sphinx-version"],
        "secondary_sidebar_items": ["page-toc", "sourcelink"],
    }
    html_sidebars = {"index": [], "install": [], "changelog": []}
except ImportError:  # the docs extra was not installed: plain Sphinx theme
    html_theme = "alabaster"
    html_theme_options = {}
html_title = f"sktransfer {release}"
html_static_path = []
html_show_sourcelink = True


# -- Generated pages -------------------------------------------------------------------------
def _write_markdown_pages(app):
    """CHANGELOG.md and CONTRIBUTING.md (Markdown, at the repository root) -> reST includes
    in gen_modules/, so they are written once and shown without a Markdown parser."""
    for source_name, target_name in MARKDOWN_PAGES.items():
        source = DOCS.parent / source_name
        target = DOCS / "gen_modules" / target_name
        target.parent.mkdir(parents=True, exist_ok=True)
        text = markdown_to_rst(source.read_text(encoding="utf-8"))
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")


def setup(app):
    app.connect("builder-inited", _write_markdown_pages)
    app.connect("autodoc-skip-member", skip_metadata_request_methods)
    app.connect("autodoc-process-docstring", constant_docstring)
