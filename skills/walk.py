"""The network walk: shapes, params, buffers, MACs and receptive field per layer, exactly as PyTorch.

One engine (`walk`) serves the three tools: `shape_calculator`, `receptive_field` and `parameter_count`.
Every size comes from skills.arithmetic (the one copy of each formula).

Receptive field (Araujo et al., "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019).
Per axis, the walk keeps the map "output pixel y -> input region [top(y), bottom(y)]" (inclusive input pixel
indices, padding counted as pixels, i.e. before clipping to the image):

* conv/pool stacks keep it affine, top(y) = y*J - P and bottom(y) = top(y) + RF - 1, stepped by
  `arithmetic.receptive_field_step` (RF, effective stride J, effective padding P). `zeropad2d`'s top/left
  padding counts in P; dilation counts in the kernel's span.
* transposed conv (stride s) and adaptive pooling with a non-integer ratio make the region depend on the
  pixel's phase. The walk then keeps one (top, bottom) per phase over a period of `period` output pixels, after
  which the region moves by a whole number of input pixels: the exact rule, no rounding. Reported then:
  `effective_stride` = that shift / period as an exact fraction (e.g. 0.5 after a stride-2 transposed conv
  on the image); `receptive_field` = the largest region over the phases (what a gradient probe from the
  worst pixel sees); `effective_padding` = -top(0), exact for output pixel 0. A transposed-conv output pixel
  that no kernel tap reaches (dilation and stride sharing a factor) sees nothing; it is skipped.
* adaptive pooling uses PyTorch's windows start = floor(i*H/out), end = ceil((i+1)*H/out).
* flatten is one window over the whole map (like a global pool): after flatten and linear the receptive field
  is everything the last map saw, padding included (so it can exceed the image: VGG16's classifier sees 404 px
  at 224, its last conv map 212).
* residual/concat: the region is the hull of the paths' regions (the largest path's when centres line up);
  paths whose centres differ are reported in `warnings`.

With `output_position` [y, x], `input_region` is that pixel's region before clipping and
`input_region_clipped` the span of input pixels it really depends on: the walk goes back layer by layer with
the exact set of pixels read (a bit set per axis, cut to each map), so padding, stride gaps and pixels that no
window reaches (e.g. right of a floor-rounded stride) are excluded. The regions treat padding as zeros:
with padding_mode="circular" a border pixel also reads the opposite border (reported in `warnings`).
The gradient-probe tests in tests/test_walk.py check both against PyTorch.

MACs: conv, transposed conv and linear only, bias excluded, times the batch (torchvision's convention).
"""

from __future__ import annotations

import functools
import gc
import re
from fractions import Fraction
from math import gcd
from typing import Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema

from .arithmetic import (
    MAX_EXTENT,
    check_padding_mode,
    conv_output_length,
    pair,
    pool_output_length,
    receptive_field_step,
    resolve_conv_padding,
    transpose_output_length,
)
from .errors import ConvError, GeometryError, SpecError
from .spec import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    BatchNorm2d,
    Concat,
    Conv2d,
    ConvTranspose2d,
    Flatten,
    Linear,
    MaxPool2d,
    Residual,
    ZeroPad2d,
    count_layers,
    parse_spec,
    short,
    validate_layers,
)

BYTES_PER_ELEMENT = 4  # float32 activations

# ---------------------------------------------------------------- receptive field, per axis


class WindowStep:
    """A sliding window (conv, pool, zero-pad, flatten): output y reads inputs y*s - p + t*d, t = 0..k-1."""

    __slots__ = ("k", "s", "p", "d", "n")
    period = 1

    def __init__(self, k: int, s: int, p: int, d: int, n: int | None):
        self.k, self.s, self.p, self.d, self.n = k, s, p, d, n

    @property
    def shift(self) -> int:
        return self.s

    def span(self, y: int) -> tuple[int, int]:
        lo = y * self.s - self.p
        return lo, lo + (self.k - 1) * self.d

    def pre(self, out: int) -> int:
        """Input pixels in [0, n) (a bit set) that the output pixels in bit set `out` read."""
        spread = _spread(out, self.s)
        if self.d == 1:
            reads, span = spread, 1
            while span < self.k:  # OR of the k shifts, by doubling
                step = min(span, self.k - span)
                reads |= reads << step
                span += step
        else:
            reads = 0
            for t in range(self.k):
                reads |= spread << (t * self.d)
        return _shift(reads, -self.p) & ((1 << self.n) - 1)


class TransposeStep:
    """A transposed conv: output o receives input i when o = i*s - p + t*d for a tap t in 0..k-1."""

    __slots__ = ("k", "s", "p", "d", "n")
    shift = 1

    def __init__(self, k: int, s: int, p: int, d: int, n: int | None):
        self.k, self.s, self.p, self.d, self.n = k, s, p, d, n

    @property
    def period(self) -> int:
        return self.s

    def span(self, o: int) -> tuple[int, int] | None:
        lo = hi = None
        for t in range(self.k):
            q, r = divmod(o + self.p - t * self.d, self.s)
            if r == 0:
                lo = q if lo is None else min(lo, q)
                hi = q if hi is None else max(hi, q)
        return None if lo is None else (lo, hi)

    def pre(self, out: int) -> int:
        reads = 0
        for t in range(self.k):  # input i feeds output i*s - p + t*d
            reads |= _compress(_shift(out, self.p - t * self.d), self.s)
        return reads & ((1 << self.n) - 1)


class AdaptiveStep:
    """Adaptive pooling n -> m: output i reads floor(i*n/m) .. ceil((i+1)*n/m) - 1 (PyTorch's windows)."""

    __slots__ = ("n", "m", "period", "shift")

    def __init__(self, n: int, m: int):
        g = gcd(n, m)
        self.n, self.m, self.period, self.shift = n, m, m // g, n // g

    def span(self, i: int) -> tuple[int, int]:
        return (i * self.n) // self.m, -((-(i + 1) * self.n) // self.m) - 1

    def pre(self, out: int) -> int:
        reads, i = 0, 0
        while out:
            if out & 1:
                lo, hi = self.span(i)
                reads |= ((1 << (hi - lo + 1)) - 1) << lo
            out >>= 1
            i += 1
        return reads


def _shift(bits: int, offset: int) -> int:
    """Move every set bit by offset (bits pushed below 0 fall off)."""
    return bits << offset if offset >= 0 else bits >> -offset


def _spread(bits: int, s: int) -> int:
    """Bit x -> bit x*s."""
    if s == 1 or bits == 0:
        return bits
    return int(("0" * (s - 1)).join(bin(bits)[:1:-1])[::-1], 2)


def _compress(bits: int, s: int) -> int:
    """Bit x*s -> bit x; bits off the multiples of s are dropped."""
    if s == 1 or bits == 0:
        return bits
    kept = bin(bits)[:1:-1][::s]
    return int(kept[::-1], 2) if "1" in kept else 0


