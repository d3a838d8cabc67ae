"""notebooks/: every notebook runs end to end in a fresh kernel, offline, with every figure titled
and labelled; they are stored without outputs, hold no model code, and the README links each."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))

import notebooks as runner  # noqa: E402


def _code(path: Path) -> list[str]:
    cells = nbformat.read(path, as_version=4).cells
    return [cell.source for cell in cells if cell.cell_type == "code"]


def test_the_notebooks_folder_holds_the_listed_notebooks_and_no_images():
    stored = sorted(p.stem for p in runner.NOTEBOOKS.glob("*.ipynb"))
    assert stored == sorted(runner.NAMES)
    # what running them from notebooks/ writes (git ignores it) is not stored
    written = {"runs", "wandb", "lightning_logs", ".ipynb_checkpoints"}
    stored = [p for p in runner.NOTEBOOKS.rglob("*") if not written & set(p.parts)]
    images = [p.name for p in stored if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".svg"}]
    assert images == [], "figures come from cells, not from committed images"


def test_the_readme_links_each_notebook_with_a_line_on_what_it_shows():
    readme = (ROOT / "README.md").read_text()
    for name in runner.NAMES:
        lines = [line for line in readme.splitlines() if f"](notebooks/{name}.ipynb)" in line]
        assert len(lines) == 1, f"README should link notebooks/{name}.ipynb once"
        description = re.sub(r"\[.*?\]\(.*?\)", "", lines[0]).strip(" -*:—")
        assert len(description.split()) >= 5, f"say what {name} shows: {lines[0]!r}"


@pytest.mark.parametrize("name", runner.NAMES)
def test_notebook_is_stored_without_outputs(name):
    path = runner.notebook_path(name)
    assert runner.stored_outputs(path) == [], (
        f"{path.name} holds outputs; run `make clear-notebooks` before committing"
    )


def test_stored_outputs_are_found_and_cleared(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("1 + 1")]
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"})]
    nb.cells[1].execution_count = 1
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    assert runner.stored_outputs(path) == ["cell 1: 1 output(s)", "cell 1: execution count 1"]
    assert runner.clear_outputs(path) and runner.stored_outputs(path) == []
    assert not runner.clear_outputs(path)  # already clean: the file is left as it is
    assert nbformat.read(path, as_version=4).cells[1].source == "1 + 1"


@pytest.mark.parametrize("name", runner.NAMES)
def test_notebook_defines_no_model_code(name):
    """Notebooks teach genflow's API: networks and models come from genflow, not from cells."""
    for source in _code(runner.notebook_path(name)):
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        tree = ast.parse("\n".join(lines))
        classes = [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
        assert classes == [], f"{name} defines {classes}; put model code in genflow/"


def test_the_runner_reports_an_unlabelled_figure(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import matplotlib.pyplot as plt\n"
            "fig, ax = plt.subplots()\nax.plot([0, 1])\nax.set_title('a line')\nplt.show()"
        ),
        # configs resolve as from the repository's notebooks/ folder
        nbformat.v4.new_code_cell("import os\nassert os.path.isdir('../experiments/vae')"),
    ]
    path = tmp_path / "unlabelled.ipynb"
    nbformat.write(nb, path)
    result = runner.run_notebook(path, tmp_path / "work")
    assert result["figures"] == 1
    assert result["problems"] == [
        "figure 'a line', axes 0: no x-axis label",
        "figure 'a line', axes 0: no y-axis label",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", runner.NAMES)
def test_notebook_runs_end_to_end_with_titled_and_labelled_figures(name, tmp_path):
    result = runner.run_notebook(runner.notebook_path(name), tmp_path)
    assert result["figures"] >= 1, f"{name} draws no figure"
    assert result["problems"] == [], f"{name}: figures without titles or labels"
