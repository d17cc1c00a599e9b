"""The network walk: shapes, params, buffers, MACs and receptive field per layer, exactly as PyTorch.

One engine serves the three tools (`shape_calculator`, `receptive_field`, `parameter_count`) for every form of
network: a `layers` list (with residual/concat blocks), a `graph` of named nodes (any DAG: U-Net skips, DenseNet,
FPN), or text (`spec`, skills.textspec). It walks 1-D, 2-D or 3-D networks (one dimensionality per network: the
first spatial layer decides it, and with it the input's layout: [3, 16, 112, 112] before a conv3d is [C, D, H, W]).

Each layer's rules live in skills.layers (sizes from skills.arithmetic, the one copy of each formula); the
receptive-field algebra in skills.rf; the result models in skills.reports. Every walked layer becomes a record that
knows its sources, so the walk back from one output pixel (`input_region_clipped`) follows any DAG exactly.
With output_position, `input_region` is that pixel's region before clipping (padding counted as pixels) and
`input_region_clipped` the span of input pixels it really depends on (bit sets per axis, cut to each map).
The gradient-probe tests in tests/test_walk.py check both against PyTorch.

MACs: conv, transposed conv and linear only, bias excluded, times the batch (torchvision's convention).
"""

from __future__ import annotations

import functools
import gc
import re
from typing import Any

from pydantic import BaseModel

from .arithmetic import MAX_EXTENT
from .errors import ConvError, GeometryError, SpecError
from .layers import JOIN, LAYOUTS, RULES, Rec, T, file_weights, merge
from .memory import memory as memory_of
from .reports import (
    BYTES_PER_ELEMENT,
    PARAM_FIELDS,
    RF_FIELDS,
    SHAPE_FIELDS,
    ParameterReport,
    ParamRow,
    ReceptiveFieldReport,
    Region,
    Region1d,
    Region3d,
    RFRow,
    ShapeReport,
    ShapeRow,
    construct,
    param_rows,
    region,
    report_json,
    rf_rows,
    shape_rows,
)
from .rf import AXIS_NAMES, AxisRF
from .rf import fields as rf_fields
from .spec import (
    ND_OF,
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    Add,
    AvgPool,
    BatchNorm,
    Cat,
    Concat,
    Conv,
    ConvTranspose,
    InstanceNorm,
    Linear,
    MaxPool,
    Mul,
    Opaque,
    Pad,
    PixelShuffle,
    PixelUnshuffle,
    Residual,
    Unflatten,
    Upsample,
    count_layers,
    short,
    validate_graph,
    validate_layers,
)

__all__ = [
    "BYTES_PER_ELEMENT", "ParameterReport", "ParamRow", "ReceptiveFieldReport", "Region", "Region1d", "Region3d",
    "RFRow", "ShapeReport", "ShapeRow", "Walked", "parameter_count", "receptive_field", "report_json", "shape_calculator", "walk",
]

_MERGES = (Add, Mul, Cat, Opaque)  # graph nodes that read several inputs