class AxisRF:
    """Output pixel y -> input region [top(y), bottom(y)] along one axis, periodic: region(y + period) = region(y) + shift."""

    __slots__ = ("period", "shift", "tops", "bottoms")

    def __init__(self, period: int, shift: int, tops: tuple, bottoms: tuple):
        self.period, self.shift, self.tops, self.bottoms = period, shift, tops, bottoms

    @classmethod
    def image(cls) -> AxisRF:
        return cls(1, 1, (0,), (0,))

    def top(self, y: int) -> int | None:
        q, r = divmod(y, self.period)
        t = self.tops[r]
        return None if t is None else t + q * self.shift

    def bottom(self, y: int) -> int | None:
        q, r = divmod(y, self.period)
        b = self.bottoms[r]
        return None if b is None else b + q * self.shift

    @property
    def size(self) -> int:
        return max((b - t + 1 for t, b in zip(self.tops, self.bottoms, strict=True) if t is not None), default=0)

    @property
    def stride(self) -> Fraction:
        return Fraction(self.shift, self.period)

    @property
    def padding(self) -> Fraction:
        for r, t in enumerate(self.tops):
            if t is not None:
                return r * self.stride - t
        return Fraction(0)

    def centre(self, y: int) -> Fraction | None:
        t, b = self.top(y), self.bottom(y)
        return None if t is None else Fraction(t + b, 2)

    def window(self, k: int, s: int, p: int, d: int) -> AxisRF:
        """The map after a sliding window (kernel k, stride s, padding before p, dilation d)."""
        if self.period == 1:
            t = self.tops[0]
            if t is not None:  # the affine case: Araujo et al.'s recurrence, the one copy in arithmetic.receptive_field_step
                b = self.bottoms[0]
                rf, jump, start = receptive_field_step(b - t + 1, self.shift, (t + b) / 2, k, s, p, d)
                top = int(start - (rf - 1) / 2)
                return AxisRF(1, jump, (top,), (top + rf - 1,))
        return self.then(WindowStep(k, s, p, d, None))

    def then(self, step: Any) -> AxisRF:
        """The map after one more layer `step` (its output pixel -> this map's pixels -> input region)."""
        if self.period == 1 and step.period == 1 and not isinstance(step, TransposeStep) and self.tops[0] is not None:
            # the affine case: Araujo et al.'s recurrence, the one copy in arithmetic.receptive_field_step
            t, b = self.tops[0], self.bottoms[0]
            rf, jump, start = receptive_field_step(b - t + 1, self.shift, (t + b) / 2, step.k, step.s, step.p, step.d) \
                if isinstance(step, WindowStep) else _adaptive_affine(self, step)
            top = int(start - (rf - 1) / 2)
            return AxisRF(1, jump, (top,), (top + rf - 1,))
        n = self.period // gcd(step.shift, self.period)
        period = n * step.period
        shift = n * step.shift // self.period * self.shift
        tops, bottoms = [], []
        for r in range(period):
            span = step.span(r)
            if span is None:
                tops.append(None)
                bottoms.append(None)
                continue
            lo, hi = span
            # not the ends alone: after a dilated transposed conv, top(x) need not grow with x
            ts = [v for x in range(lo, hi + 1) if (v := self.top(x)) is not None]
            bs = [v for x in range(lo, hi + 1) if (v := self.bottom(x)) is not None]
            tops.append(min(ts) if ts else None)
            bottoms.append(max(bs) if bs else None)
        return AxisRF(period, shift, tuple(tops), tuple(bottoms))


def _adaptive_affine(rf: AxisRF, step: AdaptiveStep) -> tuple[int, int, float]:
    """An adaptive pool whose input is a whole multiple of its output: a plain window k = s = n/m."""
    k = step.n // step.m
    t, b = rf.tops[0], rf.bottoms[0]
    return receptive_field_step(b - t + 1, rf.shift, (t + b) / 2, k, k, 0, 1)


def _hull(paths: list[AxisRF], axis: str, where: str, labels: list[str], warnings: list[str]) -> AxisRF:
    """Region through a block: the hull of its paths' regions; misaligned centres become a warning."""
    if all(p.period == 1 for p in paths):  # the common case in integers (no Fractions): one stride, centres aligned
        shifts = {p.shift for p in paths}
        ends = [(p.tops[0], p.bottoms[0]) for p in paths if p.tops[0] is not None]
        if len(shifts) == 1 and len({t + b for t, b in ends}) <= 1:
            return AxisRF(1, shifts.pop(), (min((t for t, _ in ends), default=None),), (max((b for _, b in ends), default=None),))
    strides = {p.stride for p in paths}
    if len(strides) > 1:
        widest = max(paths, key=lambda p: p.size)
        warnings.append(
            f"{where}: paths have different effective strides along {axis} "
            f"({', '.join(f'{lab} {_num(p.stride)}' for lab, p in zip(labels, paths, strict=True))}); "
            f"the receptive field after the block follows the widest path ({widest.size} px)"
        )
        return widest
    period = 1
    for p in paths:
        period = period * p.period // gcd(period, p.period)
    stride = strides.pop()
    tops, bottoms = [], []
    misaligned = None
    for y in range(period):
        ts = [t for p in paths if (t := p.top(y)) is not None]
        bs = [b for p in paths if (b := p.bottom(y)) is not None]
        tops.append(min(ts) if ts else None)
        bottoms.append(max(bs) if bs else None)
        if misaligned is None:
            centres = [p.centre(y) for p in paths]
            if len({c for c in centres if c is not None}) > 1:
                misaligned = (y, centres)
    if misaligned is not None:
        y, centres = misaligned
        warnings.append(
            f"{where}: path centres do not line up along {axis}: output pixel {y} is centred at input "
            + ", ".join(f"{_num(c)} ({lab})" for lab, c in zip(labels, centres, strict=True) if c is not None)
            + "; the receptive field is the hull of the paths"
        )
    return AxisRF(period, int(stride * period), tuple(tops), tuple(bottoms))


def _num(x: Fraction | int | None) -> int | float | None:
    """An exact value for JSON: an int when whole, else a float."""
    if x is None:
        return None
    if isinstance(x, Fraction):
        return int(x) if x.denominator == 1 else float(x)
    return x


# ---------------------------------------------------------------- the walk


