"""Effective receptive field (Luo et al., "Understanding the Effective Receptive Field in Deep Convolutional Neural
Networks", NeurIPS 2016): the exact gradient of one output pixel with respect to the input, by this project's own
NumPy forward and backward passes, measured per axis.

The network is walked (skills.walk); the records that feed the probed layer become ops in topological order, joined
through `rec.srcs` (residual and concat blocks, graph add / mul / concat). The forward pass keeps only what the
backward pass needs (a ReLU's input, a max pool's argmax); the backward pass starts from a one-hot gradient at the
probed pixel (ones across the channels: the gradient of the channel sum there; or one channel) and runs to the input.
A network that is linear in its input (no activation, max pool or mul on the path) has the same gradient for every
input, so its forward pass is skipped.

Convolutions of every dimensionality run as 2-D ones through skills.conv: the forward pass is its im2col GEMM, the
input gradient its col2im scatter of weight^T @ grad_output (the weight gradient, which the ERF does not need, is not
computed). A 1-D conv is a 2-D one with H = 1; a 3-D conv a sum over the kernel's depth taps of 2-D convs over the
batch of depth slices those taps read. A transposed conv is the same two routines the other way round.

The ERF map is sum over input channels of |gradient|, averaged over `samples` draws (Luo et al. average gradient
magnitudes over random inputs and weight draws); the per-axis measures are taken on the map's marginals. Arithmetic is
float64 throughout, so the gradient matches torch autograd in float64 to rounding.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from math import prod
from typing import Any

import numpy as np

from .arithmetic import resolve_conv_padding
from .conv import NP_PAD_MODE, _scatter_columns, as_array, conv2d_job, conv_geometry
from .erf_report import ErfReport, GradientSummary
from .errors import GeometryError, LimitError, SpecError
from .layers import Rec, axes
from .rf import AXIS_NAMES
from .rf import fields as rf_fields
from .spec import (
    ELU,
    GELU,
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    Add,
    AvgPool,
    BatchNorm,
    Cat,
    Concat,
    Conv,
    ConvTranspose,
    Dropout,
    Hardtanh,
    Inplace,
    LeakyReLU,
    MaxPool,
    Mul,
    Pad,
    Plain,
    PReLU,
    Residual,
    Softplus,
    short,
)
from .walk import Walked, walk

WEIGHTS = ("uniform", "random")
SUPPORTED = (
    "conv1d/2d/3d, convtranspose1d/2d/3d, maxpool, avgpool, adaptiveavgpool, adaptivemaxpool (1d/2d/3d), the padding "
    "layers, batchnorm (running statistics, eval mode), the activations (relu, relu6, leakyrelu, gelu, silu, elu, "
    "selu, celu, mish, sigmoid, tanh, hardswish, hardsigmoid, hardtanh, softplus, softsign, tanhshrink, prelu), "
    "dropout and identity (eval mode: the identity), residual and concat blocks, graph add / mul / concat"
)


# ---------------------------------------------------------------------------------------------------------------
# Convolution: every dimensionality through skills.conv's 2-D engine


def _lift(a: np.ndarray, nd: int, lead: int) -> np.ndarray:
    """[*lead, *spatial] with nd spatial axes -> [*lead, D, H, W] (size-1 axes in front)."""
    return a.reshape(a.shape[:lead] + (1,) * (3 - nd) + a.shape[lead:])


def _conv3(xp: np.ndarray, w: np.ndarray, s, d, groups: int) -> Iterator[None]:
    """Valid conv of a padded [C, D, H, W] with w [C_out, C/groups, kD, kH, kW] (no bias): [C_out, D', H', W'].

    One batched 2-D conv per depth tap: the tap's depth slices are the batch."""
    kd = w.shape[2]
    depth = (xp.shape[1] - d[0] * (kd - 1) - 1) // s[0] + 1
    y = None
    for t in range(kd):
        start = t * d[0]
        batch = np.ascontiguousarray(xp[:, start : start + s[0] * (depth - 1) + 1 : s[0]].transpose(1, 0, 2, 3))
        job = conv2d_job(batch, np.ascontiguousarray(w[:, :, t]), None, s[1:], 0, d[1:], groups)
        while job.step():
            yield
        out = job.result()  # [D', C_out, H', W']
        if y is None:
            y = out
        else:
            y += out
    return np.ascontiguousarray(y.transpose(1, 0, 2, 3))


def _conv2d_dx(go: np.ndarray, w: np.ndarray, s, d, groups: int, x_shape: tuple) -> Iterator[None]:
    """Input gradient of a valid 2-D conv: go [N, C_out, H', W'] -> [N, C, H, W] (x_shape), by col2im.

    Per image and row block: dcolumns = weight^T @ grad_output, scattered into the image (overlaps summed)."""
    geom = conv_geometry(x_shape, w.shape, s, 0, d, groups)
    g, co_g = groups, w.shape[0] // groups
    k_g = geom.column_rows // g
    w_t = np.ascontiguousarray(w).reshape(g, co_g, k_g).transpose(0, 2, 1)
    out = np.zeros(x_shape)
    for n in range(x_shape[0]):
        for r0, r1 in geom.row_blocks:
            length = (r1 - r0) * geom.w_out
            grad = np.ascontiguousarray(go[n, :, r0:r1]).reshape(g, co_g, length)
            cols = np.matmul(w_t, grad).reshape(geom.c_in, geom.kh, geom.kw, r1 - r0, geom.w_out)
            _scatter_columns(cols, geom, r0, r1, out[n])
            yield
    return out


def _conv3_dx(go: np.ndarray, w: np.ndarray, s, d, groups: int, xp_shape: tuple) -> Iterator[None]:
    """Input gradient of _conv3: go [C_out, D', H', W'] -> [C, D, H, W] (the padded input's shape)."""
    kd = w.shape[2]
    depth = go.shape[1]
    batch = np.ascontiguousarray(go.transpose(1, 0, 2, 3))
    c, _, h, wd = xp_shape
    dxp = np.zeros(xp_shape)
    for t in range(kd):
        start = t * d[0]
        dslab = yield from _conv2d_dx(batch, np.ascontiguousarray(w[:, :, t]), s[1:], d[1:], groups, (depth, c, h, wd))
        dxp[:, start : start + s[0] * (depth - 1) + 1 : s[0]] += dslab.transpose(1, 0, 2, 3)
    return dxp


# ---------------------------------------------------------------------------------------------------------------
# Padding as index maps: the forward pass gathers, the backward pass scatters back (reflect, replicate, circular)


def _pad_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each padded position along one axis, the input index it copies (-1: the constant)."""
    idx = np.arange(n)
    if before < 0:
        idx, before = idx[-before:], 0
    if after < 0:
        idx, after = idx[: len(idx) + after], 0
    if mode == "zeros":
        return np.concatenate([np.full(before, -1), idx, np.full(after, -1)])
    return np.pad(idx, (before, after), mode=NP_PAD_MODE[mode])


class _Padder:
    """Pads [C, *spatial] per axis (before, after; negative crops) in a PyTorch padding mode, and its adjoint."""

    def __init__(self, sp: tuple, before: tuple, after: tuple, mode: str, value: float = 0.0):
        self.sp, self.value = sp, value
        self.plain = mode == "zeros" and min(before + after) >= 0
        self.out = tuple(n + b + a for n, b, a in zip(sp, before, after, strict=True))
        self.inside = (slice(None),) + tuple(slice(b, b + n) for n, b in zip(sp, before, strict=True))
        self.index = [_pad_index(n, b, a, mode) for n, b, a in zip(sp, before, after, strict=True)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.plain:
            y = np.full((x.shape[0], *self.out), self.value)
            y[self.inside] = x
            return y
        y = x
        for a, idx in enumerate(self.index):
            y = np.take(y, np.maximum(idx, 0), axis=a + 1)
        for a, idx in enumerate(self.index):
            if (idx < 0).any():
                y[(slice(None),) * (a + 1) + (idx < 0,)] = self.value
        return y

    def backward(self, g: np.ndarray) -> np.ndarray:
        if self.plain:
            return g[self.inside].copy()
        for a, idx in enumerate(self.index):
            keep = idx >= 0
            shape = list(g.shape)
            shape[a + 1] = self.sp[a]
            gx = np.zeros(shape)
            np.add.at(gx, (slice(None),) * (a + 1) + (idx[keep],), np.compress(keep, g, axis=a + 1))
            g = gx
        return g


# ---------------------------------------------------------------------------------------------------------------
# Ops: one per layer family. forward(xs, p) -> (y, saved); backward(g, saved, p) -> one gradient per source.
# Convolutions step (they yield between chunks); the others return at once.


class Op:
    needs_input = False  # the backward pass reads forward values: the gradient depends on the input
    chunked = False

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def init(self, weights: str, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
        return {}

    def forward(self, xs: list[np.ndarray], p: dict) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def backward(self, g: np.ndarray, saved: Any, p: dict) -> list[np.ndarray | None]:
        raise NotImplementedError

    def forward_steps(self, xs, p):
        return self.forward(xs, p)
        yield  # a generator: convolutions override these with ones that yield between chunks

    def backward_steps(self, g, saved, p):
        return self.backward(g, saved, p)
        yield


def _uniform_bound(rng: np.random.Generator, bound: float, shape: tuple) -> np.ndarray:
    return rng.uniform(-bound, bound, size=shape)


class ConvOp(Op):
    """nn.Conv1d/2d/3d: weight [C_out, C_in/groups, *k], PyTorch's padding modes."""

    chunked = True

    def __init__(self, layer: Conv, x, y, nd: int):
        k, s, d = axes(layer.kernel_size, nd), axes(layer.stride, nd), axes(layer.dilation, nd)
        if layer.pads is not None:  # ONNX's per-side pads: the same convolution, padded unevenly
            before, after = tuple(layer.pads[:nd]), tuple(layer.pads[nd:])
        else:
            before, after = resolve_conv_padding(layer.padding, k, s, d)
        self.nd, self.groups, self.bias = nd, layer.groups, layer.bias
        self.cin, self.cout, self.k = x.c, layer.out_channels, k
        self.s3, self.d3 = (1,) * (3 - nd) + s, (1,) * (3 - nd) + d
        self.pad = _Padder(x.sp, before, after, layer.padding_mode)
        self.padded = (x.c, *self.pad.out)

    def shapes(self):
        shapes = {"weight": (self.cout, self.cin // self.groups, *self.k)}
        if self.bias:
            shapes["bias"] = (self.cout,)
        return shapes

    def init(self, weights, rng):
        shapes = self.shapes()
        if weights == "uniform":
            return {name: np.ones(shape) if name == "weight" else np.zeros(shape) for name, shape in shapes.items()}
        bound = 1 / math.sqrt(self.fan_in)  # kaiming_uniform_(a=sqrt(5)) and the bias rule of nn.ConvNd.reset_parameters
        return {name: _uniform_bound(rng, bound, shape) for name, shape in shapes.items()}

    @property
    def fan_in(self) -> int:
        return self.cin // self.groups * prod(self.k)

    def forward_steps(self, xs, p):
        xp = _lift(self.pad.forward(xs[0]), self.nd, 1)
        y = yield from _conv3(xp, _lift(p["weight"], self.nd, 2), self.s3, self.d3, self.groups)
        if "bias" in p:
            y += p["bias"].reshape(-1, 1, 1, 1)
        return y.reshape(y.shape[:1] + y.shape[4 - self.nd :]), None

    def backward_steps(self, g, saved, p):
        lifted = (self.padded[0],) + (1,) * (3 - self.nd) + self.padded[1:]
        dxp = yield from _conv3_dx(_lift(g, self.nd, 1), _lift(p["weight"], self.nd, 2), self.s3, self.d3, self.groups, lifted)
        return [self.pad.backward(dxp.reshape(self.padded))]


class ConvTransposeOp(Op):
    """nn.ConvTranspose1d/2d/3d: weight [C_in, C_out/groups, *k]; the conv routines the other way round."""

    chunked = True

    def __init__(self, layer: ConvTranspose, x, y, nd: int):
        k, s, d = axes(layer.kernel_size, nd), axes(layer.stride, nd), axes(layer.dilation, nd)
        self.nd, self.groups, self.bias = nd, layer.groups, layer.bias
        self.cin, self.cout, self.k = x.c, layer.out_channels, k
        self.s3, self.d3 = (1,) * (3 - nd) + s, (1,) * (3 - nd) + d
        self.p = axes(layer.padding, nd)
        self.out = y.sp
        # the uncropped output (every tap of every input pixel), then out[o] = full[o + padding]
        self.full = tuple((n - 1) * si + di * (ki - 1) + 1 for n, si, di, ki in zip(x.sp, s, d, k, strict=True))
        self.window = tuple(slice(0, min(m, f - p)) for m, f, p in zip(self.out, self.full, self.p, strict=True))
        self.source = tuple(slice(p, p + w.stop) for p, w in zip(self.p, self.window, strict=True))

    def shapes(self):
        shapes = {"weight": (self.cin, self.cout // self.groups, *self.k)}
        if self.bias:
            shapes["bias"] = (self.cout,)
        return shapes

    def init(self, weights, rng):
        shapes = self.shapes()
        if weights == "uniform":
            return {name: np.ones(shape) if name == "weight" else np.zeros(shape) for name, shape in shapes.items()}
        # PyTorch's fan_in is weight.size(1) * kernel: C_out/groups * prod(k) for a transposed conv
        bound = 1 / math.sqrt(self.cout // self.groups * prod(self.k))
        return {name: _uniform_bound(rng, bound, shape) for name, shape in shapes.items()}

    def forward_steps(self, xs, p):
        full = (self.cout,) + (1,) * (3 - self.nd) + self.full
        w = _lift(p["weight"], self.nd, 2)
        yfull = yield from _conv3_dx(_lift(xs[0], self.nd, 1), w, self.s3, self.d3, self.groups, full)
        yfull = yfull.reshape((self.cout, *self.full))
        y = np.zeros((self.cout, *self.out))
        y[(slice(None),) + self.window] = yfull[(slice(None),) + self.source]
        if "bias" in p:
            y += p["bias"].reshape((-1,) + (1,) * self.nd)
        return y, None

    def backward_steps(self, g, saved, p):
        gfull = np.zeros((self.cout, *self.full))
        gfull[(slice(None),) + self.source] = g[(slice(None),) + self.window]
        dx = yield from _conv3(_lift(gfull, self.nd, 1), _lift(p["weight"], self.nd, 2), self.s3, self.d3, self.groups)
        return [dx.reshape((self.cin, *dx.shape[4 - self.nd :]))]


def _taps(k: tuple, s: tuple, d: tuple, out: tuple) -> list[tuple[slice, ...]]:
    """For each kernel tap (row-major, PyTorch's scan order), the slices of the padded map it reads for every output."""
    return [
        (slice(None),) + tuple(slice(t * di, t * di + si * (m - 1) + 1, si) for t, si, di, m in zip(tap, s, d, out, strict=True))
        for tap in np.ndindex(*k)
    ]


class _Window(Op):
    """A pooling window: padding p on both sides, plus what ceil_mode's last window needs on the right."""

    def __init__(self, layer, x, y, nd: int, dilated: bool):
        self.k = axes(layer.kernel_size, nd)
        self.s = axes(layer.stride, nd) if layer.stride is not None else self.k
        self.p = axes(layer.padding, nd)
        self.d = axes(layer.dilation, nd) if dilated else (1,) * nd
        self.n, self.out = x.sp, y.sp
        need = [(m - 1) * s + (k - 1) * d + 1 for m, s, k, d in zip(self.out, self.s, self.k, self.d, strict=True)]
        self.after = tuple(p + max(0, e - (n + 2 * p)) for p, e, n in zip(self.p, need, self.n, strict=True))
        self.widths = [(0, 0)] + list(zip(self.p, self.after, strict=True))
        self.taps = _taps(self.k, self.s, self.d, self.out)
        self.inside = (slice(None),) + tuple(slice(p, p + n) for p, n in zip(self.p, self.n, strict=True))


class MaxPoolOp(_Window):
    """nn.MaxPool1d/2d/3d: the gradient goes to each window's first maximum (PyTorch's tie rule)."""

    needs_input = True

    def __init__(self, layer: MaxPool, x, y, nd: int):
        super().__init__(layer, x, y, nd, dilated=True)

    def forward(self, xs, p):
        xp = np.pad(xs[0], self.widths, constant_values=-np.inf)
        best = xp[self.taps[0]].copy()
        arg = np.zeros(best.shape, dtype=np.int32)
        for i, tap in enumerate(self.taps[1:], start=1):
            v = xp[tap]
            better = (v > best) | np.isnan(v)
            best[better] = v[better]
            arg[better] = i
        return best, arg

    def backward(self, g, arg, p):
        dxp = np.zeros((g.shape[0], *(n + p + a for n, p, a in zip(self.n, self.p, self.after, strict=True))))
        for i, tap in enumerate(self.taps):
            view = dxp[tap]
            view += np.where(arg == i, g, 0.0)
        return [dxp[self.inside].copy()]


class AvgPoolOp(_Window):
    """nn.AvgPool1d/2d/3d with count_include_pad, ceil_mode and divisor_override, PyTorch's divisors exactly."""

    def __init__(self, layer: AvgPool, x, y, nd: int):
        super().__init__(layer, x, y, nd, dilated=False)
        sizes, counts = [], []
        for n, m, k, s, p in zip(self.n, self.out, self.k, self.s, self.p, strict=True):
            start = np.arange(m) * s - p
            end = np.minimum(start + k, n + p)  # a ceil_mode window is cut at the padded edge
            sizes.append(end - start)
            counts.append(np.minimum(end, n) - np.maximum(start, 0))
        if layer.divisor_override is not None:
            self.divisor = np.array(float(layer.divisor_override))
        else:
            per_axis = sizes if layer.count_include_pad else counts
            self.divisor = np.ones(())
            for v in per_axis:
                self.divisor = np.multiply.outer(self.divisor, v.astype(np.float64))

    def forward(self, xs, p):
        xp = np.pad(xs[0], self.widths)
        acc = xp[self.taps[0]].copy()
        for tap in self.taps[1:]:
            acc += xp[tap]
        return acc / self.divisor, None

    def backward(self, g, saved, p):
        gd = g / self.divisor
        dxp = np.zeros((g.shape[0], *(n + p + a for n, p, a in zip(self.n, self.p, self.after, strict=True))))
        for tap in self.taps:
            view = dxp[tap]
            view += gd
        return [dxp[self.inside].copy()]


def _adaptive_windows(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's adaptive windows along one axis: output i reads floor(i*n/m) .. ceil((i+1)*n/m) - 1."""
    i = np.arange(m)
    return (i * n) // m, -((-(i + 1) * n) // m)


class AdaptiveAvgOp(Op):
    """nn.AdaptiveAvgPool1d/2d/3d: one averaging matrix per axis (the windows are separable)."""

    def __init__(self, layer, x, y, nd: int):
        self.mats = []
        for n, m in zip(x.sp, y.sp, strict=True):
            start, end = _adaptive_windows(n, m)
            a = np.zeros((m, n))
            for i in range(m):
                a[i, start[i] : end[i]] = 1.0 / (end[i] - start[i])
            self.mats.append(a)

    @staticmethod
    def _apply(v: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
        for a, mat in enumerate(mats):
            v = np.moveaxis(np.tensordot(mat, v, axes=([1], [a + 1])), 0, a + 1)
        return v

    def forward(self, xs, p):
        return self._apply(xs[0], self.mats), None

    def backward(self, g, saved, p):
        return [self._apply(g, [m.T for m in self.mats])]


class AdaptiveMaxOp(Op):
    """nn.AdaptiveMaxPool1d/2d/3d: the gradient goes to each window's first maximum (row-major scan, as PyTorch)."""

    needs_input = True

    def __init__(self, layer, x, y, nd: int):
        self.sp, self.out = x.sp, y.sp
        self.windows = [_adaptive_windows(n, m) for n, m in zip(x.sp, y.sp, strict=True)]

    def forward(self, xs, p):
        x = xs[0]
        c = x.shape[0]
        y = np.empty((c, *self.out))
        where = np.empty((c, *self.out), dtype=np.int64)
        rows = np.arange(c)
        for cell in np.ndindex(*self.out):
            box = tuple(slice(w[0][i], w[1][i]) for w, i in zip(self.windows, cell, strict=True))
            region = x[(slice(None),) + box]
            flat = region.reshape(c, -1)
            j = np.argmax(flat, axis=1)  # the first maximum; NaN counts as the maximum, as in PyTorch
            y[(slice(None),) + cell] = flat[rows, j]
            local = np.unravel_index(j, region.shape[1:])
            where[(slice(None),) + cell] = np.ravel_multi_index(
                tuple(v + b.start for v, b in zip(local, box, strict=True)), self.sp
            )
        return y, where

    def backward(self, g, where, p):
        c = g.shape[0]
        dx = np.zeros((c, prod(self.sp)))
        np.add.at(dx, (np.arange(c)[:, None], where.reshape(c, -1)), g.reshape(c, -1))
        return [dx.reshape((c, *self.sp))]


_PAD_MODES = {"zero": "zeros", "constant": "zeros", "reflection": "reflect", "replication": "replicate", "circular": "circular"}


class PadOp(Op):
    """The padding layers (zero, constant, reflection, replication, circular; 1d/2d/3d); negative padding crops."""

    def __init__(self, layer: Pad, x, y, nd: int):
        pd = layer.padding
        sides = (pd,) * (2 * nd) if isinstance(pd, int) else tuple(pd)
        before = tuple(sides[2 * (nd - 1 - i)] for i in range(nd))  # PyTorch lists the last axis first
        after = tuple(sides[2 * (nd - 1 - i) + 1] for i in range(nd))
        mode = _PAD_MODES[layer.type[: layer.type.index("pad")]]
        if mode != "zeros" and min(before + after) < 0:
            raise SpecError(f"{layer.type} with negative padding {list(sides)} is not supported by the ERF engine (crop with zeropad instead)")
        self.pad = _Padder(x.sp, before, after, mode, layer.value)

    def forward(self, xs, p):
        return self.pad.forward(xs[0]), None

    def backward(self, g, saved, p):
        return [self.pad.backward(g)]


class BatchNormOp(Op):
    """nn.BatchNorm1d/2d/3d in eval mode: (x - running_mean) / sqrt(running_var + eps) * weight + bias, per channel."""

    def __init__(self, layer: BatchNorm, x, y, nd: int):
        if not layer.track_running_stats:
            raise SpecError(
                "batchnorm with track_running_stats=false normalises with the batch's own statistics even in eval mode, so "
                "every output depends on every input pixel; the ERF engine supports running statistics only"
            )
        self.c, self.nd, self.eps = x.c, nd, layer.eps
        self.affine, self.has_bias = layer.affine, layer.affine and layer.bias

    def shapes(self):
        shapes = {}
        if self.affine:
            shapes["weight"] = (self.c,)
        if self.has_bias:
            shapes["bias"] = (self.c,)
        shapes["running_mean"] = (self.c,)
        shapes["running_var"] = (self.c,)
        return shapes

    def init(self, weights, rng):  # PyTorch's init for both: affine 1 / 0, running statistics 0 / 1
        return {name: np.zeros(shape) if name in ("bias", "running_mean") else np.ones(shape) for name, shape in self.shapes().items()}

    def _scale(self, p) -> np.ndarray:
        scale = 1.0 / np.sqrt(p["running_var"] + self.eps)
        if "weight" in p:
            scale = scale * p["weight"]
        return scale.reshape((-1,) + (1,) * self.nd)

    def forward(self, xs, p):
        shape = (-1,) + (1,) * self.nd
        y = (xs[0] - p["running_mean"].reshape(shape)) * self._scale(p)
        if "bias" in p:
            y += p["bias"].reshape(shape)
        return y, None

    def backward(self, g, saved, p):
        return [g * self._scale(p)]


def _erf(x: np.ndarray) -> np.ndarray:
    return np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


_SELU_SCALE, _SELU_ALPHA = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717
_SQRT_2_PI = math.sqrt(2.0 / math.pi)


def _activation(layer) -> tuple[Any, Any]:
    """(f, f') of an elementwise activation, with PyTorch's derivative at the kinks (relu'(0) = 0, ...)."""
    t = layer.type
    if t == "relu":
        return (lambda x: np.maximum(x, 0.0)), (lambda x: (x > 0).astype(np.float64))
    if t in ("relu6", "hardtanh"):
        lo, hi = (0.0, 6.0) if t == "relu6" else (layer.min_val, layer.max_val)
        return (lambda x: np.clip(x, lo, hi)), (lambda x: ((x > lo) & (x < hi)).astype(np.float64))
    if t == "leakyrelu":
        a = layer.negative_slope
        return (lambda x: np.where(x > 0, x, a * x)), (lambda x: np.where(x > 0, 1.0, a))
    if t == "gelu" and layer.approximate == "tanh":
        def f(x):
            return 0.5 * x * (1 + np.tanh(_SQRT_2_PI * (x + 0.044715 * x**3)))

        def df(x):
            th = np.tanh(_SQRT_2_PI * (x + 0.044715 * x**3))
            return 0.5 * (1 + th) + 0.5 * x * (1 - th**2) * _SQRT_2_PI * (1 + 3 * 0.044715 * x**2)

        return f, df
    if t == "gelu":
        def cdf(x):
            return 0.5 * (1 + _erf(x / math.sqrt(2.0)))

        return (lambda x: x * cdf(x)), (lambda x: cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))
    if t == "silu":
        return (lambda x: x * _sigmoid(x)), (lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x))))
    if t == "sigmoid":
        return _sigmoid, (lambda x: _sigmoid(x) * (1 - _sigmoid(x)))
    if t == "tanh":
        return np.tanh, (lambda x: 1 - np.tanh(x) ** 2)
    if t == "hardswish":
        return (lambda x: x * np.clip(x + 3, 0, 6) / 6), (lambda x: np.where(x < -3, 0.0, np.where(x <= 3, x / 3 + 0.5, 1.0)))
    if t == "hardsigmoid":
        return (lambda x: np.clip(x + 3, 0, 6) / 6), (lambda x: ((x > -3) & (x < 3)) / 6.0)
    if t in ("elu", "celu"):
        a = layer.alpha
        if t == "elu":
            return (lambda x: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))), (lambda x: np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0))))
        return (lambda x: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0) / a))), (lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0) / a)))
    if t == "selu":
        s, a = _SELU_SCALE, _SELU_ALPHA
        return (lambda x: s * np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))), (lambda x: s * np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0))))
    if t == "softplus":
        b, th = layer.beta, layer.threshold
        return (lambda x: np.where(b * x > th, x, np.logaddexp(0, b * x) / b)), (lambda x: np.where(b * x > th, 1.0, _sigmoid(b * x)))
    if t == "mish":
        def dmish(x):
            ts = np.tanh(np.logaddexp(0, x))
            return ts + x * _sigmoid(x) * (1 - ts**2)

        return (lambda x: x * np.tanh(np.logaddexp(0, x))), dmish
    if t == "softsign":
        return (lambda x: x / (1 + np.abs(x))), (lambda x: 1 / (1 + np.abs(x)) ** 2)
    if t == "tanhshrink":
        return (lambda x: x - np.tanh(x)), (lambda x: np.tanh(x) ** 2)
    return None, None


