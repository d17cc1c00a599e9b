"""The reference the walk is checked against: a network spec (CONTRACT.md's layer table) as PyTorch modules.

`build(layers, in_shape)` makes an nn.Sequential of a `layers` list (1-D, 2-D or 3-D; residual and concat blocks);
`build_graph(nodes, in_shape)` a module that runs a `graph` spec (named nodes, merges add / mul / concat). Used by
tests/test_walk.py, tests/test_walk_nd.py and tests/test_texts.py. torch is imported inside the functions through
pytest.importorskip, so collecting those files works, and their torch tests skip, without it.

Nothing here calls the walk: every size comes from running torch itself. Only the input's layout is read from the
spec the way the contract says ([C, L], [C, H, W] or [C, D, H, W] by the first layer written for a dimensionality).
"""

from __future__ import annotations

import functools
import operator
import warnings
from math import prod
from typing import Any

import pytest

# shape-preserving layers without parameters -> (torch class, constructor arguments taken from the spec)
ACTIVATIONS = {
    "relu": ("ReLU", ()), "relu6": ("ReLU6", ()), "leakyrelu": ("LeakyReLU", ("negative_slope",)),
    "gelu": ("GELU", ("approximate",)), "silu": ("SiLU", ()), "sigmoid": ("Sigmoid", ()), "tanh": ("Tanh", ()),
    "hardswish": ("Hardswish", ()), "hardsigmoid": ("Hardsigmoid", ()), "mish": ("Mish", ()), "selu": ("SELU", ()),
    "elu": ("ELU", ("alpha",)), "celu": ("CELU", ("alpha",)), "softplus": ("Softplus", ("beta", "threshold")),
    "hardtanh": ("Hardtanh", ("min_val", "max_val")), "softsign": ("Softsign", ()), "tanhshrink": ("Tanhshrink", ()),
    "identity": ("Identity", ()),
    # dropout is the identity in eval mode, but Dropout1d/2d/3d check their input's rank even then
    "dropout": ("Dropout", ("p",)), "dropout1d": ("Dropout1d", ("p",)), "dropout2d": ("Dropout2d", ("p",)),
    "dropout3d": ("Dropout3d", ("p",)), "alphadropout": ("AlphaDropout", ("p",)),
}
ALIASES = {"upsamplingnearest2d": "UpsamplingNearest2d", "upsamplingbilinear2d": "UpsamplingBilinear2d"}
_SPATIAL = ("conv", "convtranspose", "maxpool", "avgpool", "adaptiveavgpool", "adaptivemaxpool", "zeropad", "constantpad",
            "reflectionpad", "replicationpad", "circularpad", "batchnorm", "instancenorm")
_MODE_ND = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