class _T:
    """A tensor shape in the walk: batch n (or None), then a map (c, h, w) or flat features f; None = unknown."""

    __slots__ = ("n", "flat", "c", "h", "w", "f")

    def __init__(self, n, flat, c=None, h=None, w=None, f=None):
        self.n, self.flat, self.c, self.h, self.w, self.f = n, flat, c, h, w, f

    def dims(self) -> list:
        if self.flat:
            return [self.f] if self.n is None else [self.n, self.f]
        return [self.c, self.h, self.w] if self.n is None else [self.n, self.c, self.h, self.w]

    def elements(self) -> int:
        """prod(dims()), or 0 while a dimension is unknown (h and w are known or unknown together)."""
        if self.flat:
            v = self.f
        else:
            v = None if self.c is None or self.h is None else self.c * self.h * self.w
        if v is None:
            return 0
        return v if self.n is None else self.n * v

    def same_as(self, other: _T) -> bool:
        return self.dims() == other.dims() and self.flat == other.flat


class _Rec:
    """One walked layer: its numbers, and what the receptive-field walk-back needs.

    `formula` / `buffers_formula` are text, or (function, *args) written out only when parameter_count asks;
    `steps` is (step class, H arguments, W arguments), built only when output_position asks.
    """

    __slots__ = ("path", "type", "x", "y", "params", "buffers", "macs", "formula", "buffers_formula", "steps", "paths", "rf")

    def __init__(self, path, ltype, x, y, params, buffers, macs, formula, buffers_formula, steps, paths, rf):
        self.path, self.type, self.x, self.y = path, ltype, x, y
        self.params, self.buffers, self.macs = params, buffers, macs
        self.formula, self.buffers_formula = formula, buffers_formula
        self.steps, self.paths, self.rf = steps, paths, rf


def _text(formula) -> str | None:
    """A record's formula as text (it is kept as (function, *args) until asked for)."""
    return formula if formula is None or formula.__class__ is str else formula[0](*formula[1:])


def _where(path: str, ltype: str) -> str:
    """How errors name a layer; built only when one is raised."""
    return f"layer {path} ({ltype})"


class _Walk:
    """State of one walk: the records inside blocks, and where warnings go."""

    def __init__(self):
        self.warnings: list[str] = []
        self.inner: list[_Rec] = []

    def sequence(self, layers: list, x: _T, rf: tuple[AxisRF, AxisRF] | None, prefix: str, out: list[_Rec]):
        handlers = _HANDLERS
        append = out.append
        for i, layer in enumerate(layers):
            path = f"{prefix}{i}" if prefix else str(i)
            handler = handlers.get(layer.__class__)
            if handler is None:  # activation, dropout, identity: shape unchanged, nothing learnt
                append(_Rec(path, layer.type, x, x, 0, 0, 0, "0", None, None, None, rf))
                continue
            try:
                rec = handler(self, layer, x, rf, path)
            except ConvError as exc:
                if str(exc).startswith("layer "):
                    raise
                raise type(exc)(f"{_where(path, layer.type)}: {exc}") from None
            append(rec)
            x, rf = rec.y, rec.rf
        return x, rf


def _pair(v) -> tuple[int, int]:
    """(h, w) of a per-axis value the spec models already validated (int or [h] / [h, w])."""
    if v.__class__ is int:
        return v, v
    return (v[0], v[-1]) if isinstance(v, (list, tuple)) else pair(v, "value")


def _need_map(x: _T, where: str, what: str) -> None:
    if x.flat:
        raise SpecError(
            f"{where}: {what} needs a [C, H, W] map but its input is flattened ({x.dims()}); "
            "put conv and pool layers before flatten"
        )


def _in_channels(x: _T, given: int | None, field: str, path: str, ltype: str) -> int:
    if given is not None and x.c is not None and given != x.c:
        raise SpecError(
            f"{_where(path, ltype)}: {field}={given} but its input has {x.c} channels (shape {x.dims()}); "
            f"set {field}={x.c} or leave it out to infer it"
        )
    c = given if given is not None else x.c
    if c is None:
        raise SpecError(
            f"{_where(path, ltype)}: {field} cannot be inferred: no input_shape was given and no earlier layer fixes the channel count; "
            f"give input_shape or {field}"
        )
    return c


def _groups(cin: int, cout: int, groups: int, where: str) -> None:
    bad = [f"{name}={c} ({c} % {groups} = {c % groups})" for name, c in (("in_channels", cin), ("out_channels", cout)) if c % groups]
    if bad:
        raise GeometryError(f"{where}: groups={groups} must divide both channel counts, but not {' and '.join(bad)}")


def _axis_error(exc: GeometryError, axis: str, where: str) -> GeometryError:
    return GeometryError(f"{where}: {exc} along {axis}")