class ActivationOp(Op):
    """An elementwise activation: the backward pass multiplies by f'(x) at the forward input."""

    needs_input = True

    def __init__(self, layer):
        self.f, self.df = _activation(layer)

    def forward(self, xs, p):
        with np.errstate(over="ignore"):
            return self.f(xs[0]), xs[0]

    def backward(self, g, x, p):
        with np.errstate(over="ignore", invalid="ignore"):
            return [g * self.df(x)]


class IdentityOp(Op):
    """identity, and dropout in eval mode."""

    def forward(self, xs, p):
        return xs[0], None

    def backward(self, g, saved, p):
        return [g]


class PReLUOp(Op):
    """nn.PReLU: slope `weight` (1, or one per channel) for x <= 0; PyTorch's gradient at 0 is the slope."""

    needs_input = True

    def __init__(self, layer: PReLU, x, y, nd: int):
        self.k, self.init_value, self.nd = layer.num_parameters, layer.init, nd

    def shapes(self):
        return {"weight": (self.k,)}

    def init(self, weights, rng):
        return {"weight": np.full(self.k, self.init_value)}

    def _a(self, p):
        return p["weight"].reshape((-1,) + (1,) * self.nd)

    def forward(self, xs, p):
        x = xs[0]
        return np.where(x > 0, x, self._a(p) * x), x

    def backward(self, g, x, p):
        return [np.where(x > 0, g, self._a(p) * g)]