@functools.cache
def blocks():
    """(Residual, Concat): the two block modules. Submodule names (`body`, `shortcut`, `branches`) follow the spec's
    keys, so named_modules() paths ('3.body.1') are the walk's row paths."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Residual(nn.Module):
        def __init__(self, body, shortcut):
            super().__init__()
            self.body, self.shortcut = body, shortcut

        def join(self, outs):
            # the contract's residual: equal shapes (torch's + would broadcast); not checked while torch.fx traces
            # (tests/memory_reference.py replays the traced graph), where shapes are symbols
            if not isinstance(outs[0], torch.fx.Proxy) and outs[0].shape != outs[1].shape:
                raise ValueError(f"residual: body gives {list(outs[0].shape)} but shortcut gives {list(outs[1].shape)}")
            return outs[0] + outs[1]

        def forward(self, x):
            return self.join([self.body(x), self.shortcut(x)])

    class Concat(nn.Module):
        def __init__(self, branches, *, add=False):
            super().__init__()
            self.branches = nn.ModuleList(branches)
            self.add = add

        def join(self, outs):
            return sum(outs) if self.add else torch.cat(outs, dim=1)

        def forward(self, x):
            return self.join([b(x) for b in self.branches])

    return Residual, Concat


@functools.cache
def probes():
    """Positive stand-ins of the geometry twin: (WindowProbe, AxisMean, NearestGather).

    WindowProbe(pool): a max pool's windows (kernel, stride, padding, dilation, ceil_mode) summed with positive
    weights: a conv with a dilated all-positive kernel over the zero-padded map, cropped to the output size the max pool
    itself gives (so ceil_mode's rule is torch's). Zero padding where the max pool pads with -inf is the same for a
    gradient probe: only which real pixels a window reaches matters. AxisMean(dim): the mean over one axis broadcast
    back, a softmax's dependency pattern (every output along the axis reads the whole axis) with positive weights.
    NearestGather(upsample): nearest upsampling as a gather of the pixels the module's forward picks on a float32 map
    (torch's default dtype): its own backward picks by another rule (sizes n -> n and n -> 2n copy, whatever the
    scale_factor) and its float64 forward rounds once less, so neither the gradient nor a float64 run can say which
    pixel the forward reads. InterpTwin(upsample): linear or bicubic upsampling as its float64 forward's weights along
    each axis (measured on one-hot planes), taken positive (bicubic's outer taps are negative) and without rounding
    noise: below 1e-12 a weight is 0 in exact arithmetic (where a source coordinate falls on a pixel, the other tap
    weighs ~1e-17 in builds that fuse the multiply-add), while real ones are at least ~1/(2 * output size)."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class WindowProbe(nn.Module):
        def __init__(self, pool, k, s, p, d):
            super().__init__()
            self.pool, self.k, self.s, self.p, self.d = pool, k, s, p, d

        def forward(self, x):
            with torch.no_grad():
                out = self.pool(x.detach()).shape[2:]
            sides = []
            for n, o, k, s, p, d in zip(x.shape[2:], out, self.k, self.s, self.p, self.d, strict=True):
                sides.append((p, max(0, (o - 1) * s + d * (k - 1) + 1 - (n + p))))
            x = F.pad(x, [v for pair in reversed(sides) for v in pair])
            weight = torch.full((1, 1, *self.k), 1.0 / prod(self.k), dtype=x.dtype, device=x.device)
            y = getattr(F, f"conv{len(self.k)}d")(x, weight, stride=self.s, dilation=self.d)
            return y[(slice(None), slice(None), *(slice(0, o) for o in out))]

    class AxisMean(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.dim = dim

        def forward(self, x):
            return x.mean(self.dim, keepdim=True).expand_as(x)

    class NearestGather(nn.Module):
        def __init__(self, upsample):
            super().__init__()
            self.upsample = upsample

        def forward(self, x):
            nd = x.dim() - 2
            lines = []
            for axis in range(nd):  # the source index along each axis, from a ramp along it
                shape = [1, 1] + [1] * nd
                shape[2 + axis] = x.shape[2 + axis]
                ramp = torch.arange(x.shape[2 + axis], dtype=torch.float32).reshape(shape).expand(1, 1, *x.shape[2:])
                with torch.no_grad():
                    picked = self.upsample(ramp.contiguous())
                lines.append(picked[(0, 0, *[slice(None) if a == axis else 0 for a in range(nd)])].long())
            for axis, line in enumerate(lines):
                x = x.index_select(2 + axis, line)
            return x

    class InterpTwin(nn.Module):
        def __init__(self, upsample):
            super().__init__()
            self.upsample = upsample

        def forward(self, x):
            nd = x.dim() - 2
            mats = []
            for axis in range(nd):  # the forward's weights along each axis, from one-hot planes along it
                n = x.shape[2 + axis]
                planes = torch.eye(n, dtype=torch.float64).reshape(n, 1, *[n if a == axis else 1 for a in range(nd)])
                with torch.no_grad():
                    y = self.upsample(planes.expand(n, 1, *x.shape[2:]).contiguous())
                w = y[(slice(None), 0, *[slice(None) if a == axis else 0 for a in range(nd)])].T.abs()  # [m, n]
                mats.append(torch.where(w < 1e-12, torch.zeros_like(w), w))
            for axis, w in enumerate(mats):
                x = torch.movedim(torch.movedim(x, 2 + axis, -1) @ w.T.to(x.dtype), -1, 2 + axis)
            return x

    return WindowProbe, AxisMean, NearestGather, InterpTwin


def per_axis(v: Any, nd: int) -> tuple:
    """An int, or a list of 1 entry (the spec's shorthand for every axis) as one value per spatial axis; a list of any
    other length goes to torch as it is (which refuses it unless it has nd entries)."""
    if isinstance(v, (list, tuple)):
        return (v[0],) * nd if len(v) == 1 else tuple(v)
    return (v,) * nd


def _as_dict(raw: Any) -> dict:
    layer = dict(raw) if isinstance(raw, dict) else raw.model_dump()
    t = layer["type"]
    if isinstance(t, str) and t != t.lower():
        layer["type"] = t.lower()
    return layer


def spatial_axes(layers: list[Any]) -> tuple[int | None, bool]:
    """(the dimensionality the first layer written for one says, whether a linear/unflatten comes before it), blocks and
    graph nodes in their order; batchnorm1d counts only when nothing else does (it also takes [N, C])."""
    weak = None
    flat_first = False
    stack = [iter(layers)]
    while stack:
        raw = next(stack[-1], None)
        if raw is None:
            stack.pop()
            continue
        layer = _as_dict(raw)
        t = layer["type"]
        if t == "residual":
            stack.append(iter([*layer["body"], *(layer.get("shortcut") or [])]))
            continue
        if t == "concat" and layer.get("branches"):
            stack.append(iter([x for b in layer["branches"] for x in b]))
            continue
        nd = None
        if t in ("pixelshuffle", "pixelunshuffle", "upsamplingnearest2d", "upsamplingbilinear2d"):
            nd = 2
        elif t == "upsample":
            nd = _MODE_ND.get(layer.get("mode", "nearest"))
        elif t[-2:] in ("1d", "2d", "3d") and t[:-2] in _SPATIAL and t != "batchnorm1d":
            nd = int(t[-2])
        if nd is not None:
            return nd, flat_first
        if t == "batchnorm1d" and weak is None:
            weak = (1, flat_first)
        if t in ("linear", "unflatten"):
            flat_first = True
    return weak if weak is not None else (None, flat_first)


def batch_shape(layers: list[Any], in_shape: list[int], batched: bool | None = None) -> list[int]:
    """in_shape with a batch axis: [C, *spatial] gets N = 1; [N, C, *spatial] and [N, F] stay (as the contract reads
    them: a 2-D network by default, else the dimensionality its first spatial layer has)."""
    if batched is None:
        nd, flat_first = spatial_axes(layers)
        if len(in_shape) <= 2 and (flat_first or nd is None or nd >= len(in_shape)):
            batched = len(in_shape) == 2
        else:
            batched = len(in_shape) == (nd or 2) + 2
    return list(in_shape) if batched else [1, *in_shape]


def _leaf(layer: dict, x, *, geometry: bool):
    """The torch module of one (non-block) layer whose input is the tensor x (batched)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    WindowProbe, AxisMean, NearestGather, InterpTwin = probes()
    t, g = layer["type"], layer.get
    c = x.shape[1]
    nd = x.dim() - 2
    sfx = f"{nd}d"
    if t[:-2] in ("conv", "convtranspose"):
        nd, sfx = int(t[-2]), t[-2:]
        k = per_axis(layer["kernel_size"], nd)
        cout = 1 if geometry else layer["out_channels"]
        common = dict(stride=per_axis(g("stride", 1), nd), dilation=per_axis(g("dilation", 1), nd),
                      groups=1 if geometry else g("groups", 1), bias=False if geometry else g("bias", True))
        if t[:-2] == "conv":
            pad = g("padding", 0)
            m = getattr(nn, f"Conv{sfx}")(c, cout, k, padding=pad if isinstance(pad, str) else per_axis(pad, nd),
                                          padding_mode=g("padding_mode", "zeros"), **common)
        else:
            m = getattr(nn, f"ConvTranspose{sfx}")(c, cout, k, padding=per_axis(g("padding", 0), nd),
                                                   output_padding=per_axis(g("output_padding", 0), nd), **common)
        if geometry:
            with torch.no_grad():
                m.weight.fill_(1.0 / prod(k))
        return m
    if t[:-2] in ("maxpool", "avgpool"):
        nd, sfx = int(t[-2]), t[-2:]
        k = per_axis(layer["kernel_size"], nd)
        s = per_axis(g("stride") or layer["kernel_size"], nd)
        p = per_axis(g("padding", 0), nd)
        if t[:-2] == "maxpool":
            d = per_axis(g("dilation", 1), nd)
            pool = getattr(nn, f"MaxPool{sfx}")(k, s, p, d, ceil_mode=g("ceil_mode", False))
            return WindowProbe(pool, k, s, p, d) if geometry else pool
        extra = {} if nd == 1 else {"divisor_override": g("divisor_override")}
        return getattr(nn, f"AvgPool{sfx}")(k, s, p, ceil_mode=g("ceil_mode", False),
                                            count_include_pad=g("count_include_pad", True), **extra)
    if t[:-2] in ("adaptiveavgpool", "adaptivemaxpool"):
        nd, sfx = int(t[-2]), t[-2:]
        size = layer["output_size"]
        size = (tuple(size) if len(size) == nd else size[0]) if isinstance(size, list) else size
        kind = "Max" if t[:-2] == "adaptivemaxpool" and not geometry else "Avg"
        return getattr(nn, f"Adaptive{kind}Pool{sfx}")(size)
    if t[:-2].endswith("pad"):
        kind = {"zero": "Zero", "constant": "Constant", "reflection": "Reflection", "replication": "Replication",
                "circular": "Circular"}[t[:-5]]
        p = layer["padding"]
        p = tuple(p) if isinstance(p, list) else p
        cls = getattr(nn, f"{kind}Pad{t[-2:]}")
        return cls(p, g("value", 0.0)) if kind == "Constant" else cls(p)
    if t[:-2] in ("batchnorm", "instancenorm"):
        if geometry:
            return nn.Identity()
        cls = getattr(nn, f"{'BatchNorm' if t[:-2] == 'batchnorm' else 'InstanceNorm'}{t[-2:]}")
        defaults = (True, True) if t[:-2] == "batchnorm" else (False, False)
        return cls(c, eps=g("eps", 1e-5), momentum=g("momentum", 0.1), affine=g("affine", defaults[0]),
                   track_running_stats=g("track_running_stats", defaults[1]), bias=g("bias", True))
    if t == "groupnorm":
        return nn.Identity() if geometry else nn.GroupNorm(layer["num_groups"], c, eps=g("eps", 1e-5),
                                                           affine=g("affine", True), bias=g("bias", True))
    if t == "layernorm":
        shape = layer["normalized_shape"]
        return nn.Identity() if geometry else nn.LayerNorm(shape, eps=g("eps", 1e-5), bias=g("bias", True),
                                                           elementwise_affine=g("elementwise_affine", True))
    if t == "upsample":
        size, scale = g("size"), g("scale_factor")
        m = nn.Upsample(size=tuple(size) if isinstance(size, list) else size,
                        scale_factor=tuple(scale) if isinstance(scale, list) else scale, mode=g("mode", "nearest"),
                        align_corners=g("align_corners"), recompute_scale_factor=g("recompute_scale_factor"))
        if not geometry or m.mode == "area":  # area: adaptive average pooling, positive weights
            return m
        return NearestGather(m) if m.mode in ("nearest", "nearest-exact") else InterpTwin(m)
    if t in ALIASES:
        m = getattr(nn, ALIASES[t])(size=g("size"), scale_factor=g("scale_factor"))
        return m if not geometry else NearestGather(m) if t == "upsamplingnearest2d" else InterpTwin(m)
    if t == "pixelshuffle":  # one channel: each output pixel reads one input pixel, as nearest upsampling by r
        r = layer["upscale_factor"]
        return NearestGather(nn.Upsample(scale_factor=r, mode="nearest")) if geometry else nn.PixelShuffle(r)
    if t == "pixelunshuffle":  # an output pixel of any channel reads one pixel of each r x r block: the block
        r = layer["downscale_factor"]
        return nn.AvgPool2d(r) if geometry else nn.PixelUnshuffle(r)
    if t == "channelshuffle":
        return nn.Identity() if geometry else nn.ChannelShuffle(layer["groups"])
    if t in ("softmax", "logsoftmax", "softmin"):
        dim = g("dim")
        if geometry:
            return AxisMean(dim) if dim is not None and dim % x.dim() >= 2 else nn.Identity()
        return getattr(nn, {"softmax": "Softmax", "logsoftmax": "LogSoftmax", "softmin": "Softmin"}[t])(dim)
    if t == "prelu":
        return nn.Identity() if geometry else nn.PReLU(g("num_parameters", 1), g("init", 0.25))
    if t == "flatten":
        return nn.Flatten()
    if t == "unflatten":
        return nn.Unflatten(g("dim", 1), tuple(layer["unflattened_size"]))
    if t == "linear":
        return nn.Linear(c, layer["out_features"], bias=g("bias", True))
    name, args = ACTIVATIONS[t]
    if geometry:
        return nn.Identity()
    return getattr(nn, name)(**{a: layer[a] for a in args if a in layer})


def build(layers: list[Any], in_shape: list[int], *, dtype: str = "float32", geometry: bool = False, ones: bool = False,
          batched: bool | None = None, device: str = "cpu"):
    """The spec as an nn.Sequential in eval mode, in `dtype`, built by running zeros of `in_shape` through it layer by
    layer: each layer's in_channels / num_features / in_features are the size of what reaches it (given ones are
    ignored). in_shape: [C, H, W] or [F], or with a batch axis [N, C, H, W] or [N, F]; [C, L] / [C, D, H, W] (batch
    optional) for a 1-D / 3-D network. Layers are dicts or spec models, types in the spec's or PyTorch's spelling.

    geometry=True: the 1-channel twin for gradient probes (give in_shape one channel): every conv 1 -> 1 channel,
    groups 1, no bias, weights 1/prod(kernel_size) (padding_mode kept: reflected pixels are read too); max pools
    (dilated too) as positive window sums of the same geometry (a max-pool's gradient reaches one pixel), adaptive max
    as adaptive average pools; norms, activations, dropout and channel shuffles as identities; concat adds its
    branches (with one channel the sum sees what any branch sees); a softmax over a spatial axis as the mean over it;
    pixel (un)shuffle as nearest upsampling / average pooling by r; nearest upsampling as a gather of the pixels its
    float32 forward picks, linear and bicubic upsampling as their forward's weights taken positive (probes()), area
    upsampling as it is. So the gradient of one output pixel is positive exactly on the input pixels it depends on.
    ones=True: after building, every parameter 1 and every bias 0.
    device="meta": shapes, params and FLOPs without computing anything (big networks).
    """
    torch = pytest.importorskip("torch")
    kind = getattr(torch, dtype)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", UserWarning)  # padding="same" with an even kernel copies the input
        x = torch.zeros(batch_shape(layers, in_shape, batched), dtype=kind, device=device)
        net = _sequence(layers, x, kind, geometry)[0]
        if ones:
            _ones(net)
    return net


def _sequence(specs: list[Any], x, kind, geometry: bool):
    """(nn.Sequential of specs, its output for x)."""
    torch = pytest.importorskip("torch")
    Residual, Concat = blocks()
    modules = []
    for raw in specs:
        layer = _as_dict(raw)
        t = layer["type"]
        if t in ("residual", "concat"):
            paths = [layer["body"], layer.get("shortcut") or []] if t == "residual" else layer["branches"]
            built = [_sequence(path, x, kind, geometry) for path in paths]
            mods = [m for m, _ in built]
            module = Residual(*mods) if t == "residual" else Concat(mods, add=geometry)
            x = module.join([y for _, y in built])
        else:
            module = _leaf(layer, x, geometry=geometry).to(dtype=kind, device=x.device).eval()
            x = module(x)
        modules.append(module)
    return torch.nn.Sequential(*modules).eval(), x


def _ones(net) -> None:
    for name, p in net.named_parameters():
        p.fill_(0.0 if name.endswith("bias") else 1.0)


@functools.cache
def graph_module():
    """The module class that runs a graph spec: `steps` (name, input names, module or merge) in a topological order."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class GraphNet(nn.Module):
        def __init__(self, steps, output):
            super().__init__()
            self.mods = nn.ModuleList([m for _, _, m in steps if isinstance(m, nn.Module)])
            self.steps, self.output = steps, output

        def run(self, x, call=None) -> dict:
            """Every node's output for input x; call(name, fn, *inputs) runs each step (e.g. under a FLOP counter)."""
            made = {"input": x}
            for name, inputs, step in self.steps:
                args = [made[n] for n in inputs]
                made[name] = call(name, step, *args) if call else step(*args)
            return made

        def forward(self, x):
            return self.run(x)[self.output]

    return GraphNet


def merge_fn(layer: dict, *, geometry: bool):
    """add, mul or concat (dim counted with the batch axis) as a function of the inputs."""
    torch = pytest.importorskip("torch")
    t = layer["type"]
    if t == "add":
        return lambda *xs: functools.reduce(operator.add, xs)
    if t == "mul":
        return lambda *xs: functools.reduce(operator.mul, xs)
    dim = layer.get("dim", 1)

    def cat(*xs):
        if geometry and dim % xs[0].dim() == 1:  # one channel each: the sum sees what any input sees
            return functools.reduce(operator.add, xs)
        return torch.cat(xs, dim=dim)

    return cat


def graph_order(nodes: list[dict]) -> tuple[list[tuple[str, tuple[str, ...], dict]], str]:
    """((name, inputs, layer) in a topological order, the last node's name); inputs left out = the previous node.
    A cycle, a name used twice or an input that is no node is a ValueError (what torch code would fail on)."""
    named = []
    for i, node in enumerate(nodes):
        node = dict(node)
        name = node.pop("name")
        ins = node.pop("inputs", None)
        if ins is None:
            ins = [named[i - 1][0]] if i else ["input"]
        named.append((name, tuple([ins] if isinstance(ins, str) else ins), _as_dict(node)))
    names = [n for n, _, _ in named]
    if len(set(names)) != len(names) or "input" in names:
        raise ValueError(f"graph node names must be unique and not 'input': {names}")
    done = {"input"}
    order = []
    pending = list(named)
    while pending:
        ready = [p for p in pending if all(n in done for n in p[1])]
        if not ready:
            raise ValueError(f"graph nodes {[p[0] for p in pending]} wait on a cycle or on inputs that are no nodes")
        order.append(ready[0])
        done.add(ready[0][0])
        pending.remove(ready[0])
    return order, names[-1]


MERGES = ("add", "mul", "concat")


def build_graph(nodes: list[dict], in_shape: list[int], *, output: str | None = None, dtype: str = "float32",
                geometry: bool = False, ones: bool = False, batched: bool | None = None, device: str = "cpu"):
    """A graph spec as a module in eval mode: forward(x) gives the `output` node's tensor (default the last node),
    run(x) every node's. Each node is {"name", "inputs", "type", ...}; merges are add, mul (broadcast as torch) and
    concat (`dim`, default 1, counted with the batch axis); a layer node is built as `build` builds it (blocks too).
    geometry / ones / batched / device: as for `build` (geometry's concat along channels adds)."""
    torch = pytest.importorskip("torch")
    kind = getattr(torch, dtype)
    order, last = graph_order(nodes)
    layers = [layer for _, _, layer in order if not (layer["type"] in MERGES and "branches" not in layer)]
    steps = []
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", UserWarning)
        made = {"input": torch.zeros(batch_shape(layers, in_shape, batched), dtype=kind, device=device)}
        for name, inputs, layer in order:
            args = [made[n] for n in inputs]
            if layer["type"] in MERGES and "branches" not in layer:
                step = merge_fn(layer, geometry=geometry)
            else:
                if len(args) != 1:
                    raise ValueError(f"node {name!r}: a layer takes one input, got {len(args)}")
                step = _sequence([layer], args[0], kind, geometry)[0][0]
            made[name] = step(*args)
            steps.append((name, inputs, step))
    net = graph_module()(steps, last if output is None else output).eval()
    if output is not None and output not in made:
        raise ValueError(f"output {output!r} is no node")
    if ones:
        _ones(net)
    return net
