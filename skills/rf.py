"""Receptive-field algebra, per spatial axis (Araujo et al., "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019), exact for every layer the walk knows.

Per axis, a map `AxisRF` says which input region output pixel y sees: [top(y), bottom(y)], inclusive input pixel
indices, padding counted as pixels (i.e. before clipping to the image):

* conv/pool stacks keep it affine, top(y) = y*J - P and bottom(y) = top(y) + RF - 1, stepped by
  `arithmetic.receptive_field_step` (RF, effective stride J, effective padding P). Padding layers' leading padding
  counts in P; dilation counts in the kernel's span.
* transposed conv (stride s), upsampling and adaptive pooling with a non-integer ratio make the region depend on the
  pixel's phase. The map then keeps one (top, bottom) per phase over a period of `period` output pixels, after which
  the region moves by a whole number `shift` of input pixels: the exact rule, no rounding. Reported then:
  `stride` = shift / period as an exact fraction (0.5 after a stride-2 transposed conv on the image); `size` = the
  largest region over the phases (what a gradient probe from the worst pixel sees); `padding` = -top(0). An output
  pixel that no kernel tap reaches (dilation and stride sharing a factor) sees nothing; it is skipped.
* a broadcast (an axis of size 1 stretched by `add`/`mul`, e.g. a squeeze-excitation gate) and everything after a
  global window see a region that does not move: stride 0.
* merges (residual, concat, add, mul) take the hull of their paths; paths whose centres differ become a warning.

The walk back from one output pixel (`pre` of each step) uses bit sets (bit i = pixel i of a map), so padding,
stride gaps and pixels no window reaches are excluded exactly: that gives `input_region_clipped`.
"""

from __future__ import annotations

import struct
from array import array
from fractions import Fraction
from functools import lru_cache
from math import floor, gcd
from typing import Any

from .arithmetic import receptive_field_step
from .errors import GeometryError

AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
"""Names of the spatial axes by dimensionality, as error messages and warnings call them."""

MAX_RF_WORK = 10_000_000
"""Bound on the per-phase receptive-field work of one layer (phases x window): an adaptive pool from a huge map to a
size that does not divide it (e.g. 2,000,000,005 -> 999,999,999) would otherwise track ~1e9 phases (hours, memory)."""


# ---------------------------------------------------------------- one layer along one axis


