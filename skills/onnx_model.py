"""ONNX models through the walk: a file's graph becomes a `graph` spec, walked by the same engine as JSON specs.

    report = analyse("shape_calculator", model="resnet50.onnx", roots=["."])

Each ONNX node that computes on the network's activations becomes one graph node named as in the file (a name
is generated, `Conv_3`, when the file has none; names are made unique), its row carrying the `op_type`. Nodes that
only compute constants or shapes (Constant, Shape -> Gather -> Concat, an Identity of a weight) are not rows.
The table below maps ops onto the walk's layers, exactly as ONNX defines them: `pads` per side, `auto_pad`
(SAME_UPPER, SAME_LOWER, VALID) resolved as onnx.shape_inference resolves it, pooling by ONNX's size rule
(`convention: "onnx"`: no half-kernel limit, ceil_mode keeps every window), ConvTranspose's output_shape.

Params come from the file: each node's weights are the initializers its weight inputs read (a Conv's W and B, a
BatchNormalization's scale and B as params and its mean and var as buffers, a Gemm's B and C, a MatMul's stored
operand, an elementwise op's stored tensor of more than one value such as a bias), named as in the file and each
counted once. An op the table does not know is an `opaque` node: its output shape comes from onnx.shape_inference,
its stored tensors count as params, its MACs are unknown and the receptive field is unknown past it. Every result
carries `completeness`: per metric, complete, partial (and from which node) or unavailable.

onnx is imported inside the functions: `import skills` and the server's start stay cheap.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

from .arithmetic import MAX_EXTENT
from .errors import ConvError, SpecError
from .onnx_file import EXPORT_LINE, INDEX_TYPES, MAX_MODEL_BYTES, ModelFile, read_base64, read_path
from .reports import Completeness, Coverage
from .spec import MAX_NAME_CHARS, _limit, short

__all__ = ["EXPORT_LINE", "Converted", "analyse", "analyse_file", "completeness_text", "convert", "load"]

TOOLS = ("shape_calculator", "receptive_field", "parameter_count")
_SAME = ("SAME_UPPER", "SAME_LOWER")


class Unanalysed(Exception):
    """Raised by an op's converter: the node becomes opaque, with `reason` and `macs` (None = unknown)."""

    def __init__(self, reason: str, macs: int | None = 0):
        super().__init__(reason)
        self.reason, self.macs = reason, macs


class NodeInfo:
    """What the conversion knows about one walked node: the op, whether the table analysed it (and why not)."""

    __slots__ = ("op_type", "analysed", "reason", "macs_known", "holds_weights")

    def __init__(self, op_type: str):
        self.op_type, self.analysed, self.reason, self.macs_known, self.holds_weights = op_type, True, None, True, False


class Converted:
    """A model as the walk takes it: `graph` (node dicts), its `output`, the `input_shape` (None when a dimension
    is symbolic and none was given), per-node `info` and `inferred` output shapes (onnx.shape_inference), warnings."""

    def __init__(self):
        self.graph: list[dict] = []
        self.output = ""
        self.input_shape: list[int] | None = None
        self.input_text = ""
        self.no_shape = ""
        self.info: dict[str, NodeInfo] = {}
        self.inferred: dict[str, list[int | None] | None] = {}
        self.warnings: list[str] = []
        self.label = ""
        self.nodes = 0


# ---------------------------------------------------------------- the input


def _declared(vi) -> list[int | str] | None:
    """A graph input's dims as declared: ints, symbol names ('N', '?' when anonymous), or None without a shape."""
    t = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?") for d in t.shape.dim]


def _shown(dims: list) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def _example(dims: list) -> list[int]:
    return [d if isinstance(d, int) else (1 if i == 0 else 224) for i, d in enumerate(dims)]


def _fill(name: str, dims: list | None, input_shape: Any, need: bool) -> tuple[list[int] | None, str]:
    """(the input's dims, or None for params only; the reason when None)."""
    if dims is None:
        if input_shape is None:
            why = f"the model's input {name!r} declares no shape: give input_shape (all its dims, batch axis first)"
            if need:
                raise SpecError(why)
            return None, why
        dims = ["?"] * len(input_shape)
    symbolic = [(i, d) for i, d in enumerate(dims) if not isinstance(d, int)]
    if input_shape is None:
        if not symbolic:
            return list(dims), ""
        names = ", ".join(f"{d} (axis {i})" for i, d in symbolic)
        why = (
            f"the model's input {name!r} is {_shown(dims)}: {names} {'is' if len(symbolic) == 1 else 'are'} symbolic; "
            f"give input_shape with all {len(dims)} dims, e.g. {_example(dims)}"
        )
        if need:
            raise SpecError(why)
        return None, why
    if not isinstance(input_shape, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_EXTENT for v in input_shape
    ):
        raise SpecError(f"input_shape must be a list of ints from 1 to {MAX_EXTENT:,}, got {short(input_shape)}")
    if len(input_shape) != len(dims):
        raise SpecError(
            f"input_shape {list(input_shape)} has {len(input_shape)} dims but the model's input {name!r} is {_shown(dims)} "
            f"({len(dims)} dims, batch axis first); give e.g. {_example(dims)}"
        )
    for i, (d, v) in enumerate(zip(dims, input_shape, strict=True)):
        if isinstance(d, int) and d != v:
            raise SpecError(f"input_shape[{i}]={v} but the model fixes that axis of {name!r} at {d} (its input is {_shown(dims)})")
    return list(input_shape), ""


# ---------------------------------------------------------------- the graph's order and its tensors


def _node_label(node, i: int) -> str:
    return f"node {node.name!r} ({node.op_type})" if node.name else f"node #{i} ({node.op_type})"


