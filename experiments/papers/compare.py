"""Write the "ours vs paper" table: each reference number of reference.csv next to the genflow runs
of the same model and data.

    .venv/bin/python experiments/papers/compare.py [--runs runs] \
        [--reference experiments/papers/reference.csv] [--out FILE.md]

A run folder runs/<name>/<version>/ holds config.yaml (written by LightningCLI), optionally
metrics.json (genflow's MetricsFile callback: {"test/bpd": ..., "val/bpd": ...}) and optionally
evaluation.json, evaluation-1.json, ... (written by `genflow evaluate`; the highest number is the
newest). A run's figure for a metric comes from the newest evaluation file that has it, else from
metrics.json's test/<metric>, else val/<metric> (the table says which).

A figure is put next to a paper's only when it measures the same thing: the run's data and model
settings that a paper config fixes (binarization, architecture, ...) agree with that config, and
FID/IS were computed with Inception features on the paper protocol's number of samples. Otherwise
the table says why the figure is left out. The script needs only the standard library and PyYAML,
so it runs in well under a second.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "experiments" / "papers" / "reference.csv"
COLUMNS = ("key", "model", "data", "metric", "value", "unit", "split", "paper", "table")
COLUMNS += ("config", "note")
LOWER_IS_BETTER = {"bpd": True, "nll": True, "fid": True, "is": False}
SAMPLE_METRICS = ("fid", "is")
# Papers compute Inception scores with Inception-v3 on 50,000 samples (Salimans et al. 2016,
# arXiv:1606.03498, section 4) and FIDs mostly on 50,000 too (Heusel et al. 2017,
# arXiv:1706.08500, whose code asks for at least 10,000). Both scores are biased in the sample
# count, so only the same count gives comparable figures.
PAPER_FEATURES = "inception"
PAPER_NUM_SAMPLES = 50_000
# init_args that change what a figure measures; compared wherever the paper config sets them.
SETTING_KEYS = {
    "model": ("architecture", "conditional", "likelihood", "layer"),
    "data": ("binarize",),
}
EVALUATION_FILE = re.compile(r"evaluation(?:-(\d+))?\.json")


# ---- reference numbers ----------------------------------------------------------------------
def read_reference(path: Path) -> list[dict[str, str]]:
    """The rows of reference.csv; raises ValueError naming every malformed row."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    problems = reference_problems(rows)
    if problems:
        raise ValueError(f"{path} has problems; fix these rows:\n  " + "\n  ".join(problems))
    return rows


def reference_problems(rows: list[dict[str, str]]) -> list[str]:
    """Every way the rows break the reference.csv contract (empty when they are fine)."""
    problems, seen = [], set()
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"line {i} ({row.get('key') or 'no key'})"
        problems += [f"{where}: {p}" for p in _row_problems(row)]
        if row.get("key") in seen:
            problems.append(f"{where}: key is used twice; keys must be unique")
        seen.add(row.get("key"))
    return problems


