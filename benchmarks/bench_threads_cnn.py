"""Thread policy for a small CNN: one thread, the budget, ``"auto"`` and ``"tune"``,
on an idle and on a busy 2-core machine.

The 0.3M-parameter ``cnn`` backbone of the CIFAR experiment has few parameters but large
operations. Each setting trains it for ``--epochs`` on ``--n`` CIFAR-sized images
(random pixels: the speed does not depend on them), ``--repeats`` times, alternating;
first on an idle machine, then with a background process burning one core. The figure is
each setting's best time over one thread's. The same runs check the promises:

- ``"auto"`` is a rule: two fits give the same predictions, number for number (the
  same fit on the budget's threads does not);
- ``"tune"`` measures: ``history_["threads"]`` says what each epoch ended on;
- ``"tune"`` on the gas MLP (tiny operations) stays on one thread and costs nothing
  against one thread on the busy machine.

    python benchmarks/bench_threads_cnn.py [--repeats 2] [--epochs 2] [--n 4096]
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import busy_core, timed, write


def cnn_fit(X, y, epochs: int, n_threads):
    from sktransfer import TransferClassifier

    clf = TransferClassifier(backbone="cnn", weights=None, max_epochs=epochs,
                             n_threads=n_threads, random_state=0)
    clf.fit(X, y)
    return clf


def mlp_fit(epochs: int, n_threads):
    from sktransfer import TransferClassifier
    from sktransfer.datasets import load_gas_drift

    gas = load_gas_drift()
    source = gas.batch <= 3
    return TransferClassifier(backbone="mlp", max_epochs=epochs, n_threads=n_threads,
                              random_state=0).fit(gas.data[source], gas.target[source])


def run_settings(X, y, args, budget: int) -> dict:
    settings = {"one_thread": 1, "budget": budget, "auto": "auto", "tune": "tune"}
    seconds = {name: [] for name in settings}
    tuned_threads = []
    for _ in range(args.repeats):
        for name, n_threads in settings.items():
            clf, t = timed(cnn_fit, X, y, args.epochs, n_threads)
            seconds[name].append(t)
            if name == "tune":
                tuned_threads.append([int(v) for v in clf.history_["threads"]])
        print({k: [round(v, 1) for v in s] for k, s in seconds.items()}, flush=True)
    best_one = min(seconds["one_thread"])
    return {"seconds": seconds,
            "ratio_to_one_thread": {k: min(v) / best_one for k, v in seconds.items()},
            "tune_epoch_threads": tuned_threads}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n", type=int, default=4096)
    args = parser.parse_args(argv)
    from sktransfer._threads import cpu_budget

    budget = cpu_budget()
    rng = np.random.default_rng(0)
    X = rng.random((args.n, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 8, args.n)
    cnn_fit(X[:256], y[:256], 1, 1)  # warm-up: imports, first-call costs

    auto_a = cnn_fit(X, y, args.epochs, "auto").predict_proba(X[:512])
    auto_b = cnn_fit(X, y, args.epochs, "auto").predict_proba(X[:512])
    on_budget = cnn_fit(X, y, args.epochs, budget).predict_proba(X[:512])
    idle = run_settings(X, y, args, budget)

    with busy_core():
        busy = run_settings(X, y, args, budget)
        mlp = {"one_thread": [], "tune": []}
        mlp_threads = []
        for _ in range(args.repeats):
            mlp["one_thread"].append(timed(mlp_fit, 20, 1)[1])
            clf, t = timed(mlp_fit, 20, "tune")
            mlp["tune"].append(t)
            mlp_threads.append(sorted({int(v) for v in clf.history_["threads"]}))
    result = {
        "network": "cnn backbone (0.3M parameters), 32x32 images, batch 64",
        "n_images": args.n,
        "epochs": args.epochs,
        "budget_threads": budget,
        "idle": idle,
        "busy": {**busy, "load": "one background process burning a core"},
        "auto_repeatable": bool(np.array_equal(auto_a, auto_b)),
        # what "tune" gives up: the same fit on another thread count (random labels, so
        # the two networks drift far apart; on real data the difference is smaller)
        "auto_vs_budget_threads_max_abs_probability_difference":
            float(np.abs(auto_a - on_budget).max()),
        "gas_mlp_busy_20_epochs": {"seconds": mlp, "tune_threads_used": mlp_threads,
                                   "ratio_tune_to_one_thread":
                                       min(mlp["tune"]) / min(mlp["one_thread"])},
    }
    print({k: result[k] for k in ("auto_repeatable",)},
          "idle", {k: round(v, 2) for k, v in idle["ratio_to_one_thread"].items()},
          "busy", {k: round(v, 2) for k, v in busy["ratio_to_one_thread"].items()},
          "mlp tune/one", round(result["gas_mlp_busy_20_epochs"]["ratio_tune_to_one_thread"], 2))
    write("threads_cnn", result)
    return result


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