class Walk:
    """State of one walk: the records inside blocks, the network's dimensionality, and where warnings go."""

    __slots__ = ("nd", "decider", "warnings", "notes", "inner", "src", "index", "node", "opaque")

    def __init__(self, nd: int | None, warnings: list[str]):
        self.nd = nd
        self.decider: str | None = None  # 'layer 0 (conv2d)': the layer that fixed nd, for errors about mixing
        self.warnings = warnings
        self.notes: set[str] = set()  # one-time warnings already given
        self.inner: list[Rec] = []
        self.src: Rec | None = None  # the record whose output the layer being walked reads (None: the input)
        self.index = 0  # the top-level index of the layer being walked (its block's layers carry it too)
        self.node: str | None = None  # the graph node being walked (None: a layer list)
        self.opaque = False  # whether a node the walk does not analyse was met (then sizes may be unknown)

    def label(self, path: str) -> str:
        """How warnings and errors name the layer at `path`: `layer 4.body.1`, or `node 'up1'.body.0` in a graph."""
        node = self.node
        if node is None:
            return f"layer {path}"
        return f"node {node!r}{path[len(node):]}"

    def step(self, layer: Any, x: T, rf, src: Rec | None, index: int, path: str) -> Rec:
        """One layer: its record, with errors prefixed by the layer's label."""
        rule = RULES.get(layer.__class__)
        if rule is None:  # activation, dropout, identity: shape unchanged, nothing learnt
            rec = Rec(path, layer.type, x, x, 0, 0, 0, "0", None, None, rf)
        else:
            self.src, self.index = src, index
            try:
                rec = rule(self, layer, x, rf, path)
            except ConvError as exc:
                message = str(exc)
                if message.startswith(("layer ", "node ")):
                    raise
                raise type(exc)(f"{self.label(path)} ({layer.type}): {message}") from None
        rec.index, rec.layer = index, layer
        if rec.paths is None:  # a block's record has its paths' ends as sources
            rec.srcs = (src,)
        return rec

    def sequence(self, layers: list, x: T, rf, src: Rec | None, prefix: str, out: list[Rec], index=None):
        """Walk a layer list from x; returns (output shape, its receptive-field maps, its record). (step() inlined: this
        loop is the walk's hot path.)"""
        rules = RULES
        for i, layer in enumerate(layers):
            rule = rules.get(layer.__class__)
            path = f"{prefix}{i}"
            idx = i if index is None else index
            if rule is None:  # activation, dropout, identity: shape unchanged, nothing learnt
                rec = Rec(path, layer.type, x, x, 0, 0, 0, "0", None, None, rf)
                rec.srcs = (src,)
            else:
                self.src = src
                self.index = idx
                try:
                    rec = rule(self, layer, x, rf, path)
                except ConvError as exc:
                    message = str(exc)
                    if message.startswith(("layer ", "node ")):
                        raise
                    raise type(exc)(f"{self.label(path)} ({layer.type}): {message}") from None
                if rec.paths is None:  # a block's record has its paths' ends as sources
                    rec.srcs = (src,)
            rec.index = idx
            rec.layer = layer
            out.append(rec)
            x, rf, src = rec.y, rec.rf, rec
        return x, rf, src

    def graph(self, nodes: list, output: str, x: T, rf) -> tuple[list[Rec], Rec]:
        """Walk graph nodes in topological order; returns (one record per node, the output node's record)."""
        made: dict[str, Rec | None] = {"input": None}
        records: list[Rec] = []
        for node in nodes:
            layer = node.layer
            name = node.name
            self.node = name
            if layer.__class__ in _MERGES:
                label = f"node {name!r}"
                srcs = tuple([made[n] for n in node.inputs])
                xs = [x if s is None else s.y for s in srcs]
                rfs = [rf if s is None else s.rf for s in srcs]
                try:
                    rec = merge(self, layer, xs, rfs, srcs, list(node.inputs), name, label)
                except ConvError as exc:
                    message = str(exc)
                    raise type(exc)(message if message.startswith("node ") else f"{label} ({layer.type}): {message}") from None
            else:
                src = made[node.inputs[0]]
                rec = self.step(layer, x if src is None else src.y, rf if src is None else src.rf, src, node.index, name)
            rec.index, rec.name, rec.layer = node.index, name, layer
            if node.op_type is not None:
                rec.op_type = node.op_type
            if node.weights is not None:
                file_weights(rec, node.weights)
            records.append(rec)
            made[name] = rec
        out = made[output]
        feeding = _ancestors(out)
        if len(feeding) < len(records) + len(self.inner):
            dead = [r.name for r in records if r not in feeding]
            if dead:
                shown = ", ".join(repr(n) for n in dead[:5]) + (f" and {len(dead) - 5} more" if len(dead) > 5 else "")
                self.warnings.append(
                    f"node{'s' if len(dead) > 1 else ''} {shown} do{'es' if len(dead) == 1 else ''} not feed the output {output!r} "
                    "(counted in the totals, as PyTorch counts an unused module's params)"
                )
        return records, out


def _ancestors(rec: Rec) -> set:
    """Records whose outputs reach `rec` (itself included)."""
    seen = {rec}
    stack = [rec]
    while stack:
        for s in stack.pop().srcs:
            if s is not None and s not in seen:
                seen.add(s)
                stack.append(s)
    return seen


# ---------------------------------------------------------------- the network's dimensionality and input layout


