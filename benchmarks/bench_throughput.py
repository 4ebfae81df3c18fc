"""Benchmark 3: training and inference throughput (images/s), estimator vs a raw loop.

The small CNN on 32x32 images, the same batch size, epochs, optimizer and device for both;
on a GPU both use the same mixed precision. Without a GPU this runs on the CPU and says so.

    python benchmarks/bench_throughput.py [--per-class 200] [--epochs 3] [--device auto]
"""

from __future__ import annotations

import argparse

import torch
from _common import timed, write
from _data import cifar_images

from sktransfer import TransferClassifier
from sktransfer._training import resolve_amp, resolve_device
from sktransfer.backbones.cnn import cnn


def raw_loop(X, y, epochs, batch_size, device, amp, seed=0):
    torch.manual_seed(seed)
    backbone = cnn(input_shape=(3, 32, 32))
    model = torch.nn.Sequential(backbone, torch.nn.Linear(backbone.num_features, 10)).to(device)
    x = torch.as_tensor(X).permute(0, 3, 1, 2).contiguous().to(device)  # uint8 on the device
    t = torch.as_tensor(y, dtype=torch.long).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    autocast = torch.autocast(torch.device(device).type, dtype=amp, enabled=amp is not None)

    def train():
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), device=device)
            for s in range(0, len(x), batch_size):
                idx = order[s:s + batch_size]
                opt.zero_grad()
                with autocast:
                    loss = loss_fn(model(x[idx]).float(), t[idx])
                loss.backward()
                opt.step()
        _sync(device)

    @torch.no_grad()
    def infer():
        model.eval()
        with autocast:
            out = torch.cat([model(x[s:s + 256]).float() for s in range(0, len(x), 256)])
        _sync(device)
        return out

    _, t_train = timed(train)
    _, t_infer = timed(infer)
    return t_train, t_infer


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def estimator_run(X, y, epochs, batch_size, device, n_threads=None):
    # n_threads=None: torch's own thread count, the one the raw loop runs with. The
    # default "auto" gives a network this small one thread (robust on a busy machine,
    # benchmarks/bench_threads.py), measured beside it as its own row.
    clf = TransferClassifier("cnn", max_epochs=epochs, batch_size=batch_size, device=device,
                             validation_fraction=None, random_state=0, n_threads=n_threads)
    _, t_train = timed(clf.fit, X, y)
    _, t_infer = timed(clf.predict_proba, X)
    return t_train, t_infer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    amp = resolve_amp("auto", device)
    X, y, source = cifar_images(args.per_class)
    estimator_run(X[:256], y[:256], 1, args.batch_size, device)  # warm-up
    raw = raw_loop(X, y, args.epochs, args.batch_size, device, amp)
    est = estimator_run(X, y, args.epochs, args.batch_size, device)
    auto = estimator_run(X, y, args.epochs, args.batch_size, device, n_threads="auto")
    n_train = len(X) * args.epochs
    out = {
        "device": device, "mixed_precision": str(amp), "data": source, "n_images": len(X),
        "epochs": args.epochs, "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "train_images_per_s": {"raw_loop": n_train / raw[0], "estimator": n_train / est[0],
                               "estimator_n_threads_auto": n_train / auto[0]},
        "inference_images_per_s": {"raw_loop": len(X) / raw[1], "estimator": len(X) / est[1],
                                   "estimator_n_threads_auto": len(X) / auto[1]},
    }
    out["train_ratio_estimator_over_raw"] = est[0] / raw[0]
    out["inference_ratio_estimator_over_raw"] = est[1] / raw[1]
    print(f"[{device}] train img/s raw {out['train_images_per_s']['raw_loop']:.0f} estimator "
          f"{out['train_images_per_s']['estimator']:.0f}; inference img/s raw "
          f"{out['inference_images_per_s']['raw_loop']:.0f} estimator "
          f"{out['inference_images_per_s']['estimator']:.0f}; n_threads='auto' train "
          f"{out['train_images_per_s']['estimator_n_threads_auto']:.0f} inference "
          f"{out['inference_images_per_s']['estimator_n_threads_auto']:.0f}")
    write("throughput", out)
    return out


if __name__ == "__main__":
    main()
