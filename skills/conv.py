"""Convolution from scratch in NumPy, exactly as torch.nn.functional.conv2d: naive loops, im2col + GEMM, and the backward pass.

Layout is PyTorch's: x is [C, H, W] or [N, C, H, W], weight is [C_out, C_in/groups, kH, kW], bias [C_out].
The fast path works image by image (and, for very large images, block of output rows by block) through one
preallocated column buffer [C_in*kH*kW, rows*W_out], filled by kH*kW strided copies in the order the GEMM reads
(strided convs first split the padded image into its stride phases, so every copy has unit stride), then
`np.matmul(weight[G, C_out/G, C_in/G*kH*kW], columns[G, ...], out=output rows)` writes straight into the result.
Measured (bench/bench_conv.py), this beat the "kernel-offset" formulation (one GEMM per (kh, kw) accumulated into
the output) on both benchmark shapes, and a "wide row" im2col over the padded width, so it is the only fast path.
float32 stays float32 and float64 stays float64 end to end; integer input computes in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .arithmetic import Padding, Pair, PairLike, check_padding_mode, conv_output_length, pair, resolve_conv_padding
from .errors import ArrayError, GeometryError

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
Method = Literal["naive", "im2col"]
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
# PyTorch's padding modes in np.pad's words; np.pad's "symmetric" repeats the edge pixel, PyTorch's reflect does not.
NP_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
# Largest column buffer (elements) built at once; bigger images are cut into blocks of output rows. 2 MiB of
# float32 stays in cache between the copy and the GEMM: measured as fast as whole-image buffers on an idle
# machine and faster on a busy one (bench/bench_conv.py shapes), with a quarter of the memory.
COLUMN_BUDGET = 1 << 19


# ---------------------------------------------------------------------------------------------------------------
# Arrays in


MAX_NESTING = 8  # deepest nested list looked at; arrays here have at most 4 axes


def _nested_shape(value: Any, name: str) -> None:
    """Raise ArrayError naming the first place where a nested list is ragged (rows of different lengths or depths)."""

    def walk(v: Any, path: str, depth: int) -> tuple[int, ...]:
        if isinstance(v, (list, tuple)):
            if depth >= MAX_NESTING:
                raise ArrayError(
                    f"{name} nests lists more than {MAX_NESTING} deep at {path}; arrays here have at most 4 axes"
                )
            if not v:
                return (0,)
            shapes = [walk(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(v)]
            for i, s in enumerate(shapes[1:], start=1):
                if s != shapes[0]:
                    raise ArrayError(
                        f"{name} is ragged: {path}[0] has shape {list(shapes[0])} but {path}[{i}] has shape {list(s)}; "
                        "every row must have the same length"
                    )
            return (len(v), *shapes[0])
        return ()

    walk(value, name, 0)


def _first_non_number(value: Any, name: str) -> str | None:
    """The error for the first item of a nested list that is no real number, with its index path; None if none."""
    stack = [(value, name)]
    while stack:
        v, path = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend((item, f"{path}[{i}]") for i, item in reversed(list(enumerate(v))))
        elif v is None:
            return f"{path} is null, not a number (NaN and infinity are no JSON numbers: clients send them as null)"
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."
            return f"{path} is {shown}, not a number: arrays must hold real numbers (int or float)"
    return None


def as_array(value: Any, name: str, ranks: tuple[int, ...], dtype: Any = None) -> np.ndarray:
    """A numeric NumPy array from a nested list or array, with one of the given ranks; ArrayError otherwise."""
    if isinstance(value, np.ndarray):
        arr = value
    else:
        probe, depth = value, 0
        while isinstance(probe, (list, tuple)) and probe and depth <= MAX_NESTING:
            probe, depth = probe[0], depth + 1
        if depth > MAX_NESTING:
            raise ArrayError(f"{name} nests lists more than {MAX_NESTING} deep; arrays here have at most 4 axes")
        try:
            arr = np.asarray(value)
        except (ValueError, RecursionError):
            _nested_shape(value, name)
            raise ArrayError(f"{name} could not be read as an array of numbers") from None
        if arr.dtype == object:
            _nested_shape(value, name)
    if arr.dtype.kind not in "iuf":
        where = _first_non_number(value, name) if not isinstance(value, np.ndarray) else None
        if where is not None:
            raise ArrayError(where)
        raise ArrayError(
            f"{name} must hold real numbers (int or float), got dtype {arr.dtype}"
            + (" (strings, null or mixed items?)" if arr.dtype.kind in "OUS" else "")
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ArrayError(
            f"{name}{''.join(f'[{i}]' for i in index)} is {float(arr[index])}: arrays must hold finite numbers (no NaN or infinity)"
        )
    if arr.ndim not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ArrayError(f"{name} must have {want} dimensions, got {arr.ndim} (shape {list(arr.shape)})")
    if 0 in arr.shape:
        raise ArrayError(f"{name} has an empty axis (shape {list(arr.shape)}); every axis needs at least 1 element")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    return arr


def _float_dtype(*arrays: np.ndarray | None) -> np.dtype:
    """The computation dtype: the floats' common type, at least float32 (float32 stays float32); all-int input -> float64."""
    floats = [a.dtype for a in arrays if a is not None and a.dtype.kind == "f"]
    return np.result_type(*floats, np.float32) if floats else np.dtype(np.float64)