_STRONG = {Conv, ConvTranspose, MaxPool, AvgPool, AdaptiveAvgPool, AdaptiveMaxPool, Pad, InstanceNorm, PixelShuffle, PixelUnshuffle}
_MODE_ND = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def _dimensionality(models: list, labels) -> tuple[int | None, str | None, bool]:
    """(spatial axes, 'layer 3 (conv3d)' of the layer that decides them, whether a linear/unflatten comes first).

    The first layer written for a dimensionality, in walk order (blocks' layers in theirs), decides (conv3d: 3);
    batchnorm1d, which also takes [N, C], decides only when no other does."""
    if models and models[0].__class__ in _STRONG:  # the usual case: the first layer decides
        return ND_OF[models[0].type], f"{labels(0)} ({models[0].type})", False
    weak = None
    flat_first = False
    stack: list[tuple[list, int, str]] = [(models, 0, "")]  # (a layer list, the next index in it, its label prefix)
    while stack:
        seq, i, prefix = stack.pop()
        while i < len(seq):
            model = seq[i]
            cls = model.__class__
            nd = None
            if cls in _STRONG or (cls is BatchNorm and model.type != "batchnorm1d"):
                nd = ND_OF[model.type]
            elif cls is Upsample:
                nd = _MODE_ND.get(model.mode)
            if nd is not None:
                return nd, f"{labels(i) if not prefix else prefix + str(i)} ({model.type})", flat_first
            if cls is BatchNorm and weak is None:
                weak = (1, f"{labels(i) if not prefix else prefix + str(i)} ({model.type})", flat_first)
            elif cls is Linear or cls is Unflatten:
                flat_first = True
            elif cls is Residual or cls is Concat:
                label = labels(i) if not prefix else prefix + str(i)
                stack.append((seq, i + 1, prefix))  # come back after the block
                if cls is Residual:
                    stack.append((model.shortcut, 0, f"{label}.shortcut."))
                    stack.append((model.body, 0, f"{label}.body."))
                else:
                    for b in reversed(range(len(model.branches))):
                        stack.append((model.branches[b], 0, f"{label}.branches.{b}."))
                break
            i += 1
    return weak if weak is not None else (None, None, flat_first)


def _input(input_shape: Any, nd: int | None, decider: str | None, flat_first: bool, warnings: list[str]) -> tuple[T, int | None]:
    """The input as a T, and the network's spatial axes, from input_shape and the layer that decides the layout."""
    if input_shape.__class__ not in (list, tuple) or not 1 <= len(input_shape) <= 5 or not all(
        v.__class__ is int and 1 <= v <= MAX_EXTENT for v in input_shape  # bool is not int here
    ):
        raise GeometryError(
            f"input_shape must be [C, H, W] or [N, C, H, W] of ints from 1 to {MAX_EXTENT:,} ([C, L] / [C, D, H, W] for "
            f"1-D / 3-D networks, [F] or [N, F] for a flat input), got {short(input_shape)}"
        )
    dims = list(input_shape)
    rank = len(dims)
    if rank <= 2 and (flat_first or nd is None or nd >= rank):
        if nd is not None and not flat_first:
            raise GeometryError(
                f"input_shape {dims} has {rank} {'axes' if rank > 1 else 'axis'} but {decider} needs a {nd}-D map: "
                f"{LAYOUTS[nd]} or [N, {LAYOUTS[nd][1:]} ({nd + 1} or {nd + 2} axes)"
            )
        return T(dims[0] if rank == 2 else None, True, f=dims[-1]), nd
    if nd is None:
        nd = 2 if rank in (3, 4) else rank - 2
    elif rank not in (nd + 1, nd + 2):
        raise GeometryError(
            f"input_shape {dims} has {rank} axes but {decider} needs a {nd}-D map: {LAYOUTS[nd]} or "
            f"[N, {LAYOUTS[nd][1:]} ({nd + 1} or {nd + 2} axes; a {rank - 2 if rank > 3 else rank - 1}-D network would take it)"
        )
    n = dims[0] if rank == nd + 2 else None
    c, sp = dims[-nd - 1], tuple(dims[-nd:])
    last = sp[-1]
    if last in (1, 3, 4) and c > 8 * last and all(s > 8 * last for s in sp[:-1]):
        names = ", ".join(["C", *AXIS_NAMES[nd]])
        warnings.append(
            f"input_shape {dims} looks channels-last ({last} channels at the end): the walk reads PyTorch's layout "
            f"[{names}], i.e. {c} channels of {'x'.join(map(str, sp))}; for {last} channels give "
            f"{[*(dims[:1] if n is not None else []), last, *dims[-nd - 1:-1]]}"
        )
    return T(n, False, c, sp), nd


