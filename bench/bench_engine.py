"""Engine benchmark: the native engine against torch on the same workloads, in one run.

One thread (set before numpy and torch load), interleaved rounds, medians of per-round medians; results are
ratios native/torch measured in the same run, because absolute times on a shared 2-core machine are noise.

    python bench/bench_engine.py            # prints the table
    python bench/bench_engine.py --markdown # prints the BENCHMARKS.md rows

Workloads (issue 2): MLP 784-128-10 at batch 64 with an SGD step, tiny MLP 2-16-16-1 at batch 32, a 20-step
RNN cell with hidden size 32, and the cost of one recorded op on 4x4 tensors.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
# Some machines set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for old OpenBLAS builds; they slow a current numpy.
# This process (only) drops both together; the table reports what was found and the kernel then chosen.
# Tests and CI leave them as they are.
_FOUND_BLAS_VARS = {v: os.environ.pop(v, None) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import gradlens.engine as ge  # noqa: E402

TARGETS = {"mlp": 1.0, "tiny": 0.5, "rnn": 0.8, "op": 1.0, "cnn": 1.5, "conv": 2.0}


def _copy_params(src, dst, lib) -> None:
    """Copy torch module weights into the other engine's module (same architecture)."""
    with lib.no_grad():
        for (_, a), (_, b) in zip(src.named_parameters(), dst.named_parameters()):
            b.copy_(lib.tensor(a.detach().numpy().copy()))


def make_mlp(lib, sizes, batch, seed=0):
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(lib.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(lib.nn.ReLU())
    model = lib.nn.Sequential(*layers)
    with lib.no_grad():
        for p in model.parameters():
            p.copy_(lib.tensor(rng.uniform(-0.1, 0.1, size=tuple(p.shape)).astype(np.float32)))
    x = lib.tensor(rng.standard_normal((batch, sizes[0])).astype(np.float32))
    if sizes[-1] > 1:
        y = lib.tensor(rng.integers(0, sizes[-1], size=batch))
        loss_fn = lib.nn.CrossEntropyLoss()
    else:
        y = lib.tensor(rng.standard_normal((batch, 1)).astype(np.float32))
        loss_fn = lib.nn.MSELoss()
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    return step


def make_rnn(lib, hidden=32, inp=16, steps=20, batch=8, seed=0):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    W = lib.tensor(rng.uniform(-0.2, 0.2, (inp, hidden)).astype(f32), requires_grad=True)
    U = lib.tensor(rng.uniform(-0.2, 0.2, (hidden, hidden)).astype(f32), requires_grad=True)
    b = lib.tensor(np.zeros(hidden, f32), requires_grad=True)
    V = lib.tensor(rng.uniform(-0.2, 0.2, (hidden, 1)).astype(f32), requires_grad=True)
    xs = [lib.tensor(rng.standard_normal((batch, inp)).astype(f32)) for _ in range(steps)]
    target = lib.tensor(rng.standard_normal((batch, 1)).astype(f32))
    opt = lib.optim.SGD([W, U, b, V], lr=0.01)

    def step():
        opt.zero_grad()
        h = lib.zeros(batch, hidden)
        for x in xs:
            h = lib.tanh(x @ W + h @ U + b)
        loss = ((h @ V - target) ** 2).mean()
        loss.backward()
        opt.step()
    return step


def make_op(lib, n=200):
    a = lib.ones(4, 4, requires_grad=True)
    b = lib.ones(4, 4)

    def step():
        for _ in range(n):
            a * b
    return step


def make_cnn(lib, batch=64, seed=0):
    """PyTorch's MNIST example net (conv 1->32->64 3x3, max-pool, dropout, two linears) on 28x28 input."""
    rng = np.random.default_rng(seed)
    nn, F = lib.nn, lib.nn.functional
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(128, 10))
    with lib.no_grad():
        for p in model.parameters():
            p.copy_(lib.tensor(rng.uniform(-0.05, 0.05, size=tuple(p.shape)).astype(np.float32)))
    x = lib.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
    y = lib.tensor(rng.integers(0, 10, size=batch))
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad()
        loss = F.nll_loss(F.log_softmax(model(x), dim=1), y)
        loss.backward()
        opt.step()
    return step