def _weight_formula(cout: int, cin: int, groups: int, kh: int, kw: int, bias: bool, params: int, transposed=False) -> str:
    per = f"({cin}/{groups})" if groups > 1 and not transposed else str(cin // groups if not transposed else cin)
    if transposed:
        first, second = str(cin), (f"({cout}/{groups})" if groups > 1 else str(cout))
    else:
        first, second = str(cout), per
    text = f"{first}*{second}*{kh}*{kw}"
    return f"{text} + {cout} = {params:,}" if bias else f"{text} = {params:,}"


def _conv(w: _Walk, layer: Conv2d, x: _T, rf, path: str) -> _Rec:
    if x.flat:
        _need_map(x, _where(path, "conv2d"), "conv2d")
    cin = layer.in_channels
    if cin is None and x.c is not None:
        cin = x.c
    else:
        cin = _in_channels(x, cin, "in_channels", path, "conv2d")
    cout, g = layer.out_channels, layer.groups
    if g != 1 and (cin % g or cout % g):
        _groups(cin, cout, g, _where(path, "conv2d"))
    k, s, d = layer.kernel_size, layer.stride, layer.dilation
    kh, kw = (k, k) if k.__class__ is int else _pair(k)
    sh, sw = (s, s) if s.__class__ is int else _pair(s)
    dh, dw = (d, d) if d.__class__ is int else _pair(d)
    padding = layer.padding
    if padding.__class__ is int:
        pt = pl = pb = pr = padding
    else:
        (pt, pl), (pb, pr) = resolve_conv_padding(padding, (kh, kw), (sh, sw), (dh, dw))
    weight = cout * (cin // g) * kh * kw
    params = weight + cout if layer.bias else weight
    formula = (_weight_formula, cout, cin, g, kh, kw, layer.bias, params, False)  # written out only if parameter_count asks
    h, wd = x.h, x.w
    if h is None:
        return _Rec(path, "conv2d", x, _T(x.n, False, cout), params, 0, 0, formula, None, None, None, None)
    mode = layer.padding_mode
    if mode != "zeros":
        check_padding_mode((h, wd), (pt, pl), (pb, pr), mode)
        if mode == "circular" and rf is not None and max(pt, pl, pb, pr) > 0:
            w.warnings.append(
                f"{_where(path, 'conv2d')}: circular padding wraps around, so pixels near one border also see the opposite border; "
                "the regions reported here count padding as the zero-padding case does"
            )
    try:
        oh = conv_output_length(h, kh, sh, pt, pb, dh)
    except GeometryError as exc:
        raise _axis_error(exc, "H", _where(path, "conv2d")) from None
    try:
        ow = conv_output_length(wd, kw, sw, pl, pr, dw)
    except GeometryError as exc:
        raise _axis_error(exc, "W", _where(path, "conv2d")) from None
    macs = (x.n or 1) * oh * ow * weight
    steps = (WindowStep, (kh, sh, pt, dh, h), (kw, sw, pl, dw, wd))
    if rf is not None:
        rf = _windows(rf, kh, sh, pt, dh, kw, sw, pl, dw)
    return _Rec(path, "conv2d", x, _T(x.n, False, cout, oh, ow), params, 0, macs, formula, None, steps, None, rf)


def _convT(w: _Walk, layer: ConvTranspose2d, x: _T, rf, path: str) -> _Rec:
    where = _where(path, "convtranspose2d")
    _need_map(x, where, "convtranspose2d")
    cin = _in_channels(x, layer.in_channels, "in_channels", path, "convtranspose2d")
    cout, g = layer.out_channels, layer.groups
    _groups(cin, cout, g, where)
    k = _pair(layer.kernel_size)
    s = _pair(layer.stride)
    d = _pair(layer.dilation)
    p = _pair(layer.padding)
    op = _pair(layer.output_padding)
    weight = cin * (cout // g) * k[0] * k[1]
    params = weight + (cout if layer.bias else 0)
    formula = (_weight_formula, cout, cin, g, k[0], k[1], layer.bias, params, True)
    if x.h is None:
        return _Rec(path, "convtranspose2d", x, _T(x.n, False, cout), params, 0, 0, formula, None, None, None, None)
    size = []
    for i, axis, n in ((0, "H", x.h), (1, "W", x.w)):
        try:
            size.append(transpose_output_length(n, k[i], s[i], p[i], op[i], d[i]))
        except GeometryError as exc:
            raise _axis_error(exc, axis, where) from None
    y = _T(x.n, False, cout, size[0], size[1])
    macs = (x.n or 1) * x.h * x.w * weight  # H_in*W_in*C_in*(C_out/groups)*kH*kW
    steps = (TransposeStep, (k[0], s[0], p[0], d[0], x.h), (k[1], s[1], p[1], d[1], x.w))
    return _Rec(path, "convtranspose2d", x, y, params, 0, macs, formula, None, steps, None, _advance(rf, steps, _where(path, "convtranspose2d")))


def _pool(w: _Walk, layer: MaxPool2d | AvgPool2d, x: _T, rf, path: str) -> _Rec:
    ltype = layer.type
    if x.flat:
        _need_map(x, _where(path, ltype), ltype)
    k = layer.kernel_size
    s = layer.stride if layer.stride is not None else k
    p = layer.padding
    d = layer.dilation if ltype == "maxpool2d" else 1
    kh, kw = (k, k) if k.__class__ is int else _pair(k)
    sh, sw = (s, s) if s.__class__ is int else _pair(s)
    ph, pw = (p, p) if p.__class__ is int else _pair(p)
    dh, dw = (d, d) if d.__class__ is int else _pair(d)
    h, wd = x.h, x.w
    if h is None:
        return _Rec(path, ltype, x, x, 0, 0, 0, "0", None, None, None, None)
    try:
        oh = pool_output_length(h, kh, sh, ph, dh, layer.ceil_mode)
    except GeometryError as exc:
        raise _axis_error(exc, "H", _where(path, ltype)) from None
    try:
        ow = pool_output_length(wd, kw, sw, pw, dw, layer.ceil_mode)
    except GeometryError as exc:
        raise _axis_error(exc, "W", _where(path, ltype)) from None
    steps = (WindowStep, (kh, sh, ph, dh, h), (kw, sw, pw, dw, wd))
    if rf is not None:
        rf = _windows(rf, kh, sh, ph, dh, kw, sw, pw, dw)
    return _Rec(path, ltype, x, _T(x.n, False, x.c, oh, ow), 0, 0, 0, "0", None, steps, None, rf)


def _adaptive(w: _Walk, layer: AdaptiveAvgPool2d | AdaptiveMaxPool2d, x: _T, rf, path: str) -> _Rec:
    _need_map(x, _where(path, layer.type), layer.type)
    out = layer.output_size
    out = [out, out] if isinstance(out, int) else [out[0], out[-1]]
    if x.h is None:
        return _Rec(path, layer.type, x, x, 0, 0, 0, "0", None, None, None, None)
    size = [out[0] or x.h, out[1] or x.w]
    y = _T(x.n, False, x.c, size[0], size[1])
    steps = (AdaptiveStep, (x.h, size[0]), (x.w, size[1]))
    return _Rec(path, layer.type, x, y, 0, 0, 0, "0", None, steps, None, _advance(rf, steps, _where(path, layer.type)))


def _zeropad(w: _Walk, layer: ZeroPad2d, x: _T, rf, path: str) -> _Rec:
    _need_map(x, _where(path, "zeropad2d"), "zeropad2d")
    p = layer.padding
    left, right, top, bottom = (p, p, p, p) if isinstance(p, int) else p
    if x.h is None:
        return _Rec(path, "zeropad2d", x, x, 0, 0, 0, "0", None, None, None, None)
    h, wd = x.h + top + bottom, x.w + left + right
    if h < 1 or wd < 1:
        raise GeometryError(
            f"{_where(path, 'zeropad2d')}: padding [left {left}, right {right}, top {top}, bottom {bottom}] leaves a {h}x{wd} map "
            f"from {x.h}x{x.w}; negative padding crops and must leave at least 1 pixel"
        )
    y = _T(x.n, False, x.c, h, wd)
    steps = (WindowStep, (1, 1, top, 1, x.h), (1, 1, left, 1, x.w))
    if rf is not None:
        rf = _windows(rf, 1, 1, top, 1, 1, 1, left, 1)
    return _Rec(path, "zeropad2d", x, y, 0, 0, 0, "0", None, steps, None, rf)


def _bn_formula(per: int, c: int, params: int) -> str:
    return f"{per}*{c} = {params:,}"


def _bn_buffers_formula(c: int, buffers: int) -> str:
    return f"2*{c} + 1 = {buffers:,}"


def _batchnorm(w: _Walk, layer: BatchNorm2d, x: _T, rf, path: str) -> _Rec:
    if x.flat:
        _need_map(x, _where(path, "batchnorm2d"), "batchnorm2d")
    c = layer.num_features
    if c is None and x.c is not None:
        c = x.c
    else:
        c = _in_channels(x, c, "num_features", path, "batchnorm2d")
    per = (1 + (1 if layer.bias else 0)) if layer.affine else 0
    params = per * c
    buffers = 2 * c + 1 if layer.track_running_stats else 0
    formula = (_bn_formula, per, c, params) if per else "0 (affine=False)"
    buffers_formula = (_bn_buffers_formula, c, buffers) if buffers else "0 (track_running_stats=False)"
    y = x if c == x.c else _T(x.n, False, c, x.h, x.w)  # shapes are never changed in place: sharing is safe
    return _Rec(path, "batchnorm2d", x, y, params, buffers, 0, formula, buffers_formula, None, None, rf)


def _flatten(w: _Walk, layer: Flatten, x: _T, rf, path: str) -> _Rec:
    if x.flat:
        return _Rec(path, "flatten", x, x, 0, 0, 0, "0", None, None, None, rf)
    f = x.c * x.h * x.w if None not in (x.c, x.h, x.w) else None
    y = _T(x.n, True, f=f)
    if x.h is None:
        return _Rec(path, "flatten", x, y, 0, 0, 0, "0", None, None, None, None)
    steps = (WindowStep, (x.h, x.h, 0, 1, x.h), (x.w, x.w, 0, 1, x.w))
    if rf is not None:
        rf = _windows(rf, x.h, x.h, 0, 1, x.w, x.w, 0, 1)
    return _Rec(path, "flatten", x, y, 0, 0, 0, "0", None, steps, None, rf)


def _linear_formula(fout: int, fin: int, bias: bool, params: int) -> str:
    return f"{fout}*{fin} + {fout} = {params:,}" if bias else f"{fout}*{fin} = {params:,}"


def _linear(w: _Walk, layer: Linear, x: _T, rf, path: str) -> _Rec:
    if not x.flat and not (x.c is None and x.h is None):  # an unknown input (no input_shape) may be flat
        raise SpecError(
            f"{_where(path, 'linear')}: linear needs a flattened input [F] or [N, F] but gets the map {x.dims()}; "
            'add {"type": "flatten"} before it (forward() often calls torch.flatten, which print(model) does not show)'
        )
    if layer.in_features is not None and x.f is not None and layer.in_features != x.f:
        raise SpecError(
            f"{_where(path, 'linear')}: in_features={layer.in_features} but its input has {x.f:,} features (shape {x.dims()}); "
            f"set in_features={x.f} or leave it out to infer it"
        )
    fin = layer.in_features if layer.in_features is not None else x.f
    if fin is None:
        raise SpecError(
            f"{_where(path, 'linear')}: in_features cannot be inferred without input_shape (it is C*H*W of the flattened map); "
            "give input_shape or in_features"
        )
    fout = layer.out_features
    params = fout * fin + (fout if layer.bias else 0)
    formula = (_linear_formula, fout, fin, layer.bias, params)
    macs = (x.n or 1) * fin * fout
    return _Rec(path, "linear", x, _T(x.n, True, f=fout), params, 0, macs, formula, None, None, None, rf)


def _residual(w: _Walk, layer: Residual, x: _T, rf, path: str) -> _Rec:
    where = _where(path, "residual")
    body: list[_Rec] = []
    short: list[_Rec] = []
    yb, rfb = w.sequence(layer.body, x, rf, f"{path}.body.", body)
    ys, rfs = w.sequence(layer.shortcut, x, rf, f"{path}.shortcut.", short)
    if not yb.same_as(ys) and not _unknown_match(yb, ys):
        raise SpecError(
            f"{where}: body gives {yb.dims()} but shortcut gives {ys.dims()}; the residual add needs equal shapes "
            "(a projection shortcut, e.g. a 1x1 conv with the body's stride and out_channels, fixes it)"
        )
    w.inner.extend(body)
    w.inner.extend(short)
    recs = body + short
    out_rf = None
    if rf is not None:
        out_rf = tuple(
            _hull([rfb[i], rfs[i]], axis, where, ["body", "shortcut" if layer.shortcut else "identity shortcut"], w.warnings)
            for i, axis in ((0, "H"), (1, "W"))
        )
    y = yb if yb.c is not None else ys
    return _block_rec(path, "residual", x, y, recs, [body, short], out_rf)


def _unknown_match(a: _T, b: _T) -> bool:
    """Shapes that cannot be compared yet (parameter_count without input_shape): only known channels must agree."""
    return a.h is None and b.h is None and a.flat == b.flat and (a.c is None or b.c is None or a.c == b.c)


def _concat(w: _Walk, layer: Concat, x: _T, rf, path: str) -> _Rec:
    where = _where(path, "concat")
    outs, rfs, paths = [], [], []
    for j, branch in enumerate(layer.branches):
        recs: list[_Rec] = []
        y, r = w.sequence(branch, x, rf, f"{path}.branches.{j}.", recs)
        outs.append(y)
        rfs.append(r)
        paths.append(recs)
        w.inner.extend(recs)
    first = outs[0]
    for j, y in enumerate(outs[1:], start=1):
        if y.flat != first.flat or y.n != first.n or (not y.flat and (y.h, y.w) != (first.h, first.w)):
            raise SpecError(
                f"{where}: branch {j} gives {y.dims()} but branch 0 gives {first.dims()}; concatenation along channels "
                "needs the same batch and spatial size in every branch"
            )
    if first.flat:
        fs = [y.f for y in outs]
        y = _T(first.n, True, f=sum(fs) if None not in fs else None)
    else:
        cs = [y.c for y in outs]
        y = _T(first.n, False, sum(cs) if None not in cs else None, first.h, first.w)
    out_rf = None
    if rf is not None:
        labels = [f"branch {j}" for j in range(len(outs))]
        out_rf = tuple(_hull([r[i] for r in rfs], axis, where, labels, w.warnings) for i, axis in ((0, "H"), (1, "W")))
    return _block_rec(path, "concat", x, y, [r for p in paths for r in p], paths, out_rf)


def _block_formula(recs: list[_Rec], params: int) -> str:
    terms = [f"{r.params:,}" for r in recs if r.params]
    return f"{' + '.join(terms)} = {params:,} (its layers)" if len(terms) > 1 else f"{params:,} (its layers)"


def _block_buffers_formula(recs: list[_Rec], buffers: int) -> str:
    bterms = [f"{r.buffers:,}" for r in recs if r.buffers]
    return f"{' + '.join(bterms)} = {buffers:,}" if len(bterms) > 1 else f"{buffers:,}"


def _block_rec(path, ltype, x, y, recs, paths, rf) -> _Rec:
    params = sum(r.params for r in recs)
    buffers = sum(r.buffers for r in recs)
    macs = sum(r.macs for r in recs)
    formula = (_block_formula, recs, params)
    bformula = (_block_buffers_formula, recs, buffers) if buffers else None
    return _Rec(path, ltype, x, y, params, buffers, macs, formula, bformula, None, paths, rf)


def _windows(rf, kh, sh, ph, dh, kw, sw, pw, dw):
    """The receptive-field maps after a sliding window on each axis (one computation when both axes are alike)."""
    rh, rw = rf
    nh = rh.window(kh, sh, ph, dh)
    if rw is rh and kw == kh and sw == sh and pw == ph and dw == dh:
        return nh, nh
    return nh, rw.window(kw, sw, pw, dw)


MAX_RF_WORK = 10_000_000
"""Bound on the per-phase receptive-field work of one layer (phases x window): an adaptive pool from a huge map to a
size that does not divide it (e.g. 2,000,000,005 -> 999,999,999) would otherwise track ~1e9 phases (hours, memory)."""


def _advance(rf, steps, where: str = "this layer"):
    """The receptive-field maps after a transposed conv or adaptive pool (their regions may depend on the phase)."""
    if rf is None:
        return None
    cls, h, w = steps
    out = []
    for axis, m, args in (("height", rf[0], h), ("width", rf[1], w)):
        step = cls(*args)
        if m.period > 1 or step.period > 1:
            period = m.period // gcd(step.shift, m.period) * step.period
            window = -(-step.n // step.m) + 1 if isinstance(step, AdaptiveStep) else 1
            if period * window > MAX_RF_WORK:
                raise GeometryError(
                    f"{where}: its receptive field along {axis} repeats only every {period:,} output pixels "
                    f"(windows of up to {window:,} px), more than the walk tracks ({MAX_RF_WORK:,} phase x window "
                    "steps); choose an output size that divides the input size, or a smaller map"
                )
        out.append(m.then(step))
    return tuple(out)


_HANDLERS = {
    Conv2d: _conv,
    ConvTranspose2d: _convT,
    MaxPool2d: _pool,
    AvgPool2d: _pool,
    AdaptiveAvgPool2d: _adaptive,
    AdaptiveMaxPool2d: _adaptive,
    ZeroPad2d: _zeropad,
    BatchNorm2d: _batchnorm,
    Flatten: _flatten,
    Linear: _linear,
    Residual: _residual,
    Concat: _concat,
}


# ---------------------------------------------------------------- walking back from one output pixel


def _walk_back(recs: list[_Rec], axis: int, out: int) -> int:
    """The input pixels (a bit set, exact: every map's padding and stride gaps respected) that the output pixels `out` read."""
    for rec in reversed(recs):
        if rec.paths is not None:
            out = _block_back(rec, axis, out)
        elif rec.steps is not None:
            out = rec.steps[0](*rec.steps[1 + axis]).pre(out)
        if not out:
            return 0
    return out


def _block_back(rec: _Rec, axis: int, out: int) -> int:
    reads = 0
    for path in rec.paths:
        reads |= _walk_back(path, axis, out)
    return reads


# ---------------------------------------------------------------- results


# ints stay ints in JSON (an effective stride is fractional only after a transposed conv); published as plain numbers
Numbers = Annotated[list[int | float], WithJsonSchema({"type": "array", "items": {"type": "number"}})]


class Region(BaseModel):
    """Inclusive input pixel indices."""

    top: int
    left: int
    bottom: int
    right: int


class ShapeRow(BaseModel):
    """One layer of shape_calculator (blocks are one row; their layers are in `block_layers`)."""

    index: int = Field(description="top-level layer index, from 0")
    path: str = Field(description="index path, e.g. '4' or '4.body.1' inside a block")
    type: str
    input_shape: list[int]
    output_shape: list[int]
    params: int
    buffers: int
    macs: int
    receptive_field: list[int] = Field(description="[h, w] in input pixels")
    effective_stride: Numbers = Field(description="[h, w] input pixels per output pixel (fractional after a transposed conv)")
    effective_padding: Numbers = Field(description="[h, w]; output pixel 0's region starts at -effective_padding")
    activation_bytes: int = Field(description="memory of this layer's output: elements * 4 (float32)")


# Row lists are published as bare arrays, their fields named in the description. The SDK's client validates
# structured content against the output schema with jsonschema in pure Python: VGG16's 38 fully described rows
# cost ~10 ms there against ~0.5 ms for the walk. The rows stay typed in Python (the pydantic models below),
# and the server validates what it sends against them.
LIGHT_ROWS = WithJsonSchema({"type": "array"})


def _fields(model: type[BaseModel]) -> str:
    """'Rows are objects with: a, b (what b is), ...' for a row model."""
    fields = ", ".join(f"{name} ({info.description})" if info.description else name for name, info in model.model_fields.items())
    return f"{model.__doc__} Each row is an object with: {fields}"


ShapeRows = Annotated[list[ShapeRow], LIGHT_ROWS]


class ShapeReport(BaseModel):
    """Result of shape_calculator: every layer's output shape, params, MACs and receptive field, as PyTorch."""

    input_shape: list[int]
    output_shape: list[int]
    total_params: int = Field(description="trainable parameters (weights, biases, BatchNorm affine)")
    total_buffers: int = Field(description="BatchNorm running statistics: running_mean + running_var + num_batches_tracked")
    total_macs: int = Field(description="multiply-accumulates of conv, transposed conv and linear, bias excluded, for the batch")
    total_activation_bytes: int = Field(description="sum of every layer's output, float32")
    receptive_field: list[int]
    effective_stride: Numbers
    effective_padding: Numbers
    layers: ShapeRows = Field(description="one row per top-level layer (a residual/concat block is one row). " + _fields(ShapeRow))
    block_layers: ShapeRows = Field(default_factory=list, description="layers inside residual/concat blocks, by path")
    warnings: list[str] = Field(default_factory=list)


class RFRow(BaseModel):
    """One layer of receptive_field."""

    index: int
    path: str
    type: str
    output_shape: list[int]
    receptive_field: list[int]
    effective_stride: Numbers
    effective_padding: Numbers


RFRows = Annotated[list[RFRow], LIGHT_ROWS]


class ReceptiveFieldReport(BaseModel):
    """Result of receptive_field: receptive field, effective stride and padding per layer; optionally one pixel's input region."""

    input_shape: list[int]
    output_shape: list[int]
    receptive_field: list[int] = Field(description="[h, w] input pixels one output pixel sees (the largest over pixels)")
    effective_stride: Numbers = Field(description="[h, w] input pixels between neighbouring output pixels")
    effective_padding: Numbers = Field(description="[h, w]: output pixel 0's region starts at -effective_padding")
    layers: RFRows = Field(description="one row per top-level layer. " + _fields(RFRow))
    block_layers: RFRows = Field(default_factory=list, description="layers inside residual/concat blocks, by path")
    output_position: list[int] | None = None
    input_region: Region | None = Field(None, description="inclusive input pixels output_position sees, padding counted")
    input_region_clipped: Region | None = Field(None, description="the same, restricted to the pixels it really reads inside the image")
    warnings: list[str] = Field(default_factory=list)


class ParamRow(BaseModel):
    """One layer of parameter_count."""

    index: int
    path: str
    type: str
    params: int
    buffers: int
    formula: str = Field(description="the params arithmetic with the numbers, e.g. '64*3*3*3 + 64 = 1,792'")
    buffers_formula: str | None = None


ParamRows = Annotated[list[ParamRow], LIGHT_ROWS]


class ParameterReport(BaseModel):
    """Result of parameter_count: params and buffers per layer with the formula behind each number."""

    total_params: int
    total_buffers: int
    layers: ParamRows = Field(description="one row per top-level layer. " + _fields(ParamRow))
    block_layers: ParamRows = Field(default_factory=list, description="layers inside residual/concat blocks, by path")
    input_shape: list[int] | None = None
    warnings: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------- entry points


class Walked:
    """The raw result of a walk: top-level and inner records, the output, and warnings."""

    def __init__(self, input_shape, records, inner, y, rf, warnings):
        self.input_shape, self.records, self.inner, self.y, self.rf, self.warnings = input_shape, records, inner, y, rf, warnings


def _input(input_shape: Any) -> _T:
    if not isinstance(input_shape, (list, tuple)) or not 1 <= len(input_shape) <= 4 or not all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_EXTENT for v in input_shape
    ):
        raise GeometryError(
            f"input_shape must be [C, H, W] or [N, C, H, W] of ints from 1 to {MAX_EXTENT:,} ([F] or [N, F] for a flat "
            f"input), got {short(input_shape)}"
        )
    dims = list(input_shape)
    if len(dims) >= 3:
        n = dims[0] if len(dims) == 4 else None
        c, h, w = dims[-3:]
        return _T(n, False, c, h, w)
    return _T(dims[0] if len(dims) == 2 else None, True, f=dims[-1])


def walk(
    input_shape: Any = None,
    layers: Any = None,
    spec: str | None = None,
    *,
    max_layers: int | None = None,
    max_depth: int | None = None,
    max_spec_chars: int | None = None,
) -> Walked:
    """Walk a network (JSON/model `layers` or text `spec`) from `input_shape` (None: channels and params only)."""
    if layers is not None and spec is not None:
        raise SpecError("give the network either as `layers` (a JSON list of layer objects) or as `spec` (text), not both")
    if layers is None and spec is None:
        raise SpecError("give the network as `layers` (a JSON list of layer objects) or `spec` (the text print(model) shows)")
    lines = None
    if spec is not None:
        layers, lines = parse_spec(spec, max_chars=max_spec_chars, max_layers=max_layers)
    count_layers(layers, max_layers=max_layers, max_depth=max_depth)
    try:
        models = layers if _all_models(layers) else validate_layers(layers)
        x = _input(input_shape) if input_shape is not None else _T(None, False)
        state = _Walk()
        image = AxisRF.image()  # maps are never changed in place, so both axes may share one
        rf = (image, image) if input_shape is not None and not x.flat else None
        records: list[_Rec] = []
        y, rf = state.sequence(models, x, rf, "", records)
    except ConvError as exc:
        if lines is None:
            raise
        raise type(exc)(_with_line(str(exc), lines, spec)) from None
    if lines is not None and any(m.type == "avgpool2d" for m in models):
        state.warnings.append("print(model) does not show AvgPool2d's ceil_mode and count_include_pad: assumed False and True")
    return Walked(x, records, state.inner, y, rf, state.warnings)


def _all_models(layers: Any) -> bool:
    return isinstance(layers, list) and all(isinstance(m, BaseModel) for m in layers)


def _with_line(message: str, lines: list[int], spec: str) -> str:
    match = re.match(r"layer (\d+)", message)
    if not match or int(match.group(1)) >= len(lines):
        return message
    number = lines[int(match.group(1))]
    source = spec.splitlines()[number - 1].strip()
    if len(source) > 120:  # never echo a huge line back
        source = source[:117] + "..."
    return f"{message} [spec line {number}: {source}]"


def _rf_fields(rf) -> tuple[list[int], list, list]:
    if rf is None:
        return [], [], []
    h, w = rf
    if h.period == 1 and w.period == 1:  # affine: no Fractions
        th, tw = h.tops[0], w.tops[0]
        if th is not None and tw is not None:
            return [h.bottoms[0] - th + 1, w.bottoms[0] - tw + 1], [h.shift, w.shift], [-th, -tw]
    return [h.size, w.size], [_num(h.stride), _num(w.stride)], [_num(h.padding), _num(w.padding)]


def _index(path: str) -> int:
    return int(path.split(".", 1)[0])


# Results are built from values the walk computed with the right types (ints from skills.arithmetic, exact
# numbers from _num), so the models are constructed without a validation pass (pydantic's model_construct,
# minus its per-field loop); the MCP server validates what it sends against these models once.
_new = object.__new__
_setattr = object.__setattr__


def _construct(model: type[BaseModel], fields: set[str], values: dict) -> Any:
    """model.model_construct(**values) for `values` holding every field in declaration order."""
    m = _new(model)
    _setattr(m, "__dict__", values)
    _setattr(m, "__pydantic_fields_set__", fields)  # shared: every field is set, so pydantic's add() never changes it
    _setattr(m, "__pydantic_extra__", None)
    _setattr(m, "__pydantic_private__", None)
    return m


_SHAPE_ROW_FIELDS = set(ShapeRow.model_fields)
_RF_ROW_FIELDS = set(RFRow.model_fields)
_PARAM_ROW_FIELDS = set(ParamRow.model_fields)
_SHAPE_FIELDS = set(ShapeReport.model_fields)
_RF_FIELDS = set(ReceptiveFieldReport.model_fields)
_PARAM_FIELDS = set(ParameterReport.model_fields)


def _shape_rows(records: list[_Rec], top: bool) -> list[ShapeRow]:
    rows = []
    append = rows.append
    for i, r in enumerate(records):
        size, stride, pad = _rf_fields(r.rf)
        y = r.y
        append(_construct(ShapeRow, _SHAPE_ROW_FIELDS, {
            "index": i if top else _index(r.path), "path": r.path, "type": r.type, "input_shape": r.x.dims(),
            "output_shape": y.dims(), "params": r.params, "buffers": r.buffers, "macs": r.macs, "receptive_field": size,
            "effective_stride": stride, "effective_padding": pad, "activation_bytes": y.elements() * BYTES_PER_ELEMENT,
        }))
    return rows


def _rf_rows(records: list[_Rec], top: bool) -> list[RFRow]:
    rows = []
    append = rows.append
    for i, r in enumerate(records):
        size, stride, pad = _rf_fields(r.rf)
        append(_construct(RFRow, _RF_ROW_FIELDS, {
            "index": i if top else _index(r.path), "path": r.path, "type": r.type, "output_shape": r.y.dims(),
            "receptive_field": size, "effective_stride": stride, "effective_padding": pad,
        }))
    return rows


def _param_rows(records: list[_Rec], top: bool) -> list[ParamRow]:
    return [
        _construct(ParamRow, _PARAM_ROW_FIELDS, {
            "index": i if top else _index(r.path), "path": r.path, "type": r.type, "params": r.params, "buffers": r.buffers,
            "formula": _text(r.formula), "buffers_formula": _text(r.buffers_formula),
        })
        for i, r in enumerate(records)
    ]


def report_json(report: ShapeReport | ReceptiveFieldReport | ParameterReport) -> dict:
    """report.model_dump(mode="json") without the serializer's pass over every value: a walk's reports hold only
    JSON values (ints, floats, strings, None, lists of them) and Regions. The value lists are shared with the report."""
    out = dict(report.__dict__)
    out["layers"] = [dict(r.__dict__) for r in out["layers"]]
    out["block_layers"] = [dict(r.__dict__) for r in out["block_layers"]]
    for key in ("input_region", "input_region_clipped"):
        region = out.get(key)
        if region is not None:
            out[key] = dict(region.__dict__)
    return out


def _totals(records: list[_Rec]) -> tuple[int, int, int]:
    """Params, buffers and MACs summed over top-level records (a block's record holds its layers' sums)."""
    params = buffers = macs = 0
    for r in records:
        params += r.params
        buffers += r.buffers
        macs += r.macs
    return params, buffers, macs


def _without_gc(fn):
    """Run fn with the cyclic garbage collector paused: a walk allocates many small objects and no reference cycles,
    and collector passes over them cost ~40% of a 1,000-layer walk. Reference counting still frees everything.
    Safe across threads: each call re-enables the collector only if it found it enabled."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return wrapper


@_without_gc
def shape_calculator(
    input_shape: Any,
    layers: Any = None,
    spec: str | None = None,
    *,
    max_layers: int | None = None,
    max_depth: int | None = None,
    max_spec_chars: int | None = None,
) -> ShapeReport:
    """Walk a network from input_shape: every layer's output shape, params, buffers, MACs and receptive field, as PyTorch."""
    if input_shape is None:
        raise GeometryError("input_shape is required: [C, H, W] or [N, C, H, W]")
    done = walk(input_shape, layers, spec, max_layers=max_layers, max_depth=max_depth, max_spec_chars=max_spec_chars)
    rows = _shape_rows(done.records, True)
    size, stride, pad = _rf_fields(done.rf)
    params, buffers, macs = _totals(done.records)
    return _construct(ShapeReport, _SHAPE_FIELDS, {
        "input_shape": done.input_shape.dims(), "output_shape": done.y.dims(),
        "total_params": params, "total_buffers": buffers, "total_macs": macs,
        "total_activation_bytes": sum([r.activation_bytes for r in rows]),
        "receptive_field": size, "effective_stride": stride, "effective_padding": pad,
        "layers": rows, "block_layers": _shape_rows(done.inner, False), "warnings": done.warnings,
    })


@_without_gc
def receptive_field(
    input_shape: Any,
    layers: Any = None,
    spec: str | None = None,
    output_position: Any = None,
    *,
    max_layers: int | None = None,
    max_depth: int | None = None,
    max_spec_chars: int | None = None,
) -> ReceptiveFieldReport:
    """Receptive field, effective stride and effective padding per layer; with output_position [y, x], the input region it sees."""
    if input_shape is None:
        raise GeometryError("input_shape is required: [C, H, W] or [N, C, H, W]")
    done = walk(input_shape, layers, spec, max_layers=max_layers, max_depth=max_depth, max_spec_chars=max_spec_chars)
    if done.rf is None:
        raise GeometryError(f"input_shape {done.input_shape.dims()} is flat: a receptive field needs a [C, H, W] input")
    size, stride, pad = _rf_fields(done.rf)
    rows, inner = _rf_rows(done.records, True), _rf_rows(done.inner, False)
    position, region, clipped = _position(done, output_position) if output_position is not None else (None, None, None)
    return _construct(ReceptiveFieldReport, _RF_FIELDS, {
        "input_shape": done.input_shape.dims(), "output_shape": done.y.dims(), "receptive_field": size,
        "effective_stride": stride, "effective_padding": pad, "layers": rows, "block_layers": inner,
        "output_position": position, "input_region": region, "input_region_clipped": clipped, "warnings": done.warnings,
    })


def _position(done: Walked, output_position: Any) -> tuple[list[int], Region | None, Region | None]:
    """output_position checked, its input region, and the region clipped to the pixels it really reads."""
    y = done.y
    if y.flat:
        raise GeometryError(
            f"output_position needs a spatial output but the network's output is flattened ({y.dims()}); "
            "walk only the conv part, or leave output_position out (after flatten one output sees the whole map)"
        )
    pos = output_position
    if not (isinstance(pos, (list, tuple)) and len(pos) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in pos)):
        raise GeometryError(f"output_position must be [y, x] (ints), got {short(pos)}")
    py, px = pos
    if not (0 <= py < y.h and 0 <= px < y.w):
        raise GeometryError(
            f"output_position {short(pos)} is outside the output: it is {y.h}x{y.w}, so y must be 0..{y.h - 1} "
            f"and x 0..{y.w - 1}"
        )
    rh, rw = done.rf
    if rh.top(py) is None or rw.top(px) is None:
        done.warnings.append(f"output pixel [{py}, {px}] receives no input pixel (no kernel tap reaches it)")
        return [py, px], None, None
    region = Region(top=rh.top(py), left=rw.top(px), bottom=rh.bottom(py), right=rw.bottom(px))
    rows = _walk_back(done.records, 0, 1 << py)
    cols = _walk_back(done.records, 1, 1 << px)
    if not rows or not cols:
        done.warnings.append(f"output pixel [{py}, {px}] reads only padding: no pixel of the image reaches it")
        return [py, px], region, None
    return [py, px], region, Region(top=_low(rows), left=_low(cols), bottom=rows.bit_length() - 1, right=cols.bit_length() - 1)


def _low(bits: int) -> int:
    return (bits & -bits).bit_length() - 1


@_without_gc
def parameter_count(
    layers: Any = None,
    spec: str | None = None,
    input_shape: Any = None,
    *,
    max_layers: int | None = None,
    max_depth: int | None = None,
    max_spec_chars: int | None = None,
) -> ParameterReport:
    """Params and buffers per layer with the formula behind each; input_shape only where channels must be inferred."""
    done = walk(input_shape, layers, spec, max_layers=max_layers, max_depth=max_depth, max_spec_chars=max_spec_chars)
    params, buffers, _ = _totals(done.records)
    return _construct(ParameterReport, _PARAM_FIELDS, {
        "total_params": params, "total_buffers": buffers,
        "layers": _param_rows(done.records, True), "block_layers": _param_rows(done.inner, False),
        "input_shape": done.input_shape.dims() if input_shape is not None else None, "warnings": done.warnings,
    })
