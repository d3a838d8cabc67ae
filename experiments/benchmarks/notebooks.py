"""The notebooks under notebooks/: run each one end to end as the test suite does, and time it.

    python experiments/benchmarks/notebooks.py             # run all six, one after another
    python experiments/benchmarks/notebooks.py flows_2d    # run some
    python experiments/benchmarks/notebooks.py --clear     # strip outputs before committing

Each notebook runs in a fresh kernel whose working folder is a scratch `notebooks/` folder next to
a link to the repository's `experiments/`, so `../experiments/...` resolves as when the notebook
is opened from the repository, and the runs it writes land in the scratch folder. Every figure
matplotlib draws is checked with `genflow.plots.figure_problems` (a title, and axis labels on
every framed axes). Offline: GENFLOW_OFFLINE=1 and W&B offline are set for the kernel.

The acceptance bar is under 2 minutes per notebook on 2 CPU cores; this script prints each one's
wall time and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
# in the order the README lists them
NAMES = (
    "quickstart",
    "transposed_convolutions",
    "latent_space",
    "flows_2d",
    "autoregressive",
    "evaluation",
)
BUDGET_S = 120.0

# Run first in the kernel: every drawn figure is checked (inline display draws each one).
CHECK_FIGURES = """\
import matplotlib.figure as _genflow_mf
from genflow.plots import figure_problems as _genflow_problems
_genflow_drawn, _genflow_found = set(), []
_genflow_draw = _genflow_mf.Figure.draw
def _genflow_checked_draw(self, *args, **kwargs):
    if id(self) not in _genflow_drawn:
        _genflow_drawn.add(id(self))
        _genflow_found.extend(_genflow_problems(self))
    return _genflow_draw(self, *args, **kwargs)
_genflow_mf.Figure.draw = _genflow_checked_draw
"""
# Run last: what the check saw, as one JSON line.
REPORT = """\
import json as _genflow_json
print(_genflow_json.dumps({"figures": len(_genflow_drawn), "problems": _genflow_found}))
"""


def notebook_path(name: str) -> Path:
    path = NOTEBOOKS / f"{name}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"No notebook {path}. The notebooks are: {', '.join(NAMES)}.")
    return path


def stored_outputs(path: Path) -> list[str]:
    """What a stored notebook should not hold: outputs, execution counts, widget state, images
    attached to markdown cells. Empty for a notebook fit to commit."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.get("outputs"):
            found.append(f"cell {i}: {len(cell.outputs)} output(s)")
        if cell.cell_type == "code" and cell.get("execution_count") is not None:
            found.append(f"cell {i}: execution count {cell.execution_count}")
        if cell.get("attachments"):
            found.append(f"cell {i}: attached files {sorted(cell.attachments)}")
    if "widgets" in nb.metadata:
        found.append("notebook metadata: widget state")
    return found


def clear_outputs(path: Path) -> bool:
    """Strip outputs and execution counts in place; return whether the file changed."""
    before = path.read_text()
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return path.read_text() != before


def _kernel_manager() -> KernelManager:
    """A kernel of this interpreter (ipykernel's own spec), not whatever `python3` a Jupyter
    data folder on the machine may name."""
    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


def run_notebook(path: Path, workdir: Path, threads: int = 1, cell_timeout: int = 600) -> dict:
    """Execute the notebook at `path` in a fresh kernel working in `workdir`/notebooks with
    `threads` torch threads; return its wall time and what the figure check found. A failing
    cell raises nbclient's CellExecutionError with the cell's traceback.

    One thread by default: the notebooks' models are small, and the test suite runs a notebook
    beside other tests, where more threads than free cores slow small ops down several-fold."""
    cwd = Path(workdir) / "notebooks"
    cwd.mkdir(parents=True, exist_ok=True)
    experiments = Path(workdir) / "experiments"
    if not experiments.exists():
        experiments.symlink_to(ROOT / "experiments", target_is_directory=True)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("GENFLOW_OFFLINE", "1")
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(CHECK_FIGURES))
    nb.cells.append(nbformat.v4.new_code_cell(REPORT))
    client = NotebookClient(
        nb, km=_kernel_manager(), timeout=cell_timeout, resources={"metadata": {"path": str(cwd)}}
    )
    start = time.perf_counter()
    client.execute(env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    seconds = time.perf_counter() - start
    last = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    return {"notebook": path.name, "seconds": seconds, **json.loads(last.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=list(NAMES), help="notebooks to run")
    parser.add_argument("--clear", action="store_true", help="strip outputs instead of running")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each kernel")
    args = parser.parse_args(argv)
    paths = [notebook_path(name.removesuffix(".ipynb")) for name in args.names]
    if args.clear:
        for path in paths:
            print(f"{'cleared' if clear_outputs(path) else 'clean  '} {path.relative_to(ROOT)}")
        return []
    from mnist10k import machine

    print(f"machine: {machine(args.threads)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="genflow-notebooks-") as workdir:
        for path in paths:
            result = run_notebook(path, Path(workdir), threads=args.threads)
            verdict = "ok" if result["seconds"] < BUDGET_S else f"OVER {BUDGET_S:.0f} s"
            print(
                f"{path.name:32s} {result['seconds']:6.1f} s  {verdict:8s} "
                f"{result['figures']} figures, {len(result['problems'])} figure problems"
            )
            for problem in result["problems"]:
                print(f"    {problem}")
            results.append(result)
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
