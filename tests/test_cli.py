"""The sktransfer command: argument errors, data errors, the demo end to end, real gas data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sktransfer.cli import main
from sktransfer.experiments import demo as demo_module


def _shared_data() -> Path:
    env = os.environ.get("SKTRANSFER_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


SHARED_DATA = _shared_data()


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "required"),
        (["compare"], "required"),
        (["compare", "gas", "--strategies", "scratch,transfer"],
         "unknown strategy name(s) 'transfer' for the gas experiment; choose from: scratch"),
        (["compare", "cifar", "--strategies", "feature-extraction"], "last-1"),
        (["compare", "monkeys", "--strategies", "baseline"], "feature-extraction"),
        (["compare", "gas", "--task", "binary:helium"], "unknown gas 'helium'"),
        (["compare", "gas", "--task", "regression"], "multiclass"),
        (["compare", "gas", "--source-batches", "0"], "batches are 1 to 10"),
        (["compare", "gas", "--target-batches", "11"], "batches are 1 to 10"),
        (["compare", "gas", "--source-batches", "1", "2", "--target-batches", "2"],
         "both source and target"),
        (["compare", "gas", "--label-fraction", "1.5"], "(0, 1)"),
        (["compare", "gas", "--repeats", "0"], "positive integer"),
        (["compare", "cifar", "--b-classes", "0"], "two distinct classes"),
        (["compare", "cifar", "--b-classes", "0", "zebra"], "unknown CIFAR-10 class"),
        (["compare", "monkeys", "--backbone", "resnet9000"], "unknown backbone"),
        (["demo", "--strategies", "gradual,fine_tune"], "'fine_tune' for the demo experiment"),
        (["demo", "--epochs", "0"], "positive integer"),
        (["demo", "--data-home", "x"], "unrecognized arguments"),
    ],
)
def test_argument_errors_exit_with_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err
    assert message in err


def test_missing_gas_batches_are_one_clear_line(tmp_path, capsys):
    code = main(["compare", "gas", "--data-home", str(tmp_path), "--source-batches", "1",
                 "--target-batches", "7", "--quiet", "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("sktransfer: error: Gas drift batch files not found")
    assert "Traceback" not in err[0]


def test_missing_monkeys_data_is_one_clear_line(tmp_path, capsys):
    code = main(["compare", "monkeys", "--data-home", str(tmp_path), "--quiet",
                 "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sktransfer: error:") and "\n" not in err


def test_task_without_both_classes_in_a_target_is_an_error(tmp_path, capsys):
    code = main(["compare", "gas", "--task", "binary:toluene", "--source-batches", "1",
                 "--target-batches", "4", "--quiet", "--out", str(tmp_path)])
    assert code == 1
    assert "single class" in capsys.readouterr().err


def test_list_backbones(capsys):
    assert main(["list-backbones"]) == 0
    names = capsys.readouterr().out.split()
    assert {"mlp", "cnn", "efficientnet_lite0"} <= set(names)


def test_python_dash_m_runs_the_command():
    out = subprocess.run([sys.executable, "-m", "sktransfer", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "demo" in out and "compare" in out


def test_demo_end_to_end(tmp_path, monkeypatch, capsys):
    small = {"source_batches": (1,), "target_batches": (4,), "task": "binary:acetaldehyde",
             "label_fraction": 0.2, "repeats": 2, "epochs": 3, "source_epochs": 3,
             "hidden": (16,)}
    monkeypatch.setattr(demo_module, "DEMO_SETTINGS", small)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "mlp-scratch" in captured.out and "balanced_accuracy" in captured.out
    assert "kappa" in captured.out and "random_forest" in captured.out
    assert "results.json" in captured.out
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) >= 2 and "metrics.png" in pngs
    doc = json.loads((out / "results.json").read_text())
    strategies = {row["strategy"] for row in doc["rows"]}
    assert strategies == {"scratch", "fine-tune", "feature-extraction", "last-2", "gradual",
                          "source-only", "baseline"}
    assert doc["settings"]["task"] == "binary:acetaldehyde"
    assert "Best by balanced_accuracy" in (out / "report.md").read_text()


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATA / "gas-drift").is_dir(),
                    reason=f"real data not found at {SHARED_DATA}; set SKTRANSFER_SHARED_DATA")
def test_compare_gas_on_the_real_data(tmp_path, capsys):
    argv = ["compare", "gas", "--data-home", str(SHARED_DATA), "--source-batches", "1", "2",
            "--target-batches", "5", "--label-fraction", "0.2", "--repeats", "2",
            "--epochs", "5", "--source-epochs", "5", "--strategies", "scratch,fine-tune,svm_rbf",
            "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert [row["model"] for row in doc["rows"]] == ["mlp-scratch", "mlp-fine-tune", "svm_rbf"]
    assert all(row["target"] == "batch 5" for row in doc["rows"])
    assert all(0 <= row["accuracy"] <= 1 for row in doc["rows"])
    assert "fetch_gas_drift" in doc["settings"]["data"]
