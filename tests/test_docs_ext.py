"""The documentation's Markdown converter (docs/sphinxext), which needs no Sphinx."""

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "docs" / "sphinxext" / "sktransfer_sphinxext.py"


@pytest.fixture(scope="module")
def ext():
    if not _PATH.is_file():
        pytest.skip(f"{_PATH} is not in this checkout")
    spec = importlib.util.spec_from_file_location("sktransfer_sphinxext", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pipe_tables_become_list_tables(ext):
    markdown = (
        "# Title\n\n## Section\n\ntext\n\n"
        "| case | before | after |\n| --- | --- | --- |\n"
        "| `a|b` in code | raised | `fixed` |\n| short row |\n\nafter\n"
    )
    rst = ext.markdown_to_rst(markdown)
    assert ".. list-table::\n   :header-rows: 1\n\n   * - case\n     - before\n     - after" in rst
    assert "   * - ``a|b`` in code\n     - raised\n     - ``fixed``" in rst
    assert "   * - short row\n     -\n     -" in rst  # padded to the header's width
    assert "---" not in rst and rst.rstrip().endswith("after")


def test_table_cells_read_escaped_pipes_and_code_spans(ext):
    assert ext._table_cells(r"| a \| b | c |") == ["a | b", "c"]
    assert ext._table_cells("| ``x|y`` | `p|q` | z |") == ["``x|y``", "`p|q`", "z"]