def _reduce(g: np.ndarray, shape: tuple) -> np.ndarray:
    """g summed over the axes a broadcast stretched from `shape`."""
    stretched = tuple(a for a, (m, n) in enumerate(zip(shape, g.shape, strict=True)) if m == 1 and n > 1)
    return g.sum(axis=stretched, keepdims=True) if stretched else g


class AddOp(Op):
    """residual (body + shortcut) and graph add: the gradient goes to every input (broadcast axes summed)."""

    def __init__(self, shapes: list[tuple]):
        self.shapes_in = shapes

    def forward(self, xs, p):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y, None

    def backward(self, g, saved, p):
        return [_reduce(g, s) for s in self.shapes_in]


class MulOp(Op):
    """graph mul: the gradient to each input is g times the product of the others."""

    needs_input = True

    def __init__(self, shapes: list[tuple]):
        self.shapes_in = shapes

    def forward(self, xs, p):
        y = xs[0]
        for x in xs[1:]:
            y = y * x
        return y, list(xs)

    def backward(self, g, xs, p):
        out = []
        for i, s in enumerate(self.shapes_in):
            gi = g
            for j, x in enumerate(xs):
                if j != i:
                    gi = gi * x
            out.append(_reduce(gi, s))
        return out


class CatOp(Op):
    """concat blocks (channels) and graph concat (along `dim`): the gradient is split back."""

    def __init__(self, axis: int, sizes: list[int]):
        self.axis, self.cuts = axis, list(np.cumsum(sizes)[:-1])

    def forward(self, xs, p):
        return np.concatenate(xs, axis=self.axis), None

    def backward(self, g, saved, p):
        return np.split(g, self.cuts, axis=self.axis)


