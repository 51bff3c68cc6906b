"""The NVRTC gate over every device module a test run built on the CPU stand-in.

A run on the stand-in with ``THEON_CUDA_SIMULATOR_SOURCES=DIR`` writes the CUDA text of each
module it builds into DIR (one file per distinct text); then
``python -m tests.backends.cuda.nvrtc_gate DIR`` compiles each with NVRTC (the pinned wheel of
the test extra) for sm_80 and sm_90 and checks what the per-test gates check (an empty log but
for ptxas's resource report, no spill, no stack frame): every kernel the suite made for the
device, not only the ones the gate tests build. It exits 1 naming each failing module (and
its first lines), 0 when all pass; 2 when NVRTC cannot be loaded."""
from __future__ import annotations

import concurrent.futures
import sys
import time
from pathlib import Path

from tests.backends.cuda_cpu import harness


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.backends.cuda.nvrtc_gate DIR", file=sys.stderr)
        return 2
    nvrtc = harness.nvrtc()
    if isinstance(nvrtc, str):
        print(f"nvrtc gate: {nvrtc}", file=sys.stderr)
        return 2
    sources = sorted(Path(argv[0]).glob("*.cu"))
    jobs = [(path, arch) for path in sources for arch in harness.GATE_ARCHS]
    start = time.perf_counter()

    def one(job):
        path, arch = job
        return path, harness.gate_problem(nvrtc, path.read_text(encoding="utf-8"), arch)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # (ctypes lets NVRTC run in parallel)
        failed = [(path, problem) for path, problem in pool.map(one, jobs) if problem]
    for path, problem in failed:
        head = "\n".join(path.read_text(encoding="utf-8").splitlines()[:12])
        print(f"nvrtc gate: {path.name} {problem[:3000]}\n  its first lines:\n{head}\n",
              file=sys.stderr)
    print(f"nvrtc gate: {len(sources)} device modules, {len(jobs)} compiles "
          f"({', '.join(harness.GATE_ARCHS)}), {len(failed)} failed, "
          f"{time.perf_counter() - start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
