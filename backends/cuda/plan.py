"""The kernel plan of a compiled device function: what one call launches and moves.

``kernel_plan(f, *args)`` runs ``f`` once on ``args`` while the device backend records each
launch (the kernel, its grid and block, the bytes it reads and writes, its arithmetic), each
product, each host-device transfer, and restores the shared values the call updated, so the
plan has no side effect. ``KernelPlan.minimum_bytes`` is what the math cannot avoid moving
with the products done by a library (cuBLAS): each product reads its operands and writes its
result, once per product (a library product fuses with nothing, so two products reading one
array read it twice, and a product's result reaches memory); every elementwise step could be
fused into its neighbours, so the arguments, shared values, outputs and updates that no
product reads or writes count once each (read once, written once), and nothing else does.
Arrays are told apart by their addresses, so a weight updated in place is read once and
written once.
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
    # address -> [bytes, read, written] of the arguments, shared values, outputs, updates
    essential: dict[int, list] = field(default_factory=dict)
    # what the products read and write, each product counted (module docstring)
    product_bytes: int = 0
    # the addresses of arrays some product read or wrote (their traffic is counted there)
    in_products: set[int] = field(default_factory=set)

    @property
    def minimum_bytes(self) -> int:
        return self.product_bytes + sum(
            n * (int(read) + int(written)) for address, (n, read, written) in
            self.essential.items() if address not in self.in_products)

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
                    f"minimum of {self.minimum_bytes:,} (each product's operands and result, the "
                    "other arguments, outputs, shared values and updates once each)")
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


def _address(a: Any) -> int:
    data = getattr(a, "data", None)
    ptr = getattr(data, "ptr", None)  # a device array (cupy's MemoryPointer, the stand-in's)
    if ptr is None and hasattr(a, "ctypes"):
        ptr = a.ctypes.data
    return int(ptr) if ptr is not None else id(a)


def product(read: Sequence[Any], written: Sequence[Any]) -> None:
    """Count a library product in the plan's minimum: it reads ``read`` and writes
    ``written``, whatever else reads or writes them."""
    plan = _RECORDING[0]
    if plan is not None:
        plan.product_bytes += nbytes(read) + nbytes(written)
        plan.in_products.update(_address(a) for a in (*read, *written))


def touch(arrays: Sequence[Any], read: bool = True, written: bool = False) -> None:
    """Count ``arrays`` in the plan's minimum: each distinct array read once and written
    once at most."""
    plan = _RECORDING[0]
    if plan is not None:
        for a in arrays:
            if hasattr(a, "nbytes"):
                entry = plan.essential.setdefault(_address(a), [int(a.nbytes), False, False])
                entry[1] |= read
                entry[2] |= written


def nbytes(arrays: Sequence[Any]) -> int:
    """The bytes of distinct arrays' memory (a broadcast operand counts its own size)."""
    return sum(int(a.nbytes) for a in arrays if hasattr(a, "nbytes"))


def kernel_plan(f: Callable, *args: Any) -> KernelPlan:
    """Run the compiled device function ``f`` on ``args`` and return the plan of a call as
    every call after the first makes it (a first call unrecorded, then the recorded one: the
    first also compiles the kernels and sends the host values that stay the same, such as a
    mean's ``1/n``, which later calls reuse); shared values the calls update are put back as
    they were."""
    fn = getattr(f, "fn", f)
    if not hasattr(fn, "shared_containers"):
        raise TypeError("kernel_plan needs a function compiled for a device (device=cuda)")
    containers = list(fn.shared_containers) + list(fn.update_containers)
    saved = [c[0] for c in containers]
    # an update may be written into its shared value's own buffer: keep the contents too
    contents = [v.copy() if hasattr(v, "copy") else v for v in saved]

    def restore() -> None:
        for c, value, content in zip(containers, saved, contents):
            if value is not content:
                value[...] = content
            c[0] = value

    try:
        f(*args)
    finally:
        restore()
    plan = KernelPlan()
    _RECORDING[0] = plan
    try:
        touch([c[0] for c in fn.shared_containers])
        f(*args)  # (arguments and outputs are counted where they cross: see the backend)
        touch([c[0] for c in fn.update_containers], read=False, written=True)
    finally:
        _RECORDING[0] = None
        restore()
    return plan