_ACTIVATION_MODELS = (Inplace, Plain, LeakyReLU, GELU, ELU, Softplus, Hardtanh)


def _label(rec: Rec) -> str:
    return f"node {rec.name!r}" if rec.name is not None else f"layer {rec.path}"


def _shape(t) -> tuple[int, ...]:
    return (t.c, *t.sp)


def _op(rec: Rec, nd: int, input_t) -> Op:
    """The op of one record, or a SpecError that names the layer and what the ERF engine supports."""
    layer, x, y = rec.layer, rec.x, rec.y
    where = f"{_label(rec)} ({rec.type})"
    if y.flat or (x is not None and x.flat):
        raise SpecError(
            f"{where}: the ERF follows spatial maps only; a {rec.type} layer before the probed one mixes every pixel. "
            "Pick a probed layer before it with at_layer"
        )
    srcs_shapes = [_shape(input_t) if s is None else _shape(s.y) for s in rec.srcs]
    if getattr(layer, "convention", "pytorch") != "pytorch" or (getattr(layer, "pads", None) is not None and not isinstance(layer, Conv)):
        raise SpecError(
            f"{where}: the ERF engine computes PyTorch's windows; ONNX's per-side pads or pooling convention on a "
            f"{rec.type} is not supported by it (the receptive_field tool takes them)"
        )
    try:
        if isinstance(layer, Conv):
            return ConvOp(layer, x, y, nd)
        if isinstance(layer, ConvTranspose):
            return ConvTransposeOp(layer, x, y, nd)
        if isinstance(layer, MaxPool):
            return MaxPoolOp(layer, x, y, nd)
        if isinstance(layer, AvgPool):
            return AvgPoolOp(layer, x, y, nd)
        if isinstance(layer, AdaptiveAvgPool):
            return AdaptiveAvgOp(layer, x, y, nd)
        if isinstance(layer, AdaptiveMaxPool):
            return AdaptiveMaxOp(layer, x, y, nd)
        if isinstance(layer, Pad):
            return PadOp(layer, x, y, nd)
        if isinstance(layer, BatchNorm):
            return BatchNormOp(layer, x, y, nd)
        if isinstance(layer, PReLU):
            return PReLUOp(layer, x, y, nd)
        if isinstance(layer, Dropout) or rec.type == "identity":
            return IdentityOp()
        if isinstance(layer, _ACTIVATION_MODELS) and _activation(layer)[0] is not None:
            return ActivationOp(layer)
        if isinstance(layer, (Residual, Add)):
            return AddOp(srcs_shapes)
        if isinstance(layer, Mul):
            return MulOp(srcs_shapes)
        if isinstance(layer, Concat):
            return CatOp(0, [s[0] for s in srcs_shapes])
        if isinstance(layer, Cat):
            rank = 2 + nd  # PyTorch counts dims with the batch axis
            axis = layer.dim % rank
            if axis == 0:
                raise SpecError(f"{where}: concatenation along the batch axis (dim {layer.dim}) mixes images; the ERF engine does not follow it")
            return CatOp(axis - 1, [s[axis - 1] for s in srcs_shapes])
    except SpecError as exc:
        message = str(exc)
        raise SpecError(message if message.startswith(("layer ", "node ")) else f"{where}: {message}") from None
    raise SpecError(
        f"{where}: the ERF engine has no backward pass for {rec.type}. It supports {SUPPORTED}. "
        "The theoretical receptive field of any network is in the receptive_field tool"
    )


