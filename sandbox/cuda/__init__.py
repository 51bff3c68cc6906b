"""``theano.sandbox.cuda``, Theano's old GPU back-end, as it looked on a machine without CUDA:
importable, ``cuda_available`` and ``cuda_enabled`` false, and ``use('gpu')`` logging that no
GPU is used (raising with ``force=True``), so that programs which probe for a GPU run on the
CPU. theon has no CUDA device back-end yet (the GPU issue gives it one)."""
from __future__ import annotations

import logging

_logger = logging.getLogger("theano.sandbox.cuda")

cuda_available = False
cuda_enabled = False
cuda_initialization_error_message = (
    "theon has no CUDA device back-end yet: computations run on the CPU")


def use(device: str, force: bool = False, default_to_move_computation_to_gpu: bool = True,
        move_shared_float32_to_gpu: bool = True, enable_cuda: bool = True,
        test_driver: bool = True) -> None:
    """Select a GPU: without one, ``device='gpu...'`` logs an error and leaves the CPU in use,
    or raises EnvironmentError with ``force=True``, as Theano did without CUDA."""
    if not str(device).startswith("gpu"):
        return
    if force:
        raise OSError(f"You forced the use of gpu device '{device}', but CUDA initialization "
                      f"failed with error:\n{cuda_initialization_error_message}")
    _logger.error("ERROR (theano.sandbox.cuda): Not using GPU. Initialisation of device %s "
                  "failed:\n%s", device, cuda_initialization_error_message)


def unuse() -> None:
    """Nothing to release: no GPU is ever in use."""
