"""The convolution cases: LeNet's two layers and a small ResNet's 3x3 layer, float32, forward
and forward with both gradients, against PyTorch's CPU convolution (where installed) and numpy
(``einsum`` over ``sliding_window_view``, the reference the others are checked against).

Every implementation computes the cross-correlation PyTorch computes (theon with
``filter_flip=False``; flipping only copies the small filter array). The gradient cases return
the output and the gradients of ``sum(y * dy)`` with respect to the input and the filters,
``dy`` a fixed array, so each implementation runs the same three convolutions.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from . import Bench, Case

# name: (batch, in channels, out channels, image side, kernel side, padding)
CONV_SIZES = {
    "lenet1": (64, 1, 20, 28, 5, 0),
    "lenet2": (64, 20, 50, 12, 5, 0),
    "resnet": (32, 64, 64, 32, 3, 1),
}
CONV_RTOL, CONV_ATOL = 1e-3, 1e-2  # float32 sums of up to 576 (forward) or 32k (dW, values
# up to ~800, where PyTorch and numpy differ by 3e-3) terms


def conv_data(batch: int, cin: int, cout: int, side: int, k: int, pad: int,
              seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = side + 2 * pad - k + 1
    return {"x": rng.normal(size=(batch, cin, side, side)).astype("float32"),
            "w": (rng.normal(size=(cout, cin, k, k)) / np.sqrt(cin * k * k)).astype("float32"),
            "dy": rng.normal(size=(batch, cout, out, out)).astype("float32"), "pad": pad}


def _args(d) -> tuple:
    return d["x"], d["w"]


# -- numpy: the reference ------------------------------------------------------------------------

def _windows(a: np.ndarray, k: int, pad: int) -> np.ndarray:
    if pad:
        a = np.pad(a, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    return np.lib.stride_tricks.sliding_window_view(a, (k, k), axis=(2, 3))


def numpy_conv_forward(x: np.ndarray, w: np.ndarray, pad: int) -> np.ndarray:
    return np.einsum("nchwij,ocij->nohw", _windows(x, w.shape[2], pad), w, optimize=True)


def numpy_conv_grads(x: np.ndarray, w: np.ndarray, dy: np.ndarray, pad: int) -> list:
    """The output, d sum(y * dy) / dx (a full correlation of dy with the flipped filters,
    cropped by the padding) and / dw."""
    k = w.shape[2]
    y = numpy_conv_forward(x, w, pad)
    gw = np.einsum("nohw,nchwij->ocij", dy, _windows(x, k, pad), optimize=True)
    gx = np.einsum("nohwij,ocij->nchw", _windows(dy, k, k - 1 - pad), w[:, :, ::-1, ::-1],
                   optimize=True)
    return [y, gx, gw]


def numpy_forward(d):
    return Bench(partial(numpy_conv_forward, pad=d["pad"]), _args(d))


def numpy_grads(d):
    return Bench(partial(numpy_conv_grads, dy=d["dy"], pad=d["pad"]), _args(d))


# -- theon ---------------------------------------------------------------------------------------

def _theon_graph(d, grads: bool):
    import theon as theano
    import theon.tensor as T
    x, w = T.ftensor4("x"), T.ftensor4("w")
    y = T.nnet.conv2d(x, w, input_shape=d["x"].shape, filter_shape=d["w"].shape,
                      border_mode=d["pad"], filter_flip=False)
    if not grads:
        return theano.function([x, w], y)
    dy = theano.shared(d["dy"], name="dy")
    return theano.function([x, w], [y] + T.grad((y * dy).sum(), [x, w]))


def theon_forward(d):
    return Bench(_theon_graph(d, False), _args(d))


def theon_grads(d):
    return Bench(_theon_graph(d, True), _args(d))


# -- PyTorch -------------------------------------------------------------------------------------

def torch_forward(d):
    import torch
    x, w = (torch.from_numpy(a) for a in _args(d))
    pad = d["pad"]

    def forward():
        with torch.no_grad():
            return torch.nn.functional.conv2d(x, w, padding=pad)
    return Bench(forward, result=lambda t: t.numpy())


def torch_grads(d):
    import torch
    x, w = (torch.from_numpy(a.copy()).requires_grad_() for a in _args(d))
    dy, pad = torch.from_numpy(d["dy"]), d["pad"]

    def step():
        x.grad = w.grad = None
        y = torch.nn.functional.conv2d(x, w, padding=pad)
        y.backward(dy)
        return [y.detach(), x.grad, w.grad]
    return Bench(step, result=lambda ts: [t.numpy() for t in ts])


def _cases() -> list:
    out = []
    for name, size in CONV_SIZES.items():
        batch, cin, cout, side, k, pad = size
        what = (f"conv2d {name}: batch {batch}, {cin}->{cout} channels, {side}x{side}, {k}x{k}"
                f"{f' pad {pad}' if pad else ''}, float32")
        setup = partial(conv_data, *size)
        out.append(Case(f"conv_{name}_forward", f"{what}, forward; numpy: einsum over "
                        "sliding_window_view", setup, theon_forward, numpy_forward,
                        rtol=CONV_RTOL, atol=CONV_ATOL, torch=torch_forward))
        out.append(Case(f"conv_{name}_grads", f"{what}, output and the gradients of "
                        "sum(y * dy) w.r.t. input and filters", setup, theon_grads,
                        numpy_grads, rtol=CONV_RTOL, atol=CONV_ATOL, torch=torch_grads))
    return out


CONV_CASES = _cases()
