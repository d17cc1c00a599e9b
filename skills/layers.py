"""Every layer's rules: output shape, params, buffers, MACs and receptive-field step, one function per family.

A rule is `rule(walk, layer, x, rf, path) -> Rec`: the layer (a skills.spec model), its input shape `x` (a T), the
receptive-field maps reaching it (one skills.rf.AxisRF per spatial axis, or None) and its row path; `walk.label(path)`
names it in warnings (`layer 3`, `node 'up1'`), built only when one is written. Errors are raised without the name:
the walk prefixes `layer 3 (conv2d): `.
Every size comes from skills.arithmetic (the one copy of each formula). Adding a layer type is a spec model and one
rule here, registered in RULES (layers without a rule keep their input's shape and learn nothing).
"""

from __future__ import annotations

from fractions import Fraction
from math import prod
from typing import Any

from .arithmetic import (
    check_padding_mode,
    conv_output_length,
    pool_output_length,
    resolve_conv_padding,
    transpose_output_length,
)
from .errors import GeometryError, SpecError
from .rf import (
    AXIS_NAMES,
    AdaptiveStep,
    AxisRF,
    PadStep,
    SampleStep,
    TransposeStep,
    WindowStep,
    advance,
    hull,
    torch_nearest_scale,
    windows,
)
from .spec import (
    ND_OF,
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    AvgPool,
    BatchNorm,
    Cat,
    ChannelShuffle,
    Concat,
    Conv,
    ConvTranspose,
    Dropout,
    Flatten,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    Linear,
    MaxPool,
    Pad,
    PixelShuffle,
    PixelUnshuffle,
    PReLU,
    Residual,
    Softmax,
    Unflatten,
    Upsample,
    field_help,
    nd_of,
    short,
)

LAYOUTS = {1: "[C, L]", 2: "[C, H, W]", 3: "[C, D, H, W]"}
JOIN = "join"
"""Rec.steps of a merge (block or graph node): every source is read at the same pixels (broadcast axes at pixel 0)."""


class T:
    """A tensor shape in the walk: batch n (or None), then a map (channels c, spatial sizes sp) or flat features f.
    None = unknown (parameter_count without input_shape): sp is known or unknown as a whole."""

    __slots__ = ("n", "flat", "c", "sp", "f", "_dims", "_count")

    def __init__(self, n, flat, c=None, sp=None, f=None):
        self.n, self.flat, self.c, self.sp, self.f = n, flat, c, sp, f
        self._dims = self._count = None

    def dims(self) -> list:
        """The shape as PyTorch prints it, computed once: the reports share the list, so never change it in place."""
        d = self._dims
        if d is None:
            if self.flat:
                d = [self.f] if self.n is None else [self.n, self.f]
            else:
                body = [self.c, *self.sp] if self.sp is not None else [self.c]
                d = body if self.n is None else [self.n, *body]
            self._dims = d
        return d

    def elements(self) -> int:
        """prod(dims()), or 0 while a dimension is unknown; computed once (the rows and skills.memory both ask)."""
        v = self._count
        if v is None:
            if self.flat:
                v = self.f
            else:
                sp = self.sp
                v = None if self.c is None or sp is None else self.c * (sp[0] * sp[1] if len(sp) == 2 else prod(sp))
            v = 0 if v is None else v if self.n is None else self.n * v
            self._count = v
        return v

    def same_as(self, other: T) -> bool:
        return self.flat == other.flat and self.dims() == other.dims()


class Rec:
    """One walked layer: its numbers, where its input came from, and what the receptive-field walk-back needs.

    `formula` / `buffers_formula` are text, or (function, *args) written out only when parameter_count asks;
    `steps` is None (pixels pass through), JOIN (a merge), or a tuple of (step class, its arguments as one tuple per
    argument with an entry per axis) applied from the output back; `srcs` are the records whose outputs feed this one (None = the network input);
    `paths` are a block's inner record lists; `layer` is the spec model (or graph merge) the record walked."""

    __slots__ = ("index", "path", "name", "type", "x", "y", "params", "buffers", "macs", "formula", "buffers_formula",
                 "steps", "srcs", "rf", "paths", "layer", "op_type", "mem")  # mem: skills.memory's storage number of the output

    def __init__(self, path, ltype, x, y, params=0, buffers=0, macs=0, formula="0", buffers_formula=None, steps=None,
                 rf=None, paths=None):
        # index, layer and srcs are set by the walk (a block or merge sets its srcs itself); name by a graph walk
        self.path, self.name, self.type, self.x, self.y = path, None, ltype, x, y
        self.params, self.buffers, self.macs = params, buffers, macs
        self.formula, self.buffers_formula = formula, buffers_formula
        self.steps, self.rf, self.paths = steps, rf, paths
        self.op_type = None  # the op a graph node came from (an ONNX op_type), when the spec says


def text(formula) -> str | None:
    """A record's formula as text (it is kept as (function, *args) until asked for)."""
    return formula if formula is None or formula.__class__ is str else formula[0](*formula[1:])


# ---------------------------------------------------------------- shared checks


def axes(v: Any, nd: int, field: str = "", ltype: str = "") -> tuple[int, ...]:
    """One value per spatial axis from an int or a list (1 entry for every axis, or one per axis; anything else is an
    error naming the field)."""
    if v.__class__ is int:
        return (v,) * nd
    if len(v) == nd:
        return tuple(v)
    if len(v) == 1:
        return (v[0],) * nd
    raise SpecError(f"{field} must be {field_help(field, ltype)}, got {short(v)}")


def need_map(w, x: T, ltype: str, nd: int) -> None:
    """A layer written for nd spatial axes gets a map with as many (the walk's dimensionality)."""
    if x.flat:
        raise SpecError(
            f"{ltype} needs a {LAYOUTS[nd]} map but its input is flattened ({x.dims()}); put conv and pool layers before flatten"
        )
    if nd != w.nd:
        got = f"a {w.nd}-D map ({LAYOUTS[w.nd]})" if w.nd else "not a map"
        fix = f": use {ltype[:-2]}{w.nd}d" if w.nd and ltype[-1] == "d" and ltype[-2].isdigit() else ""
        made = f" ({w.decider} makes this network {w.nd}-D)" if w.nd and getattr(w, "decider", None) else ""
        raise SpecError(
            f"its input {x.dims()} is {got} but {ltype} needs {nd} spatial axes ({LAYOUTS[nd]}); "
            f"one network cannot mix dimensionalities{made}{fix}"
        )