# ---------------------------------------------------------------------------------------------------------------
# Geometry


@dataclass(frozen=True)
class ConvGeometry:
    """Every size of one conv2d call, resolved and checked once; shapes are [N, C, H, W] (N=1 when x had no batch)."""

    n: int
    c_in: int
    h: int
    w: int
    c_out: int
    kh: int
    kw: int
    groups: int
    stride: Pair
    dilation: Pair
    pad_before: Pair
    pad_after: Pair
    padding_mode: str
    h_out: int
    w_out: int
    batched: bool

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of the output: [N, C_out, H_out, W_out], or [C_out, H_out, W_out] when x had no batch axis."""
        core = (self.c_out, self.h_out, self.w_out)
        return (self.n, *core) if self.batched else core

    @property
    def input_shape(self) -> tuple[int, ...]:
        core = (self.c_in, self.h, self.w)
        return (self.n, *core) if self.batched else core

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.c_out, self.c_in // self.groups, self.kh, self.kw)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the forward pass, bias excluded: N*C_out*H_out*W_out*(C_in/groups)*kH*kW."""
        return self.n * self.c_out * self.h_out * self.w_out * (self.c_in // self.groups) * self.kh * self.kw

    @property
    def padded(self) -> Pair:
        return (self.h + self.pad_before[0] + self.pad_after[0], self.w + self.pad_before[1] + self.pad_after[1])

    @property
    def column_rows(self) -> int:
        """Rows of the im2col matrix: C_in*kH*kW (ordered c, kh, kw like weight.reshape(C_out, -1))."""
        return self.c_in * self.kh * self.kw

    @property
    def rows_per_block(self) -> int:
        """Output rows handled per GEMM so that the column buffer stays within COLUMN_BUDGET elements, blocks as even as can be."""
        most = max(1, min(self.h_out, COLUMN_BUDGET // max(1, self.column_rows * self.w_out)))
        blocks = -(-self.h_out // most)
        return -(-self.h_out // blocks)

    @property
    def row_blocks(self) -> list[tuple[int, int]]:
        step = self.rows_per_block
        return [(r, min(r + step, self.h_out)) for r in range(0, self.h_out, step)]


def conv_geometry(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    stride: PairLike = 1,
    padding: Padding = 0,
    dilation: PairLike = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> ConvGeometry:
    """Resolve and check the geometry of conv2d(x [C,H,W] or [N,C,H,W], weight [C_out, C_in/groups, kH, kW])."""
    if len(x_shape) not in (3, 4):
        raise ArrayError(f"x must be [C, H, W] or [N, C, H, W], got {len(x_shape)} dimensions (shape {list(x_shape)})")
    if len(weight_shape) != 4:
        raise ArrayError(
            f"weight must be [C_out, C_in/groups, kH, kW], got {len(weight_shape)} dimensions (shape {list(weight_shape)})"
        )
    batched = len(x_shape) == 4
    n, c_in, h, w = x_shape if batched else (1, *x_shape)
    c_out, c_per_group, kh, kw = weight_shape
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise GeometryError(f"groups must be an int >= 1, got {groups!r}")
    groups = int(groups)
    if c_in % groups:
        raise ArrayError(
            f"groups must divide the input channels: C_in={c_in} is not divisible by groups={groups} "
            f"(use a groups that divides {c_in}, e.g. 1 or {c_in})"
        )
    if c_out % groups:
        raise ArrayError(
            f"groups must divide the output channels: weight has C_out={c_out}, not divisible by groups={groups} "
            f"(give a weight with a multiple of {groups} output channels)"
        )
    if c_per_group * groups != c_in:
        raise ArrayError(
            f"channel mismatch: x has C_in={c_in} channels but weight {list(weight_shape)} expects "
            f"weight.shape[1]*groups = {c_per_group}*{groups} = {c_per_group * groups}; "
            f"weight.shape[1] must be C_in/groups = {c_in // groups}"
            + (
                f" (or use groups={c_in // c_per_group})"
                if c_per_group and c_in % c_per_group == 0 and (c_out % (c_in // c_per_group) == 0)
                else ""
            )
        )
    strides = pair(stride, "stride", minimum=1)
    dil = pair(dilation, "dilation", minimum=1)
    before, after = resolve_conv_padding(padding, (kh, kw), strides, dil)
    if padding_mode not in PADDING_MODES:
        raise GeometryError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    check_padding_mode((h, w), before, after, padding_mode)
    outs = []
    for axis, size, k, s, pb, pa, d in zip("HW", (h, w), (kh, kw), strides, before, after, dil, strict=True):
        try:
            outs.append(conv_output_length(size, k, s, pb, pa, d))
        except GeometryError as exc:
            raise GeometryError(f"conv2d along {axis}: {exc}; use more padding, a smaller kernel or dilation") from None
    return ConvGeometry(
        n, c_in, h, w, c_out, kh, kw, groups, strides, dil, before, after, padding_mode, outs[0], outs[1], batched
    )


def _prepare(x, weight, bias, stride, padding, dilation, groups, padding_mode):
    """Arrays as [N, C, H, W] / weight / bias in one float dtype, and the checked geometry."""
    x = as_array(x, "x", (3, 4))
    weight = as_array(weight, "weight", (4,))
    b = None if bias is None else as_array(bias, "bias", (1,))
    geom = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups, padding_mode)
    if b is not None and b.shape[0] != geom.c_out:
        raise ArrayError(f"bias must have C_out={geom.c_out} entries (one per output channel), got {b.shape[0]}")
    dtype = _float_dtype(x, weight, b)
    x4 = x.astype(dtype, copy=False).reshape(geom.n, geom.c_in, geom.h, geom.w)
    return x4, weight.astype(dtype, copy=False), None if b is None else b.astype(dtype, copy=False), geom


# ---------------------------------------------------------------------------------------------------------------
# Padding, im2col, col2im


def pad_image(image: np.ndarray, geom: ConvGeometry) -> np.ndarray:
    """One image [C, H, W] padded to [C, H+top+bottom, W+left+right] in the geometry's padding mode (copies)."""
    (top, left), (bottom, right) = geom.pad_before, geom.pad_after
    widths = ((0, 0), (top, bottom), (left, right))
    if geom.padding_mode == "zeros":
        return np.pad(image, widths)
    return np.pad(image, widths, mode=NP_PAD_MODE[geom.padding_mode])


class _Padder:
    """Pads image after image into one reused buffer (zeros mode: the border is written once, only the inside per image)."""

    def __init__(self, geom: ConvGeometry, dtype: np.dtype):
        self.geom = geom
        self.trivial = geom.pad_before == (0, 0) and geom.pad_after == (0, 0)
        self.buffer = None
        if not self.trivial and geom.padding_mode == "zeros":
            self.buffer = np.zeros((geom.c_in, *geom.padded), dtype=dtype)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.trivial:
            return image
        if self.buffer is None:
            return pad_image(image, self.geom)
        (top, left), g = self.geom.pad_before, self.geom
        self.buffer[:, top : top + g.h, left : left + g.w] = image
        return self.buffer


def _window(geom: ConvGeometry, i: int, j: int, r0: int, r1: int) -> tuple[slice, slice]:
    """Slices of the padded image that kernel tap (i, j) reads for output rows r0..r1-1 (all output columns)."""
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    top = i * dh + sh * r0
    left = j * dw
    return slice(top, top + sh * (r1 - r0 - 1) + 1, sh), slice(left, left + sw * (geom.w_out - 1) + 1, sw)


def _phases(padded: np.ndarray, geom: ConvGeometry) -> list[list[np.ndarray]] | None:
    """For strided convs, the padded image split into its stride phases [a][b] = padded[:, a::sH, b::sW] (one copy).

    Every kernel tap then reads one phase with unit stride, which copies about twice as fast as a strided read;
    only worth it when the taps outnumber the phases.
    """
    sh, sw = geom.stride
    if (sh, sw) == (1, 1) or geom.kh * geom.kw <= sh * sw:
        return None
    return [[np.ascontiguousarray(padded[:, a::sh, b::sw]) for b in range(sw)] for a in range(sh)]


def _fill_columns(
    padded: np.ndarray, geom: ConvGeometry, r0: int, r1: int, cols: np.ndarray, phases: list | None = None
) -> None:
    """cols [C, kH, kW, r1-r0, W_out] <- the windows of padded [C, Hp, Wp]: kH*kW strided copies, no Python loop over pixels."""
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    for i in range(geom.kh):
        for j in range(geom.kw):
            if phases is None:
                rows, columns = _window(geom, i, j, r0, r1)
                cols[:, i, j] = padded[:, rows, columns]
            else:
                (top, a), (left, b) = divmod(i * dh, sh), divmod(j * dw, sw)
                cols[:, i, j] = phases[a][b][:, top + r0 : top + r1, left : left + geom.w_out]


def _scatter_columns(dcols: np.ndarray, geom: ConvGeometry, r0: int, r1: int, dpadded: np.ndarray) -> None:
    """dpadded [C, Hp, Wp] += every window of dcols [C, kH, kW, r1-r0, W_out], accumulating where windows overlap."""
    for i in range(geom.kh):
        for j in range(geom.kw):
            rows, columns = _window(geom, i, j, r0, r1)
            view = dpadded[:, rows, columns]
            view += dcols[:, i, j]


def _geometry_for_columns(shape, kernel_size, stride, padding, dilation, padding_mode="zeros") -> ConvGeometry:
    kh, kw = pair(kernel_size, "kernel_size", minimum=1)
    c = shape[-3]
    return conv_geometry(tuple(shape), (1, c, kh, kw), stride, padding, dilation, 1, padding_mode)


def im2col(
    x: Any,
    kernel_size: PairLike,
    stride: PairLike = 1,
    padding: Padding = 0,
    dilation: PairLike = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """The column matrix of x: [C, H, W] -> [C*kH*kW, H_out*W_out] (or [N, C*kH*kW, H_out*W_out] for [N, C, H, W]).

    Row (c*kH + i)*kW + j, column r*W_out + s holds padded_x[c, r*stride + i*dilation, s*stride + j*dilation],
    so weight.reshape(C_out, -1) @ im2col(x) is the convolution.
    """
    arr = as_array(x, "x", (3, 4))
    geom = _geometry_for_columns(arr.shape, kernel_size, stride, padding, dilation, padding_mode)
    x4 = arr.reshape(geom.n, geom.c_in, geom.h, geom.w)
    out = np.empty((geom.n, geom.c_in, geom.kh, geom.kw, geom.h_out, geom.w_out), dtype=arr.dtype)
    pad = _Padder(geom, arr.dtype)
    for n in range(geom.n):
        _fill_columns(pad(x4[n]), geom, 0, geom.h_out, out[n])
    out = out.reshape(geom.n, geom.column_rows, geom.h_out * geom.w_out)
    return out if geom.batched else out[0]


def col2im(
    cols: Any,
    input_shape: tuple[int, ...],
    kernel_size: PairLike,
    stride: PairLike = 1,
    padding: Padding = 0,
    dilation: PairLike = 1,
) -> np.ndarray:
    """The adjoint of im2col (zero padding): [C*kH*kW, H_out*W_out] -> [C, H, W], summing overlapping windows.

    With input_shape [N, C, H, W], cols is [N, C*kH*kW, H_out*W_out]. Padding positions are dropped.
    """
    shape = tuple(int(s) for s in input_shape)
    geom = _geometry_for_columns(shape, kernel_size, stride, padding, dilation)
    c = as_array(cols, "cols", (3,) if geom.batched else (2,))
    want = (geom.column_rows, geom.h_out * geom.w_out)
    if c.shape[-2:] != want or (geom.batched and c.shape[0] != geom.n):
        raise ArrayError(
            f"cols must be {[geom.n, *want] if geom.batched else list(want)} for input_shape {list(shape)} "
            f"and kernel {geom.kh}x{geom.kw}, got {list(c.shape)}"
        )
    dtype = _float_dtype(c)
    c = c.astype(dtype, copy=False).reshape(geom.n, geom.c_in, geom.kh, geom.kw, geom.h_out, geom.w_out)
    out = np.empty((geom.n, geom.c_in, geom.h, geom.w), dtype=dtype)
    dpadded = np.empty((geom.c_in, *geom.padded), dtype=dtype)
    top, left = geom.pad_before
    for n in range(geom.n):
        dpadded.fill(0)
        with np.errstate(all="ignore"):
            _scatter_columns(c[n], geom, 0, geom.h_out, dpadded)
        out[n] = dpadded[:, top : top + geom.h, left : left + geom.w]
    return out if geom.batched else out[0]


# ---------------------------------------------------------------------------------------------------------------
# Jobs: the work cut into chunks, so a server can report progress and stop between them


class ConvJob:
    """A convolution cut into chunks (an image, or a block of output rows of one image); step() runs the next one."""

    def __init__(self, geometry: ConvGeometry, total: int, steps: Iterator[None], finish: Callable[[], Any]):
        self.geometry = geometry
        self.total = total
        self.done = 0
        self._steps = steps
        self._finish = finish

    def step(self) -> bool:
        """Run the next chunk; False once every chunk has run."""
        try:
            with np.errstate(all="ignore"):  # overflow to inf / nan is IEEE arithmetic, as in torch: no warnings
                next(self._steps)
        except StopIteration:
            return False
        self.done += 1
        return True

    def result(self) -> Any:
        """Run whatever is left and return the result."""
        while self.step():
            pass
        with np.errstate(all="ignore"):
            return self._finish()


def conv2d_job(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: PairLike = 1,
    padding: Padding = 0,
    dilation: PairLike = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    method: str = "im2col",
) -> ConvJob:
    """conv2d as a ConvJob: chunks are images x row blocks (im2col) or output rows (naive)."""
    if method not in ("naive", "im2col"):
        raise GeometryError(f"method must be 'naive' or 'im2col', got {method!r}")
    x4, w, b, geom = _prepare(x, weight, bias, stride, padding, dilation, groups, padding_mode)
    out = np.empty((geom.n, geom.c_out, geom.h_out, geom.w_out), dtype=x4.dtype)
    if method == "naive":
        steps, total = _naive_steps(x4, w, b, geom, out), geom.n * geom.c_out * geom.h_out
    else:
        steps, total = _im2col_steps(x4, w, b, geom, out), geom.n * len(geom.row_blocks)
    return ConvJob(geom, total, steps, lambda: out if geom.batched else out[0])


def _naive_steps(x4, w, b, geom: ConvGeometry, out: np.ndarray) -> Iterator[None]:
    """The lesson's reference loops, extended to dilation, groups and padding modes; one chunk per output row."""
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    c_in_g, c_out_g = geom.c_in // geom.groups, geom.c_out // geom.groups
    span_h, span_w = dh * (geom.kh - 1) + 1, dw * (geom.kw - 1) + 1
    for n in range(geom.n):
        x_pad = pad_image(x4[n], geom)
        for oc in range(geom.c_out):
            g = oc // c_out_g  # the group this output channel belongs to sees only its own input channels
            channels = x_pad[g * c_in_g : (g + 1) * c_in_g]
            for i in range(geom.h_out):
                for j in range(geom.w_out):
                    hs, ws = i * sh, j * sw
                    patch = channels[:, hs : hs + span_h : dh, ws : ws + span_w : dw]
                    out[n, oc, i, j] = np.sum(patch * w[oc])
                if b is not None:
                    out[n, oc, i] += b[oc]
                yield


def _im2col_steps(x4, w, b, geom: ConvGeometry, out: np.ndarray) -> Iterator[None]:
    """im2col + one (batched over groups) GEMM per image and row block, written straight into out."""
    g = geom.groups
    k_g = geom.column_rows // g
    w_g = w.reshape(g, geom.c_out // g, k_g)
    blocks = geom.row_blocks
    cols = np.empty((geom.c_in, geom.kh, geom.kw, blocks[0][1] - blocks[0][0], geom.w_out), dtype=x4.dtype)
    pad = _Padder(geom, x4.dtype)
    for n in range(geom.n):
        padded = pad(x4[n])
        phases = _phases(padded, geom)
        for r0, r1 in blocks:
            length = (r1 - r0) * geom.w_out
            # the last, shorter block gets a contiguous buffer of its own, so the reshape below is a view
            c = cols if r1 - r0 == cols.shape[3] else np.empty((*cols.shape[:3], r1 - r0, geom.w_out), x4.dtype)
            _fill_columns(padded, geom, r0, r1, c, phases)
            target = _view(out[n, :, r0:r1], (g, geom.c_out // g, length))  # rows of out: GEMM writes in place
            np.matmul(w_g, _view(c, (g, k_g, length)), out=target)
            if b is not None:
                out[n, :, r0:r1] += b[:, None, None]
            yield


def _view(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """a.reshape(shape), insisting on a view (a copy would silently lose what is written into it)."""
    v = a.reshape(shape)
    if not np.may_share_memory(v, a):
        raise AssertionError(f"internal: reshape of {a.shape} strides {a.strides} to {shape} is not a view")
    return v


def conv2d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: PairLike = 1,
    padding: Padding = 0,
    dilation: PairLike = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    method: str = "im2col",
) -> np.ndarray:
    """torch.nn.functional.conv2d (with nn.Conv2d's padding_mode) in NumPy: [N, C_in, H, W] -> [N, C_out, H_out, W_out].

    x is [C_in, H, W] or [N, C_in, H, W]; weight [C_out, C_in/groups, kH, kW]; bias [C_out] or None.
    padding: int, [h, w], "same" or "valid"; padding_mode: zeros, reflect, replicate or circular.
    method: "im2col" (fast) or "naive" (the reference loops).
    """
    return conv2d_job(x, weight, bias, stride, padding, dilation, groups, padding_mode, method).result()


def conv2d_naive(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: PairLike = 1,
    padding: Padding = 0,
    dilation: PairLike = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """The reference loops (one np.sum per output pixel): same arguments and shapes as conv2d."""
    return conv2d_job(x, weight, bias, stride, padding, dilation, groups, padding_mode, "naive").result()


# ---------------------------------------------------------------------------------------------------------------
# Backward


def conv2d_backward_job(
    x: Any,
    weight: Any,
    grad_output: Any = None,
    bias: Any = None,
    stride: PairLike = 1,
    padding: Padding = 0,
    dilation: PairLike = 1,
    groups: int = 1,
) -> ConvJob:
    """conv2d_backward as a ConvJob (one chunk per image and row block); result() is (grad_input, grad_weight, grad_bias)."""
    x4, w, b, geom = _prepare(x, weight, bias, stride, padding, dilation, groups, "zeros")
    if grad_output is None:
        go = np.ones((geom.n, geom.c_out, geom.h_out, geom.w_out), dtype=x4.dtype)
    else:
        go = as_array(grad_output, "grad_output", (4,) if geom.batched else (3,))
        if go.shape != geom.output_shape:
            raise ArrayError(
                f"grad_output must have the output's shape {list(geom.output_shape)}, got {list(go.shape)}"
            )
        go = go.astype(x4.dtype, copy=False).reshape(geom.n, geom.c_out, geom.h_out, geom.w_out)
    dtype = np.result_type(x4.dtype, go.dtype)
    x4, w, go = x4.astype(dtype, copy=False), w.astype(dtype, copy=False), go.astype(dtype, copy=False)
    grad_input = np.empty((geom.n, geom.c_in, geom.h, geom.w), dtype=dtype)
    grad_weight = np.zeros(w.shape, dtype=dtype)

    def finish():
        gb = None if b is None else go.sum(axis=(0, 2, 3))
        gi = grad_input if geom.batched else grad_input[0]
        return gi, grad_weight, gb

    steps = _backward_steps(x4, w, go, geom, grad_input, grad_weight)
    return ConvJob(geom, geom.n * len(geom.row_blocks), steps, finish)


def _backward_steps(x4, w, go, geom: ConvGeometry, grad_input, grad_weight) -> Iterator[None]:
    """Per image and row block: grad_weight += grad_out @ columns.T; then dcolumns = weight.T @ grad_out, col2im'd into grad_input.

    dcolumns reuse the columns' buffer once grad_weight has read it: one column buffer per image, as in the forward.
    """
    g = geom.groups
    k_g, co_g = geom.column_rows // g, geom.c_out // g
    w_t = w.reshape(g, co_g, k_g).transpose(0, 2, 1)  # [G, K_g, C_out/G], read transposed by BLAS, no copy
    gw = grad_weight.reshape(g, co_g, k_g)
    blocks = geom.row_blocks
    rows = blocks[0][1] - blocks[0][0]
    shape5 = (geom.c_in, geom.kh, geom.kw, rows, geom.w_out)
    cols = np.empty(shape5, dtype=x4.dtype)
    gw_part = np.empty_like(gw)
    pad = _Padder(geom, x4.dtype)
    dpadded = np.empty((geom.c_in, *geom.padded), dtype=x4.dtype)
    top, left = geom.pad_before
    for n in range(geom.n):
        padded = pad(x4[n])
        phases = _phases(padded, geom)
        dpadded.fill(0)
        for r0, r1 in blocks:
            length = (r1 - r0) * geom.w_out
            c = cols if r1 - r0 == rows else np.empty((*shape5[:3], r1 - r0, geom.w_out), x4.dtype)
            _fill_columns(padded, geom, r0, r1, c, phases)
            grad = np.ascontiguousarray(go[n, :, r0:r1]).reshape(g, co_g, length)
            np.matmul(grad, _view(c, (g, k_g, length)).transpose(0, 2, 1), out=gw_part)
            gw += gw_part
            np.matmul(w_t, grad, out=_view(c, (g, k_g, length)))  # c now holds dcolumns
            _scatter_columns(c, geom, r0, r1, dpadded)
            yield
        grad_input[n] = dpadded[:, top : top + geom.h, left : left + geom.w]


def conv2d_backward(
    x: Any,
    weight: Any,
    grad_output: Any = None,
    bias: Any = None,
    stride: PairLike = 1,
    padding: Padding = 0,
    dilation: PairLike = 1,
    groups: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients of conv2d (zero padding): (grad_input like x, grad_weight like weight, grad_bias [C_out] or None).

    grad_output has the output's shape ([N, C_out, H_out, W_out] or [C_out, H_out, W_out]); None means ones,
    the gradient of output.sum(). grad_bias is None when bias is None.
    """
    return conv2d_backward_job(x, weight, grad_output, bias, stride, padding, dilation, groups).result()
