"""The kernel plan of a compiled device function: what one call launches and moves.

``kernel_plan(f, *args)`` runs ``f`` once on ``args`` while the device backend records each
launch (the kernel, its grid and block, the bytes it reads and writes, its arithmetic), each
product, each host-device transfer, and restores the shared values the call updated, so the
plan has no side effect. ``KernelPlan.minimum_bytes`` is what the math cannot avoid moving:
the arguments, the shared values read, the outputs and the updated values once each
(``io_bytes``), and each matrix product's operands and result (``product_bytes``: a product
cannot be fused away; every elementwise step could be, into a product's prologue or
epilogue or into its neighbours).
``predict`` turns the plan into a time on a GPU of given bandwidth and launch cost.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: H200's memory bandwidth (bytes/s) and a kernel launch's cost on the host (seconds), as a
#: CUDA stream issues them back to back
H200_BANDWIDTH = 4.8e12
LAUNCH_SECONDS = 4e-6


@dataclass(frozen=True)
class Launch:
    """One kernel launch (``kind``: 'kernel' for generated code, 'matmul' for cuBLAS,
    'array' for the array library's own kernels: copies, fills, scatter-adds)."""

    kind: str
    name: str
    grid: int
    block: int
    bytes: int
    flops: int


@dataclass(frozen=True)
class Transfer:
    """One copy between host and device: ``to`` is 'device' or 'host'; ``what`` says which
    value (an argument, an output, a host scalar feeding a kernel, a host op's operand)."""

    to: str
    bytes: int
    what: str


@dataclass
class KernelPlan:
    """The launches and transfers of one call, in order."""

    launches: list[Launch] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    io_bytes: int = 0

    @property
    def product_bytes(self) -> int:
        return sum(launch.bytes for launch in self.launches if launch.kind == "matmul")

    @property
    def minimum_bytes(self) -> int:
        return self.io_bytes + self.product_bytes

    @property
    def device_bytes(self) -> int:
        """Bytes the launches read and write in device memory."""
        return sum(launch.bytes for launch in self.launches)

    @property
    def transfer_bytes(self) -> int:
        return sum(t.bytes for t in self.transfers)

    def predict(self, bandwidth: float = H200_BANDWIDTH,
                launch_seconds: float = LAUNCH_SECONDS) -> float:
        """Seconds a call takes on a GPU bound by memory bandwidth and launch cost (transfers
        over PCIe/NVLink not included: see ``transfers``)."""
        return self.device_bytes / bandwidth + len(self.launches) * launch_seconds

    def __str__(self) -> str:
        rows = [f"{'#':>3}  {'kind':<6} {'kernel':<34} {'grid':>7} {'block':>5} "
                f"{'bytes':>11} {'flops':>11}"]
        for k, launch in enumerate(self.launches):
            rows.append(f"{k:>3}  {launch.kind:<6} {launch.name[:34]:<34} {launch.grid:>7} "
                        f"{launch.block:>5} {launch.bytes:>11,} {launch.flops:>11,}")
        rows.append(f"{len(self.launches)} launches, {self.device_bytes:,} bytes moved in "
                    f"device memory, {self.device_bytes / max(self.minimum_bytes, 1):.2f}x the "
                    f"minimum of {self.minimum_bytes:,} (inputs, outputs and updates once: "
                    f"{self.io_bytes:,}; the products' operands and results: "
                    f"{self.product_bytes:,})")
        if self.transfers:
            rows.append(f"{len(self.transfers)} host-device transfers, "
                        f"{self.transfer_bytes:,} bytes:")
            rows += [f"     to the {t.to}: {t.bytes:,} bytes ({t.what})" for t in self.transfers]
        else:
            rows.append("no host-device transfer")
        rows.append(f"predicted on an H200 ({H200_BANDWIDTH / 1e12:.1f} TB/s, "
                    f"{LAUNCH_SECONDS * 1e6:.0f} us a launch): {self.predict() * 1e6:.1f} us")
        return "\n".join(rows)


_RECORDING: list[KernelPlan | None] = [None]


def recording() -> KernelPlan | None:
    """The plan being recorded, or None (the common case: one list lookup per launch)."""
    return _RECORDING[0]


def launch(kind: str, name: str, grid: int, block: int, nbytes: int, flops: int) -> None:
    plan = _RECORDING[0]
    if plan is not None:
        plan.launches.append(Launch(kind, name, int(grid), int(block), int(nbytes),
                                    int(flops)))


def transfer(to: str, nbytes: int, what: str) -> None:
    plan = _RECORDING[0]
    if plan is not None:
        plan.transfers.append(Transfer(to, int(nbytes), what))


def nbytes(arrays: Sequence[Any]) -> int:
    """The bytes of distinct arrays' memory (a broadcast operand counts its own size)."""
    return sum(int(a.nbytes) for a in arrays if hasattr(a, "nbytes"))


def kernel_plan(f: Callable, *args: Any) -> KernelPlan:
    """Run the compiled device function ``f`` once on ``args`` and return its plan; shared
    values the call updates are put back as they were."""
    fn = getattr(f, "fn", f)
    if not hasattr(fn, "shared_containers"):
        raise TypeError("kernel_plan needs a function compiled for a device (device=cuda)")
    containers = list(fn.shared_containers) + list(fn.update_containers)
    saved = [c[0] for c in containers]
    plan = KernelPlan()
    _RECORDING[0] = plan
    try:
        results = f(*args)
    finally:
        _RECORDING[0] = None
        updated = [c[0] for c in fn.update_containers]
        for c, value in zip(containers, saved):
            c[0] = value
    outs = results.values() if isinstance(results, dict) else \
        results if isinstance(results, (list, tuple)) else [results]
    plan.io_bytes = (nbytes(args) + nbytes([c[0] for c in fn.shared_containers]) +
                     nbytes(list(outs)) + nbytes(updated))
    return plan