def _row_problems(row: dict[str, str]) -> list[str]:
    missing = [c for c in COLUMNS if c not in row]
    if missing or None in row:
        return [f"columns must be exactly {','.join(COLUMNS)} (missing {missing})"]
    problems = [f"{c} is empty" for c in ("key", "model", "data", "paper", "table") if not row[c]]
    if row["metric"] not in LOWER_IS_BETTER:
        problems.append(f"metric {row['metric']!r} is not one of {sorted(LOWER_IS_BETTER)}")
    if not _is_number(row["value"]):
        problems.append(f"value {row['value']!r} is not a number")
    if row["config"] and not (ROOT / row["config"]).is_file():
        problems.append(f"config {row['config']} does not exist under {ROOT}")
    return problems


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def genflow_models() -> set[str]:
    """Class names genflow.models exports, read from its __all__ without importing torch."""
    source = (ROOT / "genflow" / "models" / "__init__.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    raise ValueError("genflow/models/__init__.py has no __all__ list of its classes.")


# ---- runs -----------------------------------------------------------------------------------
@dataclass
class Run:
    """One run folder: its config and every figure written into it."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, float]
    evaluations: list[tuple[str, dict[str, Any]]]  # (file name, content), newest first

    @property
    def model(self) -> str:
        return _class_name(self.config.get("model"), self.evaluations, "model")

    @property
    def data(self) -> str:
        return _class_name(self.config.get("data"), self.evaluations, "data")


def _class_name(node: Any, evaluations: list, field: str) -> str:
    """Last component of a class_path, from the config or else the newest evaluation file."""
    path = node.get("class_path", "") if isinstance(node, dict) else ""
    if not path and evaluations:
        path = evaluations[0][1].get(field, "")
    return str(path).rsplit(".", 1)[-1]


def find_runs(root: Path) -> list[Run]:
    """Every runs/<name>/<version>/ folder holding a config, metrics.json or evaluation file."""
    runs = [_read_run(p) for p in sorted(root.glob("*/*")) if p.is_dir()]
    return [r for r in runs if r.config or r.metrics or r.evaluations]


def _read_run(path: Path) -> Run:
    configs = [path / "config.yaml", *sorted(path.glob("config-*.yaml"))]
    config = next((yaml.safe_load(c.read_text()) for c in configs if c.is_file()), None)
    metrics_file = path / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    found = [(p, EVALUATION_FILE.fullmatch(p.name)) for p in path.glob("evaluation*.json")]
    numbered = sorted(((int(m[1] or 0), p) for p, m in found if m), reverse=True)
    evaluations = [(p.name, json.loads(p.read_text())) for _, p in numbered]
    return Run(path, config or {}, metrics, evaluations)


@dataclass
class Figure:
    """A run's value of one metric and where it came from."""

    value: float
    source: str  # the file it was read from
    split: str
    epoch: int | None = None
    features: str | None = None
    num_samples: int | None = None


def run_figure(run: Run, metric: str) -> Figure | None:
    """The run's `metric`: newest evaluation file that has it, else metrics.json test, then val."""
    for name, evaluation in run.evaluations:
        if metric in evaluation.get("metrics", {}):
            return Figure(
                float(evaluation["metrics"][metric]),
                name,
                evaluation.get("split", "?"),
                evaluation.get("epoch"),
                evaluation.get("features"),
                evaluation.get("num_samples"),
            )
    for split in ("test", "val"):
        if f"{split}/{metric}" in run.metrics:
            return Figure(float(run.metrics[f"{split}/{metric}"]), "metrics.json", split)
    return None


# ---- comparability --------------------------------------------------------------------------
def setting_mismatches(run: Run, paper_config: dict[str, Any]) -> list[str]:
    """The SETTING_KEYS where the run differs from the paper config (keys the config sets)."""
    mismatches = []
    for section, keys in SETTING_KEYS.items():
        ours = (run.config.get(section) or {}).get("init_args") or {}
        theirs = (paper_config.get(section) or {}).get("init_args") or {}
        for key in keys:
            if key in theirs and ours.get(key) != theirs[key]:
                mismatches.append(
                    f"{section}.{key} is {ours.get(key)!r}, the paper config has {theirs[key]!r}"
                )
    return mismatches


def figure_problems(figure: Figure, metric: str) -> list[str]:
    """Why a sample-quality figure cannot stand next to a paper's (empty when it can)."""
    if metric not in SAMPLE_METRICS:
        return []
    if figure.features is None:
        return [
            f"{metric.upper()} from {figure.source} has no record of its features; the paper "
            f"uses Inception features: run genflow evaluate with Inception features"
        ]
    problems = []
    if figure.features != PAPER_FEATURES:
        problems.append(
            f"{metric.upper()} computed with {figure.features} features cannot be compared with "
            f"an Inception {metric.upper()}: re-run genflow evaluate with Inception features"
        )
    if figure.num_samples != PAPER_NUM_SAMPLES:
        problems.append(
            f"{metric.upper()} on {figure.num_samples} samples; the paper protocol uses "
            f"{PAPER_NUM_SAMPLES} and the score depends on the count"
        )
    return problems


# ---- table ----------------------------------------------------------------------------------
HEADER = "| model | data | metric | paper | source | ours | run | difference | note |"


def compare(reference: list[dict[str, str]], runs: list[Run]) -> str:
    """The markdown report: one or more table rows per reference row."""
    known = genflow_models()
    lines = [HEADER, "|" + "---|" * 9]
    for ref in reference:
        lines += [_markdown_row(ref, cells) for cells in _rows_for(ref, runs, known)]
    return "\n".join([*_preamble(), *lines, ""])


def _preamble() -> list[str]:
    return [
        "# genflow vs paper",
        "",
        "difference = ours - paper; lower is better for bpd, nll and fid, higher for is. "
        f"FID and IS are only compared when computed with Inception features on "
        f"{PAPER_NUM_SAMPLES} samples. Each figure names the run folder and the file it was "
        "read from.",
        "",
    ]


def _rows_for(ref: dict[str, str], runs: list[Run], known: set[str]) -> list[dict[str, str]]:
    if ref["model"] not in known:
        return [{"ours": "no genflow model yet", "note": ref["note"]}]
    matching = [r for r in runs if (r.model, r.data) == (ref["model"], ref["data"])]
    figures = [(run, run_figure(run, ref["metric"])) for run in matching]
    figures = [(run, fig) for run, fig in figures if fig is not None]
    if not figures:
        return [_not_run(ref, matching)]
    paper_config = _load_config(ref["config"])
    return [_run_cells(ref, run, fig, paper_config) for run, fig in figures]


def _not_run(ref: dict[str, str], matching: list[Run]) -> dict[str, str]:
    if not ref["config"]:
        todo = "no genflow config at the paper's setting"
    elif ref["metric"] in SAMPLE_METRICS:
        todo = (
            f"run: genflow fit --config {ref['config']}, then genflow evaluate with Inception "
            f"features on {PAPER_NUM_SAMPLES} samples"
        )
    else:
        todo = (
            f"run: genflow fit --config {ref['config']}, then genflow test --config "
            f"<run>/config.yaml --ckpt_path <run>/checkpoints/last.ckpt"
        )
    if matching:
        names = ", ".join(str(r.path) for r in matching)
        todo = f"{names} has no {ref['metric']} figure; {todo}"
    return {"ours": "not run", "note": _join(ref["note"], todo)}


def _run_cells(
    ref: dict[str, str], run: Run, fig: Figure, paper_config: dict[str, Any] | None
) -> dict[str, str]:
    epoch = f", epoch {fig.epoch}" if fig.epoch is not None else ""
    cells = {"run": f"{run.path} ({fig.source}, {fig.split}{epoch})"}
    if paper_config is None:
        problems = ["no genflow config at the paper's setting, so this run is not compared"]
    else:
        problems = setting_mismatches(run, paper_config) + figure_problems(fig, ref["metric"])
    if problems:
        return cells | {"ours": "not comparable", "note": _join(*problems)}
    split_note = f"{fig.split} split (paper: {ref['split']})" if fig.split != ref["split"] else ""
    if ref["metric"] in SAMPLE_METRICS:
        split_note = ""  # sample scores have no data split to match
    return cells | {
        "ours": f"{fig.value:.2f}",
        "difference": _difference(fig.value, float(ref["value"]), ref["metric"]),
        "note": _join(ref["note"], split_note),
    }


def _difference(ours: float, paper: float, metric: str) -> str:
    diff = ours - paper
    if abs(diff) < 0.005:
        return "0.00 (same)"
    better = (diff < 0) == LOWER_IS_BETTER[metric]
    return f"{diff:+.2f} ({'better' if better else 'worse'})"


def _load_config(path: str) -> dict[str, Any] | None:
    return yaml.safe_load((ROOT / path).read_text()) if path else None


def _markdown_row(ref: dict[str, str], cells: dict[str, str]) -> str:
    row = [
        ref["model"],
        ref["data"],
        ref["metric"],
        f"{ref['value']} {ref['unit']}",
        f"{ref['paper']}, {ref['table']}",
        cells.get("ours", ""),
        cells.get("run", ""),
        cells.get("difference", ""),
        cells.get("note", ""),
    ]
    return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


# ---- command --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder of run folders")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="reference numbers")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    if args.out is not None and args.out.exists():
        parser.error(f"{args.out} already exists; nothing was written. Choose another --out.")
    if not args.runs.is_dir():
        print(f"No runs folder {args.runs}: every row says not run.", file=sys.stderr)
    runs = find_runs(args.runs) if args.runs.is_dir() else []
    report = compare(read_reference(args.reference), runs)
    sys.stdout.write(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "x") as f:  # "x" refuses a file created since the check
            f.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