def _order(nodes, sources: set[str]) -> list[int]:
    """Node indices in a topological order (the file's when it is one); refuses a tensor produced twice, an input no
    one produces and a cycle, naming the nodes."""
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for t in node.output:
            if not t:
                continue
            if t in producer or t in sources:
                other = _node_label(nodes[producer[t]], producer[t]) if t in producer else "a graph input or initializer"
                raise SpecError(f"{_node_label(node, i)} writes tensor {short(t)}, which {other} writes too: not a valid ONNX graph")
            producer[t] = i
    deps: list[list[int]] = []
    for i, node in enumerate(nodes):
        mine = []
        for t in node.input:
            if not t or t in sources:
                continue
            if t not in producer:
                raise SpecError(f"{_node_label(node, i)} reads tensor {short(t)}, which no node, graph input or initializer produces")
            mine.append(producer[t])
        deps.append(mine)
    if all(j < i for i, mine in enumerate(deps) for j in mine):
        return list(range(len(nodes)))
    pending = [len(set(mine)) for mine in deps]
    users: dict[int, list[int]] = {}
    for i, mine in enumerate(deps):
        for j in set(mine):
            users.setdefault(j, []).append(i)
    ready = [i for i, p in enumerate(pending) if p == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in users.get(i, ()):
            pending[j] -= 1
            if pending[j] == 0:
                heapq.heappush(ready, j)
    if len(order) < len(nodes):
        stuck = {i for i, p in enumerate(pending) if p}
        i, seen, path = min(stuck), set(), []
        while i not in seen:
            seen.add(i)
            path.append(i)
            i = next(j for j in deps[i] if j in stuck)
        loop = path[path.index(i):] + [i]
        shown = " -> ".join(repr(nodes[k].name or f"#{k} ({nodes[k].op_type})") for k in reversed(loop))
        raise SpecError(f"the graph has a cycle ({shown}): ONNX graphs are acyclic, so this file cannot be walked")
    return order


def _infer(cv: Converted, cw: _Converter, first: str, dims: list[int] | None, symbols: dict[str, int]) -> dict:
    """Every tensor's shape as onnx.shape_inference finds it (the input's dims filled in), dims None where unknown.

    Shape inference runs without its data propagation (data_prop=True materialises values: a ConstantOfShape of a
    corrupt length made it allocate without bound). Instead, the values of constant and shape subgraphs that nodes on
    the activations read (Reshape's target, Pad's pads) are folded here, bounded (_Converter.value), and handed to it
    as initializers; repeated while that lets it find more shapes (a Shape of a tensor it has just sized)."""
    import onnx
    from onnx import helper, numpy_helper, shape_inference

    m = onnx.ModelProto()
    m.CopyFrom(cw.mf.model)
    g = m.graph
    for vi in g.input:
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            continue
        shape = vi.type.tensor_type.shape
        if vi.name == first and dims is not None:
            for d, v in zip(shape.dim, dims, strict=True):
                d.dim_value = v
        else:
            for d in shape.dim:
                if not d.HasField("dim_value") and d.dim_param in symbols:
                    d.dim_value = symbols[d.dim_param]
    present = {vi.name for vi in g.input} | {t.name for t in g.initializer}
    for name, t in cw.mf.tensors.items():  # large initializers are described, not held: their types stand for them
        if name not in present:
            g.input.append(helper.make_tensor_value_info(name, t.dtype or onnx.TensorProto.FLOAT, list(t.dims)))
    shapes: dict[str, list[int | None]] = {}
    folded: set[str] = set()
    for _ in range(4):
        try:
            inferred = shape_inference.infer_shapes(m, check_type=False, strict_mode=False, data_prop=False)
        except Exception as exc:  # the ops the table knows are still walked; the others get unknown shapes
            cv.warnings.append(f"onnx.shape_inference failed ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}); "
                               "ops the walk does not analyse get unknown shapes")
            break
        for vi in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
            t = vi.type.tensor_type
            if vi.type.HasField("tensor_type") and t.HasField("shape"):
                shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if dims is None:
            break
        cw.shapes, cw.values = dict(shapes), {}
        new = {}
        for node in g.node:
            if not any(cw.kind.get(t) == "act" for t in node.input if t):
                continue
            known = shapes.get(node.output[0]) if node.output else None
            if known is not None and None not in known:
                continue  # sized already: its constant inputs add nothing
            for t in node.input:
                if t and t not in folded and cw.kind.get(t) in ("const", "meta") and t not in present and t not in new:
                    v = cw.value(t)
                    if v is not None and v.size <= 4096:
                        new[t] = v
        if not new:
            break
        for t, v in new.items():
            g.initializer.append(numpy_helper.from_array(v, f"{t}::folded"))
            folded.add(t)
        for node in g.node:
            if any(cw.kind.get(t) == "act" for t in node.input if t):
                for k, t in enumerate(node.input):
                    if t in new:
                        node.input[k] = f"{t}::folded"
    return shapes


def _classify(g, order: list[int], acts_in, tensors) -> dict[str, str]:
    """Each tensor's kind: 'act' (computed from the network's input), 'const' (from stored tensors only), 'meta' (from
    shapes: Shape, Size and what computes on them), 'side' (statistics, indices and masks beside an op's output)."""
    kind = {vi.name: "act" for vi in acts_in}
    for name in tensors:
        kind[name] = "const"
    for i in order:
        node = g.node[i]
        ins = [kind.get(t) for t in node.input if t]
        if node.op_type in ("Shape", "Size"):
            out = "meta"
        elif "act" in ins:
            out = "act"
        elif "meta" in ins:
            out = "meta"
        else:
            out = "const"
        for k, t in enumerate(node.output):
            if t:
                kind[t] = "side" if out == "act" and k > 0 and node.op_type in SIDE_OUTPUTS else out
    return kind


# ---------------------------------------------------------------- one node


class _Op:
    """The node being converted: attributes, its inputs' kinds, shapes and stored values, and the weights it reads."""

    def __init__(self, conv: _Converter, node, name: str):
        from onnx import helper

        self.conv, self.node, self.name = conv, node, name
        self.attrs = {}
        for a in node.attribute:
            v = helper.get_attribute_value(a)
            self.attrs[a.name] = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        self.weights: list[dict] = []

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def ints(self, key: str, n: int, default: int) -> list[int]:
        v = self.attrs.get(key)
        if v is None:
            return [default] * n
        v = list(v)
        if len(v) != n or not all(isinstance(x, int) for x in v):
            raise Unanalysed(f"{key}={short(v)} does not have {n} entries")
        if not all(1 <= x <= MAX_EXTENT for x in v):
            raise Unanalysed(f"{key}={short(v)} has a value outside 1..{MAX_EXTENT:,}")
        return v

    def input(self, i: int) -> str:
        ins = self.node.input
        return ins[i] if i < len(ins) else ""

    def is_act(self, i: int) -> bool:
        t = self.input(i)
        return bool(t) and self.conv.kind.get(t) == "act"

    def shape(self, tensor: str) -> list[int] | None:
        """A tensor's dims, when all are known."""
        dims = self.conv.shapes.get(tensor)
        if dims is None or any(d is None or not 1 <= d <= MAX_EXTENT for d in dims):
            return None
        return list(dims)

    def in_shape(self, i: int = 0) -> list[int] | None:
        return self.shape(self.input(i)) if self.input(i) else None

    def out_shape(self, k: int = 0) -> list[int] | None:
        outs = self.node.output
        return self.shape(outs[k]) if k < len(outs) and outs[k] else None

    def rank(self, i: int = 0) -> int | None:
        dims = self.conv.shapes.get(self.input(i))
        return len(dims) if dims is not None else None

    def value(self, i: int):
        """The stored value of constant input i (a small tensor: shapes, bounds, scales), or None."""
        return self.conv.value(self.input(i))

    def weight(self, i: int, buffer: bool = False) -> list[int] | None:
        """Register input i as a weight of this node; returns the dims it is consumed with (None when not stored)."""
        t = self.input(i)
        if not t:
            return None
        stored = self.conv.stored(t)
        if stored is None:
            return None
        name, dims = stored
        first = self.conv.counted.setdefault(name, self.name)
        shown = name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 3] + "..."
        self.weights.append({"name": shown, "shape": list(dims), "buffer": buffer,
                             "shared_with": None if first == self.name else first[:MAX_NAME_CHARS]})
        consumed = self.shape(t)
        return consumed if consumed is not None else list(dims)

    def stored_inputs(self) -> None:
        """Register every stored tensor this node reads that holds more than one value of a non-index type (for ops
        the table does not know: their weights, as far as a file can tell)."""
        have = {w["name"] for w in self.weights}
        for i, t in enumerate(self.node.input):
            if not t or self.conv.kind.get(t) == "act":
                continue
            stored = self.conv.stored(t)
            if stored is None or stored[0] in have:
                continue
            info = self.conv.mf.tensors.get(stored[0])
            dtype = info.dtype if info is not None else self.conv.const_types.get(stored[0], 1)
            if math.prod(stored[1]) > 1 and dtype not in INDEX_TYPES:
                self.weight(i)
                have.add(stored[0])

    def need_rank(self, nd: int, what: str) -> None:
        """The op works on nd spatial axes: the input must be a map of rank nd + 2 in a network of nd axes."""
        if nd not in (1, 2, 3):
            raise Unanalysed(f"{nd}-D {what}: the walk follows 1-, 2- and 3-D maps", None)
        rank = self.rank(0)
        if rank is not None and rank != nd + 2:
            raise Unanalysed(f"its input has {rank} dims but a {nd}-D {what} reads [N, C, {nd} spatial axes]", None)
        net = self.conv.nd
        if net is None:
            self.conv.nd = nd
        elif net != nd:
            raise Unanalysed(f"a {nd}-D {what} in a {net}-D network: the walk follows one dimensionality", None)

    def map_nd(self) -> int:
        """Spatial axes of this op's input map (rank - 2), checked against the network's."""
        rank = self.rank(0)
        nd = rank - 2 if rank is not None else self.conv.nd
        if nd is None:
            raise Unanalysed("its input's rank is unknown", 0)
        self.need_rank(nd, self.node.op_type)
        return nd


def _pads(op: _Op, k: list[int], s: list[int], d: list[int]) -> list[int]:
    """Per-side pads as onnx.shape_inference takes them: the pads attribute, else auto_pad (VALID: none; SAME_*: the
    total from the input size's residue modulo the stride, the odd pixel after for SAME_UPPER, before for SAME_LOWER)."""
    nd = len(k)
    pads = op.attr("pads")
    if pads is not None:
        pads = list(pads)
        if len(pads) != 2 * nd or not all(isinstance(p, int) and 0 <= p <= MAX_EXTENT for p in pads):
            raise Unanalysed(f"pads={short(pads)} is not {2 * nd} non-negative ints", None)
        return pads
    auto = op.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", "VALID", ""):
        return [0] * (2 * nd)
    if auto not in _SAME:
        raise Unanalysed(f"auto_pad={short(auto)} is not NOTSET, VALID, SAME_UPPER or SAME_LOWER", None)
    size = op.in_shape(0)
    begin, end = [], []
    for i in range(nd):
        span = (k[i] - 1) * d[i] + 1
        residual = 0
        if s[i] > 1:
            if size is None:
                raise Unanalysed("auto_pad SAME with a stride needs the input size, which is not known", None)
            residual = size[2 + i] % s[i]
        total = max(0, span - (s[i] if residual == 0 else residual))
        small, big = total >> 1, total - (total >> 1)
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return begin + end


