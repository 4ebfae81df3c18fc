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
        (["compare", "gas", "--preprocessing", "zscore"],
         "unknown preprocessing 'zscore'; use one of 'none', 'log', 'batch'"),
        (["compare", "cifar", "--b-classes", "0"], "two distinct classes"),
        (["compare", "cifar", "--b-classes", "0", "zebra"], "unknown CIFAR-10 class"),
        (["compare", "monkeys", "--backbone", "resnet9000"], "unknown backbone"),
        (["demo", "--strategies", "gradual,fine_tune"], "'fine_tune' for the demo experiment"),
        (["demo", "--epochs", "0"], "positive integer"),
        (["demo", "--data-home", "x"], "unrecognized arguments"),
        (["compare", "gas", "--seed", "-5"], "argument --seed: expected a whole number"),
        (["demo", "--seed", "x"], "argument --seed"),
        (["compare", "gas", "--archive-sha256", "abc"],
         "argument --archive-sha256: expected the 64 hex digits of a SHA-256"),
        (["compare", "cifar", "--archive-sha256", "0" * 64], "unrecognized arguments"),
        (["compare", "gas", "--device", "cuda:x"], "argument --device: device must be 'auto'"),
        (["demo", "--device", "cuda:99"], "argument --device: device='cuda:99'"),
        (["demo", "--threads", "0"], "argument --threads: expected a positive integer or 'tune'"),
        (["demo", "--threads", "many"], "argument --threads: expected a positive integer or"),
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


