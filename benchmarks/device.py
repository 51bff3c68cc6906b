"""``python -m benchmarks --device cuda``: the MLP training step on the device.

Prints the step's kernel plan (each launch, the bytes it moves, the transfers, the minimum
bytes, the time the plan predicts on an H200) and, on a machine with a GPU, the measured time
of a call next to PyTorch's same step on the same device where PyTorch sees it. Without a GPU
the plan comes from the CPU stand-in (``cuda.simulator=True``), which runs the same kernels
and records the same launches; no time is measured there (the stand-in is not a GPU).
"""
from __future__ import annotations

import statistics
import sys
import time
from typing import TextIO

from .cases import MLP_LR, MLP_SIZES, mlp_train_data, theon_mlp_train_graph


def _runtime(device: str):
    """The device runtime for ``device``: CuPy's when a GPU answers, else the stand-in."""
    import theon
    from theon.backends.cuda.backend import runtime
    from theon.backends.cuda.runtime import DeviceUnavailable
    theon.config.device = device
    try:
        return runtime(), None
    except DeviceUnavailable as err:
        theon.config.cuda.simulator = True
        return runtime(), str(err).splitlines()[0]


def _median_call(fn, args, sync, calls: int = 50) -> float:
    fn(*args)
    sync()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn(*args)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _torch_step(d, device: str):
    """PyTorch's SGD step of the same MLP on ``device``, or None where PyTorch cannot."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    dev = torch.device(device.replace("gpu", "cuda"))
    W1, b1, W2, b2 = (torch.tensor(d[k], device=dev, requires_grad=True)
                      for k in ("W1", "b1", "W2", "b2"))
    x, y = torch.tensor(d["x"], device=dev), torch.tensor(d["y"], device=dev).long()

    def step(x, y):
        logits = torch.relu(x @ W1 + b1) @ W2 + b2
        loss = torch.nn.functional.cross_entropy(logits, y)
        grads = torch.autograd.grad(loss, (W1, b1, W2, b2))
        with torch.no_grad():
            for w, g in zip((W1, b1, W2, b2), grads):
                w -= MLP_LR * g
        return loss
    return step, (x, y), torch.cuda.synchronize


def report(device: str = "cuda", out: TextIO | None = None):
    """Print the kernel plan of the MLP training step on ``device`` (and its measured time
    on a GPU); return the plan."""
    import theon
    from theon.backends.cuda.plan import kernel_plan
    out = out or sys.stdout
    rt, why = _runtime(device)
    theon.config.floatX = "float32"
    d = mlp_train_data()
    inputs, loss, updates = theon_mlp_train_graph(d)
    step = theon.function(inputs, loss, updates=updates)
    sizes = "-".join(map(str, MLP_SIZES))
    if why is None and theon.config.cuda.simulator:
        why = "cuda.simulator=True"  # (asked for: the runtime is the stand-in)
    where = "a GPU (CuPy)" if why is None else f"the CPU stand-in (no GPU: {why})"
    print(f"MLP {sizes} training step, batch {len(d['y'])}, float32, on {where}:", file=out)
    plan = kernel_plan(step, d["x"], d["y"])
    print(plan, file=out)
    if why is not None:
        return plan
    x, y = rt.to_device(d["x"]), rt.to_device(d["y"])
    t = _median_call(step, (x, y), rt.synchronize)
    print(f"measured: {t * 1e6:.1f} us a call (device arrays in; the plan predicted "
          f"{plan.predict() * 1e6:.1f} us)", file=out)
    torch_step = _torch_step(d, device)
    if torch_step is not None:
        fn, args, sync = torch_step
        tt = _median_call(fn, args, sync)
        print(f"PyTorch on the same device: {tt * 1e6:.1f} us a call; theon/PyTorch "
              f"{t / tt:.2f}", file=out)
    else:
        print("PyTorch with CUDA is not installed here: no comparison", file=out)
    return plan
