"""The N-d walk and graph specs against PyTorch: random 1-D, 2-D and 3-D stacks of every layer family and random
graphs (hypothesis), U-Net, DenseNet and FPN graphs, a 3-D ResNet stem, a 1-D audio net, print(model) text of 1-D and
3-D nets, bad input, and regressions for the engine bugs these tests found.

Every expected number is torch's, measured here on the modules tests/torch_reference.py builds from the same spec:
shapes per layer / node, params and buffers (numel), MACs (torch.utils.flop_counter's FLOPs // 2, as
tests/test_walk.py's torch_totals), and the receptive field by backpropagating one output element through the
1-channel geometry twin: input_region_clipped is the hull of the input pixels with nonzero gradient, the walk back
reaches exactly those pixels, and input_region holds them. A spec one side refuses, the other must refuse too.
SOAK=5 (an environment variable) runs five times the random examples.
"""

from __future__ import annotations

import os
import warnings
from math import prod

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from torch_reference import batch_shape, build, build_graph

from skills.errors import GeometryError, SpecError
from skills.walk import _walk_back, parameter_count, receptive_field, shape_calculator, walk

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

REFUSALS = (GeometryError, SpecError)
SOAK = int(os.environ.get("SOAK", "1"))
CASES = settings(max_examples=200 * SOAK, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROBES = settings(max_examples=100 * SOAK, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on these tiny tensors a thread pool costs ~50x more than it saves (and the CPU is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def note(what: str) -> None:
    """A hypothesis event (--hypothesis-show-statistics counts them), when running under hypothesis."""
    if currently_in_test_context():
        event(what)


# ---------------------------------------------------------------- the reference: torch's numbers per row


def _counted(fn, *args):
    """(fn(*args), MACs of the call by torch's FLOP counter)."""
    with FlopCounterMode(display=False) as counter:
        y = fn(*args)
    return y, counter.get_total_flops() // 2


def _numbers(module) -> tuple[int, int]:
    if not isinstance(module, torch.nn.Module):  # a graph merge
        return 0, 0
    return sum(p.numel() for p in module.parameters()), sum(b.numel() for b in module.buffers())


def torch_walk(input_shape, layers=None, graph=None, output=None, device="cpu"):
    """torch's rows ({name or index: (output shape, params, buffers, MACs)}) and totals (shape, params, buffers, MACs),
    shapes without the batch axis when input_shape has none; device="meta" for networks too big to run."""
    spec = layers if graph is None else [n for n in graph if n["type"] not in ("add", "mul", "concat") or "branches" in n]
    shape = batch_shape(spec, input_shape)
    strip = len(shape) != len(input_shape)
    x = torch.zeros(shape, device=device)
    rows = {}

    def call(name, step, *args):
        y, macs = _counted(step, *args)
        rows[name] = (list(y.shape[1:] if strip else y.shape), *_numbers(step), macs)
        return y

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", UserWarning)  # padding="same" with an even kernel
        if graph is None:
            net = build(layers, input_shape, device=device)
            for i, module in enumerate(net):
                x = call(i, module, x)
            y, macs = _counted(net, torch.zeros(shape, device=device))
        else:
            net = build_graph(graph, input_shape, output=output, device=device)
            net.run(x, call)
            y, macs = _counted(net, torch.zeros(shape, device=device))
    params, buffers = _numbers(net)
    return rows, (list(y.shape[1:] if strip else y.shape), params, buffers, macs)


def torch_refuses(input_shape, layers=None, graph=None, output=None) -> bool:
    """Whether torch refuses the spec: building it or its forward pass raises, or a layer's output is empty (torch
    lets a crop such as ZeroPad1d(-1) on 1 sample give 0 samples; the walk refuses a map under 1 pixel)."""
    empty = []

    def check(module, inputs, out):
        if isinstance(out, torch.Tensor) and out.numel() == 0:
            empty.append(module)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if graph is None:
                net = build(layers, input_shape)
            else:
                spec = [n for n in graph if n["type"] not in ("add", "mul", "concat") or "branches" in n]
                net = build_graph(graph, input_shape, output=output)
                layers = spec
            x = torch.zeros(batch_shape(layers, input_shape))
            with torch.no_grad(), torch.nn.modules.module.register_module_forward_hook(check):
                y = net.eval()(x)
    except Exception:  # torch raises RuntimeError, ValueError, TypeError, IndexError, ...
        return True
    return bool(empty) or y.numel() == 0


def assert_walk_matches_torch(input_shape, layers=None, graph=None, output=None, device="cpu"):
    """The walk agrees with torch on every row and the totals, or both refuse the spec."""
    try:
        report = shape_calculator(input_shape, layers, graph=graph, output=output)
    except REFUSALS as exc:
        note("both refuse")
        assert torch_refuses(input_shape, layers, graph, output), f"the walk refuses what torch runs: {exc}"
        return None
    note("both walk")
    rows, (shape, params, buffers, macs) = torch_walk(input_shape, layers, graph, output, device)
    for i, row in enumerate(report.layers):
        key = i if graph is None else row.name
        assert [row.output_shape, row.params, row.buffers, row.macs] == list(rows[key]), f"row {key}"
    assert report.output_shape == shape
    assert (report.total_params, report.total_buffers, report.total_macs) == (params, buffers, macs)
    counted = parameter_count(layers, input_shape=input_shape, graph=graph, output=output)
    assert (counted.total_params, counted.total_buffers) == (params, buffers)
    return report


# ---------------------------------------------------------------- the reference: receptive field by a gradient probe


def probe(input_shape, position, layers=None, graph=None, output=None, nonzero=False):
    """The input pixels (a bool array over the spatial axes) that output element [0, 0, *position] of the geometry twin
    gets gradient from: positive gradient (positive weights throughout), or nonzero with nonzero=True."""
    spatial = list(input_shape[-len(position):])
    shape = [1, *spatial]
    if graph is None:
        net = build(layers, shape, dtype="float64", geometry=True, batched=False)
    else:
        net = build_graph(graph, shape, output=output, dtype="float64", geometry=True, batched=False)
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        y = net(x)
    y[(0, 0, *position)].backward()
    grad = x.grad[0, 0]
    return grad != 0 if nonzero else grad > 0


def hull(seen) -> list[tuple[int, int]] | None:
    """(first, last) index with a seen pixel, per axis."""
    if not seen.any():
        return None
    out = []
    for axis in range(seen.dim()):
        idx = seen.movedim(axis, 0).reshape(seen.shape[axis], -1).any(1).nonzero().flatten().tolist()
        out.append((idx[0], idx[-1]))
    return out


def spans(region) -> list[tuple[int, int]] | None:
    """An engine region model as (first, last) per axis."""
    if region is None:
        return None
    r = region.model_dump()
    if "start" in r:
        return [(r["start"], r["end"])]
    if "front" in r:
        return [(r["front"], r["back"]), (r["top"], r["bottom"]), (r["left"], r["right"])]
    return [(r["top"], r["bottom"]), (r["left"], r["right"])]


def engine_pixels(input_shape, position, layers=None, graph=None, output=None):
    """The input pixels the walk back from output pixel `position` reaches (its union of per-axis boxes) as a bool
    array: the exact set behind input_region_clipped."""
    done = walk(input_shape, layers, graph=graph, output=output)
    boxes = _walk_back(done, done.out, tuple(1 << p for p in position))
    sp = done.input_shape.sp
    mask = torch.zeros(sp, dtype=torch.bool)
    for box in boxes:
        idx = [torch.tensor([(b >> i) & 1 for i in range(n)], dtype=torch.bool) for b, n in zip(box, sp, strict=True)]
        cube = idx[0]
        for axis in idx[1:]:
            cube = cube[..., None] & axis
        mask |= cube
    return mask


def wraps(layers=None, graph=None) -> bool:
    """Whether any padding reads real pixels (reflect, replicate, circular): the receptive field counts those paddings
    as zero padding does, so it need not span the pixels they read."""
    text = repr(layers if graph is None else graph).lower()
    return any(w in text for w in ("reflect", "replicat", "circular"))


def assert_region_matches_probe(input_shape, position, layers=None, graph=None, output=None):
    """input_region_clipped is the hull of the input pixels with gradient, per axis; the walk back reaches exactly those
    pixels; input_region holds them, and (zero padding, paths of one stride) is no larger than the receptive field."""
    rf = receptive_field(input_shape, layers, output_position=list(position), graph=graph, output=output)
    seen = probe(input_shape, position, layers, graph, output)
    note("probed: reads pixels" if seen.any() else "probed: reads only padding")
    assert spans(rf.input_region_clipped) == hull(seen)
    assert torch.equal(engine_pixels(input_shape, position, layers, graph, output), seen)
    if seen.any():
        # the receptive field counts replicate/reflect/circular padding as zero padding, and follows the widest path
        # after a merge of paths with different strides (with a warning): only otherwise does it bound the region
        bounded = not wraps(layers, graph) and not any("different effective strides" in w for w in rf.warnings)
        for (lo, hi), (a, b), size in zip(spans(rf.input_region), hull(seen), rf.receptive_field, strict=True):
            assert lo <= a and b <= hi
            assert hi - lo + 1 <= size or not bounded
    return rf


# ---------------------------------------------------------------- random specs


def per_axis(nd, lo, hi):
    """An int, or a list with one entry per spatial axis."""
    return st.one_of(st.integers(lo, hi), st.lists(st.integers(lo, hi), min_size=nd, max_size=nd))


def divisor_of(draw, *counts):
    """A groups value: mostly one that divides every count, sometimes one that may not (both must refuse then)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.integers(2, 3))
    return draw(st.sampled_from([g for g in (1, 2, 3, 4) if all(c % g == 0 for c in counts)]))


INTERP = {1: "linear", 2: "bilinear", 3: "trilinear"}
DECIDING = ["conv", "conv", "pool", "pad", "transpose"]
KINDS = ["conv", "conv", "conv", "transpose", "pool", "pool", "adaptive", "pad", "norm", "upsample", "upsample",
         "softmax", "channels", "act", "dropout", "residual", "concat"]


@st.composite
def nd_layers(draw, nd, c, probe, kind=None):
    """(a few layers of one random kind for a [c, *spatial] input of nd spatial axes, the channels after them)."""
    kind = kind or draw(st.sampled_from(KINDS))
    sfx = f"{nd}d"
    if kind == "conv":
        out = draw(st.sampled_from([1, 2, 4, 6]))
        layer = {"type": f"conv{sfx}", "out_channels": out, "kernel_size": draw(per_axis(nd, 1, 4)),
                 "stride": draw(per_axis(nd, 1, 3)), "dilation": draw(per_axis(nd, 1, 2)),
                 "padding": draw(st.one_of(per_axis(nd, 0, 2), st.sampled_from(["same", "valid"]))),
                 "bias": draw(st.booleans()), "groups": divisor_of(draw, c, out)}
        if draw(st.integers(0, 3)) == 0:
            layer["padding_mode"] = draw(st.sampled_from(["reflect", "replicate", "circular"]))
        return [layer], out
    if kind == "transpose":
        s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        out = draw(st.sampled_from([1, 2, 4]))
        return [{"type": f"convtranspose{sfx}", "out_channels": out, "kernel_size": draw(per_axis(nd, 1, 4)),
                 "stride": s, "dilation": d, "padding": draw(per_axis(nd, 0, 1)),
                 "output_padding": draw(st.integers(0, max(s, d) - 1)), "groups": divisor_of(draw, c, out),
                 "bias": draw(st.booleans())}], out
    if kind == "pool":
        k = draw(st.integers(1, 4))
        pool = {"type": draw(st.sampled_from([f"maxpool{sfx}", f"avgpool{sfx}"])), "kernel_size": k,
                "padding": draw(st.integers(0, k // 2)), "ceil_mode": draw(st.booleans())}
        if draw(st.booleans()):
            pool["stride"] = draw(per_axis(nd, 1, 3))
        if pool["type"].startswith("max"):
            pool["dilation"] = draw(per_axis(nd, 1, 2))
        else:
            pool["count_include_pad"] = draw(st.booleans())
            if nd > 1 and draw(st.integers(0, 3)) == 0:
                pool["divisor_override"] = draw(st.integers(1, 5))
        return [pool], c
    if kind == "adaptive":
        size = draw(st.one_of(st.integers(1, 6), st.lists(st.one_of(st.integers(1, 6), st.none()), min_size=nd, max_size=nd)))
        layers = [{"type": draw(st.sampled_from([f"adaptiveavgpool{sfx}", f"adaptivemaxpool{sfx}"])), "output_size": size}]
        if isinstance(size, int) and draw(st.booleans()):  # the trailing dims are known: normalise over them
            layers.append({"type": "layernorm", "normalized_shape": draw(st.sampled_from([[size] * nd, [c, *[size] * nd], size])),
                           "elementwise_affine": draw(st.booleans())})
        return layers, c
    if kind == "pad":
        mode = draw(st.sampled_from(["zero", "constant", "reflection", "replication", "circular"]))
        lo = -1 if mode in ("zero", "constant") else 0
        padding = draw(st.one_of(st.integers(0, 2), st.lists(st.integers(lo, 2), min_size=2 * nd, max_size=2 * nd)))
        layer = {"type": f"{mode}pad{sfx}", "padding": padding}
        if mode == "constant":
            layer["value"] = draw(st.sampled_from([0.0, 1.5]))
        return [layer], c
    if kind == "norm":
        which = draw(st.sampled_from(["batchnorm", "instancenorm", "groupnorm"]))
        if which == "groupnorm":
            return [{"type": "groupnorm", "num_groups": divisor_of(draw, c), "affine": draw(st.booleans())}], c
        return [{"type": f"{which}{sfx}", "affine": draw(st.booleans()), "track_running_stats": draw(st.booleans())}], c
    if kind == "upsample":
        modes = ["nearest", "nearest-exact", "area", INTERP[nd], INTERP[nd]] + (["bicubic"] if nd == 2 else [])
        if not probe:
            modes.append(INTERP[1 + nd % 3])  # the wrong dimensionality: refused
        layer = {"type": "upsample", "mode": draw(st.sampled_from(modes))}
        if draw(st.booleans()):
            layer["size"] = draw(per_axis(nd, 1, 14))
        else:
            layer["scale_factor"] = draw(st.one_of(st.sampled_from([0.5, 1.5, 2, 2.5, 3, 1.3]),
                                                   st.lists(st.sampled_from([0.7, 1, 2, 3]), min_size=nd, max_size=nd)))
            if draw(st.integers(0, 3)) == 0:
                layer["recompute_scale_factor"] = True
        if layer["mode"] in ("linear", "bilinear", "bicubic", "trilinear") and draw(st.booleans()):
            layer["align_corners"] = draw(st.booleans())
        return [layer], c
    if kind == "softmax":
        return [{"type": draw(st.sampled_from(["softmax", "logsoftmax", "softmin"])), "dim": draw(st.integers(-nd - 2, nd + 1))}], c
    if kind == "channels":
        if draw(st.booleans()):
            return [{"type": "prelu", "num_parameters": draw(st.sampled_from([1, c, c + 1]))}], c
        return [{"type": "channelshuffle", "groups": divisor_of(draw, c)}], c
    if kind == "act":
        act = draw(st.sampled_from(["relu", "relu6", "leakyrelu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid",
                                    "mish", "selu", "elu", "celu", "softplus", "hardtanh", "softsign", "tanhshrink", "identity"]))
        return [{"type": act}], c
    if kind == "dropout":
        options = ["dropout", f"dropout{sfx}", "alphadropout"] + ([] if probe else ["dropout1d"])
        return [{"type": draw(st.sampled_from(options)), "p": draw(st.sampled_from([0.0, 0.5]))}], c
    if kind == "residual":
        k, d = draw(st.sampled_from([1, 3, 5])), draw(st.integers(1, 2))
        out = draw(st.sampled_from([c, 4]))
        body = [{"type": f"conv{sfx}", "out_channels": out, "kernel_size": k, "dilation": d, "padding": d * (k // 2)}]
        if draw(st.booleans()):
            body += [{"type": f"batchnorm{sfx}"}, {"type": "relu"}]
        shortcut = [] if out == c and draw(st.booleans()) else [{"type": f"conv{sfx}", "out_channels": out, "kernel_size": 1}]
        return [{"type": "residual", "body": body, "shortcut": shortcut}], out
    options = [  # concat blocks: branches that keep the spatial size
        ([{"type": f"conv{sfx}", "out_channels": 2, "kernel_size": 1}], 2),
        ([{"type": f"conv{sfx}", "out_channels": 3, "kernel_size": 3, "padding": 1}, {"type": "relu"}], 3),
        ([{"type": f"maxpool{sfx}", "kernel_size": 3, "stride": 1, "padding": 1}], c),
        ([{"type": f"zeropad{sfx}", "padding": [1, 0] * nd}, {"type": f"conv{sfx}", "out_channels": 1, "kernel_size": 2}], 1),
        ([{"type": f"conv{sfx}", "out_channels": 2, "kernel_size": 3, "dilation": 2, "padding": 2}], 2),
        ([{"type": f"avgpool{sfx}", "kernel_size": 2, "stride": 2}], c),  # halves the size: refused unless alone
    ]
    picked = draw(st.lists(st.sampled_from(range(len(options))), min_size=1, max_size=3))
    return [{"type": "concat", "branches": [options[i][0] for i in picked]}], sum(options[i][1] for i in picked)


TORCH_NAMES = {name.lower(): name for name in dir(torch.nn) if isinstance(getattr(torch.nn, name), type)}


def spelled(draw, layers: list[dict]) -> list[dict]:
    """The layers, some with their type in PyTorch's class spelling ('ConvTranspose3d'), which the walk accepts too."""
    return [{**x, "type": TORCH_NAMES.get(x["type"], x["type"])} if draw(st.integers(0, 4)) == 0 else x for x in layers]


def sizes(nd):
    return st.lists(st.integers(4, 40) if nd == 1 else st.integers(3, 10), min_size=nd, max_size=nd)


@st.composite
def nd_stacks(draw, nd, probe=False):
    """(input_shape, layers): a random stack of 1..5 layer groups over a random [C, *spatial] (batch axis sometimes),
    starting with a layer that fixes the dimensionality; probe=True keeps to what the gradient probe mirrors."""
    c = draw(st.integers(1, 4))
    shape = [c, *draw(sizes(nd))]
    if not probe and draw(st.integers(0, 4)) == 0:
        shape = [draw(st.integers(1, 2)), *shape]
    layers, ch = draw(nd_layers(nd, c, probe, kind=draw(st.sampled_from(DECIDING))))
    grown = layers[0]["type"].startswith("convtranspose")
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(KINDS))
        if nd == 3 and grown and kind in ("transpose", "upsample"):  # one growing layer: 3-D maps stay small and fast
            kind = "conv"
        grown = grown or kind in ("transpose", "upsample")
        more, ch = draw(nd_layers(nd, ch, probe, kind=kind))
        layers += more
    if not probe and draw(st.integers(0, 3)) == 0:
        tail = draw(st.sampled_from(["linear", "unflatten"]))
        if tail == "linear":
            layers += [{"type": "flatten"}, {"type": "linear", "out_features": draw(st.integers(1, 5))}]
        else:  # back to a map: flatten, linear to C*prod(S) features, unflatten to [C, *S], conv
            s = draw(st.lists(st.integers(2, 4), min_size=nd, max_size=nd))
            layers += [{"type": "flatten"}, {"type": "linear", "out_features": 2 * prod(s)},
                       {"type": "unflatten", "dim": 1, "unflattened_size": [2, *s]},
                       {"type": f"conv{nd}d", "out_channels": 2, "kernel_size": 2}]
    return shape, spelled(draw, layers)


@st.composite
def graph_layer(draw, nd, c, width, probe):
    """(one layer for a graph node reading a [c, ...] map, its channels): mostly size-keeping, so merges often fit."""
    sfx = f"{nd}d"
    kind = draw(st.sampled_from(["conv", "conv", "conv", "down", "pool", "up", "transpose", "gate", "norm", "act",
                                 "softmax", "shuffle", "block", "random"]))
    if kind == "conv":
        k, d = draw(st.sampled_from([1, 3, 5])), draw(st.integers(1, 2))
        return {"type": f"conv{sfx}", "out_channels": width, "kernel_size": k, "dilation": d, "padding": d * (k // 2)}, width
    if kind == "down":
        return {"type": f"conv{sfx}", "out_channels": width, "kernel_size": 3, "stride": 2, "padding": 1}, width
    if kind == "pool":
        return draw(st.sampled_from([
            {"type": f"maxpool{sfx}", "kernel_size": 3, "stride": 1, "padding": 1},
            {"type": f"maxpool{sfx}", "kernel_size": 2},
            {"type": f"avgpool{sfx}", "kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": False},
            {"type": f"maxpool{sfx}", "kernel_size": 3, "stride": 1, "padding": 2, "dilation": 2},
        ])), c
    if kind == "up":
        mode = draw(st.sampled_from(["nearest", INTERP[nd], "nearest-exact"]))
        layer = {"type": "upsample", "scale_factor": 2, "mode": mode}
        if mode == INTERP[nd]:
            layer["align_corners"] = draw(st.booleans())
        return layer, c
    if kind == "transpose":
        return {"type": f"convtranspose{sfx}", "out_channels": width, "kernel_size": 2, "stride": 2}, width
    if kind == "gate":  # a squeeze-excitation gate: [c, 1, ..., 1], broadcast by mul
        return {"type": f"adaptiveavgpool{sfx}", "output_size": 1}, c
    if kind == "norm":
        return draw(st.sampled_from([{"type": f"batchnorm{sfx}"}, {"type": "groupnorm", "num_groups": 1},
                                     {"type": f"instancenorm{sfx}", "affine": True}])), c
    if kind == "act":
        return {"type": draw(st.sampled_from(["relu", "sigmoid", "silu", "identity", f"dropout{sfx}"]))}, c
    if kind == "softmax":
        return {"type": "softmax", "dim": draw(st.integers(1, nd + 1))}, c
    if kind == "shuffle" and nd == 2:
        if draw(st.booleans()):
            return {"type": "pixelunshuffle", "downscale_factor": 2}, 4 * c
        return {"type": "pixelshuffle", "upscale_factor": 2}, c // 4
    if kind == "block":
        body = [{"type": f"conv{sfx}", "out_channels": c, "kernel_size": 3, "padding": 1}, {"type": "relu"}]
        return {"type": "residual", "body": body}, c
    layers, ch = draw(nd_layers(nd, c, probe, kind=draw(st.sampled_from([k for k in KINDS if k != "concat"]))))
    return layers[0], ch


@st.composite
def graphs(draw, nd, probe=False):
    """(input_shape, nodes, output): a random DAG of 2..8 nodes: layers on earlier nodes and add / mul / concat merges
    of 2 or 3 of them; the output is the last node or, sometimes, another one; nodes sometimes listed out of order;
    a batch axis sometimes."""
    c = draw(st.integers(1, 3))
    width = draw(st.sampled_from([2, 4]))
    shape = [c, *(draw(st.lists(st.integers(4, 16), min_size=nd, max_size=nd)) if nd == 2 else draw(sizes(nd)))]
    first = {"type": f"conv{nd}d", "out_channels": width, "kernel_size": 3, "padding": 1}
    nodes = [{"name": "n0", "inputs": ["input"], **first}]
    made = [("input", c), ("n0", width)]
    for i in range(1, draw(st.integers(2, 8))):
        name = f"n{i}"
        if draw(st.integers(0, 9)) < 4:
            picked = draw(st.lists(st.sampled_from(range(len(made))), min_size=2, max_size=3, unique=True))
            kind = draw(st.sampled_from(["add", "mul", "concat", "concat"]))
            node = {"name": name, "inputs": [made[j][0] for j in picked], "type": kind}
            chans = max(made[j][1] for j in picked)  # add / mul broadcast a single channel
            if kind == "concat":
                dims = [1, 1, -nd - 1] + ([] if probe else list(range(2, nd + 2)))
                node["dim"] = draw(st.sampled_from(dims))
                if node["dim"] in (1, -nd - 1):
                    chans = sum(made[j][1] for j in picked)
            nodes.append(node)
        else:
            j = draw(st.sampled_from(range(len(made)))) if draw(st.booleans()) else len(made) - 1
            layer, chans = draw(graph_layer(nd, made[j][1], width, probe))
            nodes.append({"name": name, "inputs": [made[j][0]], **spelled(draw, [layer])[0]})
        made.append((name, chans))
    if not probe and draw(st.integers(0, 4)) == 0:  # a batch axis
        shape = [draw(st.integers(1, 2)), *shape]
    output = None
    if draw(st.integers(0, 4)) == 0:
        output = draw(st.sampled_from([n["name"] for n in nodes]))
    if draw(st.integers(0, 3)) == 0:  # the walk sorts them; without `output`, the last node listed is the output
        nodes = draw(st.permutations(nodes))
    return shape, nodes, output


# ---------------------------------------------------------------- random parity: shapes, params, buffers, MACs


@CASES
@given(nd_stacks(1))
def test_random_1d_stacks_match_torch_row_by_row_or_both_refuse(case):
    assert_walk_matches_torch(*case)


@CASES
@given(nd_stacks(3))
def test_random_3d_stacks_match_torch_row_by_row_or_both_refuse(case):
    assert_walk_matches_torch(*case)


@CASES
@given(nd_stacks(2))
def test_random_2d_stacks_of_the_new_layer_types_match_torch_row_by_row_or_both_refuse(case):
    assert_walk_matches_torch(*case)


@CASES
@given(st.sampled_from([1, 2, 2, 3]).flatmap(graphs))
def test_random_graphs_match_torch_node_by_node_or_both_refuse(case):
    shape, nodes, output = case
    assert_walk_matches_torch(shape, graph=nodes, output=output)


# ---------------------------------------------------------------- random parity: the input region of one output pixel


def _position(data, report) -> list[int]:
    return [data.draw(st.integers(0, n - 1)) for n in report.output_shape[-len(report.receptive_field):]]


def _walks(shape, layers=None, graph=None, output=None):
    """The walk's report, or None when it refuses the spec (the parity tests check torch refuses it too)."""
    try:
        return shape_calculator(shape, layers, graph=graph, output=output)
    except REFUSALS:
        return None


@PROBES
@given(nd_stacks(1, probe=True), st.data())
def test_random_1d_stacks_input_region_is_what_the_gradient_reaches(case, data):
    shape, layers = case
    report = _walks(shape, layers)
    assume(report is not None)
    assert_region_matches_probe(shape, _position(data, report), layers)


@PROBES
@given(nd_stacks(2, probe=True), st.data())
def test_random_2d_stacks_of_the_new_layer_types_input_region_is_what_the_gradient_reaches(case, data):
    shape, layers = case
    report = _walks(shape, layers)
    assume(report is not None)
    assert_region_matches_probe(shape, _position(data, report), layers)


@PROBES
@given(nd_stacks(3, probe=True), st.data())
def test_random_3d_stacks_input_region_is_what_the_gradient_reaches(case, data):
    shape, layers = case
    report = _walks(shape, layers)
    assume(report is not None)
    assert_region_matches_probe(shape, _position(data, report), layers)


@PROBES
@given(st.sampled_from([1, 2, 2, 3]).flatmap(lambda nd: graphs(nd, probe=True)), st.data())
def test_random_graphs_input_region_is_what_the_gradient_reaches(case, data):
    shape, nodes, output = case
    report = _walks(shape, graph=nodes, output=output)
    assume(report is not None)
    assert_region_matches_probe(shape, _position(data, report), graph=nodes, output=output)


@pytest.mark.parametrize("resize", [{"scale_factor": 2}, {"scale_factor": 2, "align_corners": True}, {"size": [11, 5]},
                                    {"scale_factor": 1.3}, {"scale_factor": [0.5, 3]}, {"size": 9, "align_corners": True}])
def test_bicubic_upsampling_reads_exactly_its_nonzero_taps_at_every_output_pixel(resize):
    # every output pixel of a lone layer (the random 2-D probes stack bicubic too, through the twin's positive weights)
    layers = [{"type": "upsample", "mode": "bicubic", **resize}]
    report = assert_walk_matches_torch([1, 7, 6], layers)
    for y in range(report.output_shape[1]):
        for x in range(report.output_shape[2]):
            rf = receptive_field([1, 7, 6], layers, output_position=[y, x])
            seen = probe([1, 7, 6], [y, x], layers, nonzero=True)
            assert spans(rf.input_region_clipped) == hull(seen)
            assert torch.equal(engine_pixels([1, 7, 6], [y, x], layers), seen)


# ---------------------------------------------------------------- graphs of known architectures


def conv_bn_relu(name, src, out, k=3, padding=0, dims=2):
    """Three graph nodes: conv (no bias), batchnorm, relu; the last is named `name`."""
    return [{"name": f"{name}.conv", "inputs": [src], "type": f"conv{dims}d", "out_channels": out, "kernel_size": k,
             "padding": padding, "bias": False},
            {"name": f"{name}.bn", "inputs": [f"{name}.conv"], "type": f"batchnorm{dims}d"},
            {"name": name, "inputs": [f"{name}.bn"], "type": "relu"}]


def unet(classes=2, width=64):
    """Ronneberger et al. 2015's U-Net as a graph (BatchNorm after each conv, as most implementations): 4 levels down
    (two valid 3x3 convs, a 2x2 max pool), a bottleneck, 4 levels up (a 2x2 stride-2 transposed conv, the encoder's map
    centre-cropped by a negative zeropad2d and concatenated, two valid 3x3 convs), a 1x1 conv to the classes."""
    nodes, src, skips = [], "input", []
    for level in range(4):
        w = width << level
        nodes += conv_bn_relu(f"down{level}.a", src, w) + conv_bn_relu(f"down{level}.b", f"down{level}.a", w)
        skips.append(f"down{level}.b")
        nodes.append({"name": f"pool{level}", "inputs": [f"down{level}.b"], "type": "maxpool2d", "kernel_size": 2})
        src = f"pool{level}"
    nodes += conv_bn_relu("bottom.a", src, width << 4) + conv_bn_relu("bottom.b", "bottom.a", width << 4)
    src = "bottom.b"
    crops = {3: 4, 2: 16, 1: 40, 0: 88}  # (skip size - upsampled size) / 2 at 572 x 572
    for level in reversed(range(4)):
        w = width << level
        nodes += [
            {"name": f"up{level}", "inputs": [src], "type": "convtranspose2d", "out_channels": w, "kernel_size": 2, "stride": 2},
            {"name": f"crop{level}", "inputs": [skips[level]], "type": "zeropad2d", "padding": -crops[level]},
            {"name": f"cat{level}", "inputs": [f"crop{level}", f"up{level}"], "type": "concat"},
        ]
        nodes += conv_bn_relu(f"dec{level}.a", f"cat{level}", w) + conv_bn_relu(f"dec{level}.b", f"dec{level}.a", w)
        src = f"dec{level}.b"
    nodes.append({"name": "head", "inputs": [src], "type": "conv2d", "out_channels": classes, "kernel_size": 1})
    return nodes


def test_unet_graph_matches_torch_node_by_node_and_its_centre_pixels_region():
    nodes = unet()
    report = assert_walk_matches_torch([1, 572, 572], graph=nodes, device="meta")
    # the paper's Fig. 1: a 572 x 572 tile gives a 388 x 388 map. Params by hand: 3x3 convs 9*Cin*Cout, transposed
    # 4*Cin*Cout + Cout, head 64*2 + 2, BatchNorm 2C (31,024,770 + 11,776); buffers 2C + 1 over 18 BatchNorms;
    # MACs as torch 2.13's FlopCounterMode // 2 counted them above
    assert report.output_shape == [2, 388, 388]
    assert (report.total_params, report.total_buffers) == (31_036_546, 11_794)
    assert report.total_macs == 150_428_424_448
    rf = assert_region_matches_probe([1, 572, 572], [194, 194], graph=nodes)
    assert spans(rf.input_region) == spans(rf.input_region_clipped)  # nothing clipped: the tile holds the whole region
    # a 2x2 stride-2 transposed conv's pixels sit half an encoder pixel off the cropped skip's, by phase: said, not hidden
    assert rf.warnings and all(w.startswith("node 'cat") and "path centres do not line up" in w for w in rf.warnings)


def densenet_block(layers=4, growth=12, bottleneck=4):
    """A DenseNet-BC dense block (Huang et al. 2017): each layer BN-ReLU-1x1 conv (4k)-BN-ReLU-3x3 conv (k) reads the
    concatenation of every earlier map; then the transition: BN-ReLU-1x1 conv halving the channels, 2x2 average pool."""
    nodes, cat = [], "input"
    for i in range(layers):
        nodes += [
            {"name": f"l{i}.bn1", "inputs": [cat], "type": "batchnorm2d"},
            {"name": f"l{i}.relu1", "type": "relu"},  # inputs left out: the node before
            {"name": f"l{i}.conv1", "type": "conv2d", "out_channels": bottleneck * growth, "kernel_size": 1, "bias": False},
            {"name": f"l{i}.bn2", "type": "batchnorm2d"},
            {"name": f"l{i}.relu2", "type": "relu"},
            {"name": f"l{i}.conv2", "type": "conv2d", "out_channels": growth, "kernel_size": 3, "padding": 1, "bias": False},
            {"name": f"cat{i}", "inputs": [cat, f"l{i}.conv2"], "type": "concat"},
        ]
        cat = f"cat{i}"
    nodes += [{"name": "trans.bn", "inputs": [cat], "type": "batchnorm2d"}, {"name": "trans.relu", "type": "relu"},
              {"name": "trans.conv", "type": "conv2d", "out_channels": 44, "kernel_size": 1, "bias": False},
              {"name": "trans.pool", "type": "avgpool2d", "kernel_size": 2, "stride": 2}]
    return nodes


def test_densenet_block_graph_matches_torch_and_grows_by_the_growth_rate():
    report = assert_walk_matches_torch([40, 32, 32], graph=densenet_block())
    rows = {r.name: r for r in report.layers}
    assert [rows[f"cat{i}"].output_shape[0] for i in range(4)] == [52, 64, 76, 88]
    assert report.output_shape == [44, 16, 16]
    rf = assert_region_matches_probe([40, 32, 32], [8, 8], graph=densenet_block())
    assert rf.receptive_field == [10, 10]  # four 3x3 convs (9), then the 2x2 pool


def fpn(width=16):
    """A feature-pyramid top-down path (Lin et al. 2017): a stride-2 backbone c1..c4, 1x1 laterals, the coarser level
    upsampled x2 (nearest) and added, 3x3 output convs on each level; p2 is the graph's last node."""
    nodes, src = [], "input"
    for i, w in enumerate([8, 16, 32, 64], start=1):
        nodes += [{"name": f"c{i}", "inputs": [src], "type": "conv2d", "out_channels": w, "kernel_size": 3, "stride": 2, "padding": 1},
                  {"name": f"c{i}.relu", "inputs": [f"c{i}"], "type": "relu"}]
        src = f"c{i}.relu"
    for i in (2, 3, 4):
        nodes.append({"name": f"lat{i}", "inputs": [f"c{i}.relu"], "type": "conv2d", "out_channels": width, "kernel_size": 1})
    nodes += [{"name": "up4", "inputs": ["lat4"], "type": "upsample", "scale_factor": 2, "mode": "nearest"},
              {"name": "m3", "inputs": ["lat3", "up4"], "type": "add"},
              {"name": "up3", "inputs": ["m3"], "type": "Upsample", "scale_factor": 2},
              {"name": "m2", "inputs": ["up3", "lat2"], "type": "add"}]
    for name, src in (("p4", "lat4"), ("p3", "m3"), ("p2", "m2")):
        nodes.append({"name": name, "inputs": [src], "type": "conv2d", "out_channels": width, "kernel_size": 3, "padding": 1})
    return nodes


@pytest.mark.parametrize("output, size", [(None, 16), ("p3", 8), ("p4", 4)])
def test_fpn_top_down_path_matches_torch_at_every_level(output, size):
    report = assert_walk_matches_torch([3, 64, 64], graph=fpn(), output=output)
    assert report.output_shape == [16, size, size]
    rf = assert_region_matches_probe([3, 64, 64], [size // 2, size // 2], graph=fpn(), output=output)
    if output == "p3":  # p4 does not feed p3: counted in the totals (as torch counts unused modules), with a warning
        assert any("'p4'" in w and "do not feed the output 'p3'" in w for w in rf.warnings)
    # a pixel of the merge m3 (at_layer names the node) sees what the graph cut at m3 sees
    at = receptive_field([3, 64, 64], graph=fpn(), output=output, output_position=[4, 4], at_layer="m3")
    cut = assert_region_matches_probe([3, 64, 64], [4, 4], graph=fpn(), output="m3")
    assert at.at_layer == "m3" and spans(at.input_region_clipped) == spans(cut.input_region_clipped)


def test_fpn_on_an_odd_size_is_an_add_that_does_not_broadcast():
    # 63 -> 32 -> 16 -> 8 -> 4: up4 (8) + lat3 (8) fits; at 60: c3 8, c4 4... at 66: c3 9, c4 5, up4 10 vs lat3 9
    with pytest.raises(SpecError, match=r"^node 'm3' \(add\): inputs 'lat3' \[16, 9, 9\], 'up4' \[16, 10, 10\] do not broadcast: dim 2"):
        shape_calculator([3, 66, 66], graph=fpn())
    assert torch_refuses([3, 66, 66], graph=fpn())


# ---------------------------------------------------------------- 3-D and 1-D networks


STEM_3D = [  # torchvision's r3d_18-style stem with a [3, 7, 7] kernel (Tran et al. 2018), then a 3-D max pool
    {"type": "conv3d", "out_channels": 64, "kernel_size": [3, 7, 7], "stride": [1, 2, 2], "padding": [1, 3, 3], "bias": False},
    {"type": "batchnorm3d"},
    {"type": "relu", "inplace": True},
    {"type": "maxpool3d", "kernel_size": 3, "stride": 2, "padding": 1},
]


def test_3d_resnet_stem_reads_c_d_h_w_and_matches_torch():
    report = assert_walk_matches_torch([3, 16, 112, 112], STEM_3D, device="meta")
    assert [r.output_shape for r in report.layers] == [[64, 16, 56, 56]] * 3 + [[64, 8, 28, 28]]
    # 64 * 3*3*7*7 weights; BatchNorm3d: 128 params, 129 buffers; MACs: 16*56*56 outputs * 64 * 441
    assert (report.total_params, report.total_buffers) == (64 * 441 + 128, 129)
    assert report.total_macs == 16 * 56 * 56 * 64 * 441
    assert report.receptive_field == [5, 11, 11] and report.effective_stride == [2, 4, 4]
    rf = assert_region_matches_probe([3, 16, 112, 112], [4, 14, 14], STEM_3D)
    # output z = 4 pools conv outputs 7..9, which read 6..10; y = 14 pools 27..29, which read 2*27-3 .. 2*29+3
    assert spans(rf.input_region) == [(6, 10), (51, 61), (51, 61)] == spans(rf.input_region_clipped)


def test_parameter_count_of_the_3d_stem_needs_no_input_shape_once_in_channels_is_given():
    layers = [{**STEM_3D[0], "in_channels": 3}, *STEM_3D[1:]]
    report = parameter_count(layers)
    assert (report.total_params, report.total_buffers) == (64 * 441 + 128, 129)
    assert report.layers[0].formula == "64*3*3*7*7 = 28,224" and report.layers[1].buffers_formula == "2*64 + 1 = 129"


AUDIO_1D = [  # M5 (Dai et al. 2017, torchaudio's speech-commands tutorial): 16,000 samples, 35 classes
    {"type": "conv1d", "out_channels": 32, "kernel_size": 80, "stride": 16}, {"type": "batchnorm1d"}, {"type": "relu"},
    {"type": "maxpool1d", "kernel_size": 4},
    {"type": "conv1d", "out_channels": 32, "kernel_size": 3}, {"type": "batchnorm1d"}, {"type": "relu"},
    {"type": "maxpool1d", "kernel_size": 4},
    {"type": "conv1d", "out_channels": 64, "kernel_size": 3}, {"type": "batchnorm1d"}, {"type": "relu"},
    {"type": "maxpool1d", "kernel_size": 4},
    {"type": "conv1d", "out_channels": 64, "kernel_size": 3}, {"type": "batchnorm1d"}, {"type": "relu"},
    {"type": "maxpool1d", "kernel_size": 4},
    {"type": "adaptiveavgpool1d", "output_size": 1}, {"type": "flatten"}, {"type": "linear", "out_features": 35},
]


def test_1d_audio_net_over_16000_samples_matches_torch():
    report = assert_walk_matches_torch([1, 16000], AUDIO_1D)
    assert report.output_shape == [35]
    assert [r.output_shape for r in report.layers if r.type == "maxpool1d"] == [[32, 249], [32, 61], [64, 14], [64, 3]]
    assert report.total_params == 26_915  # torchaudio's tutorial prints "Number of parameters: 26915" for M5
    features = AUDIO_1D[:16]
    rf = assert_region_matches_probe([1, 16000], [1], features)
    # RF_l = RF_{l-1} + (k-1)*J_{l-1}: 80, +3*16, +2*64, +3*64, +2*256, +3*256, +2*1024, +3*1024
    assert rf.receptive_field == [6848] and rf.effective_stride == [4096]


def test_1d_stack_with_a_batch_axis_counts_macs_for_the_batch():
    layers = [{"type": "conv1d", "out_channels": 8, "kernel_size": 5, "padding": "same"}, {"type": "relu"},
              {"type": "convtranspose1d", "out_channels": 4, "kernel_size": 4, "stride": 2, "padding": 1}]
    report = assert_walk_matches_torch([3, 2, 50], layers)
    assert report.output_shape == [3, 4, 100]
    assert report.total_macs == 3 * (50 * 8 * 2 * 5 + 50 * 8 * 4 * 4)


# ---------------------------------------------------------------- print(model) text of 1-D and 3-D nets


def printed_nets():
    """(name, an nn.Sequential, its input with a batch axis): nets whose print(model) the walk reads back."""
    nn = torch.nn
    audio = nn.Sequential(
        nn.Conv1d(1, 16, 80, stride=16, padding=40, padding_mode="reflect"), nn.BatchNorm1d(16), nn.PReLU(16),
        nn.MaxPool1d(4, ceil_mode=True), nn.Conv1d(16, 32, 3, dilation=2, groups=4, bias=False),
        nn.InstanceNorm1d(32, affine=True), nn.GELU(approximate="tanh"), nn.AvgPool1d(3, stride=2, padding=1),
        nn.ReflectionPad1d((2, 1)), nn.ConvTranspose1d(32, 8, 4, stride=2, padding=1, output_padding=1),
        nn.Upsample(scale_factor=1.5, mode="linear", align_corners=False), nn.Dropout1d(0.1), nn.ELU(alpha=0.5),
        nn.LayerNorm(100), nn.Softmax(dim=-1), nn.AdaptiveMaxPool1d(12), nn.Flatten(), nn.Linear(96, 10), nn.LogSoftmax(dim=1),
    )
    video = nn.Sequential(
        nn.Conv3d(3, 8, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False), nn.BatchNorm3d(8), nn.ReLU(inplace=True),
        nn.MaxPool3d(kernel_size=3, stride=2, padding=1, dilation=1), nn.ConstantPad3d((1, 1, 0, 0, 2, 0), 0.5),
        nn.Conv3d(8, 8, 3, padding="same", padding_mode="replicate", groups=2), nn.GroupNorm(4, 8), nn.SiLU(),
        nn.AvgPool3d((1, 2, 2), divisor_override=3), nn.ChannelShuffle(2), nn.Dropout3d(0.2),
        nn.ConvTranspose3d(8, 4, 2, stride=2), nn.Upsample(size=(9, 20, 20), mode="trilinear"), nn.Hardtanh(-2.0, 2.0),
        nn.AdaptiveAvgPool3d((None, 5, 5)), nn.InstanceNorm3d(4, track_running_stats=True), nn.Mish(),
        nn.ReplicationPad3d(1), nn.CircularPad3d(1), nn.Conv3d(4, 2, 3), nn.Softmax(dim=2),
        nn.Flatten(), nn.Linear(2 * 11 * 7 * 7, 4 * 2 * 3 * 3), nn.Unflatten(1, (4, 2, 3, 3)), nn.Conv3d(4, 1, 1),
    )
    return [("audio", audio, torch.zeros(2, 1, 4000)), ("video", video, torch.zeros(1, 3, 8, 32, 32))]


@pytest.mark.parametrize("name", ["audio", "video"])
def test_print_model_of_1d_and_3d_nets_walks_to_torchs_numbers(name):
    _, net, x = next(n for n in printed_nets() if n[0] == name)
    net.eval()
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(list(o.shape))) for m in net]
    with torch.no_grad():
        y, macs = _counted(net, x)
    for h in hooks:
        h.remove()
    for input_shape, strip in ((list(x.shape), False), (list(x.shape[1:]), True)):
        if strip and x.shape[0] != 1:
            continue
        report = shape_calculator(input_shape, spec=str(net))
        assert [r.output_shape for r in report.layers] == [s[1:] if strip else s for s in shapes]
        assert report.output_shape == list(y.shape[1:] if strip else y.shape)
        assert report.total_params == sum(p.numel() for p in net.parameters())
        assert report.total_buffers == sum(b.numel() for b in net.buffers())
        assert report.total_macs == macs


# ---------------------------------------------------------------- bad input: an error naming the layer, the field, the numbers


def conv(dims, **kw):
    return {"type": f"conv{dims}d", "out_channels": 4, "kernel_size": 3, **kw}


def node(name, inputs, **layer):
    return {"name": name, "inputs": inputs, **({"type": "relu"} | layer)}


@pytest.mark.parametrize(
    "input_shape, layers, graph, output, error, message",
    [
        pytest.param([3, 16, 16], [conv(3)], None, None, GeometryError,
                     r"^input_shape \[3, 16, 16\] has 3 axes but layer 0 \(conv3d\) needs a 3-D map: \[C, D, H, W\] or \[N, C, D, H, W\]",
                     id="conv3d on [C, H, W]"),
        pytest.param([3, 8, 16, 16], [conv(3, kernel_size=[3, 3])], None, None, SpecError,
                     r"^layer 0 \(conv3d\): kernel_size must be an int >= 1 or \[d, h, w\] of ints >= 1, got \[3, 3\]",
                     id="conv3d kernel_size of 2 entries"),
        pytest.param([3, 16, 16], None, [node("a", ["c"]), node("b", ["a"]), node("c", ["b"])], None, SpecError,
                     r"^node 'a': the graph has a cycle \('a' -> 'b' -> 'c' -> 'a'\)", id="a cycle"),
        pytest.param([3, 16, 16], None, [node("a", ["input"]), node("b", ["aa"])], None, SpecError,
                     r"^node 'b': input 'aa' is not a node of the graph; did you mean 'a'\?", id="an input that is no node"),
        pytest.param([3, 16, 16], None, [node("a", ["input"]), node("a", ["input"], type="sigmoid")], None, SpecError,
                     r"^node 'a': the name is used twice \(graph nodes 0 and 1\)", id="a name used twice"),
        pytest.param([3, 16, 16], None, [node("half", ["input"], type="maxpool2d", kernel_size=2),
                                         node("cat", ["input", "half"], type="concat")], None, SpecError,
                     r"^node 'cat' \(concat\): input 'half' \[3, 8, 8\] and input 'input' \[3, 16, 16\] differ in dim 2 \(8 vs 16\)",
                     id="concat of mismatched sizes"),
        pytest.param([3, 16, 16], None, [node("wide", ["input"], **conv(2, padding=1)), node("sum", ["input", "wide"], type="add")],
                     None, SpecError,
                     r"^node 'sum' \(add\): inputs 'input' \[3, 16, 16\], 'wide' \[4, 16, 16\] do not broadcast: dim 1 \(with the batch axis\) is 3 vs 4",
                     id="add of shapes that do not broadcast"),
        pytest.param([3, 16, 16, 16], [conv(2), conv(3)], None, None, SpecError,
                     r"^layer 1 \(conv3d\): its input \[3, 4, 14, 14\] is a 2-D map .* but conv3d needs 3 spatial axes .*"
                     r"layer 0 \(conv2d\) makes this network 2-D",
                     id="conv2d and conv3d in one net"),
        pytest.param([3, 16], [conv(1), {"type": "upsample", "scale_factor": 2, "mode": "bilinear"}], None, None, SpecError,
                     r"^layer 1 \(upsample\): mode='bilinear' needs a 2-D map \[C, H, W\] but its input \[4, 14\] is 1-D; use mode linear",
                     id="bilinear upsampling of a 1-D map"),
        pytest.param([3, 16], [{"type": "upsample", "scale_factor": 2, "mode": "bilinear"}], None, None, GeometryError,
                     r"^input_shape \[3, 16\] has 2 axes but layer 0 \(upsample\) needs a 2-D map",
                     id="bilinear upsampling first, of [C, L]"),
        pytest.param([3, 16, 16], None, [node("a", ["input"])], "b", SpecError,
                     r"^output 'b' is not a node of the graph", id="an output that names no node"),
    ],
)
def test_bad_input_is_an_error_naming_the_layer_the_field_and_the_numbers(input_shape, layers, graph, output, error, message):
    with pytest.raises(error, match=message):
        shape_calculator(input_shape, layers, graph=graph, output=output)
    if layers is not None or graph is not None:  # and torch cannot run it either
        assert torch_refuses(input_shape, layers, graph, output)


# ---------------------------------------------------------------- engine bugs these tests found (regressions)


def test_avgpool3d_refuses_an_input_smaller_than_its_kernel_as_torch_does():
    # found by the random 3-D region probe: [1, 3, 3, 3] -> maxpool3d k1, conv3d k1 s2 (2x2x2) -> avgpool3d k3 ceil_mode
    layers = [{"type": "maxpool3d", "kernel_size": 1}, {"type": "conv3d", "out_channels": 1, "kernel_size": 1, "stride": 2},
              {"type": "avgpool3d", "kernel_size": 3, "ceil_mode": True}]
    with pytest.raises(GeometryError, match=r"^layer 2 \(avgpool3d\): the input 2x2x2 is smaller than the kernel 3x3x3 \(D 2 < kernel_size 3"):
        shape_calculator([1, 3, 3, 3], layers)
    with pytest.raises(RuntimeError, match="smaller than kernel size"):
        torch.nn.AvgPool3d(3, ceil_mode=True)(torch.zeros(1, 1, 2, 2, 2))
    # torch's avg_pool3d does not count the padding, and only it checks: max_pool3d and avg_pool2d run
    with pytest.raises(GeometryError, match=r"\(D 2 < kernel_size 3\)"):
        shape_calculator([1, 2, 5, 5], [{"type": "avgpool3d", "kernel_size": 3, "padding": 1}])
    with pytest.raises(RuntimeError, match="smaller than kernel size"):
        torch.nn.AvgPool3d(3, padding=1)(torch.zeros(1, 1, 2, 5, 5))
    pools = [("maxpool3d", torch.nn.MaxPool3d, [1, 2, 5, 5]), ("avgpool2d", torch.nn.AvgPool2d, [1, 2, 5])]
    for kind, module, input_shape in pools:
        walked = shape_calculator(input_shape, [{"type": kind, "kernel_size": 3, "stride": 1, "padding": 1}])
        assert walked.output_shape == list(module(3, 1, 1)(torch.zeros(1, *input_shape)).shape[1:]) == input_shape


def test_a_1d_adaptive_pool_refuses_output_size_none_as_torch_does():
    # found by the random 1-D stacks: [1, 4] -> zeropad1d 0 -> adaptiveavgpool1d [None] (None keeps an axis in 2-D/3-D only)
    for kind in ("adaptiveavgpool1d", "adaptivemaxpool1d"):
        with pytest.raises(SpecError, match=rf"^layer 1 \({kind}\): output_size must be an int >= 1 for {kind}.*got \[None\]"):
            shape_calculator([1, 4], [{"type": "zeropad1d", "padding": 0}, {"type": kind, "output_size": [None]}])
    with pytest.raises(TypeError, match="must be tuple of ints"):
        torch.nn.AdaptiveAvgPool1d((None,))(torch.zeros(1, 1, 4))
    assert shape_calculator([1, 4, 4], [{"type": "adaptivemaxpool2d", "output_size": [None, 2]}]).output_shape == [1, 4, 2]


def test_norms_with_the_inputs_own_statistics_refuse_one_value_as_torch_does():
    # found by the random 3-D stacks: [1, 3, 3, 3] -> conv3d k1 (reflect) -> upsample x0.5 (1x1x1) -> batchnorm3d
    # without running stats, which normalises with the batch's statistics, even in eval mode
    layers = [{"type": "conv3d", "out_channels": 1, "kernel_size": 1, "padding_mode": "reflect"},
              {"type": "upsample", "mode": "nearest", "scale_factor": 0.5, "recompute_scale_factor": True},
              {"type": "batchnorm3d", "affine": False, "track_running_stats": False}]
    with pytest.raises(GeometryError, match=r"^layer 2 \(batchnorm3d\): the input \[1, 1, 1, 1\] gives 1 value per channel"):
        shape_calculator([1, 3, 3, 3], layers)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.BatchNorm3d(1, track_running_stats=False).eval()(torch.zeros(1, 1, 1, 1, 1))
    with pytest.raises(GeometryError, match=r"^layer 0 \(instancenorm2d\): the input \[3, 1, 1\] gives 1 spatial element"):
        shape_calculator([3, 1, 1], [{"type": "instancenorm2d"}])
    with pytest.raises(ValueError, match="Expected more than 1 spatial element"):
        torch.nn.InstanceNorm2d(3).eval()(torch.zeros(1, 3, 1, 1))
    with pytest.raises(GeometryError, match=r"^layer 0 \(groupnorm\): the input \[3, 1, 1\] gives 1 value per group"):
        shape_calculator([3, 1, 1], [{"type": "groupnorm", "num_groups": 3}])
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.GroupNorm(3, 3).eval()(torch.zeros(1, 3, 1, 1))
    # running statistics, two samples, or two channels per group: torch runs them
    for input_shape, layer in (([3, 1, 1], {"type": "batchnorm2d"}), ([2, 3, 1, 1], {"type": "batchnorm2d", "track_running_stats": False}),
                               ([3, 1, 1], {"type": "instancenorm2d", "track_running_stats": True}),
                               ([4, 1, 1], {"type": "groupnorm", "num_groups": 2})):
        assert shape_calculator(input_shape, [layer]).output_shape == input_shape


def test_dropout1d_refuses_a_2d_or_3d_map_as_torch_does_even_in_eval_mode():
    # found by the random 3-D stacks: [1, 3, 3, 3] -> maxpool3d k1 -> dropout1d
    layers = [{"type": "maxpool3d", "kernel_size": 1}, {"type": "dropout1d", "p": 0.0}]
    with pytest.raises(SpecError, match=r"^layer 1 \(dropout1d\): dropout1d needs a 1-D map \[C, L\] .* \[1, 3, 3, 3\] is a 3-D map.*use dropout3d"):
        shape_calculator([1, 3, 3, 3], layers)
    with pytest.raises(RuntimeError, match="dropout1d: Expected 2D or 3D input"):
        torch.nn.Dropout1d(0.0).eval()(torch.zeros(1, 1, 3, 3, 3))
    assert shape_calculator([4, 9], [{"type": "conv1d", "out_channels": 2, "kernel_size": 3}, {"type": "dropout1d"}]).output_shape == [2, 7]


def test_an_input_shape_with_too_few_axes_says_axes():
    # found by the bad-input cases: bilinear upsampling first, of a [C, L] input, said "has 2 axises"
    with pytest.raises(GeometryError, match=r"^input_shape \[3, 16\] has 2 axes but layer 0 \(upsample\) needs a 2-D map"):
        shape_calculator([3, 16], [{"type": "upsample", "scale_factor": 2, "mode": "bilinear"}])


def test_mixing_conv2d_and_conv3d_names_the_layer_that_made_the_network_2d():
    # found by the bad-input cases: the error named the conv3d, not the conv2d (or graph node) that fixed the layout
    with pytest.raises(SpecError, match=r"^layer 1 \(conv3d\): .*one network cannot mix dimensionalities \(layer 0 \(conv2d\) makes this network 2-D\): use conv2d"):
        shape_calculator([3, 16, 16, 16], [{"type": "conv2d", "out_channels": 4, "kernel_size": 3},
                                           {"type": "conv3d", "out_channels": 4, "kernel_size": 3}])
    graph = [{"name": "stem", "inputs": ["input"], "type": "conv1d", "out_channels": 4, "kernel_size": 3},
             {"name": "pool", "inputs": ["stem"], "type": "maxpool2d", "kernel_size": 2}]
    with pytest.raises(SpecError, match=r"^node 'pool' \(maxpool2d\): .*\(node 'stem' \(conv1d\) makes this network 1-D\): use maxpool1d"):
        shape_calculator([3, 16], graph=graph)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_nearest_upsampling_reads_the_pixel_torchs_float32_forward_picks(mode):
    # found by a sweep of scale factors against torch's forward (while checking the probe's twin): the walk picked
    # floor(o / scale_factor) exactly (in double for 1.3), but torch's kernels pick floorf(o * (float)(1/1.3)):
    # 31 samples x 1.3, output 39 reads sample 30 in torch, 29 in the walk; sizes too: 17,612 -> 149,214
    cases = [(31, {"scale_factor": 1.3}), (2, {"scale_factor": 1.3}), (9, {"scale_factor": 1.1}), (40, {"scale_factor": 0.7}),
             (32, {"scale_factor": 1.3, "recompute_scale_factor": True}), (17, {"size": 40}), (17612, {"size": 149214})]
    for n, resize in cases:
        layers = [{"type": "conv1d", "out_channels": 1, "kernel_size": 1}, {"type": "upsample", "mode": mode, **resize}]
        picks = torch.nn.functional.interpolate(torch.arange(n, dtype=torch.float32).view(1, 1, n), mode=mode, **resize)[0, 0]
        outputs = range(len(picks)) if n < 100 else (10_243, len(picks) - 1)  # each call tabulates 149,214 pixels
        for o in outputs:
            rf = receptive_field([1, n], layers, output_position=[o])
            assert (rf.input_region_clipped.start, rf.input_region_clipped.end) == (int(picks[o]),) * 2, (n, resize, o)
            assert rf.input_region.start <= int(picks[o]) <= rf.input_region.end


@pytest.mark.parametrize("mode, scale", [("linear", [1.1]), ("bilinear", [1.1, 2.0]), ("trilinear", [1.1, 1.25, 1.1])])
def test_linear_upsampling_copies_an_axis_that_keeps_its_size_as_torch_does(mode, scale):
    # found by a sweep of linear upsampling against torch's forward weights (after the nearest fix): torch's
    # compute_source_index_and_lambda copies an axis whose output size equals its input size, whatever the scale
    # factor (5 px x 1.1 = 5 px); the walk interpolated with 1/1.1 there and said output 2 reads pixels 1..2
    nd = len(scale)
    layers = [{"type": f"conv{nd}d", "out_channels": 1, "kernel_size": 1}, {"type": "upsample", "scale_factor": scale, "mode": mode}]
    x = torch.zeros(5 ** nd, 1, *[5] * nd)
    x.view(5 ** nd, -1)[range(5 ** nd), range(5 ** nd)] = 1  # one-hot inputs: the forward's weights, pixel by pixel
    weights = torch.nn.functional.interpolate(x, scale_factor=scale, mode=mode)
    for position in [[o] * nd for o in range(5)]:
        reads = (weights[(slice(None), 0, *position)] != 0).view(*[5] * nd)
        rf = receptive_field([1, *[5] * nd], layers, output_position=position)
        assert spans(rf.input_region_clipped) == hull(reads), position
    if nd == 2:  # H keeps its size (copied), W doubles (interpolated)
        assert spans(receptive_field([1, 5, 5], layers, output_position=[2, 3]).input_region_clipped) == [(2, 2), (1, 2)]


def test_2d_nearest_upsampling_copies_an_axis_that_keeps_its_size_and_halves_one_that_doubles():
    # found by the random 2-D region probe: [1, 3, 3] -> ... -> Upsample(scale_factor=1.3, mode='nearest') gives 3 x 3,
    # and torch's 2-D nearest kernel (nearest_idx) copies it, and turns n -> 2n into o // 2, whatever the scale factor;
    # its 1-D and 3-D kernels (and nearest-exact) do not: they take floorf(o * (float)(1/1.3))
    layers = [{"type": "conv2d", "out_channels": 1, "kernel_size": 1}, {"type": "upsample", "scale_factor": [1.3, 2.1], "mode": "nearest"}]
    report = shape_calculator([1, 3, 5], layers)
    assert report.output_shape == [1, 3, 10]
    ramp = torch.arange(3, dtype=torch.float32).view(1, 1, 3, 1).expand(1, 1, 3, 5).contiguous()
    picks_h = torch.nn.functional.interpolate(ramp, scale_factor=[1.3, 2.1], mode="nearest")[0, 0, :, 0].long().tolist()
    ramp = torch.arange(5, dtype=torch.float32).view(1, 1, 1, 5).expand(1, 1, 3, 5).contiguous()
    picks_w = torch.nn.functional.interpolate(ramp, scale_factor=[1.3, 2.1], mode="nearest")[0, 0, 0].long().tolist()
    assert picks_h == [0, 1, 2] and picks_w == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    for y in range(3):
        for x in range(10):
            rf = receptive_field([1, 3, 5], layers, output_position=[y, x])
            assert spans(rf.input_region_clipped) == [(picks_h[y],) * 2, (picks_w[x],) * 2]
    one_d = torch.nn.functional.interpolate(torch.arange(5.0).view(1, 1, 5), scale_factor=2.1, mode="nearest")[0, 0].long().tolist()
    assert one_d == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4]  # 1-D: floorf(o / 2.1), so output 2 reads sample 0
    rf = receptive_field([1, 5], [{"type": "conv1d", "out_channels": 1, "kernel_size": 1}, {"type": "upsample", "scale_factor": 2.1}], output_position=[2])
    assert spans(rf.input_region_clipped) == [(0, 0)]


def test_a_replicated_border_pixel_reads_what_it_copies_even_where_zero_padding_would_read_nothing():
    # found by the random 1-D region probe (SOAK=10): [1, 4] -> ConvTranspose1d k1 s2 (odd outputs get no tap) ->
    # ReplicationPad1d(1): output 0 copies pixel 0 of the transposed conv's map, which reads sample 0; the walk
    # looked at the region as zero padding counts it (pixel -1: no tap) and said "receives no input pixel"
    layers = [{"type": "convtranspose1d", "out_channels": 1, "kernel_size": 1, "stride": 2}, {"type": "replicationpad1d", "padding": 1}]
    rf = receptive_field([1, 4], layers, output_position=[0])
    assert spans(rf.input_region_clipped) == [(0, 0)] == hull(probe([1, 4], [0], layers))
    assert spans(rf.input_region) == [(0, 0)] and rf.warnings == []
    gap = receptive_field([1, 4], layers, output_position=[2])  # pixel 1 of the transposed conv's map: no tap
    assert gap.input_region_clipped is None and not probe([1, 4], [2], layers).any()
    assert "output pixel [2] receives no input pixel" in gap.warnings[0]


def test_input_region_holds_every_pixel_read_when_merged_paths_have_different_strides():
    # found by the random graph region probe: a softmax over H (every row reads the whole column: stride 0) added to a
    # dilated 3x3 conv (stride 1); the map after the add follows the widest path (with a warning), so output [0, 0]'s
    # input_region was rows -2..2 while the softmax path reads rows 0..3
    graph = [{"name": "soft", "inputs": ["input"], "type": "softmax", "dim": 2},
             {"name": "conv", "inputs": ["input"], "type": "conv2d", "out_channels": 2, "kernel_size": 3, "dilation": 2, "padding": 2},
             {"name": "sum", "inputs": ["soft", "conv"], "type": "add"}]
    rf = assert_region_matches_probe([1, 4, 4], [0, 0], graph=graph)
    assert spans(rf.input_region_clipped) == [(0, 3), (0, 2)]
    assert spans(rf.input_region) == [(-2, 3), (-2, 2)]
    assert any("paths have different effective strides along H" in w for w in rf.warnings)