def _conv(op: _Op) -> dict:
    w = op.weight(1)
    bias = bool(op.input(2)) and op.weight(2) is not None
    if w is None or len(w) < 3:
        raise Unanalysed("its weights are computed in the graph, not stored", None)
    k = list(op.attr("kernel_shape") or w[2:])
    nd = len(k)
    op.need_rank(nd, "Conv")
    g = op.attr("group", 1)
    s, d = op.ints("strides", nd, 1), op.ints("dilations", nd, 1)
    return {"type": f"conv{nd}d", "in_channels": w[1] * g, "out_channels": w[0], "kernel_size": k, "stride": s,
            "dilation": d, "groups": g, "bias": bias, "pads": _pads(op, k, s, d)}


def _conv_transpose(op: _Op) -> dict:
    w = op.weight(1)
    bias = bool(op.input(2)) and op.weight(2) is not None
    if w is None or len(w) < 3:
        raise Unanalysed("its weights are computed in the graph, not stored", None)
    k = list(op.attr("kernel_shape") or w[2:])
    nd = len(k)
    op.need_rank(nd, "ConvTranspose")
    g = op.attr("group", 1)
    s, d = op.ints("strides", nd, 1), op.ints("dilations", nd, 1)
    out_pad = list(op.attr("output_padding") or [0] * nd)
    auto = op.attr("auto_pad", "NOTSET")
    wanted = op.attr("output_shape")
    if wanted is not None:  # pads from the output shape asked for, as ONNX's ConvTranspose defines them
        wanted = list(wanted)[-nd:]
        size = op.in_shape(0)
        if size is None:
            raise Unanalysed("output_shape needs the input size, which is not known", None)
        begin, end = [], []
        for i in range(nd):
            total = s[i] * (size[2 + i] - 1) + out_pad[i] + (k[i] - 1) * d[i] + 1 - wanted[i]
            if total < 0:
                raise Unanalysed(f"output_shape {wanted} is larger than the transposed conv gives without padding", None)
            first = total // 2 if auto == "SAME_UPPER" else total - total // 2
            begin.append(first)
            end.append(total - first)
        pads = begin + end
    elif op.attr("pads") is not None or auto not in _SAME:
        pads = _pads(op, k, s, d) if op.attr("pads") is not None else [0] * (2 * nd)
    else:  # SAME_*: onnx.shape_inference's split of max(0, span - stride)
        begin, end = [], []
        for i in range(nd):
            total = max(0, (k[i] - 1) * d[i] + 1 - s[i])
            small, big = total >> 1, total - (total >> 1)
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        pads = begin + end
    return {"type": f"convtranspose{nd}d", "in_channels": w[0], "out_channels": w[1] * g, "kernel_size": k,
            "stride": s, "dilation": d, "output_padding": out_pad, "groups": g, "bias": bias, "pads": pads}


def _pool(op: _Op) -> dict:
    k = op.attr("kernel_shape")
    if not k:
        raise Unanalysed("it has no kernel_shape", None)
    k = list(k)
    nd = len(k)
    op.need_rank(nd, op.node.op_type)
    s, d = op.ints("strides", nd, 1), op.ints("dilations", nd, 1)
    pads = _pads(op, k, s, d)
    ceil = bool(op.attr("ceil_mode", 0))
    size = op.in_shape(0)
    if ceil and size is not None:
        _torch_ceil_note(op, size[2:], k, s, d, pads)
    if op.node.op_type == "MaxPool":
        return {"type": f"maxpool{nd}d", "kernel_size": k, "stride": s, "dilation": d, "pads": pads, "ceil_mode": ceil,
                "convention": "onnx"}
    if any(v != 1 for v in d):
        raise Unanalysed(f"a dilated {op.node.op_type} (dilations={d}): the walk's average pool has no dilation", 0)
    return {"type": f"avgpool{nd}d", "kernel_size": k, "stride": s, "pads": pads, "ceil_mode": ceil,
            "count_include_pad": bool(op.attr("count_include_pad", 0)), "convention": "onnx"}