# ---------------------------------------------------------------------------------------------------------------
# The plan: the walk, the probed pixel, and the ops that feed it


class Node:
    __slots__ = ("rec", "op", "srcs")

    def __init__(self, rec: Rec, op: Op, srcs: tuple[int, ...]):
        self.rec, self.op, self.srcs = rec, op, srcs


def _ancestors(rec: Rec) -> set:
    seen, stack = {rec}, [rec]
    while stack:
        for s in stack.pop().srcs:
            if s is not None and s not in seen:
                seen.add(s)
                stack.append(s)
    return seen


def _probed(done: Walked, at_layer: Any, warnings: list[str]) -> Rec:
    """The record whose output pixel is probed: at_layer, else the output, else the last spatial layer before it."""
    out = done.out
    if out is None:
        raise SpecError("the network has no layers: the ERF of the identity is the probed pixel itself")
    if at_layer is None:
        if not out.y.flat:
            return out
        feeding = _ancestors(out)
        for r in reversed(done.order):
            if r in feeding and not r.y.flat and r.y.sp is not None:
                warnings.append(
                    f"the output {out.y.dims()} is flat ({_label(out)} is {out.type}): the ERF stops at the last layer "
                    f"with a spatial output, {_label(r)} ({r.type}) {r.y.dims()}, and is computed there (after flatten "
                    "every output sees the whole map); at_layer picks another"
                )
                return r
        raise SpecError(f"the network's output {out.y.dims()} is flat and no layer before it has a spatial map: there is no pixel to probe")
    if isinstance(at_layer, bool) or not isinstance(at_layer, (int, str)):
        raise GeometryError(f"at_layer must be a top-level layer index (int) or a path / node name (str), got {short(at_layer)}")
    if isinstance(at_layer, int):
        count = len(done.records)
        if not -count <= at_layer < count:
            raise GeometryError(f"at_layer {at_layer} is out of range: the network has {count} top-level layers (0..{count - 1})")
        rec = done.records[at_layer]
    else:
        found = [r for r in done.order if r.path == at_layer]
        if not found:
            near = difflib.get_close_matches(at_layer, [r.path for r in done.order], n=1)
            raise GeometryError(
                f"at_layer {short(at_layer)} names no layer" + (f"; did you mean {near[0]!r}?" if near else "")
                + " (top-level layers by index, block layers by path such as '4.body.1', graph nodes by name)"
            )
        rec = found[0]
    if rec.y.flat:
        raise GeometryError(f"at_layer {short(at_layer)} ({rec.type}) has a flat output {rec.y.dims()}: pick a layer with a spatial map")
    return rec


