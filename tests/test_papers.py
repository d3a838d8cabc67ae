"""experiments/papers: the reference numbers are well formed and sourced, and compare.py puts a
run's figure next to the paper's only when both measure the same thing."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PAPERS = ROOT / "experiments" / "papers"
_spec = importlib.util.spec_from_file_location("papers_compare", PAPERS / "compare.py")
compare = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = compare  # dataclasses look their module up while it loads
_spec.loader.exec_module(compare)


# ---- run folders in the formats genflow writes ----------------------------------------------
def write_run(
    root: Path,
    name: str,
    paper_config: str,
    *,
    model: dict | None = None,
    data: dict | None = None,
    metrics: dict | None = None,
    evaluations: dict[str, dict] | None = None,
    version: str = "version_0",
) -> Path:
    """runs/<name>/<version>/ with config.yaml laid out as LightningCLI saves it (a paper config's
    model and data with extra init_args merged in), metrics.json and evaluation files."""
    base = yaml.safe_load((PAPERS / paper_config).read_text())
    for section, extra in (("model", model), ("data", data)):
        base[section]["init_args"] |= extra or {}
    run = root / name / version
    run.mkdir(parents=True)
    config = {
        "seed_everything": 0,
        "trainer": {"max_epochs": 1, "default_root_dir": str(run), "logger": False},
        "model": base["model"],
        "data": base["data"],
        "run": {"root": str(root), "name": None, "version": None, "wandb": "offline"},
        "optimizer": None,
        "ckpt_path": None,
    }
    (run / "config.yaml").write_text("# pytorch_lightning==2.6.6\n" + yaml.safe_dump(config))
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for filename, content in (evaluations or {}).items():
        (run / filename).write_text(json.dumps(content, indent=2) + "\n")
    return run


def evaluation(model: str, data: str, metrics: dict, **fields) -> dict:
    """The JSON `genflow evaluate` writes."""
    return {
        "checkpoint": "/abs/runs/x/version_0/checkpoints/last.ckpt",
        "model": model,
        "data": data,
        "split": "test",
        "epoch": 12,
        "global_step": 3000,
        "features": "inception",
        "num_samples": 10000,
        "metrics": metrics,
        "seconds": 120.3,
    } | fields


def table_rows(report: str, model: str, metric: str) -> list[str]:
    """The markdown rows of the report for one model and metric."""
    return [
        r for r in report.splitlines() if r.startswith(f"| {model} |") and f"| {metric} |" in r
    ]


def write_reference(path: Path, **row: str) -> Path:
    """A one-row reference.csv for a test (its value is made up, not from a paper)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, compare.COLUMNS)
        writer.writeheader()
        defaults = {"unit": "score", "split": "test", "paper": "test row", "table": "Table 0"}
        writer.writerow({c: "" for c in compare.COLUMNS} | defaults | row)
    return path


def report_for(runs: Path, reference: Path = compare.REFERENCE) -> str:
    return compare.compare(compare.read_reference(reference), compare.find_runs(runs))


# ---- reference.csv --------------------------------------------------------------------------
def test_reference_rows_are_complete_sourced_and_unique():
    with open(PAPERS / "reference.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == compare.COLUMNS
    assert len(rows) >= 8
    for row in rows:
        assert None not in row and all(row[c] is not None for c in compare.COLUMNS), row["key"]
        assert float(row["value"]) > 0, row["key"]
        assert row["metric"] in {"bpd", "nll", "fid", "is"}, row["key"]
        assert row["paper"] and row["table"].startswith("Table "), row["key"]
        assert row["unit"] == {"bpd": "bits/dim", "nll": "nats"}.get(row["metric"], "score")
        if row["config"]:
            config = yaml.safe_load((ROOT / row["config"]).read_text())
            assert config["model"]["class_path"].rsplit(".", 1)[-1] == row["model"], row["key"]
            assert config["data"]["class_path"].rsplit(".", 1)[-1] == row["data"], row["key"]
    assert len({r["key"] for r in rows}) == len(rows)
    assert compare.reference_problems(rows) == []
    assert {r["key"]: float(r["value"]) for r in rows}["realnvp_cifar10_bpd"] == 3.49


def test_reference_checker_names_each_broken_row(tmp_path):
    good = {c: "x" for c in compare.COLUMNS} | {"metric": "bpd", "value": "3.1", "config": ""}
    rows = [
        good | {"key": "a"},
        good | {"key": "a"},
        good | {"key": "b", "metric": "accuracy"},
        good | {"key": "c", "value": "n/a"},
        good | {"key": "d", "table": ""},
        good | {"key": "e", "config": "experiments/papers/missing.yaml"},
    ]
    problems = "\n".join(compare.reference_problems(rows))
    assert "line 3 (a): key is used twice" in problems
    assert "line 4 (b): metric 'accuracy'" in problems
    assert "line 5 (c): value 'n/a' is not a number" in problems
    assert "line 6 (d): table is empty" in problems
    assert "line 7 (e): config experiments/papers/missing.yaml does not exist" in problems
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, compare.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ValueError, match="bad.csv has problems"):
        compare.read_reference(path)


