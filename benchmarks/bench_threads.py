"""Thread policy: the README's own-code snippet on a busy machine, default vs one thread.

A background process burns one core for the whole run (a busy 2-core machine). The
README's "In your own code" snippet (a source MLP on gas batches 1-3, then a GridSearchCV
over backbone x freeze on batch 4 behind a RandomOverSampler) runs

- with torch set to one thread (the reference), and
- as a user runs it: torch's default threads, the estimator's ``n_threads="auto"``,

each ``--repeats`` times, alternating; the ratio of the best times is the figure (goal
<= 1.3). For the record, one fit of the first grid candidate also runs with
``n_threads=None`` (torch's default threads: the behaviour before the policy) against the
same fit with ``n_threads="auto"``. The script also reports the threads torch gets inside
``GridSearchCV(n_jobs=2)``-style loky workers, and checks that the caller's thread setting
is unchanged after each run.

    python benchmarks/bench_threads.py [--repeats 2] [--epochs 40]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import busy_core, timed, write
from joblib import Parallel, delayed


def snippet(epochs: int, n_threads="auto"):
    """The README snippet, with ``n_threads`` passed to every estimator."""
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.pipeline import make_pipeline
    from sklearn.model_selection import GridSearchCV

    from sktransfer import TransferClassifier
    from sktransfer.datasets import load_gas_drift, make_gas_binary

    gas = load_gas_drift()
    source, target = gas.batch <= 3, gas.batch == 4
    src = TransferClassifier(backbone="mlp", max_epochs=epochs, n_threads=n_threads,
                             random_state=0).fit(gas.data[source], gas.target[source])
    y = make_gas_binary(gas.target[target], "ethanol")
    search = GridSearchCV(
        make_pipeline(RandomOverSampler(random_state=0),
                      TransferClassifier(max_epochs=epochs, n_threads=n_threads,
                                         random_state=0)),
        {"transferclassifier__backbone": ["mlp", src.export_backbone()],
         "transferclassifier__freeze": ["none", "backbone", "last:1", "last:2", "gradual"]},
        scoring="balanced_accuracy",
    ).fit(gas.data[target], y)
    return search.best_score_


def one_fit(epochs: int, n_threads):
    from sktransfer import TransferClassifier
    from sktransfer.datasets import load_gas_drift, make_gas_binary

    gas = load_gas_drift()
    target = gas.batch == 4
    y = make_gas_binary(gas.target[target], "ethanol")
    TransferClassifier(max_epochs=epochs, n_threads=n_threads, random_state=0).fit(
        gas.data[target], y)


def _worker_threads():
    from sktransfer._threads import cpu_budget

    return torch.get_num_threads(), cpu_budget()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    default_threads = torch.get_num_threads()
    workers = Parallel(n_jobs=2, backend="loky")(delayed(_worker_threads)() for _ in range(2))

    times = {"one_thread": [], "default": []}
    restored = True
    with busy_core():
        one_fit(2, "auto")  # warm-up: imports, first-call costs
        for _ in range(args.repeats):
            torch.set_num_threads(1)
            score_1, t = timed(snippet, args.epochs)
            times["one_thread"].append(t)
            restored &= torch.get_num_threads() == 1
            torch.set_num_threads(default_threads)
            score_d, t = timed(snippet, args.epochs)
            times["default"].append(t)
            restored &= torch.get_num_threads() == default_threads
            print(f"one thread {times['one_thread'][-1]:.1f}s, default {t:.1f}s")
        _, t_auto_fit = timed(one_fit, args.epochs, "auto")
        _, t_none_fit = timed(one_fit, args.epochs, None)
    ratio = min(times["default"]) / min(times["one_thread"])
    result = {
        "busy": "one background process burning a core for the whole run",
        "torch_default_threads": default_threads,
        "epochs": args.epochs,
        "snippet_seconds": times,
        "snippet_ratio_default_over_one_thread": ratio,
        "best_balanced_accuracy": {"one_thread": score_1, "default": score_d},
        "single_fit_seconds": {"n_threads_auto": t_auto_fit,
                               "n_threads_none_torch_default": t_none_fit},
        "single_fit_ratio_before_policy": t_none_fit / t_auto_fit,
        "loky_worker_threads_n_jobs_2": [
            {"torch_threads": a, "cpu_budget": b} for a, b in workers],
        "caller_setting_restored": bool(restored),
        "goal": "snippet on a busy machine <= 1.3x its one-thread time",
        "met": bool(ratio <= 1.3),
    }
    print(f"snippet: default/one-thread = {ratio:.2f}; single fit before the policy "
          f"{t_none_fit:.1f}s vs auto {t_auto_fit:.1f}s")
    write("threads", result)
    return result


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