# ---------------------------------------------------------------- entry points


class Walked:
    """The raw result of a walk: the input, top-level and inner records, the output record, its shape and
    receptive-field maps, and warnings; `order` is every record in the order walked (a topological order)."""

    def __init__(self, x, records, inner, out, warnings, nd):
        self.input_shape, self.records, self.inner, self.out = x, records, inner, out
        self.y, self.rf, self.warnings, self.nd = out.y if out is not None else x, out.rf if out is not None else None, warnings, nd
        self._order: list[Rec] | None = None
        self.opaque = False

    @property
    def order(self) -> list[Rec]:
        """Every record, each after its sources: a block's layers (its paths in turn) come before the block's own
        record, as the walk made them; built on first use (the walk itself does not need it)."""
        if self._order is None:
            order: list[Rec] = []
            stack = [(r, False) for r in reversed(self.records)]
            while stack:
                rec, expanded = stack.pop()
                if rec.paths is None or expanded:
                    order.append(rec)
                    continue
                stack.append((rec, True))  # the block's own record after its paths' layers
                stack.extend((r, False) for r in reversed([r for p in rec.paths for r in p]))
            self._order = order
        return self._order


def walk(
    input_shape: Any = None,
    layers: Any = None,
    spec: str | None = None,
    *,
    graph: Any = None,
    output: Any = None,
    max_layers: int | None = None,
    max_depth: int | None = None,
    max_spec_chars: int | None = None,
) -> Walked:
    """Walk a network (`layers`, `graph` or text `spec`) from `input_shape` (None: channels and params only)."""
    if (layers is None) + (graph is None) + (spec is None) != 2:
        given = [name for name, v in (("layers", layers), ("graph", graph), ("spec", spec)) if v is not None]
        if given:
            raise SpecError(f"give the network one way: `layers` (a JSON list), `graph` (named nodes) or `spec` (text), not both {' and '.join(given)}")
        raise SpecError("give the network as `layers` (a JSON list of layer objects), `graph` (named nodes with inputs) or `spec` (the text print(model) shows)")
    if output is not None and graph is None:
        raise SpecError("output names a graph node: it is for `graph` specs only")
    lines = names = None
    if spec is not None:
        from .textspec import parse_spec_named

        layers, lines, names = parse_spec_named(spec, max_chars=max_spec_chars, max_layers=max_layers)
    count_layers(layers if graph is None else graph, max_layers=max_layers, max_depth=max_depth)
    try:
        if graph is not None:
            nodes, out_name = validate_graph(graph, output)
            labels = lambda i: f"node {nodes[i].name!r}"  # noqa: E731 - built only for the layer that decides the layout
            models = [n.layer for n in nodes]
        else:
            models = layers if _all_models(layers) else validate_layers(layers)
            labels = _layer_label
        nd, decider, flat_first = _dimensionality(models, labels)
        warnings: list[str] = []
        if input_shape is not None:
            x, nd = _input(input_shape, nd, decider, flat_first, warnings)
            rf = None if x.flat else (AxisRF.image(),) * nd  # maps are never changed in place, so axes may share one
        else:
            x, rf = T(None, False), None
        state = Walk(nd, warnings)
        state.decider = decider
        if graph is not None:
            records, out = state.graph(nodes, out_name, x, rf)
        else:
            records = []
            out = state.sequence(models, x, rf, None, "", records)[2]
    except ConvError as exc:
        if lines is None:
            raise
        raise type(exc)(_with_line(str(exc), lines, spec)) from None
    if names is not None:  # rows keep the module names print(model) shows
        for rec, name in zip(records, names, strict=True):
            rec.name = name or None
    if lines is not None and any(m.type == "avgpool2d" for m in models):
        state.warnings.append("print(model) does not show AvgPool2d's ceil_mode and count_include_pad: assumed False and True")
    done = Walked(x, records, state.inner, out, state.warnings, state.nd)
    done.opaque = state.opaque
    return done