def _position(rec: Rec, position: Any) -> tuple[int, ...]:
    sp = rec.y.sp
    nd = len(sp)
    if position is None:
        return tuple(n // 2 for n in sp)
    what = {1: "[x]", 2: "[y, x]", 3: "[z, y, x]"}[nd]
    if not (isinstance(position, (list, tuple)) and len(position) == nd
            and all(isinstance(v, int) and not isinstance(v, bool) for v in position)):
        raise GeometryError(f"output_position must be {what} (one int per spatial axis of the output {rec.y.dims()}), got {short(position)}")
    if not all(0 <= p < n for p, n in zip(position, sp, strict=True)):
        ranges = " and ".join(f"{name} 0..{n - 1}" for name, n in zip(AXIS_NAMES[nd], sp, strict=True))
        raise GeometryError(
            f"output_position {list(position)} is outside the output: it is {'x'.join(map(str, sp))}, so the indices must be {ranges}"
        )
    return tuple(position)


def _limit(name: str, message: str) -> LimitError:
    err = LimitError(message)
    err.limit = name  # type: ignore[attr-defined]  # the server appends how to raise it
    return err


class Plan:
    """What one ERF computation runs: the ops feeding the probed layer in topological order (the probed one last),
    the probed pixel and channel, and the work it costs per sample."""

    def __init__(self, done: Walked, target: Rec, position: tuple, channel: int | None, warnings: list[str]):
        self.done, self.target, self.position, self.channel, self.warnings = done, target, position, channel, warnings
        self.input = done.input_shape
        self.nd = len(self.input.sp)
        feeding = _ancestors(target)
        recs = [r for r in done.order if r in feeding]
        index = {r: i for i, r in enumerate(recs)}
        self.nodes = [Node(r, _op(r, self.nd, self.input), tuple(-1 if s is None else index[s] for s in r.srcs)) for r in recs]
        self.needs_forward = any(n.op.needs_input for n in self.nodes)
        n = self.input.n or 1
        self.conv_macs = sum(node.rec.macs // n for node in self.nodes if node.op.chunked)
        self.macs_per_sample = self.conv_macs * (2 if self.needs_forward else 1)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return _shape(self.input)

    def check(self, max_elements: int | None) -> None:
        """Every map the passes hold (the input, each layer's output) within max_elements."""
        if max_elements is None:
            return
        for shape, what in [(self.x_shape, "the input")] + [(_shape(n.rec.y), f"{_label(n.rec)} ({n.rec.type})'s output") for n in self.nodes]:
            size = prod(shape)
            if size > max_elements:
                raise _limit("max_input_elements", f"the ERF holds {what} {list(shape)} with {size:,} elements, more than max_input_elements={max_elements:,}")

    def params(self, weights: str, rng: np.random.Generator | None) -> list[dict]:
        """Every op's parameters drawn in layer order ('random': weight then bias of each layer, from rng)."""
        return [node.op.init(weights, rng) for node in self.nodes]

    def given(self, state: dict, max_elements: int | None) -> tuple[list[dict], list[str]]:
        """Parameters from a state_dict-like mapping ('<layer path>.weight', ...); (params, notes on ignored keys)."""
        if not isinstance(state, dict):
            raise SpecError(f"weights must be 'uniform', 'random' or an object of arrays keyed like a state_dict, got {short(state)}")
        expected: dict[str, tuple[int, str, tuple]] = {}
        for i, node in enumerate(self.nodes):
            for name, shape in node.op.shapes().items():
                expected[f"{node.rec.path}.{name}"] = (i, name, shape)
        on_path = {node.rec.path for node in self.nodes}
        elsewhere = {r.path for r in self.done.order} - on_path
        missing = [k for k in expected if k not in state]
        if missing:
            shown = ", ".join(f"{k!r} {list(expected[k][2])}" for k in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise SpecError(
                f"weights is missing {shown}; give every parameter of the layers feeding the probed pixel, keyed as "
                "PyTorch's state_dict() names them ('<layer path>.weight', '.bias', '.running_mean', '.running_var')"
            )
        params: list[dict] = [{} for _ in self.nodes]
        ignored = []
        for key, value in state.items():
            if not isinstance(key, str):
                raise SpecError(f"weights keys must be strings like '0.weight', got {short(key)}")
            if key in expected:
                i, name, shape = expected[key]
                arr = as_array(value, f"weights[{key!r}]", (len(shape),), np.float64)
                if max_elements is not None and arr.size > max_elements:
                    raise _limit("max_input_elements", f"weights[{key!r}] has {arr.size:,} elements, more than max_input_elements={max_elements:,}")
                if arr.shape != shape:
                    raise SpecError(f"weights[{key!r}] has shape {list(arr.shape)} but {_label(self.nodes[i].rec)} ({self.nodes[i].rec.type}) needs {list(shape)}")
                params[i][name] = arr
                continue
            prefix, _, suffix = key.rpartition(".")
            if suffix == "num_batches_tracked" or prefix in elsewhere:
                ignored.append(key)
                continue
            near = difflib.get_close_matches(key, list(expected), n=1)
            raise SpecError(
                f"weights key {short(key)} names no parameter of this network" + (f"; did you mean {near[0]!r}?" if near else "")
                + f" (expected keys: {', '.join(list(expected)[:8])}{', ...' if len(expected) > 8 else ''})"
            )
        notes = []
        unused = [k for k in ignored if not k.endswith("num_batches_tracked")]
        if unused:
            notes.append(f"weights keys of layers that do not feed the probed pixel were ignored: {', '.join(unused[:5])}" + (" ..." if len(unused) > 5 else ""))
        return params, notes

    def gradient(self, params: list[dict], x: np.ndarray | None, tick=None) -> Iterator[None]:
        """d(probe)/d(input) [C, *spatial] for one input x (None: only when the network is linear in its input).

        A generator: it yields between chunks and returns the gradient; tick() is called after every op."""
        nodes = self.nodes
        saved: list[Any] = [None] * len(nodes)
        if self.needs_forward:
            if x is None:
                raise AssertionError("internal: a forward pass needs an input")
            left = [0] * len(nodes)  # consumers still to run, so forward values are dropped once read
            for node in nodes:
                for s in node.srcs:
                    if s >= 0:
                        left[s] += 1
            values: dict[int, np.ndarray] = {}
            for i, node in enumerate(nodes):
                xs = [x if s < 0 else values[s] for s in node.srcs]
                y, saved[i] = yield from node.op.forward_steps(xs, params[i])
                if i < len(nodes) - 1:
                    values[i] = y
                for s in node.srcs:
                    if s >= 0:
                        left[s] -= 1
                        if not left[s]:
                            del values[s]
                if tick:
                    tick()
        seed = np.zeros(_shape(self.target.y))
        if self.channel is None:
            seed[(slice(None),) + self.position] = 1.0
        else:
            seed[(self.channel,) + self.position] = 1.0
        grads: dict[int, np.ndarray] = {len(nodes) - 1: seed}
        for i in range(len(nodes) - 1, -1, -1):
            g = grads.pop(i, None)
            node = nodes[i]
            if g is not None:
                outs = yield from node.op.backward_steps(g, saved[i], params[i])
                for s, gs in zip(node.srcs, outs, strict=True):
                    grads[s] = gs if s not in grads else grads[s] + gs
            saved[i] = None
            if tick:
                tick()
        return grads.get(-1, np.zeros(self.x_shape))


def plan(
    input_shape: Any,
    layers: Any = None,
    spec: str | None = None,
    *,
    graph: Any = None,
    output: Any = None,
    output_position: Any = None,
    output_channel: Any = None,
    at_layer: Any = None,
    max_layers: int | None = None,
    max_depth: int | None = None,
    max_spec_chars: int | None = None,
) -> Plan:
    """Walk the network and set up the ERF of one output pixel (errors for unsupported layers come here, before any work)."""
    if input_shape is None:
        raise GeometryError("input_shape is required: [C, H, W] ([C, L] for 1-D, [C, D, H, W] for 3-D), batch axis optional")
    done = walk(input_shape, layers, spec, graph=graph, output=output, max_layers=max_layers, max_depth=max_depth, max_spec_chars=max_spec_chars)
    if done.input_shape.flat:
        raise GeometryError(f"input_shape {done.input_shape.dims()} is flat: an effective receptive field needs a map ([C, H, W], [C, L] or [C, D, H, W])")
    warnings = list(done.warnings)
    target = _probed(done, at_layer, warnings)
    position = _position(target, output_position)
    if output_channel is not None:
        c = target.y.c
        if isinstance(output_channel, bool) or not isinstance(output_channel, int) or not 0 <= output_channel < c:
            raise GeometryError(f"output_channel must be a channel of the probed layer's output {target.y.dims()}: 0..{c - 1}, got {short(output_channel)}")
    return Plan(done, target, position, output_channel, warnings)


# ---------------------------------------------------------------------------------------------------------------
# Measures on the ERF map


def _shortest_window(marginal: np.ndarray, q: float) -> tuple[int, int]:
    """(first, last) of the fewest consecutive pixels holding at least q of the marginal's mass (leftmost if tied)."""
    n = marginal.size
    cs = np.concatenate([[0.0], np.cumsum(marginal)])
    need = q * cs[-1] * (1 - 1e-12)  # rounding in the cumulative sum must not cost a pixel
    ends = np.searchsorted(cs, cs[:-1] + need, side="left")
    widths = np.where(ends <= n, ends - np.arange(n), n + 1)
    first = int(np.argmin(widths))
    return first, first + max(int(widths[first]), 1) - 1


def axis_measures(erf_map: np.ndarray) -> list[dict]:
    """Per spatial axis of a non-negative map: std, mean and the 50% / 95% mass windows of its marginal (None if empty)."""
    nd = erf_map.ndim
    total = float(erf_map.sum())
    out = []
    for a in range(nd):
        marginal = erf_map.sum(axis=tuple(b for b in range(nd) if b != a))
        if not (total > 0 and math.isfinite(total)):
            out.append({"std": None, "centre": None, "w50": None, "w95": None, "i50": None, "i95": None})
            continue
        p = marginal / marginal.sum()
        idx = np.arange(marginal.size)
        mean = float((p * idx).sum())
        std = float(math.sqrt(max(float((p * (idx - mean) ** 2).sum()), 0.0)))
        i50, i95 = _shortest_window(marginal, 0.5), _shortest_window(marginal, 0.95)
        out.append({"std": std, "centre": mean, "w50": i50[1] - i50[0] + 1, "w95": i95[1] - i95[0] + 1, "i50": list(i50), "i95": list(i95)})
    return out


# ---------------------------------------------------------------------------------------------------------------
# The job: samples x (forward, backward), in chunks a server can interleave with progress and cancellation


class ErfOutcome:
    """The finished computation: the report, the ERF map [*spatial], the first draw's gradient [C, *spatial] and input."""

    def __init__(self, report: ErfReport, erf_map: np.ndarray, gradient: np.ndarray, x: np.ndarray | None, plan: Plan):
        self.report, self.map, self.gradient, self.x, self.plan = report, erf_map, gradient, x, plan


class ErfJob:
    """The ERF cut into chunks (a layer, or a block of output rows of a conv); step() runs the next one."""

    def __init__(self, plan: Plan, weights: Any, seed: int, samples: int, x: np.ndarray | None, inline_elements: int | None,
                 params: list[dict] | None, notes: list[str]):
        self.plan, self.weights, self.seed, self.x, self.inline = plan, weights, seed, x, inline_elements
        self.fixed = params
        self.notes = notes
        random = weights == "random"
        same = not random and (not plan.needs_forward or x is not None)
        self.requested = samples
        self.samples = 1 if same else samples
        self.macs = self.samples * plan.macs_per_sample
        per = len(plan.nodes) * (2 if plan.needs_forward else 1)
        self.total = self.samples * per
        self.done = 0
        self._acc = np.zeros(plan.x_shape[1:])
        self._first: np.ndarray | None = None
        self._x0: np.ndarray | None = None
        self._steps = self._run()
        self._outcome: ErfOutcome | None = None

    def _tick(self) -> None:
        self.done += 1

    def _run(self) -> Iterator[None]:
        plan = self.plan
        for i in range(self.samples):
            rng = np.random.default_rng(self.seed + i)
            params = self.fixed if self.fixed is not None else plan.params(self.weights, rng)
            x = self.x
            if x is None and plan.needs_forward:
                x = rng.standard_normal(plan.x_shape)
            grad = yield from plan.gradient(params, x, self._tick)
            if i == 0:
                self._first, self._x0 = grad, x
            self._acc += np.abs(grad).sum(axis=0)
            yield

    def step(self) -> bool:
        """Run the next chunk; False once every chunk has run."""
        try:
            # overflow to inf / nan is IEEE arithmetic, as in torch: no warnings. Never held across a yield: numpy's
            # error state is a context variable, and the chunks may run in different worker threads.
            with np.errstate(all="ignore"):
                next(self._steps)
        except StopIteration:
            return False
        return True

    def result(self) -> ErfOutcome:
        """Run whatever is left and return the outcome."""
        while self.step():
            pass
        if self._outcome is None:
            erf_map = self._acc / self.samples
            with np.errstate(all="ignore"):
                self._outcome = ErfOutcome(self._report(erf_map), erf_map, self._first, self._x0, self.plan)
        return self._outcome

    # ------------------------------------------------------------------ the report

    def _report(self, erf_map: np.ndarray) -> ErfReport:
        plan, target = self.plan, self.plan.target
        warnings = list(plan.warnings) + self.notes
        nd = plan.nd
        rf_size, _, _ = rf_fields(target.rf)
        region = None
        if target.rf is not None:
            spans = [(m.top(p), m.bottom(p)) for m, p in zip(target.rf, plan.position, strict=True)]
            region = None if any(t is None for t, _ in spans) else [[t, b] for t, b in spans]
        measures = axis_measures(erf_map)
        g = self._first
        finite = bool(np.isfinite(g).all()) and bool(np.isfinite(erf_map).all())
        if not finite:
            warnings.append(
                "the gradient overflowed float64 (uniform weights multiply it by C_in*kernel per layer): the measures are "
                "left out; use random weights or fewer layers"
            )
            measures = axis_measures(np.zeros_like(erf_map))
        elif not erf_map.any():
            warnings.append(
                f"the gradient is zero everywhere: output pixel {list(plan.position)} reads no input pixel "
                "(only padding, or every path is cut, e.g. by dead ReLUs)"
            )
        weights_kind = self.weights if isinstance(self.weights, str) else "given"
        if self.samples == 1 and (weights_kind == "random" or (plan.needs_forward and self.x is None)) and self.requested == 1:
            warnings.append(
                "this map is one draw (random weights or an input-dependent layer make it vary): samples=20 averages 20 "
                "draws, as Luo et al. do"
            )
        nonzero = erf_map > 0
        support = None
        if nonzero.any():
            support = []
            for a in range(nd):
                hit = np.flatnonzero(nonzero.any(axis=tuple(b for b in range(nd) if b != a)))
                support.append([int(hit[0]), int(hit[-1])])
        peak = [int(v) for v in np.unravel_index(int(np.argmax(erf_map)), erf_map.shape)] if finite and erf_map.any() else None

        def num(v) -> float | None:
            v = float(v)
            return v if math.isfinite(v) else None

        gradient = GradientSummary(
            shape=list(g.shape),
            min=num(g.min()),
            max=num(g.max()),
            sum=num(g.sum()),
            peak=peak,
            peak_value=num(erf_map.max()) if peak is not None else None,
            support=support,
            nonzero_pixels=int(nonzero.sum()),
            map_shape=list(erf_map.shape),
            map=erf_map.tolist() if finite and (self.inline is None or erf_map.size <= self.inline) else None,
        )
        if gradient.map is None and finite:
            warnings.append(
                f"the ERF map ({'x'.join(map(str, erf_map.shape))} = {erf_map.size:,} values) is not inlined: more than "
                f"max_output_elements_inline={self.inline:,}"
            )

        def frac(w, r):
            return None if w is None or not r else w / r

        return ErfReport(
            input_shape=plan.input.dims(),
            output_shape=target.y.dims(),
            at_layer=None if target is plan.done.out else target.path,
            layer_type=target.type,
            output_position=list(plan.position),
            output_channel=plan.channel,
            weights=weights_kind,
            seed=self.seed,
            samples=self.samples,
            receptive_field=list(rf_size),
            input_region=region,
            erf_std=[m["std"] for m in measures],
            erf_centre=[m["centre"] for m in measures],
            mass_width_50=[m["w50"] for m in measures],
            mass_width_95=[m["w95"] for m in measures],
            mass_interval_50=None if measures[0]["i50"] is None else [m["i50"] for m in measures],
            mass_interval_95=None if measures[0]["i95"] is None else [m["i95"] for m in measures],
            rf_fraction_50=[frac(m["w50"], r) for m, r in zip(measures, rf_size or [None] * nd, strict=True)],
            rf_fraction_95=[frac(m["w95"], r) for m, r in zip(measures, rf_size or [None] * nd, strict=True)],
            gradient=gradient,
            macs=self.macs,
            forward_pass=plan.needs_forward,
            protocol=self._protocol(weights_kind),
            warnings=warnings,
        )

    def _protocol(self, weights_kind: str) -> str:
        plan, target = self.plan, self.plan.target
        c = target.y.c
        probe = (f"channel {plan.channel}" if plan.channel is not None else f"the sum over its {c} channels" if c > 1 else "its one channel")
        where = "the output" if target is plan.done.out else f"{_label(target)} ({target.type})"
        text = (
            f"the exact gradient of {probe} at pixel {list(plan.position)} of {where} with respect to the input, by "
            "NumPy backward passes (col2im for convolutions; max pools route to the first maximum, as PyTorch)"
        )
        weights = {
            "uniform": "uniform weights (every conv weight 1, biases 0",
            "random": "random weights (PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for conv weights and biases",
            "given": "the given weights (",
        }[weights_kind]
        text += f"; {weights}{', ' if weights_kind != 'given' else ''}batchnorm in eval mode on its running statistics)"
        if not plan.needs_forward:
            text += "; the network is linear in its input, so the gradient is the same for every input and no forward pass ran"
        elif self.x is not None:
            text += "; on the given input"
        else:
            text += "; inputs drawn from N(0, 1)"
        if weights_kind == "random" or (plan.needs_forward and self.x is None):
            text += " (sample i draws with numpy default_rng(seed + i): weights in layer order, then the input)"
        text += (
            f"; ERF map = sum over input channels of |gradient|, averaged over {self.samples} sample{'s' if self.samples > 1 else ''}"
            " (Luo et al. average gradient magnitudes over draws); per-axis measures on the map's marginals"
        )
        if plan.input.n is not None:
            text += f"; the batch axis (N={plan.input.n}) passes through: one image's ERF"
        return text


def erf_job(
    input_shape: Any,
    layers: Any = None,
    spec: str | None = None,
    *,
    graph: Any = None,
    output: Any = None,
    weights: Any = "uniform",
    seed: int = 0,
    samples: int = 1,
    output_position: Any = None,
    output_channel: int | None = None,
    at_layer: Any = None,
    x: Any = None,
    max_macs: int | None = None,
    max_elements: int | None = None,
    max_layers: int | None = None,
    max_depth: int | None = None,
    max_spec_chars: int | None = None,
    inline_elements: int | None = 4096,
) -> ErfJob:
    """Set up the ERF of one output pixel as an ErfJob (checked against max_macs / max_elements before any work)."""
    if isinstance(weights, str) and weights not in WEIGHTS:
        near = difflib.get_close_matches(weights.lower()[:40], WEIGHTS, n=1, cutoff=0.5)
        raise SpecError(
            f"weights must be 'uniform' (every conv weight 1, the paper's first case), 'random' (PyTorch's default init, "
            f"seeded) or an object of arrays keyed like a state_dict ('0.weight': [...]); got {short(weights)}"
            + (f"; did you mean {near[0]!r}?" if near else "")
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise GeometryError(f"seed must be an int >= 0, got {short(seed)}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise GeometryError(f"samples must be an int >= 1, got {short(samples)}")
    p = plan(input_shape, layers, spec, graph=graph, output=output, output_position=output_position,
             output_channel=output_channel, at_layer=at_layer, max_layers=max_layers, max_depth=max_depth,
             max_spec_chars=max_spec_chars)
    p.check(max_elements)
    params, notes = None, []
    if isinstance(weights, dict):
        params, notes = p.given(weights, max_elements)
    elif weights == "uniform":
        params = p.params("uniform", None)
    if x is not None:
        x = as_array(x, "x", (len(p.x_shape),), np.float64)
        if x.shape != p.x_shape:
            raise GeometryError(f"x must have the input's shape {list(p.x_shape)} (one image, no batch axis), got {list(x.shape)}")
    job = ErfJob(p, weights, seed, samples, x, inline_elements, params, notes)
    if max_macs is not None and job.macs > max_macs:
        what = "forward + backward" if p.needs_forward else "backward (the network is linear in its input)"
        raise _limit(
            "max_macs",
            f"the ERF needs {job.macs:,} multiply-accumulates ({job.samples} sample{'s' if job.samples > 1 else ''} x "
            f"{p.macs_per_sample:,}, {what}), more than max_macs={max_macs:,}",
        )
    return job


def effective_receptive_field(input_shape: Any, layers: Any = None, spec: str | None = None, **kwargs: Any) -> ErfReport:
    """The ERF report of one output pixel (default the centre): per-axis std and mass widths of the input gradient, against the theoretical RF."""
    return erf_job(input_shape, layers, spec, **kwargs).result().report


def input_gradient(input_shape: Any, layers: Any = None, spec: str | None = None, **kwargs: Any) -> np.ndarray:
    """The exact gradient [C, *spatial] of the probed output (default: the channel sum at the centre pixel) with
    respect to the input: for x given, at x; else at the first draw (seed)."""
    return erf_job(input_shape, layers, spec, samples=1, **kwargs).result().gradient
