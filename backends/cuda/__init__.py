"""The CUDA device: a runtime interface (``runtime.py``: CuPy on a GPU, ``simulator.py``: a
CPU stand-in that runs the same kernel text) and the backend that runs a compiled function's
graph on it (``backend.py``)."""
