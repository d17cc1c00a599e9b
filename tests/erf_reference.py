"""PyTorch twins of what tests/torch_reference.py does not build, for the ERF parity tests: 1-D / 3-D layers, the
padding layers, activations with arguments, divisor_override, and graph specs (named nodes with add / mul / concat).

Submodule names follow the spec's paths (`3.body.1`, graph nodes by name), so state_dict() keys are the keys the
ERF engine's `weights` takes. torch is imported through pytest.importorskip: without it these tests skip.
"""

from __future__ import annotations

from typing import Any

import pytest
from torch_reference import blocks


def _axes(v: Any, nd: int) -> tuple:
    if isinstance(v, int):
        return (v,) * nd
    return tuple(v) if len(v) == nd else (v[0],) * nd


def leaf(layer: dict, c: int, nd: int):
    """One spec layer (not a block) as a torch module reading c channels."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    t, g = layer["type"], layer.get
    n = f"{nd}d"
    if t.startswith("conv") and not t.startswith("convtranspose"):
        pad = g("padding", 0)
        return getattr(nn, f"Conv{n}")(c, layer["out_channels"], _axes(layer["kernel_size"], nd), stride=_axes(g("stride", 1), nd),
                                      padding=pad if isinstance(pad, str) else _axes(pad, nd), dilation=_axes(g("dilation", 1), nd),
                                      groups=g("groups", 1), bias=g("bias", True), padding_mode=g("padding_mode", "zeros"))
    if t.startswith("convtranspose"):
        return getattr(nn, f"ConvTranspose{n}")(c, layer["out_channels"], _axes(layer["kernel_size"], nd), stride=_axes(g("stride", 1), nd),
                                               padding=_axes(g("padding", 0), nd), output_padding=_axes(g("output_padding", 0), nd),
                                               dilation=_axes(g("dilation", 1), nd), groups=g("groups", 1), bias=g("bias", True))
    if t.startswith("maxpool"):
        k = _axes(layer["kernel_size"], nd)
        return getattr(nn, f"MaxPool{n}")(k, _axes(g("stride") or layer["kernel_size"], nd), _axes(g("padding", 0), nd),
                                         _axes(g("dilation", 1), nd), ceil_mode=g("ceil_mode", False))
    if t.startswith("avgpool"):
        k = _axes(layer["kernel_size"], nd)
        extra = {} if nd == 1 else {"divisor_override": g("divisor_override")}
        return getattr(nn, f"AvgPool{n}")(k, _axes(g("stride") or layer["kernel_size"], nd), _axes(g("padding", 0), nd),
                                         ceil_mode=g("ceil_mode", False), count_include_pad=g("count_include_pad", True), **extra)
    if t.startswith("adaptive"):
        size = layer["output_size"]
        size = tuple(size) if isinstance(size, list) and len(size) == nd else (size[0] if isinstance(size, list) else size)
        return getattr(nn, f"AdaptiveMaxPool{n}" if "max" in t else f"AdaptiveAvgPool{n}")(size)
    if "pad" in t:
        p = layer["padding"]
        p = tuple(p) if isinstance(p, list) else p
        kind = t[: t.index("pad")]
        cls = {"zero": "ZeroPad", "constant": "ConstantPad", "reflection": "ReflectionPad", "replication": "ReplicationPad",
               "circular": "CircularPad"}[kind]
        return getattr(nn, f"{cls}{n}")(p, g("value", 0.0)) if kind == "constant" else getattr(nn, f"{cls}{n}")(p)
    if t.startswith("batchnorm"):
        return getattr(nn, f"BatchNorm{n}")(c, eps=g("eps", 1e-5), affine=g("affine", True))
    if t.startswith("dropout") or t in ("alphadropout", "identity"):
        return nn.Identity()
    if t == "prelu":
        return nn.PReLU(g("num_parameters", 1), init=g("init", 0.25))
    names = {"relu": "ReLU", "relu6": "ReLU6", "silu": "SiLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "hardswish": "Hardswish",
             "hardsigmoid": "Hardsigmoid", "mish": "Mish", "selu": "SELU", "softsign": "Softsign", "tanhshrink": "Tanhshrink"}
    if t in names:
        return getattr(nn, names[t])()
    if t == "leakyrelu":
        return nn.LeakyReLU(g("negative_slope", 0.01))
    if t == "gelu":
        return nn.GELU(approximate=g("approximate", "none"))
    if t == "elu":
        return nn.ELU(g("alpha", 1.0))
    if t == "celu":
        return nn.CELU(g("alpha", 1.0))
    if t == "softplus":
        return nn.Softplus(g("beta", 1.0), g("threshold", 20.0))
    if t == "hardtanh":
        return nn.Hardtanh(g("min_val", -1.0), g("max_val", 1.0))
    raise AssertionError(f"erf_reference has no twin for {t}")


def build(layers: list, in_shape: list, nd: int):
    """The spec as an nn.Sequential in float64, eval mode (blocks as in torch_reference: body/shortcut/branches)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    Residual, Concat = blocks()

    def seq(specs, x):
        modules = []
        for layer in specs:
            t = layer["type"]
            if t in ("residual", "concat"):
                paths = [layer["body"], layer.get("shortcut") or []] if t == "residual" else layer["branches"]
                built = [seq(path, x) for path in paths]
                module = Residual(*(m for m, _ in built)) if t == "residual" else Concat([m for m, _ in built])
                x = module.join([y for _, y in built])
            else:
                module = leaf(layer, x.shape[1], nd).double().eval()
                x = module(x)
            modules.append(module)
        return nn.Sequential(*modules).eval(), x

    with torch.no_grad():
        return seq(layers, torch.zeros([1, *in_shape], dtype=torch.float64))[0]


def build_graph(nodes: list, in_shape: list, nd: int):
    """A graph spec as a module whose state_dict keys are '<node name>.<param>' (no prefix)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Graph(nn.Module):
        def __init__(self):
            super().__init__()
            self.order = []
            shapes = {"input": [1, *in_shape]}
            with torch.no_grad():
                values = {"input": torch.zeros(shapes["input"], dtype=torch.float64)}
                for i, node in enumerate(nodes):
                    ins = node.get("inputs") or [nodes[i - 1]["name"] if i else "input"]
                    self.order.append((node["name"], node["type"], ins, node.get("dim", 1)))
                    if node["type"] not in ("add", "mul", "concat"):
                        self.add_module(node["name"], leaf(node, values[ins[0]].shape[1], nd).double().eval())
                    values[node["name"]] = self.run(node["name"], node["type"], ins, node.get("dim", 1), values)
            self.output = nodes[-1]["name"]

        def run(self, name, t, ins, dim, values):
            xs = [values[n] for n in ins]
            if t == "add":
                return sum(xs[1:], xs[0])
            if t == "mul":
                out = xs[0]
                for v in xs[1:]:
                    out = out * v
                return out
            if t == "concat":
                return torch.cat(xs, dim=dim)
            return getattr(self, name)(xs[0])

        def forward(self, x):
            values = {"input": x}
            for name, t, ins, dim in self.order:
                values[name] = self.run(name, t, ins, dim, values)
            return values[self.output]

    return Graph().eval()
