"""The effective receptive field engine (skills.erf): parity with torch autograd, the paper's sqrt(n) law, bad input.

The reference is torch's own input gradient of the same network with the same weights (copied in as a state_dict)
at the same input and output pixel; specs are built by tests/torch_reference.py (2-D) and tests/erf_reference.py
(1-D, 3-D, graphs, padding layers, activations with arguments).
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from skills.erf import axis_measures, effective_receptive_field, erf_job, input_gradient
from skills.errors import ConvError, GeometryError, LimitError, SpecError
from skills.walk import shape_calculator

torch = pytest.importorskip("torch")
import erf_reference  # noqa: E402
import torch_reference  # noqa: E402

# ---------------------------------------------------------------------------------------------------------------
# helpers


def _randomise_buffers(net, seed: int) -> None:
    """BatchNorm running statistics and affine, PReLU slopes: random, so the parity test sees them (defaults are trivial)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.from_numpy(rng.standard_normal(c)))
                m.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, c)))
                if m.affine:
                    m.weight.copy_(torch.from_numpy(rng.standard_normal(c)))
                    m.bias.copy_(torch.from_numpy(rng.standard_normal(c)))
            elif isinstance(m, torch.nn.PReLU):
                m.weight.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, m.weight.numel())))


def _state(net) -> dict:
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def _torch_gradient(net, x: np.ndarray, channel=None):
    """torch's d(probe)/d(x) at the centre pixel (size // 2 per axis) of the output; (gradient, position)."""
    xt = torch.from_numpy(x[None].copy()).requires_grad_()
    y = net(xt)[0]
    position = tuple(s // 2 for s in y.shape[1:])
    probe = y[(slice(None),) + position].sum() if channel is None else y[(channel,) + position]
    probe.backward()
    return xt.grad[0].numpy(), position


def _assert_same(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape
    scale = np.abs(ref).max()
    if scale == 0:
        assert not ours.any()
    else:
        assert np.abs(ours - ref).max() <= 1e-6 * scale, np.abs(ours - ref).max() / scale


def _parity(net, in_shape, seed, channel=None, **network):
    _randomise_buffers(net, seed)
    x = np.random.default_rng(seed + 1000).standard_normal(in_shape)
    ref, position = _torch_gradient(net, x, channel)
    ours = input_gradient(in_shape, weights=_state(net), x=x, output_channel=channel, **network)
    _assert_same(ours, ref)
    assert ref.any(), "a probe that reads nothing tests nothing"
    return position


# ---------------------------------------------------------------------------------------------------------------
# seeded 2-D specs (torch_reference builds them)


def _candidate(rng: random.Random, c: int) -> dict:
    kind = rng.choice(["conv", "conv", "conv", "act", "maxpool", "avgpool", "bn", "residual", "residual", "concat",
                       "convtranspose", "adaptive", "pad"])
    if kind == "conv":
        stride = rng.choice([1, 1, 2, [1, 2]])
        padding = rng.choice([0, 1, 2, [1, 0]] + (["same"] if stride == 1 else []))
        return {"type": "conv2d", "out_channels": rng.choice([1, 2, 3, 4, 6]), "kernel_size": rng.choice([1, 2, 3, 3, 5, [3, 2]]),
                "stride": stride, "dilation": rng.choice([1, 1, 2, 3, [2, 1]]), "padding": padding,
                "groups": rng.choice([1, 1, 2]), "bias": rng.random() < 0.7,
                "padding_mode": rng.choice(["zeros", "zeros", "zeros", "reflect", "replicate", "circular"])}
    if kind == "act":
        return {"type": rng.choice(sorted(torch_reference.ACTIVATIONS))}
    if kind == "maxpool":
        k = rng.choice([2, 3])
        return {"type": "maxpool2d", "kernel_size": k, "stride": rng.choice([None, 1, 2]), "padding": rng.choice([0, 1]),
                "dilation": rng.choice([1, 2]), "ceil_mode": rng.random() < 0.5}
    if kind == "avgpool":
        return {"type": "avgpool2d", "kernel_size": rng.choice([2, 3]), "stride": rng.choice([None, 1, 2]),
                "padding": rng.choice([0, 1]), "ceil_mode": rng.random() < 0.5, "count_include_pad": rng.random() < 0.5}
    if kind == "bn":
        return {"type": "batchnorm2d"}
    if kind == "residual":
        if rng.random() < 0.5:
            d = rng.choice([1, 2])
            body = [{"type": "conv2d", "out_channels": c, "kernel_size": 3, "padding": d, "dilation": d}, {"type": "batchnorm2d"},
                    {"type": "relu"}, {"type": "conv2d", "out_channels": c, "kernel_size": 3, "padding": 1}]
            return {"type": "residual", "body": body, "shortcut": rng.choice([[], [{"type": "conv2d", "out_channels": c, "kernel_size": 1}]])}
        out = rng.choice([2, 4])
        body = [{"type": "conv2d", "out_channels": out, "kernel_size": 3, "stride": 2, "padding": 1}, {"type": "relu"}]
        return {"type": "residual", "body": body, "shortcut": [{"type": "conv2d", "out_channels": out, "kernel_size": 1, "stride": 2}]}
    if kind == "concat":
        return {"type": "concat", "branches": [[{"type": "conv2d", "out_channels": 2, "kernel_size": 1}],
                                               [{"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 2, "dilation": 2}, {"type": "tanh"}],
                                               [{"type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1}]]}
    if kind == "convtranspose":
        return {"type": "convtranspose2d", "out_channels": rng.choice([1, 2, 4]), "kernel_size": rng.choice([2, 3]),
                "stride": rng.choice([1, 2]), "padding": rng.choice([0, 1]), "output_padding": rng.choice([0, 1]),
                "dilation": rng.choice([1, 2]), "groups": rng.choice([1, 2])}
    if kind == "adaptive":
        return {"type": rng.choice(["adaptiveavgpool2d", "adaptivemaxpool2d"]), "output_size": rng.choice([[5, 7], 6, [7, 4]])}
    return {"type": "zeropad2d", "padding": [rng.randint(0, 2) for _ in range(4)]}


def seeded_spec(seed: int) -> tuple[list[int], list[dict]]:
    """A random walkable 2-D spec of 2-6 layers, a conv first, from a seed."""
    rng = random.Random(seed)
    shape = [rng.choice([1, 2, 3, 4]), rng.choice([11, 14, 17]), rng.choice([12, 16, 19])]
    layers: list[dict] = [{"type": "conv2d", "out_channels": rng.choice([2, 3, 4]), "kernel_size": 3, "padding": rng.choice([0, 1])}]
    depth = rng.randint(2, 6)
    for _ in range(200):
        if len(layers) >= depth:
            break
        c = shape_calculator(shape, layers).output_shape[0]
        cand = _candidate(rng, c)
        try:
            out = shape_calculator(shape, layers + [cand]).output_shape
        except ConvError:
            continue
        if min(out[1:]) >= 3:
            layers.append(cand)
    return shape, layers


SEEDS = range(24)


@pytest.mark.parametrize("seed", SEEDS)
def test_erf_equals_torch_autograd_on_seeded_specs(seed):
    shape, layers = seeded_spec(seed)
    torch.manual_seed(seed)
    net = torch_reference.build(layers, shape, dtype="float64")
    _parity(net, shape, seed, layers=layers)


def test_the_seeded_specs_cover_stride_dilation_groups_padding_modes_and_blocks():
    seen = set()

    def visit(layers):
        for layer in layers:
            t = layer["type"]
            seen.add(t)
            for field in ("stride", "dilation"):
                v = layer.get(field) or 1
                if max(v if isinstance(v, list) else [v]) > 1:
                    seen.add(f"{t} {field}")
            if layer.get("groups", 1) > 1:
                seen.add("groups")
            if layer.get("padding_mode", "zeros") != "zeros":
                seen.add("padding_mode")
            if layer.get("ceil_mode"):
                seen.add("ceil_mode")
            for sub in [layer.get("body", []), layer.get("shortcut", []), *layer.get("branches", [])]:
                visit(sub)

    for seed in SEEDS:
        visit(seeded_spec(seed)[1])
    for feature in ("conv2d stride", "conv2d dilation", "maxpool2d dilation", "groups", "padding_mode", "ceil_mode",
                    "residual", "concat", "maxpool2d", "avgpool2d", "batchnorm2d", "relu", "convtranspose2d"):
        assert feature in seen, feature


def test_one_output_channel_can_be_probed_instead_of_the_channel_sum():
    layers = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"type": "relu"},
              {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "stride": 2}]
    torch.manual_seed(0)
    net = torch_reference.build(layers, [2, 12, 12], dtype="float64")
    _parity(net, [2, 12, 12], 0, channel=2, layers=layers)


# ---------------------------------------------------------------------------------------------------------------
# 1-D, 3-D, padding layers, activations with arguments, graphs (erf_reference builds them)

ND_SPECS = {
    "1d convs, pools and a residual": (1, [3, 40], [
        {"type": "conv1d", "out_channels": 4, "kernel_size": 5, "stride": 2, "dilation": 2, "padding": 3, "padding_mode": "reflect"},
        {"type": "prelu", "num_parameters": 4},
        {"type": "residual", "body": [{"type": "conv1d", "out_channels": 4, "kernel_size": 3, "padding": "same", "groups": 2},
                                      {"type": "gelu", "approximate": "tanh"}]},
        {"type": "maxpool1d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
        {"type": "batchnorm1d"},
        {"type": "avgpool1d", "kernel_size": 3, "stride": 1, "ceil_mode": True, "count_include_pad": False, "padding": 1},
        {"type": "convtranspose1d", "out_channels": 2, "kernel_size": 3, "stride": 2, "output_padding": 1},
    ]),
    "1d padding layers and adaptive pools": (1, [2, 23], [
        {"type": "reflectionpad1d", "padding": [2, 1]},
        {"type": "conv1d", "out_channels": 3, "kernel_size": 3},
        {"type": "replicationpad1d", "padding": 3},
        {"type": "circularpad1d", "padding": [1, 2]},
        {"type": "constantpad1d", "padding": [2, 0], "value": 0.5},
        {"type": "selu"},
        {"type": "adaptivemaxpool1d", "output_size": 9},
        {"type": "conv1d", "out_channels": 2, "kernel_size": 2},
        {"type": "adaptiveavgpool1d", "output_size": 5},
    ]),
    "3d conv, pools, transposed conv": (3, [2, 9, 10, 11], [
        {"type": "conv3d", "out_channels": 3, "kernel_size": [3, 3, 2], "stride": [1, 2, 1], "dilation": [2, 1, 1], "padding": [2, 1, 0]},
        {"type": "batchnorm3d"},
        {"type": "elu", "alpha": 0.7},
        {"type": "maxpool3d", "kernel_size": 2, "stride": 1, "padding": 1},
        {"type": "conv3d", "out_channels": 4, "kernel_size": 3, "padding": 1, "groups": 1, "padding_mode": "replicate"},
        {"type": "avgpool3d", "kernel_size": 2, "ceil_mode": True, "divisor_override": 3},
        {"type": "convtranspose3d", "out_channels": 2, "kernel_size": 2, "stride": [2, 1, 2], "groups": 2},
    ]),
    "2d padding layers and activations with arguments": (2, [2, 13, 15], [
        {"type": "reflectionpad2d", "padding": [1, 2, 0, 1]},
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3},
        {"type": "celu", "alpha": 1.3},
        {"type": "zeropad2d", "padding": [-1, 2, 1, -2]},
        {"type": "replicationpad2d", "padding": [2, 0, 1, 1]},
        {"type": "softplus", "beta": 2.0, "threshold": 1.0},
        {"type": "circularpad2d", "padding": 1},
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "dilation": 2, "groups": 4},
        {"type": "hardtanh", "min_val": -0.5, "max_val": 0.8},
        {"type": "leakyrelu", "negative_slope": 0.2},
        {"type": "mish"},
        {"type": "avgpool2d", "kernel_size": 3, "stride": 2, "padding": 1, "divisor_override": 5},
        {"type": "hardsigmoid"},
        {"type": "softsign"},
        {"type": "tanhshrink"},
        {"type": "conv2d", "out_channels": 2, "kernel_size": 1},
    ]),
}


@pytest.mark.parametrize("name", ND_SPECS)
def test_erf_equals_torch_autograd_on_1d_3d_and_padding_specs(name):
    nd, shape, layers = ND_SPECS[name]
    torch.manual_seed(7)
    net = erf_reference.build(layers, shape, nd)
    _parity(net, shape, 7, layers=layers)


GRAPH = [
    {"name": "a", "inputs": ["input"], "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"name": "r", "type": "relu"},
    {"name": "b", "inputs": ["input"], "type": "conv2d", "out_channels": 4, "kernel_size": 5, "padding": 4, "dilation": 2},
    {"name": "s", "inputs": ["r", "b"], "type": "add"},
    {"name": "pool", "inputs": ["s"], "type": "adaptiveavgpool2d", "output_size": 1},
    {"name": "gate", "inputs": ["pool"], "type": "sigmoid"},
    {"name": "m", "inputs": ["s", "gate"], "type": "mul"},
    {"name": "c", "inputs": ["m", "a", "a"], "type": "concat"},
    {"name": "w", "inputs": ["c", "c"], "type": "concat", "dim": 3},
    {"name": "out", "type": "conv2d", "out_channels": 2, "kernel_size": 3, "stride": 2},
]


def test_erf_equals_torch_autograd_on_a_graph_with_add_mul_and_concat():
    torch.manual_seed(3)
    net = erf_reference.build_graph(GRAPH, [3, 12, 13], 2)
    _parity(net, [3, 12, 13], 3, graph=GRAPH)


def test_uniform_weights_are_torch_reference_ones_nets():
    # weights="uniform" is what torch_reference.build(ones=True) builds: every weight 1, every bias 0 (BN: 1 / 0, stats 0 / 1)
    layers = [{"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1}, {"type": "batchnorm2d"}, {"type": "relu"},
              {"type": "residual", "body": [{"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 2, "dilation": 2}]},
              {"type": "maxpool2d", "kernel_size": 2}, {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "stride": 2}]
    net = torch_reference.build(layers, [2, 18, 18], dtype="float64", ones=True)
    x = np.random.default_rng(0).standard_normal((2, 18, 18))
    ref, _ = _torch_gradient(net, x)
    _assert_same(input_gradient([2, 18, 18], layers, weights="uniform", x=x), ref)


def test_random_weights_follow_pytorchs_default_init_bounds():
    # nn.ConvNd.reset_parameters: kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias the same;
    # torch computes fan_in from weight.size(1), which for a transposed conv is C_out/groups.
    layers = [{"type": "conv2d", "out_channels": 64, "kernel_size": 3, "groups": 2}, {"type": "relu"},
              {"type": "convtranspose2d", "out_channels": 32, "kernel_size": [2, 3], "groups": 4}]
    job = erf_job([8, 12, 12], layers, weights="random")
    params = job.plan.params("random", np.random.default_rng(0))
    net = torch_reference.build(layers, [8, 12, 12], dtype="float64")
    gain = torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5))
    for p, module in zip([params[0], params[2]], [net[0], net[2]], strict=True):
        fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(module.weight)
        bound = gain * math.sqrt(3.0 / fan_in)
        assert p["weight"].shape == tuple(module.weight.shape)
        assert np.abs(p["weight"]).max() <= bound and np.abs(p["weight"]).max() > 0.98 * bound
        assert np.abs(p["bias"]).max() <= 1 / math.sqrt(fan_in)
        assert abs(np.abs(module.weight.detach().numpy()).max() - bound) < 0.02 * bound  # torch's draws reach the same bound


# ---------------------------------------------------------------------------------------------------------------
# the paper's result


def _uniform_stack(n: int) -> list[dict]:
    return [{"type": "conv2d", "out_channels": 1, "kernel_size": 3, "padding": 1} for _ in range(n)]


def test_uniform_erf_std_grows_like_sqrt_n_and_the_95_percent_width_is_a_shrinking_fraction_of_the_rf():
    # Luo et al. 2016, section 2.2: with uniform weights the ERF is the n-fold convolution of the kernel, a Gaussian
    # whose std grows like sqrt(n), while the theoretical RF grows like n.
    depths = [5, 10, 20, 40]
    reports = [effective_receptive_field([1, 97, 97], _uniform_stack(n)) for n in depths]
    stds = [r.erf_std[0] for r in reports]
    exponent = np.polyfit(np.log(depths), np.log(stds), 1)[0]
    assert abs(exponent - 0.5) <= 0.05
    # exactly: each layer adds an independent uniform step in {-1, 0, 1} (variance 2/3) along each axis
    for n, r in zip(depths, reports, strict=True):
        assert r.erf_std == pytest.approx([math.sqrt(2 * n / 3)] * 2, rel=1e-12)
        assert r.receptive_field == [2 * n + 1] * 2
    fractions = [r.rf_fraction_95[0] for r in reports]
    assert all(a > b for a, b in zip(fractions, fractions[1:], strict=False)), fractions
    assert fractions[-1] < 0.3 < fractions[0]


def test_random_relu_nets_average_gradient_magnitudes_over_samples():
    layers = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"type": "relu"}] * 4
    one = erf_job([2, 21, 21], layers, weights="random", seed=5, samples=1).result()
    four = erf_job([2, 21, 21], layers, weights="random", seed=5, samples=4).result()
    assert four.report.samples == 4 and four.report.forward_pass
    draws = []
    for i in range(4):  # sample i is seed + i: the average of four one-sample maps
        draws.append(erf_job([2, 21, 21], layers, weights="random", seed=5 + i).result().map)
    np.testing.assert_allclose(four.map, np.mean(draws, axis=0), rtol=1e-12)
    np.testing.assert_allclose(one.map, draws[0], rtol=1e-12)
    assert any("one draw" in w for w in one.report.warnings)


def test_a_linear_network_skips_the_forward_pass_and_runs_one_sample_when_every_draw_is_the_same():
    layers = [{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "avgpool2d", "kernel_size": 2},
              {"type": "batchnorm2d"}, {"type": "conv2d", "out_channels": 8, "kernel_size": 3}]
    r = effective_receptive_field([3, 16, 16], layers, samples=10)
    # one pass: 16*16*8*3*9 + 6*6*8*8*9 MACs (shape_calculator's figures), backward only
    assert r.samples == 1 and not r.forward_pass
    assert r.macs == shape_calculator([3, 16, 16], layers).total_macs
    r = effective_receptive_field([3, 16, 16], layers + [{"type": "relu"}], samples=3, weights="random")
    assert r.samples == 3 and r.forward_pass and r.macs == 3 * 2 * shape_calculator([3, 16, 16], layers).total_macs


def test_measures_of_known_maps():
    delta = np.zeros((9, 11))
    delta[4, 6] = 2.0
    [h, w] = axis_measures(delta)
    assert (h["std"], w["std"], h["w95"], w["w50"], w["i95"], h["centre"]) == (0.0, 0.0, 1, 1, [6, 6], 4.0)
    # a binomial(4, 1/2) profile, masses 1 4 6 4 1 (/16), std 1: two pixels hold 10/16 >= 50% (leftmost pair: 4 6);
    # four hold at most 15/16 = 93.75% < 95%, so the 95% window is all five
    line = np.array([0, 1, 4, 6, 4, 1, 0], dtype=float)
    [m] = axis_measures(line)
    assert m["std"] == pytest.approx(1.0) and m["centre"] == pytest.approx(3.0)
    assert (m["w50"], m["i50"]) == (2, [2, 3])
    assert (m["w95"], m["i95"]) == (5, [1, 5])
    assert axis_measures(np.zeros(5)) == [{"std": None, "centre": None, "w50": None, "w95": None, "i50": None, "i95": None}]


def test_the_gradient_lives_inside_the_theoretical_region():
    layers = [{"type": "conv2d", "out_channels": 2, "kernel_size": 5, "stride": 2, "padding": 2}, {"type": "relu"},
              {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "dilation": 3, "padding": 3}]
    r = effective_receptive_field([1, 40, 40], layers, weights="random", samples=3, output_position=[2, 17])
    for (lo, hi), (a, b) in zip(r.input_region, r.gradient.support, strict=True):
        assert lo <= a <= b <= hi
    # 5x5 stride 2 then a 3x3 dilated 3 on the stride-2 map: RF 5 + 6*2 = 17, top(y) = 2*(y - 3) - 2
    assert r.receptive_field == [17, 17] and r.input_region == [[-4, 12], [26, 42]]


# ---------------------------------------------------------------------------------------------------------------
# bad input


def test_a_linear_after_flatten_stops_the_erf_at_the_last_spatial_layer():
    layers = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"type": "relu"},
              {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"}, {"type": "linear", "out_features": 10}]
    r = effective_receptive_field([3, 16, 16], layers, weights="random")
    assert r.at_layer == "2" and r.layer_type == "maxpool2d" and r.output_shape == [4, 8, 8] and r.output_position == [4, 4]
    assert any("stops at the last layer with a spatial output, layer 2 (maxpool2d)" in w for w in r.warnings)
    assert r.erf_std[0] is not None
    # a whole classifier's state_dict is accepted: the linear's keys are noted as unused, the gradient is torch's at layer 2
    torch.manual_seed(1)
    net = torch_reference.build(layers, [3, 16, 16], dtype="float64")
    x = np.random.default_rng(1).standard_normal((3, 16, 16))
    ref, _ = _torch_gradient(net[:3], x)
    out = erf_job([3, 16, 16], layers, weights=_state(net), x=x).result()
    _assert_same(out.gradient, ref)
    assert any("4.weight, 4.bias" in w and "ignored" in w for w in out.report.warnings)


def test_an_unsupported_layer_on_the_path_is_named_with_what_is_supported():
    layers = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "upsample", "scale_factor": 2},
              {"type": "conv2d", "out_channels": 4, "kernel_size": 3}]
    with pytest.raises(SpecError, match=r"layer 1 \(upsample\): the ERF engine has no backward pass for upsample. It supports conv1d"):
        effective_receptive_field([3, 16, 16], layers)
    # ...but a layer after the probed one does not matter
    r = effective_receptive_field([3, 16, 16], layers, at_layer=0)
    assert r.at_layer == "0" and r.receptive_field == [3, 3]
    with pytest.raises(SpecError, match="track_running_stats=false"):
        effective_receptive_field([3, 16, 16], [{"type": "conv2d", "out_channels": 4, "kernel_size": 3},
                                                {"type": "batchnorm2d", "track_running_stats": False}])


def test_an_output_position_outside_the_output_is_an_error_with_the_ranges():
    layers = [{"type": "conv2d", "out_channels": 1, "kernel_size": 3, "stride": 2}]
    with pytest.raises(GeometryError, match=r"output_position \[7, 2\] is outside the output: it is 7x7, so the indices must be H 0..6 and W 0..6"):
        effective_receptive_field([1, 16, 16], layers, output_position=[7, 2])
    with pytest.raises(GeometryError, match=r"output_position must be \[y, x\]"):
        effective_receptive_field([1, 16, 16], layers, output_position=[3])
    with pytest.raises(GeometryError, match="output_channel must be a channel"):
        effective_receptive_field([1, 16, 16], layers, output_channel=1)


def test_an_unknown_weights_name_is_an_error_that_lists_the_choices():
    with pytest.raises(SpecError, match=r"weights must be 'uniform' .*'random' .*got 'unifrom'; did you mean 'uniform'\?"):
        effective_receptive_field([1, 8, 8], _uniform_stack(2), weights="unifrom")


def test_given_weights_are_checked_key_by_key():
    layers = [{"type": "conv2d", "out_channels": 2, "kernel_size": 3}, {"type": "batchnorm2d"}]
    good = {"0.weight": np.ones((2, 1, 3, 3)), "0.bias": [0.0, 0.0], "1.weight": [1.0, 1.0], "1.bias": [0.0, 0.0],
            "1.running_mean": [0.0, 0.0], "1.running_var": [1.0, 1.0], "1.num_batches_tracked": 0}
    r = effective_receptive_field([1, 8, 8], layers, weights=good)
    assert r.weights == "given" and r.mass_width_95 == [3, 3]
    with pytest.raises(SpecError, match=r"weights is missing '1.running_var' \[2\]"):
        effective_receptive_field([1, 8, 8], layers, weights={k: v for k, v in good.items() if k != "1.running_var"})
    with pytest.raises(SpecError, match=r"weights\['0.weight'\] has shape \[2, 1, 3, 2\] but layer 0 \(conv2d\) needs \[2, 1, 3, 3\]"):
        effective_receptive_field([1, 8, 8], layers, weights={**good, "0.weight": np.ones((2, 1, 3, 2))})
    with pytest.raises(SpecError, match=r"weights key '0.wieght' names no parameter of this network; did you mean '0.weight'\?"):
        effective_receptive_field([1, 8, 8], layers, weights={**good, "0.wieght": [1.0]})


def test_work_limits_refuse_before_running_naming_the_limit():
    layers = [{"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1}, {"type": "relu"}] * 3
    macs = shape_calculator([3, 32, 32], layers).total_macs
    with pytest.raises(LimitError, match=rf"needs {2 * 4 * macs:,} multiply-accumulates \(4 samples x {2 * macs:,}, forward \+ backward\), more than max_macs=1,000,000"):
        erf_job([3, 32, 32], layers, weights="random", samples=4, max_macs=1_000_000)
    with pytest.raises(LimitError, match=r"layer 0 \(conv2d\)'s output \[16, 32, 32\] with 16,384 elements, more than max_input_elements=10,000") as info:
        erf_job([3, 32, 32], layers, max_elements=10_000)
    assert info.value.limit == "max_input_elements"