class WindowStep:
    """A sliding window (conv, pool, padding, flatten): output y reads inputs y*s - p + t*d, t = 0..k-1.

    s = 0 is a broadcast: every output pixel reads the same window (an axis of size 1 stretched to n)."""

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
        if self.s == 0:
            spread = 1 if out else 0
        else:
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

    @property
    def window(self) -> int:
        return -(-self.n // self.m) + 1

    def span(self, i: int) -> tuple[int, int]:
        return (i * self.n) // self.m, -((-(i + 1) * self.n) // self.m) - 1

    def pre(self, out: int) -> int:
        reads = 0
        for i in _bits(out):
            lo, hi = self.span(i)
            reads |= ((1 << (hi - lo + 1)) - 1) << lo
        return reads


NEAREST_CHECK = 1 << 22
"""Output sizes up to which a nearest upsampling's float32 index rule (PyTorch's) is compared pixel by pixel with the
exact ratio it approximates, to decide whether the receptive-field map may use the ratio's period; past it the ratio
is used for the map (the walk back from a pixel always follows PyTorch's rule)."""


def _f32(x: float) -> float:
    """x rounded to float32 (the product or quotient of two float32 values, formed exactly in double, rounds once)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def torch_nearest_scale(n: int, m: int, scale_factor: float | None) -> float:
    """The float32 scale PyTorch's nearest kernels use (compute_scales_value<float>): 1/scale_factor, or n/m."""
    return _f32(1.0 / scale_factor) if scale_factor is not None else _f32(_f32(n) / m)


def _nearest_source(o, n: int, mode: str, s32: float):
    """PyTorch's source index of output pixels o (a numpy int64 array) as its forward computes it on a float32 map
    (UpSampleKernel.cpp, opmath float): floorf(s * o) for nearest, floorf((s * (o + 0.5f) - 0.5f) + 0.5) for
    nearest-exact, at most n - 1."""
    import numpy as np

    o = o.astype(np.float32)
    s = np.float32(s32)
    if mode == "nearest":
        src = s * o
    else:
        src = ((s * (o + np.float32(0.5)) - np.float32(0.5)).astype(np.float64) + 0.5).astype(np.float32)
    return np.minimum(np.floor(src).astype(np.int64), n - 1)


@lru_cache(maxsize=256)
def _nearest_is_ratio(n: int, m: int, mode: str, s32: float, p: int, q: int) -> bool:
    """Whether PyTorch's float32 rule picks floor(o * p/q) (nearest) or floor((o + 1/2) * p/q) (nearest-exact) at every
    output pixel o < m; compared in chunks, so memory stays small; assumed past NEAREST_CHECK."""
    import numpy as np

    chunk = 1 << 20
    for lo in range(0, m if m <= NEAREST_CHECK else 0, chunk):
        o = np.arange(lo, min(m, lo + chunk), dtype=np.int64)
        exact = (o * p) // q if mode == "nearest" else ((2 * o + 1) * p) // (2 * q)
        if not np.array_equal(_nearest_source(o, n, mode, s32), np.minimum(exact, n - 1)):
            return False
    return True


def _bit_indices(bits: int):
    """The set bits' indices, lowest first, as a numpy array."""
    import numpy as np

    raw = np.frombuffer(bits.to_bytes((bits.bit_length() + 7) // 8 or 1, "little"), dtype=np.uint8)
    return np.flatnonzero(np.unpackbits(raw, bitorder="little"))


def _bit_set(indices, n: int) -> int:
    """The bit set of the given indices (each in [0, n))."""
    import numpy as np

    mask = np.zeros(n, dtype=bool)
    mask[indices] = True
    return int.from_bytes(np.packbits(mask, bitorder="little").tobytes(), "little")


class SampleStep:
    """Upsampling n -> m (nn.Upsample, F.interpolate): output o reads the taps around the source coordinate
    src(o) = o*scale + offset, PyTorch's rule (scale = 1/scale_factor, or n/m when a size is given; (n-1)/(m-1) with
    align_corners). `mode` is nearest, nearest-exact, linear (linear, bilinear, trilinear) or bicubic.

    With a scale that is a small fraction S/P the rule is periodic (P output pixels, shift S) and computed with exact
    rationals; otherwise (scale_factor=1.3) it is tabulated over the m output pixels, in double precision as PyTorch
    computes it for float64 maps. Nearest modes given `f32` (PyTorch's float32 scale, torch_nearest_scale) pick the
    pixel PyTorch's forward picks on a float32 map (its default dtype; a float64 map rounds once less and may pick the
    neighbour where the ratio lands within float32 rounding of a pixel boundary): periodic where that is the exact
    ratio's pick at every output pixel, else tabulated. `span` is the unclamped rule (taps past the border count like padding); `pre` clamps to [0, n) as
    PyTorch does, and leaves out taps whose weight is exactly 0 (a source coordinate that falls on a pixel)."""

    __slots__ = ("n", "m", "mode", "scale", "offset", "period", "shift", "table", "f32")

    def __init__(self, n: int, m: int, mode: str, scale: Fraction, offset: Fraction, f32: float | None = None):
        self.n, self.m, self.mode, self.scale, self.offset, self.f32 = n, m, mode, scale, offset, f32
        periodic = scale.denominator <= m
        if periodic and f32 is not None:
            periodic = _nearest_is_ratio(n, m, mode, f32, scale.numerator, scale.denominator)
        if periodic:
            self.period, self.shift, self.table = scale.denominator, scale.numerator, None
        elif f32 is not None:  # PyTorch's float32 pick per output pixel, tabulated when `span` first needs it
            self.period, self.shift, self.table = m, n, ()
        else:  # not periodic within the map: one entry per output pixel
            self.period, self.shift = m, n
            self.scale, self.offset = float(scale), float(offset)
            self.table = [self._taps(o) for o in range(m)]

    @property
    def window(self) -> int:
        return 4 if self.mode == "bicubic" else 2

    def _taps(self, o: int) -> tuple[int, int]:
        src = o * self.scale + self.offset
        i = floor(src)
        if self.mode in ("nearest", "nearest-exact") or src == i:  # a source on a pixel: the other taps weigh 0
            return i, i
        return (i - 1, i + 2) if self.mode == "bicubic" else (i, i + 1)

    def span(self, o: int) -> tuple[int, int]:
        """(first, last) input pixel output o reads, unclamped."""
        if self.table is None:
            return self._taps(o)
        q, r = divmod(o, self.m)
        if self.f32 is not None:
            if not self.table:
                import numpy as np

                self.table = array("q", _nearest_source(np.arange(self.m, dtype=np.int64), self.n, self.mode, self.f32).tobytes())
            i = self.table[r] + q * self.n
            return i, i
        lo, hi = self.table[r]
        return lo + q * self.n, hi + q * self.n

    def pre(self, out: int) -> int:
        if self.f32 is not None:  # PyTorch's float32 pick, pixel by pixel
            return _bit_set(_nearest_source(_bit_indices(out), self.n, self.mode, self.f32), self.n) if out else 0
        reads, last = 0, self.n - 1
        for o in _bits(out):
            if self.mode == "linear" and self.offset < 0:  # PyTorch clamps the source coordinate itself at 0
                src = max(o * self.scale + self.offset, 0)
                i = floor(src)
                lo, hi = (i, i) if src == i else (i, i + 1)
            else:
                lo, hi = self.span(o)
            lo, hi = min(max(lo, 0), last), min(max(hi, 0), last)
            reads |= ((1 << (hi - lo + 1)) - 1) << lo
        return reads


class PadStep:
    """A padding layer that reads real pixels (reflect, replicate, circular): output y reads input y - p, mirrored,
    clamped or wrapped back into [0, n). `span` counts padding as pixels, like zero padding does; `pre` is exact."""

    __slots__ = ("p", "n", "mode")
    period = shift = 1

    def __init__(self, p: int, n: int, mode: str):
        self.p, self.n, self.mode = p, n, mode

    def span(self, y: int) -> tuple[int, int]:
        return y - self.p, y - self.p

    def pre(self, out: int) -> int:
        n, reads = self.n, 0
        inside = _shift(out, -self.p) & ((1 << n) - 1)
        outside = out & ~_shift((1 << n) - 1, self.p)  # output pixels whose source y - p is off the map
        for y in _bits(outside):
            i = y - self.p
            if self.mode == "reflect":
                i = -i if i < 0 else 2 * (n - 1) - i
            elif self.mode == "replicate":
                i = min(max(i, 0), n - 1)
            else:
                i %= n
            reads |= 1 << i
        return inside | reads


def _bits(bits: int):
    """Indices of the set bits, lowest first."""
    i = 0
    while bits:
        low = bits & -bits
        i = low.bit_length() - 1
        yield i
        bits ^= low


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


# ---------------------------------------------------------------- the map of one axis


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
        if self.period == 1 and step.period == 1 and isinstance(step, (WindowStep, AdaptiveStep)) and self.tops[0] is not None:
            # the affine case: Araujo et al.'s recurrence, the one copy in arithmetic.receptive_field_step
            t, b = self.tops[0], self.bottoms[0]
            if isinstance(step, WindowStep):
                rf, jump, start = receptive_field_step(b - t + 1, self.shift, (t + b) / 2, step.k, step.s, step.p, step.d)
            else:  # an adaptive pool whose input is a whole multiple of its output: a plain window k = s = n/m
                k = step.n // step.m
                rf, jump, start = receptive_field_step(b - t + 1, self.shift, (t + b) / 2, k, k, 0, 1)
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

    def contains(self, other: AxisRF, n: int) -> bool:
        """Whether this map's region holds other's for every output pixel 0..n-1 (each is affine within a phase class,
        so its first and last pixel decide)."""
        period = self.period * other.period // gcd(self.period, other.period)
        for r in range(min(period, n)):
            last = r + (n - 1 - r) // period * period
            for y in (r, last):
                t, b = other.top(y), other.bottom(y)
                if t is None:
                    continue
                mt, mb = self.top(y), self.bottom(y)
                if mt is None or mt > t or mb < b:
                    return False
        return True


def windows(rf: tuple, ks, ss, ps, ds) -> tuple:
    """The maps after a sliding window on every axis (one computation for axes that are alike)."""
    if len(rf) == 2:  # the common case, unrolled
        h, w = rf
        nh = h.window(ks[0], ss[0], ps[0], ds[0])
        if w is h and ks[1] == ks[0] and ss[1] == ss[0] and ps[1] == ps[0] and ds[1] == ds[0]:
            return nh, nh
        return nh, w.window(ks[1], ss[1], ps[1], ds[1])
    out = []
    prev = None
    for i, m in enumerate(rf):
        if prev is not None and m is rf[i - 1] and ks[i] == ks[i - 1] and ss[i] == ss[i - 1] and ps[i] == ps[i - 1] and ds[i] == ds[i - 1]:
            out.append(prev)
            continue
        prev = m.window(ks[i], ss[i], ps[i], ds[i])
        out.append(prev)
    return tuple(out)


def advance(rf: tuple | None, steps: tuple, label) -> tuple | None:
    """The maps after a layer whose regions may depend on the phase (transposed conv, upsampling, adaptive pool);
    `steps` is (step class, its arguments: one tuple per argument, an entry per axis). Bounded by MAX_RF_WORK,
    with an error naming the layer."""
    if rf is None:
        return None
    cls, fields = steps
    names = AXIS_NAMES[len(rf)]
    out = []
    for i, (axis, m) in enumerate(zip(names, rf, strict=True)):
        step = cls(*[f[i] for f in fields])
        if m.period > 1 or step.period > 1:
            period = m.period // gcd(step.shift, m.period) * step.period if step.shift else step.period
            window = getattr(step, "window", 1)
            if period * window > MAX_RF_WORK:
                raise GeometryError(
                    f"{label() if callable(label) else label}: its receptive field along {axis} repeats only every {period:,} output pixels "
                    f"(windows of up to {window:,} px), more than the walk tracks ({MAX_RF_WORK:,} phase x window "
                    "steps); choose sizes whose ratio is a small fraction, or a smaller map"
                )
        out.append(m.then(step))
    return tuple(out)


# ---------------------------------------------------------------- merges


def hull(paths: list[AxisRF], n: int | None, axis: str, where, labels: list[str], warnings: list[str]) -> AxisRF:
    """Region after a merge (residual, concat, add, mul): the hull of its paths' regions over the n output pixels;
    misaligned centres become a warning naming the merge (`where`: text, or a function giving it)."""
    if all(p.period == 1 for p in paths):  # the common case in integers (no Fractions): one stride, centres aligned
        shifts = {p.shift for p in paths}
        ends = [(p.tops[0], p.bottoms[0]) for p in paths if p.tops[0] is not None]
        if len(shifts) == 1 and len({t + b for t, b in ends}) <= 1:
            return AxisRF(1, shifts.pop(), (min((t for t, _ in ends), default=None),), (max((b for _, b in ends), default=None),))
    strides = {p.stride for p in paths}
    if len(strides) > 1:
        if n is not None:  # e.g. a squeeze-excitation gate (stride 0) that sees everything the other path sees
            for p in paths:
                if all(q is p or p.contains(q, n) for q in paths):
                    return p
        widest = max(paths, key=lambda p: p.size)
        where = where() if callable(where) else where
        warnings.append(
            f"{where}: paths have different effective strides along {axis} "
            f"({', '.join(f'{lab} {num(p.stride)}' for lab, p in zip(labels, paths, strict=True))}); "
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
        where = where() if callable(where) else where
        warnings.append(
            f"{where}: path centres do not line up along {axis}: output pixel {y} is centred at input "
            + ", ".join(f"{num(c)} ({lab})" for lab, c in zip(labels, centres, strict=True) if c is not None)
            + "; the receptive field is the hull of the paths"
        )
    return AxisRF(period, int(stride * period), tuple(tops), tuple(bottoms))


def num(x: Fraction | int | None) -> int | float | None:
    """An exact value for JSON: an int when whole, else a float."""
    if x is None:
        return None
    if isinstance(x, Fraction):
        return int(x) if x.denominator == 1 else float(x)
    return x


def fields(rf: tuple | None) -> tuple[list[int], list, list]:
    """(receptive_field, effective_stride, effective_padding), one entry per axis, for a report row."""
    if rf is None:
        return [], [], []
    if len(rf) == 2:  # the common case, unrolled (rows are the walk's hot path too)
        h, w = rf
        th, tw = h.tops[0], w.tops[0]
        if h.period == 1 and w.period == 1 and th is not None and tw is not None:  # affine: no Fractions
            return [h.bottoms[0] - th + 1, w.bottoms[0] - tw + 1], [h.shift, w.shift], [-th, -tw]
    elif all(m.period == 1 and m.tops[0] is not None for m in rf):
        return [m.bottoms[0] - m.tops[0] + 1 for m in rf], [m.shift for m in rf], [-m.tops[0] for m in rf]
    return [m.size for m in rf], [num(m.stride) for m in rf], [num(m.padding) for m in rf]