def _torch_ceil_note(op: _Op, size: list[int], k: list[int], s: list[int], d: list[int], pads: list[int]) -> None:
    """A note when ONNX's ceil_mode keeps a last window that PyTorch would drop (it starts in the end padding): a
    module exported with ceil_mode=True then has one more output pixel in the file than in PyTorch."""
    from .arithmetic import pool_output_length

    nd = len(k)
    for i in range(nd):
        args = (size[i], k[i], s[i], pads[i], d[i], True, pads[nd + i])
        try:
            onnx_n = pool_output_length(*args, convention="onnx")
            torch_n = -(-(size[i] + pads[i] + pads[nd + i] - (k[i] - 1) * d[i] - 1) // s[i]) + 1
            if (torch_n - 1) * s[i] >= size[i] + pads[i]:
                torch_n -= 1
        except ConvError:
            return
        if onnx_n != torch_n:
            op.conv.notes.append(
                f"node {op.name!r} ({op.node.op_type}): with ceil_mode its last window starts in the padding; ONNX keeps it "
                f"({onnx_n} px along axis {2 + i}), PyTorch drops it ({torch_n} px): the file and the module it came from differ here"
            )
            return


def _global_pool(op: _Op) -> dict:
    nd = op.map_nd()
    kind = "max" if op.node.op_type == "GlobalMaxPool" else "avg"
    return {"type": f"adaptive{kind}pool{nd}d", "output_size": 1}


def _batchnorm(op: _Op) -> dict:
    scale = op.weight(1)
    op.weight(2)
    op.weight(3, buffer=True)
    op.weight(4, buffer=True)
    rank = op.rank(0)
    nd = (rank - 2 if rank is not None else op.conv.nd) or 1
    if rank is not None and rank > 2:
        op.need_rank(nd, "BatchNormalization")
    if scale is None or len(scale) != 1:
        raise Unanalysed("its scale is not stored", 0)
    return {"type": f"batchnorm{nd}d", "num_features": scale[0]}


def _instancenorm(op: _Op) -> dict:
    scale = op.weight(1)
    op.weight(2)
    nd = op.map_nd()
    if scale is None or len(scale) != 1:
        raise Unanalysed("its scale is not stored", 0)
    return {"type": f"instancenorm{nd}d", "num_features": scale[0], "affine": True}


def _layernorm(op: _Op) -> dict:
    op.weight(1)
    op.weight(2)
    x = op.in_shape(0)
    if x is None:
        raise Unanalysed("its input shape is not known", 0)
    axis = op.attr("axis", -1)
    axis = axis + len(x) if axis < 0 else axis
    if not 1 <= axis < len(x):
        raise Unanalysed(f"axis={op.attr('axis')} normalises the batch axis", 0)
    return {"type": "layernorm", "normalized_shape": x[axis:]}


def _groupnorm(op: _Op) -> dict:
    op.weight(1)
    op.weight(2)
    x = op.in_shape(0)
    g = op.attr("num_groups")
    if x is None or len(x) < 2 or not isinstance(g, int) or g < 1:
        raise Unanalysed("its input shape or num_groups is not known", 0)
    return {"type": "groupnorm", "num_groups": g, "num_channels": x[1]}


def _matmul_macs(op: _Op) -> int | None:
    a, y = op.in_shape(0), op.out_shape(0)
    return math.prod(y) * a[-1] if a is not None and y is not None and a else None


def _gemm(op: _Op) -> dict:
    b = op.weight(1)
    bias = bool(op.input(2)) and op.weight(2) is not None
    a = op.in_shape(0)
    if b is None or len(b) != 2:
        raise Unanalysed("its B operand is computed, not stored", _gemm_macs(op))
    if op.attr("transA", 0):
        raise Unanalysed("transA=1: the walk's linear reads [N, F]", _gemm_macs(op))
    fin, fout = (b[1], b[0]) if op.attr("transB", 0) else (b[0], b[1])
    if a is not None and len(a) != 2:
        raise Unanalysed(f"its input has {len(a)} dims", _gemm_macs(op))
    return {"type": "linear", "in_features": fin, "out_features": fout, "bias": bias}


def _gemm_macs(op: _Op) -> int | None:
    a, y = op.in_shape(0), op.out_shape(0)
    if a is None or y is None or len(a) != 2:
        return None
    return math.prod(y) * (a[0] if op.attr("transA", 0) else a[1])


def _matmul(op: _Op) -> dict:
    if op.is_act(0) and op.is_act(1):  # activations times activations (attention): counted, as fvcore and torchvision's flop counts do
        raise Unanalysed("a product of two activations (e.g. attention): MACs counted, receptive field not tracked", _matmul_macs(op))
    b = op.weight(1) if not op.is_act(1) else None
    if not op.is_act(0):
        op.weight(0)
        raise Unanalysed("its stored operand is on the left", _matmul_macs(op))
    a = op.in_shape(0)
    if b is None or len(b) != 2 or (a is not None and len(a) != 2):
        raise Unanalysed("not a [N, K] x [K, M] product with a stored [K, M]: MACs counted, receptive field not tracked", _matmul_macs(op))
    return {"type": "linear", "in_features": b[0], "out_features": b[1], "bias": False}


def _flatten(op: _Op) -> dict:
    rank = op.rank(0)
    axis = op.attr("axis", 1)
    if rank is not None and axis < 0:
        axis += rank
    if axis != 1:
        raise Unanalysed(f"Flatten(axis={op.attr('axis', 1)}) keeps more than the batch axis apart", 0)
    return {"type": "flatten"}


def _reshape_like(op: _Op) -> dict:
    x, y = op.in_shape(0), op.out_shape(0)
    if y is None and x is not None:
        y = _reshaped(op, x)
    if x is None or y is None:
        raise Unanalysed("its output shape is not known", 0)
    return _as_reshape(op, x, y)


def _as_reshape(op: _Op, x: list[int], y: list[int]) -> dict:
    """A reshape from x to y as the walk's layer: identity, flatten ([N, C, *sp] -> [N, F]), unflatten ([N, F] ->
    [N, C, *sp]); any other is opaque (its shape known, the receptive field not)."""
    if x == y:
        return {"type": "identity"}
    if len(x) >= 3 and len(y) == 2 and y[0] == x[0] and y[1] == math.prod(x[1:]):
        return {"type": "flatten"}
    nd = op.conv.nd
    if len(x) == 2 and 3 <= len(y) <= 5 and y[0] == x[0] and math.prod(y[1:]) == x[1] and nd in (None, len(y) - 2):
        return {"type": "unflatten", "dim": 1, "unflattened_size": y[1:]}
    raise Unanalysed(f"it reshapes {x} to {y}; the walk follows [N, C, ...] maps and [N, F] vectors", 0)


def _reshaped(op: _Op, x: list[int]) -> list[int] | None:
    """Reshape / Squeeze / Unsqueeze's output from constant shapes or axes, when shape inference gave none."""
    t = op.node.op_type
    if t == "Reshape":
        shape = op.value(1)
        if shape is None:
            return None
        out = []
        for i, v in enumerate(int(v) for v in shape.reshape(-1)):
            out.append(x[i] if v == 0 and not op.attr("allowzero", 0) and i < len(x) else v)
        if out.count(-1) == 1:
            known = math.prod(v for v in out if v != -1)
            if known == 0 or math.prod(x) % known:
                return None
            out[out.index(-1)] = math.prod(x) // known
        return out if all(v >= 1 for v in out) and math.prod(out) == math.prod(x) else None
    axes = op.attr("axes")
    if axes is None and op.input(1):
        value = op.value(1)
        axes = None if value is None else [int(v) for v in value.reshape(-1)]
    if t == "Squeeze":
        if axes is None:
            return [v for v in x if v != 1]
        axes = {a + len(x) if a < 0 else a for a in axes}
        return [v for i, v in enumerate(x) if i not in axes]
    if axes is None:
        return None
    rank = len(x) + len(axes)
    axes = sorted(a + rank if a < 0 else a for a in axes)
    out, it = [], iter(x)
    for i in range(rank):
        out.append(1 if i in axes else next(it, 1))
    return out


def _pad(op: _Op) -> dict:
    x = op.in_shape(0)
    rank = len(x) if x is not None else op.rank(0)
    if rank is None or rank < 3:
        raise Unanalysed("its input is not a map [N, C, ...]", 0)
    value = op.value(1) if op.input(1) else None
    pads = op.attr("pads") if value is None else [int(v) for v in value.reshape(-1)]
    if pads is None:
        raise Unanalysed("its pads are computed, not stored", 0)
    pads = list(pads)
    axes = list(range(rank))
    if op.input(3):
        given = op.value(3)
        if given is None:
            raise Unanalysed("its axes are computed, not stored", 0)
        axes = [int(a) + rank if int(a) < 0 else int(a) for a in given.reshape(-1)]
    if len(pads) != 2 * len(axes):
        raise Unanalysed(f"pads has {len(pads)} entries for {len(axes)} axes", 0)
    begin, end = [0] * rank, [0] * rank
    for j, a in enumerate(axes):
        begin[a], end[a] = pads[j], pads[j + len(axes)]
    if begin[0] or end[0] or begin[1] or end[1]:
        raise Unanalysed("it pads the batch or channel axis", 0)
    nd = op.map_nd()
    torch_order = []
    for i in reversed(range(nd)):  # PyTorch lists the last axis first: (left, right, top, bottom, front, back)
        torch_order += [begin[2 + i], end[2 + i]]
    mode = op.attr("mode", "constant")
    kind = {"constant": "constant", "reflect": "reflection", "edge": "replication", "wrap": "circular"}.get(mode)
    if kind is None:
        raise Unanalysed(f"mode={short(mode)}", 0)
    spec: dict[str, Any] = {"padding": torch_order}
    if kind == "constant":
        fill = op.value(2) if op.input(2) else op.attr("value", 0.0)
        fill = float(fill.reshape(-1)[0]) if hasattr(fill, "reshape") and fill.size else float(fill or 0.0)
        if fill != 0.0 and math.isfinite(fill):
            spec["value"] = fill
        else:
            kind = "zero"
    spec["type"] = f"{kind}pad{nd}d"
    return spec


_LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _resize(op: _Op) -> dict:
    x, y = op.in_shape(0), op.out_shape(0)
    t = op.node.op_type
    if x is None or len(x) < 3:
        raise Unanalysed("its input is not a known map [N, C, ...]", 0)
    nd = op.map_nd()
    mode = op.attr("mode", "nearest")
    legacy = t == "Upsample" or op.conv.opset < 11
    ctm = "asymmetric" if legacy else op.attr("coordinate_transformation_mode", "half_pixel")
    nearest = "floor" if legacy else op.attr("nearest_mode", "round_prefer_floor")
    scales = sizes = None
    if t == "Upsample":
        scales = op.attr("scales") if op.attr("scales") is not None else op.value(1)
    else:
        scales = op.value(1 if op.conv.opset < 11 else 2) if op.input(1 if op.conv.opset < 11 else 2) else None
        sizes = op.value(3) if op.input(3) else None
    if scales is not None and not hasattr(scales, "reshape"):
        import numpy as np

        scales = np.asarray(scales, dtype=float)
    if scales is not None and scales.size == 0:
        scales = None
    if y is None and sizes is None and scales is None:
        raise Unanalysed("its output size is not known", 0)
    if op.attr("axes") is not None or op.attr("antialias", 0) or ctm == "tf_crop_and_resize":
        raise Unanalysed("axes, antialias or tf_crop_and_resize: the walk has no PyTorch twin for it", 0)
    if y is not None and (y[0] != x[0] or y[1] != x[1]):
        raise Unanalysed("it resizes the batch or channel axis", 0)
    if mode == "nearest" and ctm == "asymmetric" and nearest == "floor":
        walk_mode, corners = "nearest", None
    elif mode == "nearest" and ctm in ("half_pixel", "pytorch_half_pixel") and nearest == "round_prefer_ceil":
        walk_mode, corners = "nearest-exact", None
    elif mode in ("linear", "cubic") and ctm in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        walk_mode = _LINEAR[nd] if mode == "linear" else ("bicubic" if nd == 2 else None)
        corners = ctm == "align_corners"
        if walk_mode is None:
            raise Unanalysed(f"{nd}-D cubic resizing", 0)
    else:
        raise Unanalysed(f"mode={mode!r} with coordinate_transformation_mode={ctm!r} (nearest_mode={nearest!r}) has no PyTorch twin the walk knows", 0)
    spec: dict[str, Any] = {"type": "upsample", "mode": walk_mode}
    if corners is not None:
        spec["align_corners"] = corners
    if sizes is None and scales is not None:
        per = [float(v) for v in scales.reshape(-1)]
        if len(per) != len(x) or per[0] != 1 or per[1] != 1:
            raise Unanalysed(f"scales {per} do not keep the batch and channel axes", 0)
        spec["scale_factor"] = per[2:]
        return spec
    out = y[2:] if y is not None else [int(v) for v in sizes.reshape(-1)][2:]
    spec["size"] = out
    return spec


def _binary(op: _Op) -> dict:
    acts = [i for i in range(len(op.node.input)) if op.is_act(i)]
    op.stored_inputs()
    if len(acts) >= 2:
        return {"type": "mul" if op.node.op_type in ("Mul", "Div", "Pow") else "add"}
    x, y = op.in_shape(acts[0]), op.out_shape(0)
    if x is not None and y is not None and x != y:
        raise Unanalysed(f"broadcasting with a stored tensor turns {x} into {y}", 0)
    return {"type": "pointwise"}


def _concat(op: _Op) -> dict:
    if not all(op.is_act(i) for i in range(len(op.node.input)) if op.input(i)):
        op.stored_inputs()
        raise Unanalysed("it joins activations with stored tensors", 0)
    return {"type": "concat", "dim": op.attr("axis", 1)}


def _clip(op: _Op) -> dict:
    def bound(i: int, key: str):
        if op.input(i):
            v = op.value(i)
            return float(v.reshape(-1)[0]) if v is not None and v.size == 1 else "?"
        return op.attr(key)

    lo, hi = bound(1, "min"), bound(2, "max")
    if lo == 0 and hi == 6:
        return {"type": "relu6"}
    if lo == 0 and hi is None:
        return {"type": "relu"}
    if isinstance(lo, float) and isinstance(hi, float) and all(math.isfinite(v) for v in (lo, hi)):
        return {"type": "hardtanh", "min_val": lo, "max_val": hi}
    return {"type": "pointwise"}


def _prelu(op: _Op) -> dict:
    slope = op.weight(1)
    if slope is None:
        raise Unanalysed("its slope is computed, not stored", 0)
    n = math.prod(slope)
    x = op.in_shape(0)
    if n == 1 or (x is not None and len(x) >= 2 and n == x[1]):
        return {"type": "prelu", "num_parameters": n}
    return {"type": "pointwise"}


def _softmax(op: _Op) -> dict:
    rank = op.rank(0)
    axis = op.attr("axis", -1 if op.conv.opset >= 13 else 1)
    if rank is None:
        raise Unanalysed("its input's rank is unknown", 0)
    axis = axis + rank if axis < 0 else axis
    if op.conv.opset < 13 and axis != rank - 1:  # before opset 13 it normalises over every axis from `axis` on
        raise Unanalysed(f"opset {op.conv.opset} Softmax over axes {axis}.. together", 0)
    if not 0 <= axis < rank or rank > 5:
        raise Unanalysed(f"axis {op.attr('axis')} on a {rank}-D input", 0)
    return {"type": "softmax" if op.node.op_type == "Softmax" else "logsoftmax", "dim": axis}


def _transpose(op: _Op) -> dict:
    perm = op.attr("perm")
    if perm is not None and list(perm) == list(range(len(perm))):
        return {"type": "identity"}
    raise Unanalysed(f"it permutes the axes (perm={list(perm) if perm is not None else 'reversed'})", 0)


def _reduce(op: _Op) -> dict:
    rank = op.rank(0)
    axes = op.attr("axes")
    if axes is None and op.input(1):
        value = op.value(1)
        axes = None if value is None else [int(v) for v in value.reshape(-1)]
    if rank is None or axes is None or not op.attr("keepdims", 1):
        raise Unanalysed("it reduces axes the walk cannot place (or drops them: keepdims=0)", 0)
    axes = sorted(a + rank if a < 0 else a for a in axes)
    if axes != list(range(2, rank)):
        raise Unanalysed(f"it reduces axes {axes}, not every spatial axis", 0)
    nd = op.map_nd()
    kind = "max" if op.node.op_type == "ReduceMax" else "avg"
    return {"type": f"adaptive{kind}pool{nd}d", "output_size": 1}


def _space(op: _Op) -> dict:
    nd = op.map_nd()
    if nd != 2:
        raise Unanalysed(f"{op.node.op_type} on a {nd}-D map", 0)
    b = op.attr("blocksize", 1)
    if op.node.op_type == "DepthToSpace":
        return {"type": "pixelshuffle", "upscale_factor": b}
    return {"type": "pixelunshuffle", "downscale_factor": b}


def _fixed(spec: dict):
    return lambda op: dict(spec)


def _leaky(op: _Op) -> dict:
    return {"type": "leakyrelu", "negative_slope": float(op.attr("alpha", 0.01))}


def _gelu(op: _Op) -> dict:
    return {"type": "gelu", "approximate": "tanh" if op.attr("approximate", "none") == "tanh" else "none"}


def _elu(op: _Op) -> dict:
    return {"type": op.node.op_type.lower(), "alpha": float(op.attr("alpha", 1.0))}


POINTWISE = (
    "Erf", "Exp", "Log", "Sqrt", "Abs", "Neg", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Cast", "CastLike", "Not",
    "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "IsNaN", "IsInf",
    "ThresholdedRelu", "Shrink", "QuantizeLinear", "DequantizeLinear", "Swish", "BitwiseNot",
)
OPS: dict[str, Any] = {
    "Conv": _conv, "ConvTranspose": _conv_transpose,
    "MaxPool": _pool, "AveragePool": _pool, "LpPool": _pool,
    "GlobalAveragePool": _global_pool, "GlobalMaxPool": _global_pool, "GlobalLpPool": _global_pool,
    "BatchNormalization": _batchnorm, "InstanceNormalization": _instancenorm, "LayerNormalization": _layernorm,
    "GroupNormalization": _groupnorm,
    "Gemm": _gemm, "MatMul": _matmul, "Flatten": _flatten,
    "Reshape": _reshape_like, "Squeeze": _reshape_like, "Unsqueeze": _reshape_like,
    "Pad": _pad, "Resize": _resize, "Upsample": _resize,
    "Add": _binary, "Sub": _binary, "Mul": _binary, "Div": _binary, "Pow": _binary, "Sum": _binary,
    "Max": _binary, "Min": _binary, "Mean": _binary,
    "Concat": _concat,
    "Relu": _fixed({"type": "relu"}), "Sigmoid": _fixed({"type": "sigmoid"}), "Tanh": _fixed({"type": "tanh"}),
    "HardSigmoid": _fixed({"type": "hardsigmoid"}), "HardSwish": _fixed({"type": "hardswish"}),
    "Selu": _fixed({"type": "selu"}), "Softplus": _fixed({"type": "softplus"}), "Softsign": _fixed({"type": "softsign"}),
    "Mish": _fixed({"type": "mish"}), "Identity": _fixed({"type": "identity"}), "Dropout": _fixed({"type": "dropout"}),
    "LeakyRelu": _leaky, "Gelu": _gelu, "Elu": _elu, "Celu": _elu, "Clip": _clip, "PRelu": _prelu,
    "Softmax": _softmax, "LogSoftmax": _softmax, "Transpose": _transpose,
    "ReduceMean": _reduce, "ReduceMax": _reduce, "ReduceSum": _reduce, "ReduceL2": _reduce,
    "DepthToSpace": _space, "SpaceToDepth": _space,
    **{name: _fixed({"type": "pointwise"}) for name in POINTWISE},
}
"""ONNX op (default domain) -> converter returning the walk's layer fields (or raising Unanalysed)."""
SIDE_OUTPUTS = {"BatchNormalization", "MaxPool", "Dropout", "LayerNormalization"}
"""Ops whose outputs after the first are statistics, indices or masks, not activations."""
WEIGHT_PASSING = ("Identity", "Cast", "CastLike", "DequantizeLinear", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten")
"""Ops that turn a stored tensor into the one a node reads (same values, another layout or type)."""


# ---------------------------------------------------------------- the whole graph


class _Converter:
    def __init__(self, mf: ModelFile):
        self.mf = mf
        self.kind: dict[str, str] = {}
        self.shapes: dict[str, list[int | None]] = {}
        self.producer: dict[str, Any] = {}
        self.counted: dict[str, str] = {}
        self.const_types: dict[str, int] = {}
        self.small = {t.name: t for t in mf.model.graph.initializer}
        self.values: dict[str, Any] = {}
        self.nd: int | None = None
        self.opset = 0
        self.notes: list[str] = []

    def stored(self, tensor: str) -> tuple[str, tuple[int, ...]] | None:
        """(name, dims) of the stored tensor behind `tensor` (an initializer, or a Constant node's value), through
        Identity, Cast, DequantizeLinear and layout ops; None when it is computed."""
        for _ in range(16):
            info = self.mf.tensors.get(tensor)
            if info is not None:
                return info.name, info.dims
            node = self.producer.get(tensor)
            if node is None:
                return None
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value" and a.HasField("t"):
                        self.const_types[tensor] = a.t.data_type
                        return tensor, tuple(a.t.dims)
                return None
            if node.op_type not in WEIGHT_PASSING or not node.input:
                return None
            tensor = node.input[0]
        return None

    def value(self, tensor: str):
        """The value of a small constant tensor (numpy): a stored one, a Constant's, or one a constant subgraph of
        shape ops computes from them (torch's exporter writes Pad's pads that way); None when it is not constant."""
        if not tensor:
            return None
        if tensor in self.values:
            return self.values[tensor]
        self.values[tensor] = None  # a cycle or a failure leaves None
        try:
            v = self._value(tensor)
        except Exception:  # a malformed constant subgraph: the op is then not analysed
            v = None
        if v is not None and v.size > 65536:
            v = None
        self.values[tensor] = v
        return v

    def _value(self, tensor: str):
        import numpy as np
        from onnx import helper, numpy_helper

        t = self.small.get(tensor)
        if t is not None:
            return numpy_helper.to_array(t)
        node = self.producer.get(tensor)
        if node is None:
            return None
        op = node.op_type
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if op == "Constant":
            for key, v in attrs.items():
                if key == "value":
                    return numpy_helper.to_array(v) if math.prod(v.dims) <= 65536 else None
                if key in ("value_ints", "value_floats", "value_int", "value_float"):
                    return np.asarray(v)
            return None
        if op == "Shape":
            dims = self.shapes.get(node.input[0])
            if dims is None or None in dims:
                return None
            start, end = attrs.get("start", 0), attrs.get("end", len(dims))
            return np.asarray(dims[start:end], dtype=np.int64)
        fold = _FOLD.get(op)
        if fold is None:
            return None
        ins = [self.value(i) if i else None for i in node.input]
        if any(v is None for i, v in zip(node.input, ins, strict=True) if i):
            return None
        if _fold_size(op, ins, attrs) > 65536:  # checked before anything is computed: values stay small
            return None
        return fold(ins, attrs)


def _fold_size(op: str, ins: list, attrs: dict) -> int:
    """How many values a fold would produce, from its inputs' sizes and values alone."""
    import numpy as np

    present = [v for v in ins if v is not None]
    if op in ("Add", "Sub", "Mul", "Div"):
        try:
            return math.prod(np.broadcast_shapes(*(v.shape for v in present)))
        except ValueError:
            return 1 << 62
    if op == "Concat":
        return sum(v.size for v in present)
    if op == "Gather":
        data, index = ins[0], ins[1]
        axis = attrs.get("axis", 0)
        return index.size * (data.size // max(1, data.shape[axis] if data.ndim else 1))
    if op == "Range":
        start, limit, delta = (float(v.reshape(-1)[0]) for v in ins[:3])
        return 1 << 62 if delta == 0 or not all(map(math.isfinite, (start, limit, delta))) else max(0, math.ceil((limit - start) / delta))
    if op in ("ConstantOfShape", "Expand"):
        shape = [int(v) for v in ins[-1].reshape(-1)]
        if any(d < 0 for d in shape):
            return 1 << 62
        if op == "Expand":
            try:
                return math.prod(np.broadcast_shapes(ins[0].shape, tuple(shape)))
            except ValueError:
                return 1 << 62
        return math.prod(shape)
    return max((v.size for v in present), default=0)  # the others keep or shrink their input


def _fold_reshape(ins, attrs):
    data, shape = ins[0], [int(v) for v in ins[1].reshape(-1)]
    if not attrs.get("allowzero", 0):
        shape = [data.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return data.reshape(shape)


def _fold_slice(ins, attrs):
    data = ins[0]
    starts, ends = ins[1].reshape(-1), ins[2].reshape(-1)
    axes = ins[3].reshape(-1) if len(ins) > 3 and ins[3] is not None else range(len(starts))
    steps = ins[4].reshape(-1) if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for a, b, e, st in zip(axes, starts, ends, steps, strict=False):
        index[int(a)] = slice(int(b), int(e), int(st))
    return data[tuple(index)]


def _fold_unsqueeze(ins, attrs):
    import numpy as np

    axes = attrs.get("axes") or [int(v) for v in ins[1].reshape(-1)]
    out = ins[0]
    rank = out.ndim + len(axes)
    for a in sorted(a + rank if a < 0 else a for a in axes):
        out = np.expand_dims(out, a)
    return out


def _fold_squeeze(ins, attrs):
    import numpy as np

    axes = attrs.get("axes") or ([int(v) for v in ins[1].reshape(-1)] if len(ins) > 1 and ins[1] is not None else None)
    return np.squeeze(ins[0], axis=tuple(axes) if axes else None)


def _fold_div(ins, attrs):
    import numpy as np

    a, b = ins
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return np.trunc(a / b).astype(a.dtype)  # ONNX's integer division truncates
    return a / b


def _fold_const_of_shape(ins, attrs):
    import numpy as np
    from onnx import numpy_helper

    fill = numpy_helper.to_array(attrs["value"]).reshape(-1)[0] if "value" in attrs else np.float32(0)
    shape = [int(v) for v in ins[0].reshape(-1)]
    return np.full(shape, fill) if math.prod(shape) <= 65536 else None


def _fold_cast(ins, attrs):
    from onnx import helper

    return ins[0].astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))


def _fold_concat(ins, attrs):
    import numpy as np

    return np.concatenate(ins, axis=attrs.get("axis", 0))


def _fold_gather(ins, attrs):
    import numpy as np

    return np.take(ins[0], ins[1], axis=attrs.get("axis", 0))


def _fold_range(ins, attrs):
    import numpy as np

    return np.arange(ins[0], ins[1], ins[2])


def _fold_expand(ins, attrs):
    import numpy as np

    return np.broadcast_to(ins[0], np.broadcast_shapes(ins[0].shape, tuple(int(v) for v in ins[1].reshape(-1))))


_FOLD = {
    "Identity": lambda ins, attrs: ins[0],
    "Cast": _fold_cast,
    "Concat": _fold_concat,
    "Reshape": _fold_reshape,
    "Slice": _fold_slice,
    "Transpose": lambda ins, attrs: ins[0].transpose(attrs.get("perm")),
    "Gather": _fold_gather,
    "Unsqueeze": _fold_unsqueeze,
    "Squeeze": _fold_squeeze,
    "ConstantOfShape": _fold_const_of_shape,
    "Range": _fold_range,
    "Add": lambda ins, attrs: ins[0] + ins[1],
    "Sub": lambda ins, attrs: ins[0] - ins[1],
    "Mul": lambda ins, attrs: ins[0] * ins[1],
    "Neg": lambda ins, attrs: -ins[0],
    "Div": _fold_div,
    "Expand": _fold_expand,
}
"""Ops a constant subgraph may use to compute shapes, pads and scales (numpy on values of at most 65,536 elements)."""


def convert(mf: ModelFile, input_shape: Any = None, *, need_shapes: bool = True, max_layers: int | None = None) -> Converted:
    """The model in `mf` as a graph spec for the walk, with what is known about each node."""
    model = mf.model
    g = model.graph
    cv = Converted()
    cv.label = mf.label
    if not g.node:
        raise SpecError(f"{mf.label}: the model's graph has no nodes")
    if max_layers is not None and len(g.node) > max_layers:
        raise _limit("max_layers", f"{mf.label} has {len(g.node):,} nodes, more than max_layers={max_layers:,}")
    opsets = {("" if i.domain == "ai.onnx" else i.domain): i.version for i in model.opset_import}
    functions = {(f.domain, f.name) for f in model.functions}
    if "" not in opsets and any((n.domain or "") in ("", "ai.onnx") for n in g.node):
        raise SpecError(f"{mf.label} is not a valid ONNX model: it declares no opset for the default domain (opset_import)")
    for i, node in enumerate(g.node):
        dom = "" if node.domain == "ai.onnx" else node.domain
        if dom not in opsets and (node.domain, node.op_type) not in functions:
            raise SpecError(
                f"{_node_label(node, i)} uses op domain {node.domain!r}, which the model does not declare in opset_import "
                f"(it declares {', '.join(repr(d) for d in opsets) or 'none'}): not a valid ONNX model"
            )
    tensors = mf.tensors
    acts_in = [vi for vi in g.input if vi.name not in tensors]
    if not acts_in:
        raise SpecError(f"{mf.label}: the model has no input (every graph input is an initializer)")
    if not g.output:
        raise SpecError(f"{mf.label}: the model's graph has no output")
    sources = {vi.name for vi in g.input} | set(tensors)
    order = _order(g.node, sources)
    cw = _Converter(mf)
    cw.opset = opsets.get("", 0)
    for node in g.node:
        for t in node.output:
            if t:
                cw.producer[t] = node

    first = acts_in[0]
    declared = _declared(first)
    entry = _channels_last_entry(g, first, declared)
    dims, cv.no_shape = _fill(first.name, declared, input_shape, need_shapes)
    cv.input_text = f"input {first.name!r} {_shown(declared) if declared is not None else '(no shape)'}"
    symbols = {d: v for d, v in zip(declared or [], dims or [], strict=False) if isinstance(d, str) and d != "?"}
    cw.kind = _classify(g, order, acts_in, tensors)
    cw.shapes = _infer(cv, cw, first.name, dims, symbols)
    cw.values = {}
    for name, info in tensors.items():
        cw.shapes.setdefault(name, list(info.dims))
    if dims is None:  # params only: no sizes are known, only ranks
        cw.shapes = {k: ([None] * len(v) if k not in tensors else v) for k, v in cw.shapes.items()}
    cv.input_shape = dims

    walk_name: dict[str, str] = {first.name: "input"}
    used = {"input"}

    def unique(name: str) -> str:
        name = name[:MAX_NAME_CHARS]
        if name not in used:
            used.add(name)
            return name
        k = 2
        while f"{name[: MAX_NAME_CHARS - 8]}#{k}" in used:
            k += 1
        name = f"{name[: MAX_NAME_CHARS - 8]}#{k}"
        used.add(name)
        return name

    if declared is not None:
        rank = len(declared)
        cw.nd = rank - 2 if 3 <= rank <= 5 else None
    for vi in acts_in[1:]:  # a second input: a source whose receptive field is not tracked
        name = unique(vi.name or "input_2")
        shape = cw.shapes.get(vi.name)
        known = shape is not None and all(isinstance(d, int) and d >= 1 for d in shape)
        cv.graph.append({"name": name, "inputs": ["input"], "type": "opaque", "output_shape": shape if known else None,
                         "macs": 0, "op_type": "graph input", "reason": "a second model input: the walk follows the first one"})
        info = NodeInfo("graph input")
        info.analysed, info.reason = False, "a second model input: the walk follows the first one"
        cv.info[name] = info
        cv.inferred[name] = shape
        walk_name[vi.name] = name
    if len(acts_in) > 1:
        cv.warnings.append(
            f"the model has {len(acts_in)} inputs; the walk follows {first.name!r} and takes "
            + ", ".join(repr(v.name) for v in acts_in[1:]) + " as sources whose receptive field is not tracked"
        )

    for i in order:
        node = g.node[i]
        if not node.output or cw.kind.get(node.output[0]) != "act":
            continue
        op_type = node.op_type if (node.domain or "") in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        name = unique(node.name or f"{node.op_type}_{i}")
        op = _Op(cw, node, name)
        info = NodeInfo(op_type)
        acts = [t for t in node.input if t and cw.kind.get(t) == "act"]
        try:
            if entry is not None and node is entry[0]:
                spec = {"type": "identity"}
            else:
                fn = OPS.get(node.op_type) if (node.domain or "") in ("", "ai.onnx") else None
                if fn is None:
                    op.stored_inputs()
                    why = "is not analysed" if (node.domain or "") in ("", "ai.onnx") else f"(domain {node.domain!r}) is not analysed"
                    raise Unanalysed(f"op {node.op_type} {why}: its output shape comes from onnx.shape_inference", None)
                try:
                    spec = fn(op)
                except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError, ZeroDivisionError) as exc:
                    # an attribute of the wrong type, an input too short: the file is malformed here, the rest may not be
                    raise Unanalysed(f"its attributes or inputs cannot be read ({type(exc).__name__}: {str(exc)[:80]})", None) from None
            if spec["type"] not in ("add", "mul", "concat", "pointwise") and node.input and node.input[0] != acts[0]:
                raise Unanalysed("its first input is not the activation it transforms", None)
            inputs = acts if spec["type"] in ("add", "mul", "concat") else acts[:1]
        except Unanalysed as why:
            op.stored_inputs()
            out = op.out_shape(0)
            note = why.reason if "not analysed" in why.reason else f"not analysed: {why.reason}"
            spec = {"type": "opaque", "output_shape": out, "macs": why.macs, "reason": note[:500]}
            inputs = acts
            info.analysed, info.reason, info.macs_known = False, why.reason, why.macs is not None
        info.holds_weights = any(w["shared_with"] is None for w in op.weights)
        item = {"name": name, "inputs": [walk_name[t] for t in inputs], **spec, "op_type": op_type}
        if op.weights:
            item["weights"] = op.weights
        cv.graph.append(item)
        cv.info[name] = info
        cv.inferred[name] = cw.shapes.get(node.output[0]) if node.output else None
        if node.output and node.output[0]:
            walk_name[node.output[0]] = name
        for k, t in enumerate(node.output[1:], start=1):  # more activations out of an op the walk does not know
            if t and cw.kind.get(t) == "act":
                extra = unique(f"{name}:{k}")
                shape = op.out_shape(k)
                cv.graph.append({"name": extra, "inputs": [walk_name[a] for a in acts], "type": "opaque",
                                 "output_shape": shape, "macs": 0, "op_type": op_type, "reason": f"output {k} of {name!r}"[:500]})
                sub = NodeInfo(op_type)
                sub.analysed, sub.reason = False, f"output {k} of {name!r}"
                cv.info[extra] = sub
                cv.inferred[extra] = cw.shapes.get(t)
                walk_name[t] = extra
    cv.nodes = len(cv.graph)
    cv.warnings.extend(cw.notes)
    out = g.output[0].name
    if out not in walk_name or walk_name[out] == "input":
        raise SpecError(f"{mf.label}: the model's output {out!r} does not depend on its input {first.name!r}; nothing to walk")
    cv.output = walk_name[out]
    if len(g.output) > 1:
        cv.warnings.append(f"the model has {len(g.output)} outputs; the results are for the first, {out!r} (node {cv.output!r})")
    if entry is not None:
        cv.warnings.append(entry[1])
        if dims is not None:
            cv.input_shape = [dims[p] for p in entry[2]]
    read = {t for n in g.node for t in n.input}
    unused = [n for n in tensors if n not in read and tensors[n].dtype not in INDEX_TYPES and tensors[n].elements > 1]
    if unused:
        cv.warnings.append(
            f"{len(unused)} stored tensor{'s' if len(unused) > 1 else ''} no node reads "
            f"({', '.join(repr(n) for n in unused[:3])}{', ...' if len(unused) > 3 else ''}): not counted"
        )
    return cv


def _channels_last_entry(g, first, declared) -> tuple[Any, str, list[int]] | None:
    """A channels-last input ([N, H, W, C], as TensorFlow / Keras exports keep it) whose only reader is a Transpose
    to [N, C, H, W]: (that node, a note, its perm). The walk then starts in PyTorch's layout, from the Transpose."""
    if declared is None or not 3 <= len(declared) <= 5:
        return None
    readers = [n for n in g.node if first.name in n.input]
    if len(readers) != 1 or readers[0].op_type != "Transpose":
        return None
    node = readers[0]
    perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
    rank = len(declared)
    if perm != [0, rank - 1, *range(1, rank - 1)]:
        return None
    after = [declared[p] for p in perm]
    note = (f"the model's input {first.name!r} is channels-last {_shown(declared)}; its first node {node.name or 'Transpose'!r} "
            f"makes it {_shown(after)}, the layout the walk reads (rows and positions are in that layout)")
    return node, note, perm


# ---------------------------------------------------------------- the analyses


def load(model: Any = None, model_base64: Any = None, *, roots: list[str] | tuple = (), max_bytes: int | None = MAX_MODEL_BYTES) -> ModelFile:
    """Read a model given as a path (under `roots`) or as base64 bytes."""
    if (model is None) == (model_base64 is None):
        raise SpecError("give the model one way: `model` (the path of an .onnx file) or `model_base64` (its bytes), not "
                        + ("both" if model is not None else "neither"))
    return read_path(model, list(roots), max_bytes) if model is not None else read_base64(model_base64, max_bytes)


def analyse(
    tool: str,
    model: Any = None,
    model_base64: Any = None,
    *,
    input_shape: Any = None,
    output_position: Any = None,
    at_layer: Any = None,
    roots: list[str] | tuple = (),
    max_bytes: int | None = MAX_MODEL_BYTES,
    max_layers: int | None = None,
    max_depth: int | None = None,
    memory: dict | None = None,
):
    """shape_calculator, receptive_field or parameter_count of a model file, with its completeness; `memory` holds
    shape_calculator's memory options (dtype, batch_size, mode, optimizer)."""
    if tool not in TOOLS:
        raise ValueError(f"tool must be one of {TOOLS}")
    mf = load(model, model_base64, roots=roots, max_bytes=max_bytes)
    return analyse_file(tool, mf, input_shape=input_shape, output_position=output_position, at_layer=at_layer,
                        max_layers=max_layers, max_depth=max_depth, memory=memory)


def analyse_file(tool: str, mf: ModelFile, *, input_shape: Any = None, output_position: Any = None, at_layer: Any = None,
                 max_layers: int | None = None, max_depth: int | None = None, memory: dict | None = None):
    """The analyses of a model already read (see analyse)."""
    from . import walk

    cv = convert(mf, input_shape, need_shapes=tool != "parameter_count", max_layers=max_layers)
    limits = {"max_layers": max_layers, "max_depth": max_depth}
    try:
        if tool == "shape_calculator":
            report = walk.shape_calculator(cv.input_shape, graph=cv.graph, output=cv.output, **limits, **(memory or {}))
        elif tool == "receptive_field":
            report = walk.receptive_field(cv.input_shape, graph=cv.graph, output=cv.output, output_position=output_position,
                                          at_layer=at_layer, **limits)
        else:
            report = walk.parameter_count(graph=cv.graph, output=cv.output, input_shape=cv.input_shape, **limits)
    except ConvError as exc:
        err = type(exc)(f"{mf.label}: {exc}")
        if hasattr(exc, "limit"):
            err.limit = exc.limit  # type: ignore[attr-defined]  # the server says how to raise it
        raise err from None
    if tool != "parameter_count" and None in report.output_shape:
        report.__dict__["output_shape"] = []  # not known (after a node whose shape is not)
    checked = _cross_check(cv, report) if tool != "parameter_count" else []
    report.__dict__["warnings"] = [*cv.warnings, *checked, *report.warnings]
    report.__dict__["completeness"] = _completeness(tool, cv, report, bool(checked))
    return report


def _cross_check(cv: Converted, report) -> list[str]:
    """Each node's output shape from the walk against onnx.shape_inference's (where it knows it)."""
    out = []
    for row in report.layers:
        want = cv.inferred.get(row.name)
        if want is None or any(d is None for d in want) or row.output_shape == want:
            continue
        if len(row.output_shape) < len(want):  # the walk does not know it: completeness says so
            continue
        out.append(f"node {row.name!r} ({row.op_type}): the walk gives {row.output_shape} but onnx.shape_inference gives {want}")
    return out


def _ancestors(cv: Converted) -> set[str]:
    inputs = {n["name"]: n["inputs"] for n in cv.graph}
    seen, stack = {cv.output}, [cv.output]
    while stack:
        for n in inputs.get(stack.pop(), ()):
            if n != "input" and n not in seen:
                seen.add(n)
                stack.append(n)
    return seen


_MAC_TYPES = ("conv", "convtranspose", "linear")


def _completeness(tool: str, cv: Converted, report, mismatched: bool) -> Completeness:
    rows = report.layers
    info = cv.info
    unknown_shape = "unavailable"
    c: dict[str, Coverage] = {}

    def first(pred) -> Any:
        return next((r for r in rows if pred(r)), None)

    def because(row, default: str) -> str:
        i = info.get(row.name)
        return f"{i.op_type}: {i.reason}" if i is not None and i.reason else default

    if tool != "parameter_count":
        if cv.input_shape is None:
            c["shapes"] = Coverage(status=unknown_shape, reason=cv.no_shape)
        else:
            row = first(lambda r: not r.output_shape)
            if row is None and mismatched:
                row = first(lambda r: cv.inferred.get(r.name) not in (None, r.output_shape) and None not in cv.inferred[r.name])
                c["shapes"] = Coverage(status="partial", from_node=row.name, reason="the walk and onnx.shape_inference disagree from here (see warnings)")
            elif row is None:
                c["shapes"] = Coverage(status="complete")
            else:
                c["shapes"] = Coverage(status="partial", from_node=row.name,
                                       reason=because(row, "its output shape is not known (onnx.shape_inference could not infer it)"))
    weighted = first(lambda r: info.get(r.name) is not None and not info[r.name].analysed and info[r.name].holds_weights)
    if tool != "receptive_field":
        if weighted is None:
            c["params"] = Coverage(status="complete")
        else:
            c["params"] = Coverage(status="partial", from_node=weighted.name,
                                   reason=f"{info[weighted.name].op_type} is not analysed: the stored tensors it reads are counted as params, which may hold constants")
    if tool == "shape_calculator":
        if cv.input_shape is None:
            c["macs"] = Coverage(status="unavailable", reason=cv.no_shape)
        else:
            row = first(lambda r: (info.get(r.name) is not None and not info[r.name].macs_known)
                        or (r.type.rstrip("123d") in _MAC_TYPES and not r.input_shape))
            c["macs"] = Coverage(status="complete") if row is None else Coverage(
                status="partial", from_node=row.name, reason=because(row, "its input size is not known"))
    if tool != "parameter_count":
        if cv.input_shape is None:
            c["receptive_field"] = Coverage(status="unavailable", reason=cv.no_shape)
        elif report.receptive_field:
            c["receptive_field"] = Coverage(status="complete")
        elif len(cv.input_shape) < 3:
            c["receptive_field"] = Coverage(status="unavailable", reason="the model's input is flat: no map, no receptive field")
        else:
            feeding = _ancestors(cv)
            row = first(lambda r: r.name in feeding and not r.receptive_field)
            if row is None:
                c["receptive_field"] = Coverage(status="unavailable", reason="not tracked")
            else:
                status = "partial" if any(r.receptive_field for r in rows) else "unavailable"
                c["receptive_field"] = Coverage(status=status, from_node=row.name,
                                                reason=because(row, "the receptive field is not tracked past it (see warnings)"))
    return Completeness(**c)


def completeness_text(c: Completeness | None) -> str:
    """'completeness: shapes complete; params complete; MACs partial from node 'x' (reason); ...' for a result."""
    if c is None:
        return ""
    parts = []
    for key, label in (("shapes", "shapes"), ("params", "params"), ("macs", "MACs"), ("receptive_field", "receptive field")):
        cov = getattr(c, key)
        if cov is None:
            continue
        text = f"{label} {cov.status}"
        if cov.from_node is not None:
            text += f" from node {cov.from_node!r}"
        if cov.reason and cov.status != "complete":
            text += f" ({cov.reason})"
        parts.append(text)
    return "completeness: " + "; ".join(parts)
