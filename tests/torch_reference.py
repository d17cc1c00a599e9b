"""The reference the walk is checked against: a network spec (CONTRACT.md's layer table) as PyTorch modules.

Used by tests/test_walk.py and tests/test_texts.py (`from torch_reference import build`). torch is imported inside
the functions through pytest.importorskip, so collecting those files works, and their torch tests skip, without it.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import pytest

from skills.arithmetic import pair

# shape-preserving layers without parameters (dropout as the identity it is in eval mode)
ACTIVATIONS = {"relu": "ReLU", "relu6": "ReLU6", "leakyrelu": "LeakyReLU", "gelu": "GELU", "silu": "SiLU",
               "sigmoid": "Sigmoid", "tanh": "Tanh", "hardswish": "Hardswish", "dropout": "Identity", "identity": "Identity"}


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


def build(layers: list[Any], in_shape: list[int], *, dtype: str = "float32", geometry: bool = False, ones: bool = False):
    """The spec as an nn.Sequential in eval mode, in `dtype`, built by running zeros of `in_shape` through it layer by
    layer: each layer's in_channels / num_features / in_features are the size of what reaches it (given ones are
    ignored). in_shape: [C, H, W] or [F], or with a batch axis [N, C, H, W] or [N, F]. Layers are dicts or spec models.

    geometry=True: the 1-channel twin for gradient probes: every conv 1 -> 1 channel, groups 1, no bias, zero padding,
    weights 1/(kH*kW); max pools as average pools of the same geometry (a max-pool's gradient reaches one pixel);
    BatchNorm, activations and dropout as identities; concat adds its branches (with one channel the sum sees what
    any branch sees), so the gradient of one output pixel is positive exactly on the input pixels it depends on.
    ones=True: after building, every parameter 1 and every bias 0.
    """
    torch = pytest.importorskip("torch")
    nn = torch.nn
    Residual, Concat = blocks()
    kind = getattr(torch, dtype)

    def leaf(layer, c):
        t, g = layer["type"], layer.get
        if t in ("conv2d", "convtranspose2d"):
            k = pair(layer["kernel_size"], "k")
            cout = 1 if geometry else layer["out_channels"]
            common = dict(stride=pair(g("stride", 1), "s"), dilation=pair(g("dilation", 1), "d"),
                          groups=1 if geometry else g("groups", 1), bias=False if geometry else g("bias", True))
            if t == "conv2d":
                pad = g("padding", 0)
                m = nn.Conv2d(c, cout, k, padding=pad if isinstance(pad, str) else pair(pad, "p"),
                              padding_mode="zeros" if geometry else g("padding_mode", "zeros"), **common)
            else:
                m = nn.ConvTranspose2d(c, cout, k, padding=pair(g("padding", 0), "p"),
                                       output_padding=pair(g("output_padding", 0), "op"), **common)
            if geometry:
                with torch.no_grad():
                    m.weight.fill_(1.0 / (k[0] * k[1]))
            return m
        if t == "maxpool2d" and not geometry:
            return nn.MaxPool2d(pair(layer["kernel_size"], "k"), pair(g("stride") or layer["kernel_size"], "s"),
                                pair(g("padding", 0), "p"), pair(g("dilation", 1), "d"), ceil_mode=g("ceil_mode", False))
        if t in ("maxpool2d", "avgpool2d"):
            assert pair(g("dilation", 1), "d") == (1, 1), "the probe averages, which has no dilation"
            return nn.AvgPool2d(pair(layer["kernel_size"], "k"), pair(g("stride") or layer["kernel_size"], "s"),
                                pair(g("padding", 0), "p"), ceil_mode=g("ceil_mode", False),
                                count_include_pad=g("count_include_pad", True))
        if t in ("adaptiveavgpool2d", "adaptivemaxpool2d"):
            size = layer["output_size"]
            size = tuple(size) if isinstance(size, list) and len(size) == 2 else size[0] if isinstance(size, list) else size
            return nn.AdaptiveMaxPool2d(size) if t == "adaptivemaxpool2d" and not geometry else nn.AdaptiveAvgPool2d(size)
        if t == "zeropad2d":
            p = layer["padding"]
            return nn.ZeroPad2d(tuple(p) if isinstance(p, list) else p)
        if t == "batchnorm2d":
            if geometry:
                return nn.Identity()
            return nn.BatchNorm2d(c, eps=g("eps", 1e-5), momentum=g("momentum", 0.1), affine=g("affine", True),
                                  bias=g("bias", True), track_running_stats=g("track_running_stats", True))
        if t == "flatten":
            return nn.Flatten()
        if t == "linear":
            return nn.Linear(c, layer["out_features"], bias=g("bias", True))
        return nn.Identity() if geometry else getattr(nn, ACTIVATIONS[t])()

    def seq(specs, x):
        """(nn.Sequential of specs, its output for x)."""
        modules = []
        for raw in specs:
            layer = raw if isinstance(raw, dict) else raw.model_dump()
            t = layer["type"]
            if t in ("residual", "concat"):
                paths = [layer["body"], layer.get("shortcut") or []] if t == "residual" else layer["branches"]
                built = [seq(path, x) for path in paths]
                mods = [m for m, _ in built]
                module = Residual(*mods) if t == "residual" else Concat(mods, add=geometry)
                x = module.join([y for _, y in built])
            else:
                module = leaf(layer, x.shape[1]).to(kind).eval()
                x = module(x)
            modules.append(module)
        return nn.Sequential(*modules).eval(), x

    batched = in_shape if len(in_shape) in (2, 4) else [1, *in_shape]  # [N, C, H, W] and [N, F] carry a batch
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", UserWarning)  # padding="same" with an even kernel copies the input
        net = seq(layers, torch.zeros(batched, dtype=kind))[0]
        if ones:
            for name, p in net.named_parameters():
                p.fill_(0.0 if name.endswith("bias") else 1.0)
    return net