def _layer_label(i: int) -> str:
    return f"layer {i}"


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


def _totals(records: list[Rec]) -> tuple[int, int, int]:
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


def _need_input(input_shape: Any) -> None:
    if input_shape is None:
        raise GeometryError("input_shape is required: [C, H, W] or [N, C, H, W] ([C, L] for 1-D, [C, D, H, W] for 3-D)")


@_without_gc
def shape_calculator(
    input_shape: Any,
    layers: Any = None,
    spec: str | None = None,
    *,
    graph: Any = None,
    output: Any = None,
    max_layers: int | None = None,
    max_depth: int | None = None,
    max_spec_chars: int | None = None,
    dtype: str | None = None,
    batch_size: int | None = None,
    mode: str | None = None,
    optimizer: str | None = None,
    memory: bool = True,
) -> ShapeReport:
    """Walk a network from input_shape: every layer's output shape, params, buffers, MACs and receptive field, as PyTorch,
    and its memory in `dtype` at `batch_size` (skills.memory; mode "inference" or "training", optimizer for training)."""
    _need_input(input_shape)
    done = walk(input_shape, layers, spec, graph=graph, output=output, max_layers=max_layers, max_depth=max_depth,
                max_spec_chars=max_spec_chars)
    rows = shape_rows(done.records, done.opaque)
    inner = shape_rows(done.inner, done.opaque)
    mem = memory_of(done, dtype, batch_size, mode, optimizer) if memory else None  # after the rows: elements are cached
    size, stride, pad = rf_fields(done.rf)
    params, buffers, macs = _totals(done.records)
    return construct(ShapeReport, SHAPE_FIELDS, {
        "input_shape": done.input_shape.dims(), "output_shape": done.y.dims(),
        "total_params": params, "total_buffers": buffers, "total_macs": macs,
        "total_activation_bytes": sum([r.activation_bytes for r in rows]),
        "receptive_field": size, "effective_stride": stride, "effective_padding": pad, "memory": mem,
        "layers": rows, "block_layers": inner, "warnings": done.warnings, "completeness": None,
    })


@_without_gc
def receptive_field(
    input_shape: Any,
    layers: Any = None,
    spec: str | None = None,
    output_position: Any = None,
    *,
    graph: Any = None,
    output: Any = None,
    at_layer: Any = None,
    max_layers: int | None = None,
    max_depth: int | None = None,
    max_spec_chars: int | None = None,
) -> ReceptiveFieldReport:
    """Receptive field, effective stride and effective padding per layer; with output_position (one index per spatial
    axis) the input region that pixel sees, at the output or at layer `at_layer` (an index or a name)."""
    _need_input(input_shape)
    done = walk(input_shape, layers, spec, graph=graph, output=output, max_layers=max_layers, max_depth=max_depth,
                max_spec_chars=max_spec_chars)
    if done.input_shape.flat:
        raise GeometryError(f"input_shape {done.input_shape.dims()} is flat: a receptive field needs a map ([C, H, W], [C, L] or [C, D, H, W])")
    if at_layer is not None and output_position is None:
        raise GeometryError("at_layer picks the layer whose output pixel output_position names: give output_position too")
    size, stride, pad = rf_fields(done.rf)
    position, reg, clipped, target = _position(done, output_position, at_layer) if output_position is not None else (None, None, None, None)
    return construct(ReceptiveFieldReport, RF_FIELDS, {
        "input_shape": done.input_shape.dims(), "output_shape": done.y.dims(), "receptive_field": size,
        "effective_stride": stride, "effective_padding": pad, "layers": rf_rows(done.records),
        "block_layers": rf_rows(done.inner), "output_position": position, "input_region": reg,
        "input_region_clipped": clipped, "at_layer": target, "warnings": done.warnings, "completeness": None,
    })


