"""``theano.gpuarray``, Theano's GPU back-end, as it looked on a machine without pygpu:
importable, ``pygpu`` None and ``pygpu_activated`` false; ``use('cuda')`` and ``init_dev``
raise, as Theano's did there. theon has no GPU device back-end yet (the GPU issue gives it
one)."""
from __future__ import annotations

pygpu = None
pygpu_activated = False
theano_gpu_is_already_active = False

_NO_GPU = ("theon has no GPU back-end yet (pygpu is not available): computations run on the "
           "CPU")


class ContextNotDefined(ValueError):
    """Raised for a GPU context name that was never initialised (here: every name)."""


def init_dev(dev: str, name: str | None = None, preallocate=None) -> None:
    """Initialise a GPU device: impossible here, so it raises, naming the device."""
    raise RuntimeError(f"Could not initialise GPU device {dev!r}: {_NO_GPU}")


def get_context(name=None):
    """The GPU context of ``name``: none exists."""
    raise ContextNotDefined(f"context name {name!r} not defined: {_NO_GPU}")


def use(device: str, force: bool = False, default_to_move_computation_to_gpu: bool = True,
        move_shared_to_gpu: bool = True, preallocate=None) -> None:
    """Select a GPU device as Theano did: ``force`` with a device that is not 'cuda...' or
    'opencl...' refuses it; any GPU device fails to initialise; '' does nothing."""
    if force and not (device.startswith("cuda") or device.startswith("opencl")):
        raise Exception("forced the init and bad device provided: " + device)  # noqa: TRY002
    if device:
        init_dev(device, preallocate=preallocate)