def in_channels(x: T, given: int | None, field: str) -> int:
    if given is not None and x.c is not None and given != x.c:
        raise SpecError(f"{field}={given} but its input has {x.c} channels (shape {x.dims()}); set {field}={x.c} or leave it out to infer it")
    c = given if given is not None else x.c
    if c is None:
        raise SpecError(
            f"{field} cannot be inferred: no input_shape was given and no earlier layer fixes the channel count; give input_shape or {field}"
        )
    return c


def _groups(cin: int, cout: int, groups: int) -> None:
    bad = [f"{name}={c} ({c} % {groups} = {c % groups})" for name, c in (("in_channels", cin), ("out_channels", cout)) if c % groups]
    if bad:
        raise GeometryError(f"groups={groups} must divide both channel counts, but not {' and '.join(bad)}")


def _sizes(fn, nd: int, sp: tuple, *per_axis) -> tuple[int, ...]:
    """fn(size, *args) per axis, an error naming the axis."""
    out = []
    names = AXIS_NAMES[nd]
    for i in range(nd):
        try:
            out.append(fn(sp[i], *(a[i] for a in per_axis)))
        except GeometryError as exc:
            raise GeometryError(f"{exc} along {names[i]}") from None
    return tuple(out)


def _pads(layer, nd: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(before, after) per axis from ONNX-style `pads` [begin per axis..., end per axis...]; refuses padding as well."""
    if layer.padding != 0:
        raise SpecError(f"give padding or pads, not both (padding={layer.padding!r}, pads={layer.pads})")
    pads = layer.pads
    if len(pads) != 2 * nd:
        raise SpecError(f"pads has {len(pads)} entries but {layer.type} needs {2 * nd}: begin per spatial axis, then end per spatial axis")
    return tuple(pads[:nd]), tuple(pads[nd:])


def _weight_formula(cout: int, cin: int, groups: int, ks: tuple, bias: bool, params: int, transposed=False) -> str:
    if transposed:
        first, second = str(cin), (f"({cout}/{groups})" if groups > 1 else str(cout))
    else:
        first, second = str(cout), (f"({cin}/{groups})" if groups > 1 else str(cin))
    body = f"{first}*{second}*{'*'.join(map(str, ks))}"
    return f"{body} + {cout} = {params:,}" if bias else f"{body} = {params:,}"


def _unknown(x: T, path: str, ltype: str, y: T | None = None, **numbers) -> Rec:
    """The record of a layer whose input sizes are unknown (parameter_count without input_shape): no MACs, no regions."""
    return Rec(path, ltype, x, x if y is None else y, **numbers)


# ---------------------------------------------------------------- convolution


def conv(w, layer: Conv, x: T, rf, path: str) -> Rec:
    ltype = layer.type
    nd = ND_OF[ltype]
    if x.flat or nd != w.nd:
        need_map(w, x, ltype, nd)
    cin = layer.in_channels
    cin = x.c if cin is None and x.c is not None else in_channels(x, cin, "in_channels")
    cout, g = layer.out_channels, layer.groups
    if g != 1 and (cin % g or cout % g):
        _groups(cin, cout, g)
    k, s, d = layer.kernel_size, layer.stride, layer.dilation
    two = nd == 2  # tuple displays for the common 2-D case: cheaper than (k,) * nd on this hot path
    k = ((k, k) if two else (k,) * nd) if k.__class__ is int else axes(k, nd, "kernel_size", ltype)
    s = ((s, s) if two else (s,) * nd) if s.__class__ is int else axes(s, nd, "stride", ltype)
    d = ((d, d) if two else (d,) * nd) if d.__class__ is int else axes(d, nd, "dilation", ltype)
    padding = layer.padding
    if layer.pads is not None:  # ONNX's per-side pads
        before, after = _pads(layer, nd)
    elif padding.__class__ is int:
        before = after = (padding, padding) if two else (padding,) * nd
    else:
        if padding.__class__ is list:
            axes(padding, nd, "padding", ltype)
        before, after = resolve_conv_padding(padding, k, s, d)
    weight = cout * (cin // g) * (k[0] * k[1] if two else prod(k))
    params = weight + cout if layer.bias else weight
    formula = (_weight_formula, cout, cin, g, k, layer.bias, params)  # written out only if parameter_count asks
    if x.sp is None:
        return _unknown(x, path, ltype, T(x.n, False, cout), params=params, formula=formula)
    mode = layer.padding_mode
    if mode != "zeros":
        check_padding_mode(x.sp, before, after, mode)
        if mode == "circular" and rf is not None and max(*before, *after) > 0:
            w.warnings.append(
                f"{w.label(path)} ({ltype}): circular padding wraps around, so pixels near one border also see the opposite border; "
                "the regions reported here count padding as the zero-padding case does"
            )
    sp = x.sp
    try:
        if two:  # the common case, unrolled (this rule is the walk's hot path)
            out = (conv_output_length(sp[0], k[0], s[0], before[0], after[0], d[0]),
                   conv_output_length(sp[1], k[1], s[1], before[1], after[1], d[1]))
        else:
            out = tuple(map(conv_output_length, sp, k, s, before, after, d))
    except GeometryError:
        out = _sizes(conv_output_length, nd, sp, k, s, before, after, d)  # the same error, naming its axis
    macs = (x.n or 1) * (out[0] * out[1] if two else prod(out)) * weight
    if mode == "zeros":
        steps = ((WindowStep, (k, s, before, d, sp)),)
    else:  # the padding reads real pixels: walk back through the window on the padded map, then the padding itself
        padded = tuple(n + b + a for n, b, a in zip(x.sp, before, after, strict=True))
        steps = ((WindowStep, (k, s, (0,) * nd, d, padded)), (PadStep, (before, sp, (mode,) * nd)))
    if rf is not None:
        rf = windows(rf, k, s, before, d)
    return Rec(path, ltype, x, T(x.n, False, cout, out), params, 0, macs, formula, None, steps, rf)


def conv_transpose(w, layer: ConvTranspose, x: T, rf, path: str) -> Rec:
    ltype = layer.type
    nd = nd_of(ltype)
    need_map(w, x, ltype, nd)
    cin = in_channels(x, layer.in_channels, "in_channels")
    cout, g = layer.out_channels, layer.groups
    _groups(cin, cout, g)
    k, s = axes(layer.kernel_size, nd, "kernel_size", ltype), axes(layer.stride, nd, "stride", ltype)
    d, p = axes(layer.dilation, nd, "dilation", ltype), axes(layer.padding, nd, "padding", ltype)
    op = axes(layer.output_padding, nd, "output_padding", ltype)
    p, after = _pads(layer, nd) if layer.pads is not None else (p, p)
    weight = cin * (cout // g) * prod(k)
    params = weight + (cout if layer.bias else 0)
    formula = (_weight_formula, cout, cin, g, k, layer.bias, params, True)
    if x.sp is None:
        return _unknown(x, path, ltype, T(x.n, False, cout), params=params, formula=formula)
    out = _sizes(transpose_output_length, nd, x.sp, k, s, p, op, d, after)
    macs = (x.n or 1) * prod(x.sp) * weight  # H_in*W_in*C_in*(C_out/groups)*kH*kW
    steps = ((TransposeStep, (k, s, p, d, x.sp)),)
    return Rec(path, ltype, x, T(x.n, False, cout, out), params, 0, macs, formula, None, steps, advance(rf, steps[0], lambda: f"{w.label(path)} ({ltype})"))


# ---------------------------------------------------------------- pooling and padding


def pool(w, layer: MaxPool | AvgPool, x: T, rf, path: str) -> Rec:
    ltype = layer.type
    nd = ND_OF[ltype]
    if x.flat or nd != w.nd:
        need_map(w, x, ltype, nd)
    if ltype == "avgpool1d" and layer.divisor_override is not None:
        raise SpecError("avgpool1d takes no divisor_override (nn.AvgPool1d has none; AvgPool2d and AvgPool3d do)")
    k, s, p = layer.kernel_size, layer.stride, layer.padding
    two = nd == 2  # tuple displays for the common 2-D case, as in conv
    k = ((k, k) if two else (k,) * nd) if k.__class__ is int else axes(k, nd, "kernel_size", ltype)
    s = k if s is None else ((s, s) if two else (s,) * nd) if s.__class__ is int else axes(s, nd, "stride", ltype)
    p = ((p, p) if two else (p,) * nd) if p.__class__ is int else axes(p, nd, "padding", ltype)
    d = layer.dilation if ltype[:3] == "max" else 1
    d = ((d, d) if two else (d,) * nd) if d.__class__ is int else axes(d, nd, "dilation", ltype)
    sp = x.sp
    if sp is None:
        return _unknown(x, path, ltype)
    ceil = layer.ceil_mode
    if layer.pads is not None or layer.convention != "pytorch":  # ONNX's per-side pads, or ONNX's size rule
        p, after = _pads(layer, nd) if layer.pads is not None else (p, p)
        out = _sizes(pool_output_length, nd, sp, k, s, p, d, (ceil,) * nd, after, (layer.convention,) * nd)
    else:
        try:
            if two:
                out = (pool_output_length(sp[0], k[0], s[0], p[0], d[0], ceil), pool_output_length(sp[1], k[1], s[1], p[1], d[1], ceil))
            else:
                out = tuple(map(pool_output_length, sp, k, s, p, d, (ceil,) * nd))
        except GeometryError:
            out = _sizes(pool_output_length, nd, sp, k, s, p, d, (ceil,) * nd)  # the same error, naming its axis
    if ltype == "avgpool3d" and layer.convention == "pytorch":  # torch's avg_pool3d (only it) checks the unpadded input against the kernel
        small = [f"{name} {n} < kernel_size {kk}" for name, n, kk in zip(AXIS_NAMES[3], sp, k, strict=True) if n < kk]
        if small:
            raise GeometryError(
                f"the input {'x'.join(map(str, sp))} is smaller than the kernel {'x'.join(map(str, k))} ({', '.join(small)}); "
                "AvgPool3d needs every input axis at least kernel_size, padding not counted"
            )
    steps = ((WindowStep, (k, s, p, d, sp)),)
    if rf is not None:
        rf = windows(rf, k, s, p, d)
    return Rec(path, ltype, x, T(x.n, False, x.c, out), 0, 0, 0, "0", None, steps, rf)


def adaptive(w, layer: AdaptiveAvgPool | AdaptiveMaxPool, x: T, rf, path: str) -> Rec:
    ltype = layer.type
    nd = nd_of(ltype)
    need_map(w, x, ltype, nd)
    size = axes(layer.output_size, nd, "output_size", ltype)
    if nd == 1 and size[0] is None:  # nn.AdaptiveAvgPool1d / MaxPool1d take an int only
        raise SpecError(f"output_size must be an int >= 1 for {ltype} (PyTorch keeps an axis with None in 2-D and 3-D only), got {layer.output_size}")
    if x.sp is None:
        return _unknown(x, path, ltype)
    out = tuple(m or n for m, n in zip(size, x.sp, strict=True))
    steps = ((AdaptiveStep, (x.sp, out)),)
    return Rec(path, ltype, x, T(x.n, False, x.c, out), steps=steps, rf=advance(rf, steps[0], lambda: f"{w.label(path)} ({ltype})"))


_PAD_MODE = {"zero": "zeros", "constant": "zeros", "reflection": "reflect", "replication": "replicate", "circular": "circular"}
_SIDES = ("left", "right", "top", "bottom", "front", "back")


def pad(w, layer: Pad, x: T, rf, path: str) -> Rec:
    ltype = layer.type
    nd = nd_of(ltype)
    need_map(w, x, ltype, nd)
    p = layer.padding
    if p.__class__ is list and len(p) != 2 * nd:
        raise SpecError(f"padding must be {field_help('padding', ltype)}, got {short(p)}")
    if layer.value != 0.0 and not ltype.startswith("constant"):
        raise SpecError(f"value={layer.value} is only for constantpad1d/2d/3d; {ltype} pads with {ltype[:ltype.index('pad')]} values")
    sides = (p,) * (2 * nd) if p.__class__ is int else tuple(p)
    # PyTorch lists the last axis first: (left, right) for W, then (top, bottom) for H, then (front, back) for D
    before = tuple(sides[2 * (nd - 1 - i)] for i in range(nd))
    after = tuple(sides[2 * (nd - 1 - i) + 1] for i in range(nd))
    if x.sp is None:
        return _unknown(x, path, ltype)
    out = tuple(n + b + a for n, b, a in zip(x.sp, before, after, strict=True))
    if min(out) < 1:
        named = ", ".join(f"{_SIDES[j]} {v}" for j, v in enumerate(sides))
        raise GeometryError(
            f"padding [{named}] leaves a {'x'.join(map(str, out))} map from {'x'.join(map(str, x.sp))}; "
            "negative padding crops and must leave at least 1 pixel"
        )
    mode = _PAD_MODE[ltype[: ltype.index("pad")]]
    names = AXIS_NAMES[nd]
    for i in range(nd):
        big = max(before[i], after[i])
        if mode == "reflect" and big >= x.sp[i]:
            raise GeometryError(f"reflection padding must be smaller than the input: padding {big} >= {names[i]} {x.sp[i]} (need padding < {x.sp[i]})")
        if mode == "circular" and big > x.sp[i]:
            raise GeometryError(f"circular padding cannot wrap around more than once: padding {big} > {names[i]} {x.sp[i]} (need padding <= {x.sp[i]})")
    if mode == "circular" and rf is not None and max(*before, *after) > 0:
        w.warnings.append(
            f"{w.label(path)} ({ltype}): circular padding wraps around, so pixels near one border also see the opposite border; "
            "the regions reported here count padding as the zero-padding case does"
        )
    ones = (1,) * nd
    if mode == "zeros":
        steps = ((WindowStep, (ones, ones, before, ones, x.sp)),)
    else:
        steps = ((PadStep, (before, x.sp, (mode,) * nd)),)
    if rf is not None:
        rf = windows(rf, ones, ones, before, ones)
    return Rec(path, ltype, x, T(x.n, False, x.c, out), steps=steps, rf=rf)


# ---------------------------------------------------------------- normalisation


def _bn_formula(per: int, c: int, params: int) -> str:
    return f"{per}*{c} = {params:,}"


def _bn_buffers_formula(c: int, buffers: int) -> str:
    return f"2*{c} + 1 = {buffers:,}"


def _stats_note(w, path: str, ltype: str) -> None:
    """Once per walk: normalisation by statistics over the map is counted as pointwise in the receptive field."""
    if "stats" not in w.notes:
        w.notes.add("stats")
        w.warnings.append(
            f"{w.label(path)} ({ltype}) normalises with statistics over the whole map, so strictly every output depends a "
            "little on every input pixel; the receptive field here counts it as pointwise, as for batchnorm"
        )


def _batch_statistics(x: T, samples: int, what: str, per_group: int = 1) -> None:
    """Normalising with the input's own statistics needs more than 1 value per statistic: torch refuses 1, even in
    eval mode (batchnorm without running stats: per channel over the batch and map; instancenorm: per map; groupnorm:
    per group over the batch)."""
    values = samples * per_group * (1 if x.flat else prod(x.sp))
    if values == 1:
        where = "spatial element per channel" if what[:8] == "instance" else "value per channel" if what[:5] == "batch" else "value per group"
        raise GeometryError(
            f"the input {x.dims()} gives 1 {where} to normalise over, and PyTorch needs more than 1 "
            + ("(it normalises with the input's own statistics since track_running_stats=False)" if what != "groupnorm" else "(C/num_groups * N * spatial size = 1)")
        )


def batchnorm(w, layer: BatchNorm | InstanceNorm, x: T, rf, path: str) -> Rec:
    ltype = layer.type
    nd = ND_OF[ltype]
    if ltype != "batchnorm1d" and (x.flat or nd != w.nd):  # batchnorm1d also takes [N, C] (a flattened input)
        need_map(w, x, ltype, nd)
    elif ltype == "batchnorm1d" and not x.flat and w.nd != 1 and x.c is not None:
        need_map(w, x, ltype, 1)
    c = layer.num_features
    have = x.f if x.flat else x.c
    if c is not None and have is not None and c != have:
        raise SpecError(
            f"num_features={c} but its input has {have:,} {'features' if x.flat else 'channels'} (shape {x.dims()}); "
            f"set num_features={have} or leave it out to infer it"
        )
    if c is None:
        if have is None:
            raise SpecError("num_features cannot be inferred: no input_shape was given and no earlier layer fixes the channel count; give input_shape or num_features")
        c = have
    if not layer.track_running_stats and x.elements():
        _batch_statistics(x, (x.n or 1) if ltype[:5] == "batch" else 1, ltype)
    per = (1 + (1 if layer.bias else 0)) if layer.affine else 0
    params = per * c
    buffers = 2 * c + 1 if layer.track_running_stats else 0
    formula = (_bn_formula, per, c, params) if per else "0 (affine=False)"
    buffers_formula = (_bn_buffers_formula, c, buffers) if buffers else "0 (track_running_stats=False)"
    if ltype[:8] == "instance" and not layer.track_running_stats and rf is not None:
        _stats_note(w, path, ltype)
    y = x if x.flat or c == x.c else T(x.n, False, c, x.sp)  # shapes are never changed in place: sharing is safe
    return Rec(path, ltype, x, y, params, buffers, 0, formula, buffers_formula, None, rf)


def groupnorm(w, layer: GroupNorm, x: T, rf, path: str) -> Rec:
    have = x.f if x.flat else x.c
    c = layer.num_channels
    if c is not None and have is not None and c != have:
        raise SpecError(f"num_channels={c} but its input has {have:,} channels (shape {x.dims()}); set num_channels={have} or leave it out")
    if c is None:
        if have is None:
            raise SpecError("num_channels cannot be inferred: no input_shape was given and no earlier layer fixes the channel count; give input_shape or num_channels")
        c = have
    g = layer.num_groups
    if c % g:
        raise GeometryError(f"num_groups={g} must divide num_channels={c} ({c} % {g} = {c % g})")
    if x.elements():
        _batch_statistics(x, x.n or 1, "groupnorm", c // g)
    per = (1 + (1 if layer.bias else 0)) if layer.affine else 0
    if rf is not None:
        _stats_note(w, path, "groupnorm")
    y = x if x.flat or c == x.c else T(x.n, False, c, x.sp)
    return Rec(path, "groupnorm", x, y, per * c, 0, 0, (_bn_formula, per, c, per * c) if per else "0 (affine=False)", None, None, rf)


def layernorm(w, layer: LayerNorm, x: T, rf, path: str) -> Rec:
    shape = layer.normalized_shape
    shape = [shape] if shape.__class__ is int else list(shape)
    dims = x.dims()
    known = x.elements() > 0
    if known and (len(shape) > len(dims) or dims[len(dims) - len(shape):] != shape):
        raise SpecError(
            f"normalized_shape={shape} must equal the input's last {len(shape)} dims, but the input is {dims} "
            f"(nn.LayerNorm normalises over the trailing dims: {dims[-len(shape):] if len(shape) <= len(dims) else dims})"
        )
    size = prod(shape)
    per = (1 + (1 if layer.bias else 0)) if layer.elementwise_affine else 0
    if rf is not None and not x.flat and len(shape) > 1:
        _stats_note(w, path, "layernorm")
    formula = f"{per}*{'*'.join(map(str, shape))} = {per * size:,}" if per else "0 (elementwise_affine=False)"
    return Rec(path, "layernorm", x, x, per * size, 0, 0, formula, None, None, rf)


# ---------------------------------------------------------------- resampling


_LINEAR_MODES = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def upsample(w, layer: Upsample, x: T, rf, path: str) -> Rec:
    mode = layer.mode
    if x.flat:
        raise SpecError(f"upsample needs a map ([C, L], [C, H, W] or [C, D, H, W]) but its input is flattened ({x.dims()})")
    nd = w.nd or (len(x.sp) if x.sp is not None else None)
    need = _LINEAR_MODES.get(mode)
    if need is not None and nd is not None and need != nd:
        fix = {1: "linear", 2: "bilinear or bicubic", 3: "trilinear"}[nd]
        raise SpecError(f"mode={mode!r} needs a {need}-D map {LAYOUTS[need]} but its input {x.dims()} is {nd}-D; use mode {fix} or nearest")
    if (layer.size is None) == (layer.scale_factor is None):
        raise SpecError("give exactly one of size or scale_factor (as nn.Upsample)")
    if layer.align_corners is not None and need is None:
        raise SpecError(f"align_corners can only be set with the interpolating modes linear, bilinear, bicubic, trilinear, not mode={mode!r}")
    if layer.recompute_scale_factor and layer.size is not None:
        raise SpecError("recompute_scale_factor is not meaningful with an explicit size")
    if x.sp is None:
        return _unknown(x, path, "upsample")
    names = AXIS_NAMES[nd]
    given = layer.size if layer.size is not None else layer.scale_factor
    if given.__class__ is list and len(given) != nd:
        field = "size" if layer.size is not None else "scale_factor"
        raise SpecError(f"{field} has {len(given)} entries but the input {x.dims()} has {nd} spatial axes ({', '.join(names)})")
    per = (given,) * nd if given.__class__ is not list else tuple(given)
    if layer.size is not None:
        out = per
    else:
        out = tuple(int(n * f) for n, f in zip(x.sp, per, strict=True))  # PyTorch: floor(size * scale_factor) in double
        for i, (n, f, o) in enumerate(zip(x.sp, per, out, strict=True)):
            if o < 1:
                raise GeometryError(f"scale_factor {f} gives {names[i]} floor({n} * {f}) = {o}; the output must be at least 1 px")
    if mode == "area":  # PyTorch runs adaptive average pooling
        steps = ((AdaptiveStep, (x.sp, out)),)
    else:
        by_size = layer.size is not None or bool(layer.recompute_scale_factor)
        args = []
        for n, m, f in zip(x.sp, out, per, strict=True):
            if mode in ("linear", "bilinear", "trilinear") and m == n:  # torch's linear kernels copy an axis that keeps its size
                scale, offset = Fraction(1), Fraction(0)
            elif need is not None and layer.align_corners:
                scale, offset = (Fraction(n - 1, m - 1) if m > 1 else Fraction(0)), Fraction(0)
            else:
                scale = Fraction(n, m) if by_size else 1 / Fraction(f)
                offset = Fraction(0) if mode == "nearest" else scale / 2 if mode == "nearest-exact" else scale / 2 - Fraction(1, 2)
            family = mode if mode in ("nearest", "nearest-exact", "bicubic") else "linear"
            if mode == "nearest" and nd == 2 and m in (n, 2 * n):  # torch's 2-D nearest kernel (nearest_idx) copies or halves
                args.append((n, m, family, Fraction(n, m), Fraction(0), None))
            elif mode in ("nearest", "nearest-exact"):  # PyTorch picks the pixel in float32, whatever the dtype
                args.append((n, m, family, scale, offset, torch_nearest_scale(n, m, None if by_size else f)))
            else:
                args.append((n, m, family, scale, offset, None))
        steps = ((SampleStep, tuple(zip(*args, strict=True))),)
    return Rec(path, "upsample", x, T(x.n, False, x.c, out), steps=steps, rf=advance(rf, steps[0], lambda: f"{w.label(path)} (upsample)"))


def pixel_shuffle(w, layer: PixelShuffle | PixelUnshuffle, x: T, rf, path: str) -> Rec:
    ltype = layer.type
    need_map(w, x, ltype, 2)
    up = ltype == "pixelshuffle"
    r = layer.upscale_factor if up else layer.downscale_factor
    if x.c is None and x.sp is None:
        return _unknown(x, path, ltype, T(x.n, False))
    if up:
        if x.c is not None and x.c % (r * r):
            raise GeometryError(f"channels {x.c} must be divisible by upscale_factor^2 = {r * r} ({x.c} % {r * r} = {x.c % (r * r)})")
        c = None if x.c is None else x.c // (r * r)
        if x.sp is None:
            return _unknown(x, path, ltype, T(x.n, False, c))
        out = tuple(n * r for n in x.sp)
        steps = ((SampleStep, (x.sp, out, ("nearest",) * 2, (Fraction(1, r),) * 2, (Fraction(0),) * 2)),)
        out_rf = advance(rf, steps[0], lambda: f"{w.label(path)} ({ltype})")
    else:
        c = None if x.c is None else x.c * r * r
        if x.sp is None:
            return _unknown(x, path, ltype, T(x.n, False, c))
        for name, n in zip(AXIS_NAMES[2], x.sp, strict=True):
            if n % r:
                raise GeometryError(f"{name} {n} must be divisible by downscale_factor {r} ({n} % {r} = {n % r})")
        out = tuple(n // r for n in x.sp)
        steps = ((WindowStep, ((r, r), (r, r), (0, 0), (1, 1), x.sp)),)
        out_rf = windows(rf, (r, r), (r, r), (0, 0), (1, 1)) if rf is not None else None
    return Rec(path, ltype, x, T(x.n, False, c, out), steps=steps, rf=out_rf)


def channel_shuffle(w, layer: ChannelShuffle, x: T, rf, path: str) -> Rec:
    if x.flat:
        raise SpecError(f"channelshuffle needs a map [C, ...] but its input is flattened ({x.dims()}) (torch needs more than 2 dims)")
    g = layer.groups
    if x.c is not None and x.c % g:
        raise GeometryError(f"groups={g} must divide the {x.c} channels ({x.c} % {g} = {x.c % g})")
    return Rec(path, "channelshuffle", x, x, rf=rf)


def _axis_of(dim: int, x: T) -> int:
    """A dim counted with the batch axis (as in PyTorch, whether or not the shape has one) -> 0 batch, 1 channels or
    features, 2.. the spatial axes; an error names the range."""
    rank = 2 if x.flat else 2 + (len(x.sp) if x.sp is not None else 0)
    if not -rank <= dim < rank:
        raise SpecError(f"dim={dim} is out of range for the input {x.dims()}: PyTorch counts dims with the batch axis, so it must be in [{-rank}, {rank - 1}]")
    return dim % rank


def softmax(w, layer: Softmax, x: T, rf, path: str) -> Rec:
    dim = layer.dim
    if not x.flat and x.sp is None:  # sizes unknown (parameter_count without input_shape): nothing to check
        return Rec(path, layer.type, x, x, rf=rf)
    if dim is None:  # PyTorch's implicit choice (deprecated) on the tensor as given: dim 0 for 0, 1 or 3 dims, else 1
        rank = len(x.dims())
        dim = 0 if rank in (0, 1, 3) else 1
        if x.n is None:
            dim += 1  # the walk's dims count the batch axis
        w.warnings.append(f"{w.label(path)} ({layer.type}): no dim given; PyTorch's implicit choice for a {rank}-D input is dim={dim} (with the batch axis), as used here")
    axis = _axis_of(dim, x)
    steps = None
    if axis >= 2 and rf is not None and x.sp is not None:  # every output along that axis reads the whole axis
        i = axis - 2
        n = x.sp[i]
        nd = len(x.sp)
        ks = tuple(n if j == i else 1 for j in range(nd))
        ss = tuple(0 if j == i else 1 for j in range(nd))
        steps = ((WindowStep, (ks, ss, (0,) * nd, (1,) * nd, x.sp)),)
        rf = tuple(m.window(n, 0, 0, 1) if j == i else m for j, m in enumerate(rf))
    return Rec(path, layer.type, x, x, steps=steps, rf=rf)


def prelu(w, layer: PReLU, x: T, rf, path: str) -> Rec:
    k = layer.num_parameters
    have = x.f if x.flat else x.c
    if k != 1 and have is not None and k != have:
        raise SpecError(f"num_parameters={k} must be 1 or the channel count {have} (shape {x.dims()})")
    return Rec(path, "prelu", x, x, k, 0, 0, f"{k}", None, None, rf)


def dropout(w, layer: Dropout, x: T, rf, path: str) -> Rec:
    """The identity in eval mode; but nn.Dropout1d checks its input's rank even then (a 1-D map or [N, C])."""
    if layer.type == "dropout1d" and not x.flat and w.nd not in (None, 1):
        raise SpecError(
            f"dropout1d needs a 1-D map {LAYOUTS[1]} (or [N, C]) but its input {x.dims()} is a {w.nd}-D map; "
            f"PyTorch refuses it even in eval mode: use dropout{w.nd}d or dropout"
        )
    return Rec(path, layer.type, x, x, rf=rf)


# ---------------------------------------------------------------- flat tensors


def flatten(w, layer: Flatten, x: T, rf, path: str) -> Rec:
    if x.flat:
        return Rec(path, "flatten", x, x, rf=rf)
    known = x.c is not None and x.sp is not None
    y = T(x.n, True, f=x.c * prod(x.sp) if known else None)
    if x.sp is None:
        return _unknown(x, path, "flatten", y)
    nd = len(x.sp)
    steps = ((WindowStep, (x.sp, x.sp, (0,) * nd, (1,) * nd, x.sp)),)
    if rf is not None:  # one window over the whole map, like a global pool
        rf = windows(rf, x.sp, x.sp, (0,) * len(x.sp), (1,) * len(x.sp))
    return Rec(path, "flatten", x, y, steps=steps, rf=rf)


def unflatten(w, layer: Unflatten, x: T, rf, path: str) -> Rec:
    if not x.flat and not (x.c is None and x.sp is None):
        raise SpecError(f"unflatten is supported on a flattened input [F] or [N, F], got the map {x.dims()} (flatten first)")
    if _axis_of(layer.dim, T(x.n, True)) != 1:
        raise SpecError(f"dim={layer.dim}: unflatten takes the features axis, dim 1 (or -1) of [N, F]")
    sizes = list(layer.unflattened_size)
    if sizes.count(-1) > 1:
        raise SpecError(f"unflattened_size {sizes} may infer one size (-1), not {sizes.count(-1)}")
    if 0 in sizes:
        raise SpecError(f"unflattened_size {sizes} has a 0; every size must be >= 1 (or one -1 to infer it)")
    known = prod(v for v in sizes if v != -1)
    f = x.f
    if f is not None:
        if -1 in sizes:
            if f % known:
                raise GeometryError(f"unflattened_size {sizes} cannot take {f:,} features: {f:,} % {known:,} = {f % known:,}")
            sizes[sizes.index(-1)] = f // known
        elif known != f:
            raise GeometryError(f"unflattened_size {sizes} holds {known:,} features but the input has {f:,} (shape {x.dims()})")
    elif -1 in sizes:
        sizes = None
    if sizes is not None and len(sizes) == 1:
        return Rec(path, "unflatten", x, T(x.n, True, f=sizes[0]), rf=rf)
    sp = tuple(sizes[1:]) if sizes is not None else None
    if sp is not None and w.nd is not None and len(sp) != w.nd:
        raise SpecError(f"unflattened_size {sizes} gives a {len(sp)}-D map but this network's layers are {w.nd}-D ({LAYOUTS[w.nd]})")
    if sp is not None and w.nd is None:
        w.nd = len(sp)
    y = T(x.n, False, sizes[0] if sizes is not None else None, sp)
    out_rf = None
    if rf is not None and sp is not None and len(rf) == len(sp):
        # each output pixel depends on every input the flat vector saw: a region that does not move (stride 0)
        out_rf = tuple(AxisRF(1, 0, (m.top(0),), (m.bottom(0),)) for m in rf)
    steps = ((WindowStep, ((1,) * len(sp), (0,) * len(sp), (0,) * len(sp), (1,) * len(sp), (1,) * len(sp))),) if sp is not None else None
    return Rec(path, "unflatten", x, y, steps=steps, rf=out_rf)


def _linear_formula(fout: int, fin: int, bias: bool, params: int) -> str:
    return f"{fout}*{fin} + {fout} = {params:,}" if bias else f"{fout}*{fin} = {params:,}"


def linear(w, layer: Linear, x: T, rf, path: str) -> Rec:
    if not x.flat and not (x.c is None and x.sp is None):  # an unknown input (no input_shape) may be flat
        raise SpecError(
            f"linear needs a flattened input [F] or [N, F] but gets the map {x.dims()}; "
            'add {"type": "flatten"} before it (forward() often calls torch.flatten, which print(model) does not show)'
        )
    if layer.in_features is not None and x.f is not None and layer.in_features != x.f:
        raise SpecError(f"in_features={layer.in_features} but its input has {x.f:,} features (shape {x.dims()}); set in_features={x.f} or leave it out to infer it")
    fin = layer.in_features if layer.in_features is not None else x.f
    if fin is None:
        raise SpecError("in_features cannot be inferred without input_shape (it is C*H*W of the flattened map); give input_shape or in_features")
    fout = layer.out_features
    params = fout * fin + (fout if layer.bias else 0)
    macs = (x.n or 1) * fin * fout
    return Rec(path, "linear", x, T(x.n, True, f=fout), params, 0, macs, (_linear_formula, fout, fin, layer.bias, params), None, None, rf)


# ---------------------------------------------------------------- blocks and merges


def _block_formula(recs: list[Rec], params: int) -> str:
    terms = [f"{r.params:,}" for r in recs if r.params]
    return f"{' + '.join(terms)} = {params:,} (its layers)" if len(terms) > 1 else f"{params:,} (its layers)"


def _block_buffers_formula(recs: list[Rec], buffers: int) -> str:
    bterms = [f"{r.buffers:,}" for r in recs if r.buffers]
    return f"{' + '.join(bterms)} = {buffers:,}" if len(bterms) > 1 else f"{buffers:,}"


def _block(path, ltype, x, y, paths, srcs, rf) -> Rec:
    recs = [r for p in paths for r in p]
    params = sum(r.params for r in recs)
    buffers = sum(r.buffers for r in recs)
    macs = sum(r.macs for r in recs)
    rec = Rec(path, ltype, x, y, params, buffers, macs, (_block_formula, recs, params),
              (_block_buffers_formula, recs, buffers) if buffers else None, JOIN, rf, paths)
    rec.srcs = srcs
    return rec


def _unknown_match(a: T, b: T) -> bool:
    """Shapes that cannot be compared yet (parameter_count without input_shape): only known channels must agree."""
    return a.sp is None and b.sp is None and a.flat == b.flat and (a.c is None or b.c is None or a.c == b.c)


def _hulls(rfs: list, y: T, where: str, labels: list[str], w) -> tuple | None:
    if any(r is None for r in rfs):
        return None
    first = rfs[0]
    if all(r is first for r in rfs):
        return first
    nd = len(rfs[0])
    names = AXIS_NAMES[nd]
    sizes = y.sp if not y.flat and y.sp is not None else (None,) * nd
    return tuple(hull([r[i] for r in rfs], sizes[i], names[i], where, labels, w.warnings) for i in range(nd))


def residual(w, layer: Residual, x: T, rf, path: str) -> Rec:
    body: list[Rec] = []
    short: list[Rec] = []
    src, index = w.src, w.index
    yb, rfb, sb = w.sequence(layer.body, x, rf, src, f"{path}.body.", body, index)
    ys, rfs, ss = w.sequence(layer.shortcut, x, rf, src, f"{path}.shortcut.", short, index)
    if not yb.same_as(ys) and not _unknown_match(yb, ys):
        raise SpecError(
            f"body gives {yb.dims()} but shortcut gives {ys.dims()}; the residual add needs equal shapes "
            "(a projection shortcut, e.g. a 1x1 conv with the body's stride and out_channels, fixes it)"
        )
    w.inner.extend(body)
    w.inner.extend(short)
    y = yb if yb.c is not None else ys
    out_rf = None
    if rf is not None:
        labels = ["body", "shortcut" if layer.shortcut else "identity shortcut"]
        out_rf = _hulls([rfb, rfs], y, lambda: f"{w.label(path)} (residual)", labels, w)
    return _block(path, "residual", x, y, [body, short], (sb, ss), out_rf)


def concat(w, layer: Concat, x: T, rf, path: str) -> Rec:
    outs, rfs, paths, srcs = [], [], [], []
    src, index = w.src, w.index
    for j, branch in enumerate(layer.branches):
        recs: list[Rec] = []
        y, r, s = w.sequence(branch, x, rf, src, f"{path}.branches.{j}.", recs, index)
        outs.append(y)
        rfs.append(r)
        paths.append(recs)
        srcs.append(s)
        w.inner.extend(recs)
    first = outs[0]
    for j, y in enumerate(outs[1:], start=1):
        if y.flat != first.flat or y.n != first.n or (not y.flat and y.sp != first.sp):
            raise SpecError(
                f"branch {j} gives {y.dims()} but branch 0 gives {first.dims()}; concatenation along channels "
                "needs the same batch and spatial size in every branch"
            )
    if first.flat:
        fs = [y.f for y in outs]
        y = T(first.n, True, f=sum(fs) if None not in fs else None)
    else:
        cs = [y.c for y in outs]
        y = T(first.n, False, sum(cs) if None not in cs else None, first.sp)
    out_rf = _hulls(rfs, y, lambda: f"{w.label(path)} (concat)", [f"branch {j}" for j in range(len(outs))], w) if rf is not None else None
    return _block(path, "concat", x, y, paths, tuple(srcs), out_rf)


def _broadcast(xs: list[T], names: list[str]) -> T:
    """The shape of add/mul over xs, broadcast as torch does (sizes equal or 1, right-aligned, batch axis included)."""
    if len({x.flat for x in xs}) > 1:
        raise SpecError(f"inputs {', '.join(f'{n!r} {x.dims()}' for n, x in zip(names, xs, strict=True))} mix maps and flattened tensors")
    if any(x.elements() == 0 for x in xs):  # unknown sizes (parameter_count without input_shape)
        known = [x for x in xs if x.elements()]
        return known[0] if known else xs[0]
    full = [[x.n or 1, *x.dims()[0 if x.n is None else 1:]] for x in xs]
    rank = max(len(d) for d in full)
    padded = [[1] * (rank - len(d)) + d for d in full]
    out = []
    for axis in range(rank):
        sizes = {d[axis] for d in padded} - {1}
        if len(sizes) > 1:
            shown = ", ".join(f"{n!r} {x.dims()}" for n, x in zip(names, xs, strict=True))
            raise SpecError(f"inputs {shown} do not broadcast: dim {axis} (with the batch axis) is {' vs '.join(str(d[axis]) for d in padded)}; torch needs equal sizes or 1")
        out.append(sizes.pop() if sizes else 1)
    n = None if all(x.n is None for x in xs) else out[0]
    if xs[0].flat:
        return T(n, True, f=out[-1])
    return T(n, False, out[1], tuple(out[2:]))


def _given_shape(dims: list[int] | None, xs: list[T]) -> T:
    """A T for dims given whole (an opaque node's output): [F] / [N, F] flat, [C, *sp] / [N, C, *sp] a map, the batch
    axis counted when the inputs have one (or are unknown, as a model file's tensors always carry it)."""
    if dims is None:
        return T(None, False)
    batched = any(x.n is not None for x in xs) or all(x.elements() == 0 for x in xs)
    body = dims[1:] if batched and len(dims) > 1 else dims
    n = dims[0] if batched and len(dims) > 1 else None
    if len(body) == 1:
        return T(n, True, f=body[0])
    return T(n, False, body[0], tuple(body[1:]))


def opaque(w, layer, xs: list[T], srcs: tuple, path: str) -> Rec:
    """A node the walk does not analyse: its output shape and MACs as given, no params of its own (a model file's
    weights give them), and an unknown receptive field from here on."""
    rec = Rec(path, "opaque", xs[0], _given_shape(layer.output_shape, xs), macs=layer.macs or 0, formula="0")
    rec.srcs = srcs
    w.opaque = True  # shapes past it may be unknown: the rows check for that
    return rec


def _weights_formula(weights: list, buffers: bool, total: int) -> str:
    terms = []
    for wt in weights:
        if wt.buffer != buffers:
            continue
        if wt.shared_with is not None:
            terms.append(f"{wt.name!r} (shared with {wt.shared_with!r}, counted there)")
        else:
            terms.append(f"{wt.name!r} {'*'.join(map(str, wt.shape)) or '1'}")
    return f"{' + '.join(terms)} = {total:,}" if terms else "0"


def file_weights(rec: Rec, weights: list) -> None:
    """Replace a record's params and buffers by the tensors a model file stores for it (each counted once)."""
    params = buffers = 0
    for wt in weights:
        if wt.shared_with is None:
            if wt.buffer:
                buffers += prod(wt.shape)
            else:
                params += prod(wt.shape)
    rec.params, rec.buffers = params, buffers
    rec.formula = (_weights_formula, weights, False, params)
    rec.buffers_formula = (_weights_formula, weights, True, buffers) if any(wt.buffer for wt in weights) else None


def merge(w, layer, xs: list[T], rfs: list, srcs: tuple, names: list[str], path: str, label: str) -> Rec:
    """A graph merge node (add, mul, concat) over its inputs, or an opaque node."""
    ltype = layer.type
    if ltype == "opaque":
        return opaque(w, layer, xs, srcs, path)
    where = f"{label} ({ltype})"
    if ltype in ("add", "mul"):
        first = xs[0]
        y = first if all(x is first or x.same_as(first) for x in xs) and first.elements() else _broadcast(xs, names)
        out_rf = None
        if all(r is not None for r in rfs) and not y.flat and y.sp is not None:
            stretched = []
            for x, r in zip(xs, rfs, strict=True):  # an axis of size 1 stretched to n: every pixel reads pixel 0
                stretched.append(tuple(m.window(1, 0, 0, 1) if s == 1 and n > 1 else m for m, s, n in zip(r, x.sp, y.sp, strict=True)))
            out_rf = _hulls(stretched, y, where, [repr(n) for n in names], w)
        rec = Rec(path, ltype, xs[0], y, steps=JOIN, rf=out_rf)
        rec.srcs = srcs
        return rec
    first = xs[0]
    axis = _axis_of(layer.dim, first)
    rank = 2 if first.flat else 2 + len(first.sp or ())
    for j, x in enumerate(xs[1:], start=1):
        other = 2 if x.flat else 2 + len(x.sp or ())
        if other != rank or x.flat != first.flat:
            raise SpecError(f"input {names[j]!r} {x.dims()} and input {names[0]!r} {first.dims()} have different ranks; concat needs the same layout")
    if any(x.elements() == 0 for x in xs):
        cs = [x.c for x in xs]
        y = T(first.n, first.flat, sum(cs) if axis == 1 and None not in cs else None, None)
        rec = Rec(path, ltype, first, y, steps=JOIN)
        rec.srcs = srcs
        return rec
    full = [[x.n or 1, *x.dims()[0 if x.n is None else 1:]] for x in xs]
    for j, d in enumerate(full[1:], start=1):
        bad = [a for a in range(rank) if a != axis and d[a] != full[0][a]]
        if bad:
            a = bad[0]
            raise SpecError(
                f"input {names[j]!r} {xs[j].dims()} and input {names[0]!r} {first.dims()} differ in dim {a} "
                f"({d[a]} vs {full[0][a]}); concat along dim {layer.dim} needs every other dim equal"
            )
    out = list(full[0])
    out[axis] = sum(d[axis] for d in full)
    n = out[0] if first.n is not None or axis == 0 else None
    y = T(n, True, f=out[1]) if first.flat else T(n, False, out[1], tuple(out[2:]))
    out_rf = None
    if axis >= 2:
        if all(r is not None for r in rfs):
            w.warnings.append(f"{where}: concatenation along a spatial axis (dim {layer.dim}): the receptive field is not tracked past this node")
    elif all(r is not None for r in rfs):
        out_rf = _hulls(list(rfs), y, where, [repr(n) for n in names], w)
    rec = Rec(path, ltype, first, y, steps=JOIN, rf=out_rf)
    rec.srcs = srcs
    return rec


RULES: dict[type, Any] = {
    Conv: conv,
    ConvTranspose: conv_transpose,
    MaxPool: pool,
    AvgPool: pool,
    AdaptiveAvgPool: adaptive,
    AdaptiveMaxPool: adaptive,
    Pad: pad,
    BatchNorm: batchnorm,
    InstanceNorm: batchnorm,
    GroupNorm: groupnorm,
    LayerNorm: layernorm,
    Upsample: upsample,
    PixelShuffle: pixel_shuffle,
    PixelUnshuffle: pixel_shuffle,
    ChannelShuffle: channel_shuffle,
    Softmax: softmax,
    PReLU: prelu,
    Dropout: dropout,
    Flatten: flatten,
    Unflatten: unflatten,
    Linear: linear,
    Residual: residual,
    Concat: concat,
}
"""Layer model -> rule. A model without a rule (activations, identity) keeps its input's shape."""
MERGES = (Cat,)  # with Add and Mul: graph nodes the walk joins with `merge`