def _target(done: Walked, at_layer: Any) -> Rec:
    """The record whose output pixel output_position names."""
    if at_layer is None:
        rec = done.out
        if rec is None:
            raise GeometryError("output_position names a pixel of the network's output, but the network has no layers")
        if rec.y.flat:  # e.g. a classifier: its one output sees the whole map
            for r in reversed(done.records):
                if not r.y.flat and r.rf is not None and _ancestor_of(r, rec):
                    done.warnings.append(
                        f"the output {rec.y.dims()} is flattened, so output_position is taken at layer {r.path} ({r.type}), "
                        "the last layer with a spatial output (after flatten, one output sees the whole map); "
                        "at_layer picks another"
                    )
                    return r
            raise GeometryError(f"output_position needs a spatial output but the network's output is flattened ({rec.y.dims()}) and no layer before it has a map")
        return rec
    if isinstance(at_layer, bool) or not isinstance(at_layer, (int, str)):
        raise GeometryError(f"at_layer must be a layer index (int) or a name / path (str), got {short(at_layer)}")
    if isinstance(at_layer, int):
        count = len(done.records)
        if not -count <= at_layer < count:
            raise GeometryError(f"at_layer {at_layer} is out of range: the network has {count} top-level layers (0..{count - 1})")
        rec = done.records[at_layer]
    else:
        found = [r for r in done.order if r.path == at_layer]
        if not found:
            names = [r.path for r in done.records]
            import difflib

            near = difflib.get_close_matches(at_layer, names, n=1)
            raise GeometryError(
                f"at_layer {short(at_layer)} names no layer" + (f"; did you mean {near[0]!r}?" if near else "")
                + " (top-level layers by index, block layers by path such as '4.body.1', graph nodes by name)"
            )
        rec = found[0]
    if rec.y.flat:
        raise GeometryError(f"at_layer {short(at_layer)} ({rec.type}) has a flattened output {rec.y.dims()}: one output sees the whole map; choose a layer with a spatial output")
    if rec.rf is None:
        raise GeometryError(f"the receptive field is not known at layer {rec.path} ({rec.type}) (see the warnings), so no input region can be given")
    return rec


def _ancestor_of(a: Rec, b: Rec) -> bool:
    return a in _ancestors(b)


def _position(done: Walked, output_position: Any, at_layer: Any) -> tuple[list[int], Any, Any, str | None]:
    """output_position checked, its input region, the region clipped to the pixels it really reads, and the layer."""
    rec = _target(done, at_layer)
    y = rec.y
    if rec.rf is None:
        raise GeometryError(f"the receptive field is not known at the output ({rec.type}, see the warnings), so no input region can be given")
    nd = len(y.sp)
    pos = output_position
    what = {1: "[x]", 2: "[y, x]", 3: "[z, y, x]"}[nd]
    if not (isinstance(pos, (list, tuple)) and len(pos) == nd and all(isinstance(v, int) and not isinstance(v, bool) for v in pos)):
        raise GeometryError(f"output_position must be {what} (one int per spatial axis of the {nd}-D output {y.dims()}), got {short(pos)}")
    if not all(0 <= p < n for p, n in zip(pos, y.sp, strict=True)):
        if nd == 2:
            raise GeometryError(
                f"output_position {short(pos)} is outside the output: it is {y.sp[0]}x{y.sp[1]}, so y must be 0..{y.sp[0] - 1} "
                f"and x 0..{y.sp[1] - 1}"
            )
        ranges = " and ".join(f"0..{n - 1}" for n in y.sp)
        raise GeometryError(f"output_position {short(pos)} is outside the output: it is {'x'.join(map(str, y.sp))}, so the indices must be {ranges}")
    where = None if rec is done.out else rec.path
    pos = list(pos)
    spans = [(m.top(p), m.bottom(p)) for m, p in zip(rec.rf, pos, strict=True)]
    boxes = _walk_back(done, rec, tuple(1 << p for p in pos))
    if any(t is None for t, _ in spans) and not boxes:
        done.warnings.append(f"output pixel {pos} receives no input pixel (no kernel tap reaches it)")
        return pos, None, None, where
    if not boxes:
        done.warnings.append(f"output pixel {pos} reads only padding: no pixel of the image reaches it")
        return pos, region(spans), None, where
    hull = [(min(_low(b[a]) for b in boxes), max(b[a].bit_length() - 1 for b in boxes)) for a in range(nd)]
    if any(t is None for t, _ in spans):  # no tap as zero padding would count it, but a replicate/reflect/circular pad reads pixels
        return pos, region(hull), region(hull), where
    # the map follows the widest path where merged paths' strides differ (a warning says so) and counts replicate,
    # reflect and circular padding as zero padding: the region still holds every pixel the walk back found
    spans = [(min(t, lo), max(b, hi)) for (t, b), (lo, hi) in zip(spans, hull, strict=True)]
    return pos, region(spans), region(hull), where