# ---- compare --------------------------------------------------------------------------------
def test_test_figure_stands_next_to_the_paper_with_the_difference(tmp_path):
    run = write_run(
        tmp_path,
        "realnvp-cifar10",
        "realnvp_cifar10.yaml",
        metrics={"test/bpd": 3.6, "val/bpd": 3.5},
    )
    [row] = table_rows(report_for(tmp_path), "RealNVP", "bpd")
    assert "| 3.49 bits/dim |" in row and "Dinh, Sohl-Dickstein & Bengio 2017" in row
    assert "Table 1" in row
    assert f"| 3.60 | {run} (metrics.json, test) | +0.11 (worse) |" in row


def test_newest_evaluation_file_wins_over_metrics_json(tmp_path):
    model, data = "genflow.models.flows.RealNVP", "genflow.data.CIFAR10"
    write_run(
        tmp_path,
        "realnvp-cifar10",
        "realnvp_cifar10.yaml",
        metrics={"test/bpd": 3.6},
        evaluations={
            "evaluation.json": evaluation(model, data, {"bpd": 3.55}, epoch=5),
            "evaluation-2.json": evaluation(model, data, {"bpd": 3.52}, epoch=8),
            "evaluation-10.json": evaluation(model, data, {"bpd": 3.47}, epoch=30),
        },
    )
    [row] = table_rows(report_for(tmp_path), "RealNVP", "bpd")
    assert "| 3.47 |" in row and "(evaluation-10.json, test, epoch 30)" in row  # 10 after 2
    assert "| -0.02 (better) |" in row
    assert "3.60" not in row and "3.52" not in row


def test_validation_figure_says_it_is_not_the_test_split(tmp_path):
    write_run(tmp_path, "pixelcnn-cifar10", "pixelcnn_cifar10.yaml", metrics={"val/bpd": 3.2})
    [row] = table_rows(report_for(tmp_path), "PixelCNN", "bpd")
    assert "| 3.20 |" in row and "(metrics.json, val)" in row and "+0.06 (worse)" in row
    assert "val split (paper: test)" in row


def test_rows_without_runs_say_not_run_and_the_config_to_run(tmp_path):
    report = report_for(tmp_path / "no-runs-yet")
    [realnvp] = table_rows(report, "RealNVP", "bpd")
    assert "| not run |" in realnvp
    assert "genflow fit --config experiments/papers/realnvp_cifar10.yaml" in realnvp
    [gan] = table_rows(report, "GAN", "is")
    assert "then genflow evaluate with Inception features on 50000 samples" in gan
    [iwae] = table_rows(report, "IWAE", "nll")
    assert "| no genflow model yet |" in iwae
    row_lstm, diagonal = table_rows(report, "PixelRNN", "bpd")  # two rows, a config each
    assert "genflow fit --config experiments/papers/pixelrnn_rowlstm_cifar10.yaml" in row_lstm
    assert "genflow fit --config experiments/papers/pixelrnn_cifar10.yaml" in diagonal
    rows = [r for r in report.splitlines() if r.startswith("| ") and "| metric |" not in r]
    assert len(rows) == len(compare.read_reference(compare.REFERENCE))


def test_inception_score_only_next_to_the_paper_with_inception_on_50000_samples(tmp_path):
    gan, data = "genflow.models.gan.GAN", "genflow.data.CIFAR10"
    same = evaluation(gan, data, {"is": 6.3, "is_std": 0.1}, num_samples=50000)
    lenet = evaluation(gan, data, {"is": 7.9}, features="lenet", num_samples=50000)
    fewer = evaluation(gan, data, {"is": 6.8}, num_samples=10000)
    for i, content in enumerate([same, lenet, fewer]):
        evaluations = {"evaluation.json": content}
        write_run(
            tmp_path,
            "gan-cifar10",
            "dcgan_cifar10.yaml",
            evaluations=evaluations,
            version=f"version_{i}",
        )
    ours_same, ours_lenet, ours_fewer = table_rows(report_for(tmp_path), "GAN", "is")
    assert "| 6.16 score |" in ours_same and "| 6.30 |" in ours_same
    assert "| +0.14 (better) |" in ours_same  # a higher Inception score is better
    assert "| not comparable |" in ours_lenet and "7.9" not in ours_lenet
    assert "lenet features cannot be compared with an Inception IS" in ours_lenet
    assert "| not comparable |" in ours_fewer and "6.8" not in ours_fewer
    assert "IS on 10000 samples; the paper protocol uses 50000" in ours_fewer


