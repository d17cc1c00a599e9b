"""The memory block (skills.memory) against PyTorch's own counts: every layer's output by forward hooks, the inference
peak by a liveness replay over torch.fx's graph, what autograd saves by saved_tensors_hooks, optimizer state after a
real step, and torchinfo's summary figures; then the options' errors and the tool through the real SDK client.

The references are in tests/memory_reference.py. The batch-32 reference nets run on the meta device (shapes and
storages without data), checked against CPU at batch 1 below.
"""

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from mcp import Client
from memory_reference import batched, build, hook_bytes, optimizer_state_bytes, replay_peak, saved_bytes

from server.app import build_server
from skills import ConvError, OptionError, zoo
from skills.memory import DTYPES, MODEL, MODEL_SHORT, memory
from skills.walk import shape_calculator, walk

REFERENCE = {"VGG16": zoo.vgg16, "ResNet-50": zoo.resnet50, "MobileNetV2": zoo.mobilenet_v2}


def torch_counts(layers, input_shape, *, graph=False, device="cpu", dtype="float32"):
    """(activation bytes, (peak bytes, peak path), saved bytes, params bytes, buffers bytes) of the spec in torch."""
    torch = pytest.importorskip("torch")
    net = build(layers, input_shape, graph=graph).to(device=device, dtype=getattr(torch, dtype))
    x = torch.zeros(batched(input_shape, layers, graph=graph), device=device, dtype=getattr(torch, dtype))
    params = sum(p.numel() * p.element_size() for p in net.parameters())
    buffers = sum(b.numel() * b.element_size() for b in net.buffers())
    return hook_bytes(net, x), replay_peak(net, x), saved_bytes(net, x), params, buffers


def ours(layers, input_shape, *, graph=False, **options):
    report = shape_calculator(input_shape, graph=layers, **options) if graph else shape_calculator(input_shape, layers, **options)
    return report.memory


def assert_matches_torch(layers, input_shape, *, graph=False, device="cpu", dtype="float32"):
    acts, (peak, at), saved, params, buffers = torch_counts(layers, input_shape, graph=graph, device=device, dtype=dtype)
    m = ours(layers, input_shape, graph=graph, dtype=dtype)
    assert (m.activation_bytes, m.inference_peak_bytes, m.saved_for_backward_bytes) == (acts, peak, saved)
    assert (m.params_bytes, m.buffers_bytes) == (params, buffers)
    assert m.inference_peak_at == at
    return m


# ---------------------------------------------------------------- the reference networks


@pytest.mark.parametrize("name", REFERENCE)
def test_reference_nets_at_batch_1_match_torchs_hooks_replay_and_saved_tensors(name):
    assert_matches_torch(REFERENCE[name](), [1, 3, 224, 224])


@pytest.mark.parametrize("name", REFERENCE)
def test_reference_nets_at_batch_32_match_torch_on_the_meta_device(name):
    m = assert_matches_torch(REFERENCE[name](), [32, 3, 224, 224], device="meta")
    assert m.batch_size == 32


def test_the_meta_device_counts_what_the_cpu_counts():
    layers = zoo.mobilenet_v2()
    assert torch_counts(layers, [1, 3, 224, 224], device="meta") == torch_counts(layers, [1, 3, 224, 224])


def test_resnet50_golden_figures():
    # torchinfo 1.8.0's summary of tests/torch_reference.py's ResNet-50 at (1, 3, 224, 224): Input size (MB): 0.60,
    # Forward/backward pass size (MB): 177.83, Params size (MB): 102.23, Estimated Total Size (MB): 280.66
    m = ours(zoo.resnet50(), [3, 224, 224])
    assert (m.torchinfo_input_mb, m.torchinfo_forward_backward_mb, m.torchinfo_params_mb) == (0.602112, 177.831744, 102.228128)
    assert round(m.torchinfo_total_mb, 2) == 280.66
    # torch: 25,557,032 float32 params; 53 BatchNorms of 2C float32 + one int64 each
    assert (m.params_bytes, m.buffers_bytes) == (25_557_032 * 4, (53_173 - 53) * 4 + 53 * 8)