MAX_BOXES = 64
"""Bound on the boxes the walk back keeps per record: past it they are merged into one (a per-axis hull, which may
hold pixels no path reads; a warning says so)."""


def _walk_back(done: Walked, target: Rec, start: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The input pixels that target's output pixels `start` (one bit set per axis) read, back through every path of the
    DAG: a union of boxes (one bit set per axis each), exact: every map's padding and stride gaps respected, and a path
    that reads nothing along one axis reads nothing at all (so it adds nothing along the others either)."""
    order = done.order
    i = len(order) - 1
    while order[i] is not target:
        i -= 1
    pending: dict[Rec | None, list[tuple[int, ...]]] = {target: [start]}
    x0 = done.input_shape
    for rec in reversed(order[: i + 1]):
        boxes = pending.pop(rec, None)
        if not boxes:
            continue
        steps = rec.steps
        if steps is JOIN:
            n = rec.y.sp
            for s in rec.srcs:
                sp = x0.sp if s is None else s.y.sp
                wide = [a for a in range(len(n)) if sp[a] == 1 and n[a] > 1]  # a broadcast axis reads its pixel 0
                for box in boxes:
                    _add(pending, s, tuple(1 if a in wide else b for a, b in enumerate(box)) if wide else box, done)
            continue
        if steps is not None:
            moved = []
            for box in boxes:
                out = []
                for a, b in enumerate(box):
                    for cls, fields in steps:
                        b = cls(*[f[a] for f in fields]).pre(b)
                        if not b:
                            break
                    if not b:
                        break
                    out.append(b)
                else:
                    moved.append(tuple(out))
            boxes = moved
        for box in boxes:
            _add(pending, rec.srcs[0], box, done)
    return pending.get(None, [])


def _add(pending: dict, rec: Rec | None, box: tuple[int, ...], done: Walked) -> None:
    """Add a box to rec's pending union, keeping only boxes that no other holds."""
    have = pending.setdefault(rec, [])
    for other in have:
        if all(b & ~o == 0 for b, o in zip(box, other, strict=True)):
            return
    have[:] = [other for other in have if not all(o & ~b == 0 for b, o in zip(box, other, strict=True))]
    have.append(box)
    if len(have) > MAX_BOXES:
        merged = tuple(functools.reduce(lambda p, q: p | q, axis) for axis in zip(*have, strict=True))
        have[:] = [merged]
        note = "input_region_clipped is the per-axis hull of many paths' regions, so it may hold pixels no path reads"
        if note not in done.warnings:
            done.warnings.append(note)


def _low(bits: int) -> int:
    return (bits & -bits).bit_length() - 1


@_without_gc
def parameter_count(
    layers: Any = None,
    spec: str | None = None,
    input_shape: Any = None,
    *,
    graph: Any = None,
    output: Any = None,
    max_layers: int | None = None,
    max_depth: int | None = None,
    max_spec_chars: int | None = None,
) -> ParameterReport:
    """Params and buffers per layer with the formula behind each; input_shape only where channels must be inferred.
    A `spec` may be the print(model) of any module: params do not depend on forward(), so custom modules are read
    as their module tree (skills.printtree)."""
    from .textspec import PrintedModuleError

    try:
        done = walk(input_shape, layers, spec, graph=graph, output=output, max_layers=max_layers, max_depth=max_depth,
                    max_spec_chars=max_spec_chars)
    except PrintedModuleError:
        if spec is None or layers is not None or graph is not None:
            raise
        from .printtree import parameter_count as by_module

        return by_module(spec, max_layers=max_layers)
    params, buffers, _ = _totals(done.records)
    return construct(ParameterReport, PARAM_FIELDS, {
        "total_params": params, "total_buffers": buffers,
        "layers": param_rows(done.records), "block_layers": param_rows(done.inner),
        "input_shape": done.input_shape.dims() if input_shape is not None else None, "warnings": done.warnings, "completeness": None,
    })