def test_lenet_fid_is_refused_next_to_an_inception_fid(tmp_path):
    reference = write_reference(
        tmp_path / "reference.csv", key="test_fid", model="GAN", data="CIFAR10", metric="fid",
        value="40.0", split="samples", config="experiments/papers/dcgan_cifar10.yaml",
    )  # fmt: skip
    gan, data = "genflow.models.GAN", "genflow.data.CIFAR10"
    lenet = evaluation(gan, data, {"fid": 12.5}, features="lenet", num_samples=50000)
    inception = evaluation(gan, data, {"fid": 45.25}, num_samples=50000)
    runs = tmp_path / "runs"
    write_run(runs, "gan-cifar10", "dcgan_cifar10.yaml", evaluations={"evaluation.json": lenet})
    write_run(
        runs,
        "gan-cifar10",
        "dcgan_cifar10.yaml",
        evaluations={"evaluation.json": inception},
        version="version_1",
    )
    write_run(
        runs, "gan-cifar10", "dcgan_cifar10.yaml", metrics={"test/fid": 30.0}, version="version_2"
    )
    lenet_row, inception_row, unknown_row = table_rows(report_for(runs, reference), "GAN", "fid")
    assert "| not comparable |" in lenet_row and "12.5" not in lenet_row
    assert "FID computed with lenet features cannot be compared with an Inception FID" in lenet_row
    assert "| 45.25 |" in inception_row and "| +5.25 (worse) |" in inception_row
    assert "| not comparable |" in unknown_row and "has no record of its features" in unknown_row


def test_runs_at_another_setting_are_not_compared(tmp_path):
    write_run(
        tmp_path,
        "vae-mnist",
        "vae_mnist.yaml",
        data={"binarize": "threshold"},
        metrics={"test/nll": 80.0},
    )
    write_run(
        tmp_path, "vae-mnist", "vae_mnist.yaml", metrics={"test/nll": 88.1}, version="version_1"
    )
    write_run(tmp_path, "wgangp-cifar10", "wgangp_cifar10.yaml", metrics={"test/is": 6.5})
    report = report_for(tmp_path)
    threshold, dynamic = table_rows(report, "VAE", "nll")
    assert "| not comparable |" in threshold and "80.00" not in threshold
    assert "data.binarize is 'threshold', the paper config has 'dynamic'" in threshold
    assert "| 88.10 |" in dynamic and "| +1.34 (worse) |" in dynamic
    [wgan] = table_rows(report, "WGANGP", "is")
    assert "| not comparable |" in wgan and "no genflow config at the paper's setting" in wgan


def test_command_prints_writes_out_and_never_overwrites(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_run(runs, "realnvp-cifar10", "realnvp_cifar10.yaml", metrics={"test/bpd": 3.6})
    out = tmp_path / "tables" / "papers.md"
    assert compare.main(["--runs", str(runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.read_text() == printed and "| 3.60 |" in printed
    before = out.read_text()
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--runs", str(runs), "--out", str(out)])
    assert exit_info.value.code == 2
    assert "already exists; nothing was written" in capsys.readouterr().err
    assert out.read_text() == before


@pytest.mark.slow
def test_reads_a_run_folder_written_by_genflow_fit_and_test(tmp_path):
    from genflow.cli import cli

    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    common = ["--run.root", str(tmp_path / "runs"), "--run.wandb", "disabled", *quiet]
    limits = ["--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1"]
    config = str(ROOT / "experiments/vae/digits.yaml")
    fit = cli(["fit", "--config", config, "--trainer.max_epochs", "1", *limits, *common])
    run = Path(fit.trainer.default_root_dir)
    ckpt = str(run / "checkpoints" / "last.ckpt")
    test_args = ["--trainer.limit_test_batches", "1", "--run.version", run.name]
    test_args += ["--model.init_args.num_importance_samples", "2"]
    cli(["test", "--config", str(run / "config.yaml"), "--ckpt_path", ckpt, *test_args, *common])
    reference = write_reference(
        tmp_path / "reference.csv", key="digits", model="VAE", data="Digits", metric="nll",
        value="30.0", unit="nats", config="experiments/vae/digits.yaml",
    )  # fmt: skip
    nll = json.loads((run / "metrics.json").read_text())["test/nll"]
    [row] = table_rows(report_for(tmp_path / "runs", reference), "VAE", "nll")
    assert f"| {nll:.2f} | {run} (metrics.json, test) | {nll - 30.0:+.2f}" in row