def test_batch_size_sets_n_of_an_unbatched_input():
    given = ours(zoo.resnet50(), [3, 224, 224], batch_size=32, mode="training")
    with_axis = ours(zoo.resnet50(), [32, 3, 224, 224], mode="training")
    assert given.__dict__ == with_axis.__dict__
    one = ours(zoo.resnet50(), [3, 224, 224])
    assert given.activation_bytes == 32 * one.activation_bytes and given.inference_peak_bytes == 32 * one.inference_peak_bytes
    # batch statistics are per channel: what autograd saves is not quite linear in N
    assert given.saved_for_backward_bytes < 32 * ours(zoo.resnet50(), [3, 224, 224], mode="training").saved_for_backward_bytes


# ---------------------------------------------------------------- every layer type


def conv(c=4, k=3, **kw):
    return {"type": "conv2d", "out_channels": c, "kernel_size": k, "padding": k // 2, **kw}


IMG = [2, 3, 8, 8]
CASES = {
    # convolutions: the padded copy that padding_mode and odd 'same' padding make, and what it keeps
    "conv": (IMG, [conv(), conv(bias=False)]),
    "conv reflect": (IMG, [conv(padding_mode="reflect"), conv(padding_mode="replicate"), conv(padding_mode="circular")]),
    "conv reflect no padding": (IMG, [conv(padding=0, padding_mode="reflect"), conv(padding=0, padding_mode="circular")]),
    "conv same": (IMG, [conv(k=4, padding="same"), conv(k=3, padding="same"), conv(k=2, padding="same", dilation=2),
                        conv(k=4, padding="same", padding_mode="reflect"), conv(padding="valid")]),
    "conv groups stride": (IMG, [conv(c=6, stride=2), conv(c=6, groups=3)]),
    "conv1d": ([2, 3, 16], [{"type": "conv1d", "out_channels": 4, "kernel_size": 4, "padding": "same"},
                               {"type": "maxpool1d", "kernel_size": 2}, {"type": "batchnorm1d"}]),
    "conv3d": ([2, 3, 4, 6, 6], [{"type": "conv3d", "out_channels": 2, "kernel_size": 3, "padding": 1},
                                 {"type": "maxpool3d", "kernel_size": 2}, {"type": "batchnorm3d"}, {"type": "relu", "inplace": True}]),
    "transposed": (IMG, [{"type": "convtranspose2d", "out_channels": 2, "kernel_size": 2, "stride": 2},
                         {"type": "convtranspose2d", "out_channels": 2, "kernel_size": 3, "bias": False}]),
    # norms
    "batchnorm": (IMG, [conv(), {"type": "batchnorm2d"}, {"type": "batchnorm2d", "affine": False},
                        {"type": "batchnorm2d", "track_running_stats": False}, {"type": "batchnorm2d", "bias": False}]),
    "batchnorm first without params": (IMG, [{"type": "batchnorm2d", "affine": False}, conv()]),
    "instancenorm": (IMG, [conv(), {"type": "instancenorm2d"}, {"type": "instancenorm2d", "affine": True},
                           {"type": "instancenorm2d", "track_running_stats": True},
                           {"type": "instancenorm2d", "affine": True, "track_running_stats": True}]),
    "groupnorm layernorm": (IMG, [conv(), {"type": "groupnorm", "num_groups": 2}, {"type": "groupnorm", "num_groups": 4, "affine": False},
                                  {"type": "layernorm", "normalized_shape": 8}, {"type": "layernorm", "normalized_shape": [4, 8, 8]},
                                  {"type": "layernorm", "normalized_shape": 8, "bias": False},
                                  {"type": "layernorm", "normalized_shape": 8, "elementwise_affine": False}]),
    # activations, in place or not, after a layer with params (so a gradient flows)
    "activations": (IMG, [conv(), *({"type": t} for t in ("relu", "relu6", "leakyrelu", "gelu", "silu", "sigmoid", "tanh",
                                                          "hardswish", "hardsigmoid", "mish", "selu", "elu", "celu", "softplus",
                                                          "softsign", "tanhshrink", "hardtanh", "identity")),
                          {"type": "gelu", "approximate": "tanh"}, {"type": "prelu"}, {"type": "prelu", "num_parameters": 4}]),
    "activations in place": (IMG, [conv(), *({"type": t, "inplace": True} for t in ("relu", "relu6", "leakyrelu", "silu",
                                                                                    "hardswish", "hardsigmoid", "mish", "selu",
                                                                                    "elu", "celu", "hardtanh"))]),
    "before any params nothing is kept": (IMG, [{"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2}, {"type": "sigmoid"},
                                               {"type": "relu", "inplace": True}, {"type": "softmax", "dim": 1}, conv()]),
    # dropout: the mask in training; the input itself in eval mode
    "dropout": (IMG, [conv(), {"type": "dropout"}, {"type": "dropout", "p": 0.0}, {"type": "dropout", "p": 1.0},
                      {"type": "dropout", "inplace": True}, {"type": "dropout2d"}, {"type": "dropout2d", "inplace": True},
                      {"type": "dropout2d", "p": 0.0}, {"type": "alphadropout"}, {"type": "alphadropout", "inplace": True},
                      {"type": "relu", "inplace": True}, {"type": "flatten"}, {"type": "dropout"}, {"type": "linear", "out_features": 3}]),
    "dropout 1d 3d": ([2, 3, 16], [{"type": "conv1d", "out_channels": 4, "kernel_size": 3}, {"type": "dropout1d"}]),
    "dropout3d": ([2, 3, 4, 6, 6], [{"type": "conv3d", "out_channels": 2, "kernel_size": 1}, {"type": "dropout3d"}]),
    # pooling and resampling
    "pools": (IMG, [conv(), {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
                    {"type": "maxpool2d", "kernel_size": 1, "dilation": 1}, {"type": "avgpool2d", "kernel_size": 2},
                    {"type": "upsample", "scale_factor": 4}, {"type": "adaptiveavgpool2d", "output_size": [None, 3]},
                    {"type": "adaptivemaxpool2d", "output_size": 2}, {"type": "adaptiveavgpool2d", "output_size": 1}]),
    "adaptive to one": (IMG, [conv(), {"type": "adaptivemaxpool2d", "output_size": 1}, {"type": "adaptiveavgpool2d", "output_size": 1}]),
    "upsample": (IMG, [conv(), {"type": "upsample", "scale_factor": 2, "mode": "bilinear"}, {"type": "upsample", "size": 5, "mode": "bicubic"},
                       {"type": "upsample", "scale_factor": 2, "mode": "nearest-exact"}, {"type": "upsample", "size": 4, "mode": "area"},
                       {"type": "upsample", "size": 1, "mode": "area"}]),
    "pads": (IMG, [conv(), {"type": "zeropad2d", "padding": 1}, {"type": "constantpad2d", "padding": [1, 0, 2, 0], "value": 1.5},
                   {"type": "reflectionpad2d", "padding": 1}, {"type": "replicationpad2d", "padding": 2}, {"type": "circularpad2d", "padding": 1},
                   {"type": "zeropad2d", "padding": -1}]),
    "shuffles and softmax": (IMG, [conv(c=8), {"type": "pixelshuffle", "upscale_factor": 2}, {"type": "pixelunshuffle", "downscale_factor": 2},
                                   {"type": "channelshuffle", "groups": 2}, {"type": "softmax", "dim": 1}, {"type": "logsoftmax", "dim": -1},
                                   {"type": "softmin", "dim": 2}]),
    "flatten linear": (IMG, [conv(), {"type": "flatten"}, {"type": "linear", "out_features": 5}, {"type": "batchnorm1d"},
                             {"type": "relu"}, {"type": "linear", "out_features": 12, "bias": False}, {"type": "unflatten", "unflattened_size": [3, 2, 2]},
                             conv(c=2, k=1)]),
    "flat input": ([2, 10], [{"type": "linear", "out_features": 6}, {"type": "tanh"}, {"type": "linear", "out_features": 2}]),
    # blocks
    "residual": (IMG, [conv(), {"type": "residual", "body": [conv(), {"type": "batchnorm2d"}, {"type": "relu", "inplace": True}, conv()]},
                       {"type": "relu", "inplace": True},
                       {"type": "residual", "body": [conv(c=6, stride=2)], "shortcut": [conv(c=6, k=1, stride=2), {"type": "batchnorm2d"}]}]),
    "residual first, identity path": (IMG, [{"type": "residual", "body": [{"type": "relu"}], "shortcut": [conv(c=3)]}, conv()]),
    "nested blocks": (IMG, [conv(), {"type": "residual", "body": [{"type": "residual", "body": [conv(), {"type": "relu"}]}, {"type": "sigmoid"}]},
                            {"type": "concat", "branches": [[conv(c=2)], [{"type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1}],
                                                            [{"type": "concat", "branches": [[conv(c=1)], []]}]]}]),
}


@pytest.mark.parametrize("case", CASES)
def test_every_layer_type_matches_torch(case):
    input_shape, layers = CASES[case]
    assert_matches_torch(layers, input_shape)


GRAPHS = {
    "u-net skip": ([1, 1, 16, 16], [
        {"name": "enc1", "inputs": ["input"], "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"name": "down", "type": "maxpool2d", "kernel_size": 2},
        {"name": "enc2", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"name": "up", "type": "convtranspose2d", "out_channels": 4, "kernel_size": 2, "stride": 2},
        {"name": "skip", "inputs": ["up", "enc1"], "type": "concat"},
        {"name": "head", "type": "conv2d", "out_channels": 2, "kernel_size": 1}]),
    "merges": ([2, 3, 8, 8], [
        {"name": "a", "inputs": ["input"], "type": "conv2d", "out_channels": 3, "kernel_size": 1},
        {"name": "gate", "inputs": ["a"], "type": "adaptiveavgpool2d", "output_size": 1},
        {"name": "scaled", "inputs": ["a", "gate"], "type": "mul"},
        {"name": "masked", "inputs": ["input", "scaled"], "type": "mul"},
        {"name": "three", "inputs": ["scaled", "a", "gate"], "type": "mul"},
        {"name": "raw", "inputs": ["input", "input"], "type": "mul"},
        {"name": "sum", "inputs": ["three", "masked", "a", "raw"], "type": "add"},
        {"name": "unused", "inputs": ["a"], "type": "relu"},
        {"name": "wide", "inputs": ["sum", "a"], "type": "concat", "dim": 2},
        {"name": "out", "inputs": ["wide"], "type": "conv2d", "out_channels": 2, "kernel_size": 1}]),
    "fan-out and in-place": ([2, 3, 8, 8], [
        {"name": "c", "inputs": ["input"], "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"name": "r", "inputs": ["c"], "type": "relu", "inplace": True},
        {"name": "d", "inputs": ["r"], "type": "dropout"},
        {"name": "f", "inputs": ["d"], "type": "flatten"},
        {"name": "p", "inputs": ["r"], "type": "maxpool2d", "kernel_size": 2},
        {"name": "q", "inputs": ["p"], "type": "upsample", "scale_factor": 2},
        {"name": "s", "inputs": ["q", "r"], "type": "add"},
        {"name": "b", "inputs": ["s"], "type": "residual", "body": [{"type": "conv2d", "out_channels": 4, "kernel_size": 1}]}]),
    "a dropout nobody reads": ([1, 4, 16], [
        {"name": "c", "inputs": ["input"], "type": "conv1d", "out_channels": 2, "kernel_size": 3, "padding": 1},
        {"name": "d", "inputs": ["c"], "type": "Dropout1d"},
        {"name": "out", "inputs": ["c"], "type": "conv1d", "out_channels": 2, "kernel_size": 1}]),
}


@pytest.mark.parametrize("case", GRAPHS)
def test_graphs_match_torch(case):
    input_shape, graph = GRAPHS[case]
    assert_matches_torch(graph, input_shape, graph=True)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_matches_torch_in_that_dtype(dtype):
    layers = [conv(c=8), {"type": "batchnorm2d"}, {"type": "relu", "inplace": True}, {"type": "maxpool2d", "kernel_size": 2},
              {"type": "residual", "body": [conv(c=8), {"type": "batchnorm2d"}, {"type": "relu6", "inplace": True}]},
              {"type": "groupnorm", "num_groups": 2}, {"type": "dropout"}, {"type": "flatten"}, {"type": "linear", "out_features": 3}]
    m = assert_matches_torch(layers, [2, 3, 16, 16], dtype=dtype)
    assert m.dtype == dtype


def test_int8_is_one_byte_per_element_and_int64_for_num_batches_tracked():
    f32, i8 = ours(zoo.resnet50(), [3, 224, 224]), ours(zoo.resnet50(), [3, 224, 224], dtype="int8")
    assert (i8.params_bytes, i8.activation_bytes, i8.inference_peak_bytes) == (
        f32.params_bytes // 4, f32.activation_bytes // 4, f32.inference_peak_bytes // 4)
    assert i8.buffers_bytes == (53_173 - 53) + 53 * 8


@pytest.mark.parametrize("optimizer", ["sgd", "sgd_momentum", "adam", "adamw"])
def test_optimizer_state_matches_torchs_after_one_step(optimizer):
    torch = pytest.importorskip("torch")
    layers = [conv(c=4), {"type": "batchnorm2d", "bias": False}, {"type": "prelu"}, {"type": "layernorm", "normalized_shape": 8, "bias": False},
              {"type": "flatten"}, {"type": "linear", "out_features": 3}, {"type": "linear", "out_features": 2, "bias": False}]
    net = build(layers, [2, 3, 8, 8])
    m = ours(layers, [2, 3, 8, 8], mode="training", optimizer=optimizer)
    assert m.optimizer_state_bytes == optimizer_state_bytes(net, torch.randn(2, 3, 8, 8), optimizer)
    assert m.training_bytes == m.params_bytes + m.buffers_bytes + m.gradient_bytes + m.optimizer_state_bytes + m.saved_for_backward_bytes
    assert m.total_bytes == m.training_bytes and m.gradient_bytes == m.params_bytes


# ---------------------------------------------------------------- torchinfo's figures


@pytest.mark.parametrize("name", REFERENCE)
def test_torchinfo_figures_are_torchinfos(name):
    torch = pytest.importorskip("torch")
    torchinfo = pytest.importorskip("torchinfo")
    net = build(REFERENCE[name](), [1, 3, 224, 224])
    x = torch.zeros(1, 3, 224, 224)
    stats = torchinfo.summary(net, input_data=x, verbose=0)
    m = ours(REFERENCE[name](), [3, 224, 224])
    overhead = stats.total_input - x.untyped_storage().nbytes()  # sys.getsizeof of the storage object: a few dozen bytes
    assert 0 <= overhead < 200
    assert (m.input_bytes, round(m.torchinfo_forward_backward_mb * 1e6), round(m.torchinfo_params_mb * 1e6)) == (
        stats.total_input - overhead, stats.total_output_bytes, stats.total_param_bytes)
    printed = str(stats)
    for label, value in (("Forward/backward pass size (MB)", m.torchinfo_forward_backward_mb), ("Params size (MB)", m.torchinfo_params_mb),
                         ("Estimated Total Size (MB)", m.torchinfo_total_mb), ("Input size (MB)", m.torchinfo_input_mb)):
        assert f"{label}: {value:0.2f}" in printed


# ---------------------------------------------------------------- random stacks


@st.composite
def stacks(draw):
    """Random small stacks on [2, C, H, W] from a palette that keeps sizes valid (a stack that shrinks the map too far
    is an error the walk gives; assume() drops it)."""
    c, h = draw(st.integers(1, 4)), draw(st.integers(6, 12))
    palette = [
        conv(c=4), conv(c=4, k=4, padding="same"), conv(c=3, stride=2, padding_mode="reflect"), conv(c=2, k=1, bias=False),
        {"type": "batchnorm2d"}, {"type": "batchnorm2d", "affine": False}, {"type": "relu"}, {"type": "relu", "inplace": True},
        {"type": "relu6", "inplace": True}, {"type": "silu"}, {"type": "sigmoid"}, {"type": "leakyrelu", "inplace": True},
        {"type": "dropout"}, {"type": "dropout", "inplace": True}, {"type": "identity"},
        {"type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1}, {"type": "avgpool2d", "kernel_size": 3, "stride": 1, "padding": 1},
        {"type": "zeropad2d", "padding": 1}, {"type": "reflectionpad2d", "padding": 1},
        {"type": "residual", "body": [conv(c=4), {"type": "relu", "inplace": True}], "shortcut": [conv(c=4, k=1)]},
        {"type": "residual", "body": [{"type": "relu"}, {"type": "tanh"}]},
        {"type": "concat", "branches": [[conv(c=2)], [], [{"type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1}]]},
        {"type": "convtranspose2d", "out_channels": 2, "kernel_size": 2, "stride": 2}, {"type": "maxpool2d", "kernel_size": 2},
        {"type": "upsample", "scale_factor": 2, "mode": "bilinear"}, {"type": "adaptiveavgpool2d", "output_size": 3},
        {"type": "instancenorm2d", "affine": True}, {"type": "prelu"}, {"type": "softmax", "dim": 1},
        {"type": "dropout2d"}, {"type": "hardtanh", "inplace": True},
    ]
    layers = draw(st.lists(st.sampled_from(palette), min_size=1, max_size=7))
    if draw(st.booleans()):
        layers += [{"type": "flatten"}, {"type": "linear", "out_features": 3}]
    return [2, c, h, h], layers


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks())
def test_random_stacks_match_torch(case):
    input_shape, layers = case
    try:
        walk(input_shape, layers)
    except ConvError:
        assume(False)
    assert_matches_torch(layers, input_shape)


# ---------------------------------------------------------------- the definitions, in numbers


def test_activation_bytes_count_every_layer_and_total_activation_bytes_the_top_level_rows():
    report = shape_calculator([3, 224, 224], zoo.resnet50())
    rows = sum(r.activation_bytes for r in report.layers)
    assert report.total_activation_bytes == rows  # unchanged: the top-level rows, float32
    assert report.memory.activation_bytes == rows + sum(r.activation_bytes for r in report.block_layers)


def test_the_peak_counts_live_tensors_once_and_frees_them_after_their_last_reader():
    # [1, 8, 8] -> conv 4ch -> relu in place -> conv 2ch: conv 1 holds the input (64 floats) and its output (256);
    # the relu allocates nothing; conv 2 holds conv 1's output (the input is freed) and its own (128): the peak
    layers = [conv(c=4), {"type": "relu", "inplace": True}, conv(c=2)]
    m = ours(layers, [1, 8, 8])
    assert (m.inference_peak_bytes, m.inference_peak_at) == ((256 + 128) * 4, "2")
    assert m.activation_bytes == (256 + 256 + 128) * 4  # the in-place relu's output counts as an output


def test_the_model_says_what_is_counted_and_what_is_not():
    m = ours(zoo.vgg16(), [3, 224, 224])
    assert m.model == MODEL_SHORT and len(m.model) < 600  # sent with every walk: the whole statement is MODEL
    for words in ("every layer's output", "last consumer", "saved_for_backward_bytes", "Not counted", "workspace",
                  "allocator", "CUDA context", "torchinfo", "1e6"):
        assert words in m.model and words in MODEL


def test_memory_false_leaves_the_block_out_and_the_rest_alike():
    with_block, without = shape_calculator([3, 32, 32], zoo.vgg16()), shape_calculator([3, 32, 32], zoo.vgg16(), memory=False)
    assert without.memory is None and with_block.memory is not None
    assert {k: v for k, v in with_block.__dict__.items() if k != "memory"} == {k: v for k, v in without.__dict__.items() if k != "memory"}


# ---------------------------------------------------------------- bad options


@pytest.mark.parametrize("options, words", [
    ({"dtype": "float64"}, ["dtype 'float64'", "float32, float16, bfloat16, int8"]),
    ({"dtype": "fp16"}, ["dtype 'fp16'", "float32, float16, bfloat16, int8"]),
    ({"mode": "train"}, ["mode 'train'", "inference, training"]),
    ({"mode": "training", "optimizer": "rmsprop"}, ["optimizer 'rmsprop'", "sgd, sgd_momentum, adam, adamw"]),
    ({"optimizer": "adam"}, ["optimizer='adam' is for mode='training'", "mode='training'"]),
    ({"mode": "inference", "optimizer": "sgd"}, ["optimizer='sgd' is for mode='training'"]),
    ({"mode": "training", "dtype": "int8"}, ["int8", "training needs float32, float16 or bfloat16"]),
    ({"batch_size": 0}, ["batch_size must be an int >= 1, got 0"]),
    ({"batch_size": True}, ["batch_size must be an int >= 1, got True"]),
])
def test_bad_options_are_errors_naming_the_value_and_the_choices(options, words):
    with pytest.raises(OptionError) as info:
        shape_calculator([3, 32, 32], zoo.vgg16(), **options)
    for w in words:
        assert w in str(info.value)


def test_a_batch_size_that_disagrees_with_the_input_batch_axis_names_both():
    with pytest.raises(OptionError, match=r"batch_size=4 but input_shape \[8, 3, 32, 32\] has batch axis N=8; give one of them"):
        shape_calculator([8, 3, 32, 32], zoo.vgg16(), batch_size=4)
    assert shape_calculator([8, 3, 32, 32], zoo.vgg16(), batch_size=8).memory.batch_size == 8


def test_memory_of_a_walk_is_the_same_called_directly():
    done = walk([3, 64, 64], zoo.resnet50())
    assert memory(done, "float16", 4, "training", "adam").__dict__ == ours(
        zoo.resnet50(), [3, 64, 64], dtype="float16", batch_size=4, mode="training", optimizer="adam").__dict__
    assert set(DTYPES) == {"float32", "float16", "bfloat16", "int8"}


# ---------------------------------------------------------------- through the protocol


@pytest.mark.anyio
@pytest.mark.parametrize("era", ["auto", "legacy"])
async def test_the_tool_takes_the_options_and_returns_the_memory_block(era):
    async with Client(build_server(), mode=era) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        schema = tools["shape_calculator"].input_schema["properties"]
        assert schema["dtype"]["enum"] == ["float32", "float16", "bfloat16", "int8"] and schema["mode"]["enum"] == ["inference", "training"]
        assert {"batch_size", "optimizer"} <= set(schema)
        assert "memory" in tools["shape_calculator"].output_schema["properties"]
        result = await client.call_tool("shape_calculator", {
            "input_shape": [3, 224, 224], "layers": zoo.resnet50(), "batch_size": 32, "mode": "training", "optimizer": "adam"})
    assert not result.is_error
    m = result.structured_content["memory"]
    expected = ours(zoo.resnet50(), [3, 224, 224], batch_size=32, mode="training", optimizer="adam")
    assert m == expected.model_dump(mode="json")
    assert {"params_bytes", "buffers_bytes", "activation_bytes", "inference_peak_bytes", "training_bytes", "torchinfo_total_mb"} <= set(m)
    text = result.content[0].text
    assert "memory (float32, batch 32, training)" in text and "Estimated Total Size (MB): " in text


@pytest.mark.anyio
@pytest.mark.parametrize("arguments, words", [
    ({"dtype": "float64"}, ["float32", "float16", "bfloat16", "int8"]),
    ({"input_shape": [8, 3, 32, 32], "batch_size": 4}, ["batch_size=4", "N=8"]),
    ({"optimizer": "adam"}, ["optimizer='adam' is for mode='training'"]),
])
async def test_bad_options_are_tool_errors_and_the_server_answers_the_next_call(arguments, words):
    async with Client(build_server()) as client:
        result = await client.call_tool("shape_calculator", {"input_shape": [3, 32, 32], "layers": zoo.vgg16(), **arguments})
        assert result.is_error
        for w in words:
            assert w in result.content[0].text
        again = await client.call_tool("shape_calculator", {"input_shape": [3, 32, 32], "layers": zoo.vgg16()})
        assert not again.is_error and again.structured_content["memory"]["dtype"] == "float32"


def test_the_readmes_memory_example_is_what_the_tool_returns():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    one = ours(zoo.resnet50(), [3, 224, 224])
    many = ours(zoo.resnet50(), [3, 224, 224], batch_size=32, mode="training", optimizer="adam")
    shown = [f"{one.inference_peak_bytes / 1e6:.1f} MB of activations (at `{one.inference_peak_at}`)",
             f"torchinfo estimates {one.torchinfo_total_mb:.2f} MB", f"Adam is {many.training_bytes / 1e6:,.0f} MB",
             f"{many.saved_for_backward_bytes / 1e6:,.0f} MB saved for backward", f"{many.params_bytes / 1e6:.0f} MB each",
             f"{many.optimizer_state_bytes / 1e6:.0f} MB of Adam state", f"torchinfo says {many.torchinfo_total_mb:,.0f} MB"]
    for words in shown:
        assert words in " ".join(readme.split()), words