def test_gas_download_without_archive_sha256_says_how_to_get_it(tmp_path, capsys,
                                                                monkeypatch):
    import sktransfer.datasets._gas as gas_module

    def no_download(*args, **kwargs):
        raise AssertionError("nothing may be downloaded without a checksum")

    monkeypatch.setattr(gas_module, "download", no_download)
    code = main(["compare", "gas", "--data-home", str(tmp_path), "--download",
                 "--source-batches", "1", "--target-batches", "7", "--quiet",
                 "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sktransfer: error:") and "\n" not in err
    assert "sha256sum gas+sensor+array+drift+dataset.zip" in err
    assert "--archive-sha256 '<64 hex digits>'" in err
    assert "archive_sha256" not in err  # the flag's name, not the keyword's
    assert not (tmp_path / "gas_drift").exists()


def test_gas_archive_sha256_reaches_the_download(tmp_path, capsys, monkeypatch):
    import sktransfer.datasets._gas as gas_module
    from sktransfer._io import DownloadError

    seen = []

    def offline(url, dest, *, sha256=None, verbose=1):
        seen.append(sha256)
        raise DownloadError(f"cannot reach {url}", url)

    monkeypatch.setattr(gas_module, "download", offline)
    digest = "AB" * 32
    code = main(["compare", "gas", "--data-home", str(tmp_path), "--download",
                 "--archive-sha256", digest, "--source-batches", "1", "--target-batches",
                 "7", "--quiet", "--out", str(tmp_path / "out")])
    assert code == 1
    assert seen == [digest.lower()]
    assert "cannot reach" in capsys.readouterr().err


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


def test_list_backbones_shows_input_kind_and_offline_weights(capsys):
    assert main(["list-backbones"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["name", "input"]
    rows = {line.split()[0]: line.split(maxsplit=2)[1:] for line in lines[1:]}
    assert {"mlp", "cnn", "efficientnet_lite0", "resnet18"} <= set(rows)
    assert rows["mlp"][0] == "tabular" and rows["cnn"][0] == "image"
    assert rows["mlp"][1].startswith("none")
    assert rows["efficientnet_lite0"][1].startswith("yes")  # the test extra installs it
    assert rows["resnet18"][0] == "image"
    assert rows["resnet18"][1].startswith(("yes", "download needed"))


def test_help_imports_neither_torch_nor_sklearn():
    code = ("import sys; from sktransfer.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'sklearn', 'pandas', 'skorch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_experiment_help_lists_its_strategies(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "cifar", "--help"])
    assert "last-2" in capsys.readouterr().out


def test_unwritable_out_fails_before_the_experiment_runs(tmp_path, capsys, monkeypatch):
    import sktransfer.cli as cli

    def must_not_run(args):
        raise AssertionError("the experiment ran")

    monkeypatch.setattr(cli, "_run", must_not_run)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["demo", "--quiet", "--out", str(blocker / "results")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sktransfer: error: --out") and "is a file" in err
    assert main(["demo", "--quiet", "--out", str(blocker)]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err


def test_library_errors_name_the_command_line_options():
    from sktransfer.cli import _as_cli_message

    message = _as_cli_message("Use download=True, or put the batch files in data_home=/x")
    assert message == "Use --download, or put the batch files in --data-home /x"


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
    assert "embedded" in doc["settings"]["data"]  # batches 1-6 ship with the package


def test_compare_gas_with_a_data_home_keeps_the_embedded_batches(tmp_path, capsys):
    # An empty data home: batches 1-6 still come from the package, offline.
    argv = ["compare", "gas", "--data-home", str(tmp_path / "empty"), "--source-batches", "1",
            "--target-batches", "4", "--label-fraction", "0.2", "--repeats", "1",
            "--strategies", "svm_rbf", "--quiet", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "embedded" in doc["settings"]["data"]
    assert "n/a" in capsys.readouterr().out  # one repeat: no spread


def test_compare_gas_preprocessing_reaches_the_models(tmp_path, capsys, monkeypatch):
    import sktransfer.experiments.gas as gas_module

    columns = []

    def spy(X, groups, preprocessing):
        out = preprocess_gas(X, groups, preprocessing)
        columns.append(out.shape[1])
        return out

    from sktransfer.preprocessing import preprocess_gas

    monkeypatch.setattr(gas_module, "preprocess_gas", spy)
    argv = ["compare", "gas", "--source-batches", "1", "--target-batches", "4",
            "--label-fraction", "0.2", "--repeats", "1", "--strategies",
            "logistic_regression", "--preprocessing", "batch,pattern+batch", "--quiet",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    assert columns == [256]  # both views of the 128 features, for every model
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["settings"]["preprocessing"] == "batch,pattern+batch"


# --------------------------------------------------------------------------- the README
README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_blocks(language: str) -> list[str]:
    import re

    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_quickstart_is_two_make_commands():
    quickstart = _readme_blocks("bash")[0]
    commands = [line.split("#")[0].strip() for line in quickstart.splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


def test_readme_commands_parse_and_need_no_workspace_paths():
    import shlex

    from sktransfer.cli import build_parser

    commands = []
    for block in _readme_blocks("bash"):
        text = block.replace("\\\n", " ")
        commands += [line.split("#")[0].strip() for line in text.splitlines()]
    commands = [c for c in commands if c.startswith("sktransfer ")]
    assert len(commands) >= 6
    for command in commands:
        assert "shared/data" not in command, command
        build_parser().parse_args(shlex.split(command)[1:])  # exits 2 on a bad command


def test_readme_python_snippets_compile():
    for block in _readme_blocks("python"):
        compile(block, "README.md", "exec")


def test_threads_tune_reaches_the_networks(tmp_path, capsys, monkeypatch):
    import sktransfer.experiments.gas as gas_module

    seen = []
    real = gas_module.TransferClassifier

    def spy(*args, **kwargs):
        seen.append(kwargs.get("n_threads"))
        return real(*args, **kwargs)

    monkeypatch.setattr(gas_module, "TransferClassifier", spy)
    argv = ["compare", "gas", "--source-batches", "1", "--target-batches", "4",
            "--label-fraction", "0.2", "--repeats", "1", "--strategies", "scratch",
            "--epochs", "1", "--threads", "tune", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert seen and set(seen) == {"tune"}
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["settings"]["torch_threads"] == "tune"