def make_conv(lib, seed=0):
    """conv2d forward + backward alone: (64, 32, 26, 26) input, 64 3x3 filters, input and weight grads."""
    rng = np.random.default_rng(seed)
    x = lib.tensor(rng.standard_normal((64, 32, 26, 26)).astype(np.float32), requires_grad=True)
    w = lib.tensor(rng.uniform(-0.05, 0.05, (64, 32, 3, 3)).astype(np.float32), requires_grad=True)
    b = lib.tensor(np.zeros(64, np.float32), requires_grad=True)

    def step():
        lib.nn.functional.conv2d(x, w, b).sum().backward()
    return step


WORKLOADS = {
    "mlp": ("MLP 784-128-10, batch 64, SGD step", lambda lib: make_mlp(lib, [784, 128, 10], 64), 1),
    "tiny": ("tiny MLP 2-16-16-1, batch 32, SGD step", lambda lib: make_mlp(lib, [2, 16, 16, 1], 32), 1),
    "rnn": ("RNN cell, 20 steps, hidden 32, SGD step", lambda lib: make_rnn(lib), 1),
    "op": ("one recorded op (4x4 mul)", lambda lib: make_op(lib), 200),
    "cnn": ("MNIST CNN 1-32-64 3x3, batch 64, SGD step", lambda lib: make_cnn(lib), 1),
    "conv": ("conv2d fwd+bwd 64x32x26x26, 64 3x3 filters", lambda lib: make_conv(lib), 1),
}


def _time(fn, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def measure(rounds: int = 7, budget_s: float = 0.15, only=None) -> dict:
    import torch

    torch.set_num_threads(1)
    results = {}
    for key, (_label, make, per_call) in WORKLOADS.items():
        if only and key not in only:
            continue
        fns = {"torch": make(torch), "native": make(ge)}
        for fn in fns.values():  # warm up and size the inner loop
            fn()
        reps = max(3, int(budget_s / max(_time(fns["torch"], 3), 1e-6)))
        samples = {"torch": [], "native": []}
        for _ in range(rounds):
            for name, fn in fns.items():
                samples[name].append(_time(fn, reps) / per_call)
        t = statistics.median(samples["torch"])
        n = statistics.median(samples["native"])
        results[key] = {"torch_ms": t * 1e3, "native_ms": n * 1e3, "ratio": n / t, "target": TARGETS[key]}
    return results


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    found = ", ".join(f"{k}={v}" for k, v in _FOUND_BLAS_VARS.items() if v is not None) or "none"
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__} "
            f"({_blas()}), torch {torch.__version__}, 1 thread; OPENBLAS_CORETYPE/L2_SIZE found: {found} "
            f"(unset for this run)")


def _blas() -> str:
    """numpy's BLAS, its kernel and thread count (threadpoolctl, when installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS kernel unknown: pip install threadpoolctl"
    for info in threadpool_info():
        if info.get("user_api") == "blas" and "numpy" in info.get("filepath", ""):
            return (f"{info.get('internal_api')} {info.get('version')}, kernel {info.get('architecture')}, "
                    f"{info.get('num_threads')} thread(s)")
    return "BLAS not found by threadpoolctl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--markdown", action="store_true", help="print BENCHMARKS.md rows")
    parser.add_argument("--only", nargs="+", choices=list(WORKLOADS), help="run only these workloads")
    args = parser.parse_args()
    res = measure(args.rounds, only=args.only)
    print(f"Machine: {machine()}\n")
    print("| workload | torch (ms) | native (ms) | native/torch | target |")
    print("|---|---:|---:|---:|---:|")
    for key, r in res.items():
        unit = 1e3 if key == "op" else 1.0
        label = WORKLOADS[key][0]
        suffix = " (us)" if key == "op" else ""
        ok = "yes" if r["ratio"] <= r["target"] else "NO"
        print(f"| {label}{suffix} | {r['torch_ms'] * unit:.3f} | {r['native_ms'] * unit:.3f} | "
              f"{r['ratio']:.2f} | <= {r['target']:.1f} ({ok}) |")


if __name__ == "__main__":
    main()
