"""The walk against PyTorch: golden networks, random stacks (hypothesis), receptive fields by a gradient probe, errors.

Golden values: torchvision's model docs (Params, GFLOPS = GMACs at 224) for VGG16, ResNet-50 and MobileNetV2;
VGG16's receptive field 212 / stride 32 / padding 90 (Araujo et al., Distill 2019, Table 1). The same nets are
built in plain torch.nn from the specs by tests/torch_reference.py (torchvision does not import beside this torch)
to check params, buffers, shapes and MACs (torch.utils.flop_counter) when torch is present.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch_reference import build

from skills import zoo
from skills.errors import GeometryError, LimitError, SpecError
from skills.spec import validate_layers
from skills.walk import parameter_count, receptive_field, shape_calculator

# ---------------------------------------------------------------- the reference: the spec as torch modules


def torch_totals(layers, input_shape):
    """(output shape, params, buffers, MACs) of the spec run through torch, MACs by torch's FLOP counter / 2."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    net = build(layers, input_shape)
    batched = len(input_shape) == 4
    x = torch.zeros(*input_shape) if batched else torch.zeros(1, *input_shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        y = net.eval()(x)
    y = y if batched else y[0]
    params = sum(p.numel() for p in net.parameters())
    buffers = sum(b.numel() for b in net.buffers())
    return list(y.shape), params, buffers, counter.get_total_flops() // 2


def probe_region(layers, hw, position):
    """Rows and columns of the input that get gradient from output pixel `position` ({top, left, bottom, right})."""
    torch = pytest.importorskip("torch")
    net = build(layers, [1, *hw], dtype="float64", geometry=True)
    x = torch.ones(1, 1, *hw, dtype=torch.float64, requires_grad=True)
    y = net(x)
    y[0, 0, position[0], position[1]].backward()
    seen = x.grad[0, 0] > 0
    rows = seen.any(1).nonzero().flatten().tolist()
    cols = seen.any(0).nonzero().flatten().tolist()
    if not rows:
        return None
    return {"top": rows[0], "left": cols[0], "bottom": rows[-1], "right": cols[-1]}


# ---------------------------------------------------------------- golden networks


@pytest.mark.parametrize(
    "name, build, params, macs",
    [
        # torchvision.models docs: VGG16_Weights.IMAGENET1K_V1 138,357,544 params, 15.47 GFLOPS
        ("vgg16", zoo.vgg16, 138_357_544, 15_470_264_320),
        # ResNet50_Weights.IMAGENET1K_V1: 25,557,032 params, 4.09 GFLOPS
        ("resnet50", zoo.resnet50, 25_557_032, 4_089_184_256),
        # MobileNet_V2_Weights.IMAGENET1K_V1: 3,504,872 params, 0.30 GFLOPS
        ("mobilenet_v2", zoo.mobilenet_v2, 3_504_872, 300_774_272),
    ],
)
def test_reference_networks_match_torchvision_params_and_macs_at_224(name, build, params, macs):
    report = shape_calculator([3, 224, 224], build())
    assert report.output_shape == [1000]
    assert report.total_params == params
    assert report.total_macs == macs
    assert sum(r.params for r in report.layers) == report.total_params
    assert sum(r.macs for r in report.layers) == report.total_macs


@pytest.mark.parametrize("build", [zoo.vgg16, zoo.resnet50, zoo.mobilenet_v2])
def test_reference_networks_built_in_torch_agree_on_shape_params_buffers_and_macs(build):
    pytest.importorskip("torch")
    layers = build()
    report = shape_calculator([1, 3, 224, 224], layers)
    shape, params, buffers, macs = torch_totals(layers, [1, 3, 224, 224])
    assert report.output_shape == shape == [1, 1000]
    assert (report.total_params, report.total_buffers, report.total_macs) == (params, buffers, macs)


def test_vgg16_features_receptive_field_is_212_with_stride_32_and_padding_90():
    # Araujo et al., Distill 2019, Table 1: VGG 16 r = 212, S = 32, P = 90
    report = receptive_field([3, 224, 224], zoo.vgg16_features())
    assert report.output_shape == [512, 7, 7]
    assert report.receptive_field == [212, 212]
    assert report.effective_stride == [32, 32]
    assert report.effective_padding == [90, 90]


def test_vgg16_in_the_papers_notation_is_the_same_network():
    notation = shape_calculator([3, 224, 224], spec=zoo.VGG16_NOTATION)
    assert (notation.total_params, notation.total_macs) == (138_357_544, 15_470_264_320)


@pytest.mark.parametrize(
    "features, rf",
    [(zoo.resnet50_features, 427), (zoo.mobilenet_v2_features, 491), (zoo.vgg16_features, 212)],
)
def test_reference_receptive_fields_agree_with_a_gradient_probe(features, rf):
    # torchvision placement of strides (not TF-slim's); checked by backpropagating from the centre pixel of a
    # large input, where nothing is clipped, on a 1-channel geometry twin of the network
    pytest.importorskip("torch")
    layers = features()
    report = receptive_field([3, 512, 512], layers, output_position=[8, 8])
    assert report.receptive_field == [rf, rf]
    assert report.effective_stride == [32, 32]
    seen = probe_region(layers, (512, 512), (8, 8))
    assert seen == report.input_region.model_dump() == report.input_region_clipped.model_dump()
    assert seen["bottom"] - seen["top"] + 1 == rf


def test_resnet50_stride_two_blocks_keep_their_paths_centred():
    assert shape_calculator([3, 224, 224], zoo.resnet50()).warnings == []


def test_the_lessons_exercise_sizes_and_receptive_fields():
    # lesson "Convolutions from Scratch", exercise 1: 128x128 grayscale, 3x3 convs s=1,2,1,2, p=1;
    # RF_l = RF_{l-1} + (k-1)*J_{l-1}: 3, 5, 9, 13 with J 1, 2, 2, 4 (and the skill's worked example)
    report = shape_calculator([1, 128, 128], zoo.lesson_exercise())
    assert [r.output_shape for r in report.layers] == [[16, 128, 128], [16, 64, 64], [16, 64, 64], [16, 32, 32]]
    assert [r.receptive_field for r in report.layers] == [[3, 3], [5, 5], [9, 9], [13, 13]]
    assert [r.effective_stride for r in report.layers] == [[1, 1], [2, 2], [2, 2], [4, 4]]
    assert [r.params for r in report.layers] == [160, 2320, 2320, 2320]


def test_parameter_count_writes_the_lessons_formula():
    # the lesson: "64 * 3 * 3 * 3 + 64 = 1,792 parameters"
    report = parameter_count([{"type": "conv2d", "in_channels": 3, "out_channels": 64, "kernel_size": 3}])
    assert report.layers[0].formula == "64*3*3*3 + 64 = 1,792"
    assert report.total_params == 1792


def test_batchnorm_params_and_buffers_are_apart():
    report = parameter_count([{"type": "batchnorm2d", "num_features": 64}])
    assert (report.total_params, report.total_buffers) == (128, 129)
    assert report.layers[0].buffers_formula == "2*64 + 1 = 129"
    frozen = parameter_count([{"type": "batchnorm2d", "num_features": 64, "affine": False, "track_running_stats": False}])
    assert (frozen.total_params, frozen.total_buffers) == (0, 0)


def test_parameter_count_infers_channels_from_in_channels_without_input_shape():
    layers = [
        {"type": "conv2d", "in_channels": 3, "out_channels": 8, "kernel_size": 3},
        {"type": "batchnorm2d"},
        {"type": "residual", "body": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}]},
        {"type": "flatten"},
        {"type": "linear", "in_features": 8 * 30 * 30, "out_features": 10},
    ]
    report = parameter_count(layers)
    assert report.total_params == (8 * 27 + 8) + 16 + (8 * 72 + 8) + (10 * 7200 + 10)
    assert report.block_layers[0].path == "2.body.0"


def test_parameter_count_without_input_shape_says_what_is_missing():
    with pytest.raises(SpecError, match=r"layer 0 \(conv2d\): in_channels cannot be inferred.*give input_shape or in_channels"):
        parameter_count([{"type": "conv2d", "out_channels": 8, "kernel_size": 3}])
    with pytest.raises(SpecError, match=r"layer 2 \(linear\): in_features cannot be inferred without input_shape"):
        parameter_count([{"type": "conv2d", "in_channels": 3, "out_channels": 8, "kernel_size": 3}, {"type": "flatten"},
                         {"type": "linear", "out_features": 10}])


def test_batch_axis_passes_through_and_flatten_keeps_it():
    layers = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "flatten"}, {"type": "linear", "out_features": 2}]
    batched = shape_calculator([8, 3, 5, 5], layers)
    single = shape_calculator([3, 5, 5], layers)
    assert [r.output_shape for r in batched.layers] == [[8, 4, 3, 3], [8, 36], [8, 2]]
    assert [r.output_shape for r in single.layers] == [[4, 3, 3], [36], [2]]
    assert batched.total_macs == 8 * single.total_macs


# ---------------------------------------------------------------- corner cases, each checked against torch


CORNERS = {
    "same_even_kernel": ([2, 9, 10], [{"type": "conv2d", "out_channels": 3, "kernel_size": [4, 2], "padding": "same", "dilation": [1, 3]}]),
    "ceil_mode_drops_a_window_in_the_padding": ([1, 5, 5], [{"type": "maxpool2d", "kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True}]),
    "ceil_mode_keeps_a_partial_window": ([1, 6, 7], [{"type": "avgpool2d", "kernel_size": 3, "stride": 2, "ceil_mode": True}]),
    "pool_padding_half_the_kernel": ([1, 7, 7], [{"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}]),
    "reflect_padding_just_below_the_size": ([1, 4, 4], [{"type": "conv2d", "out_channels": 1, "kernel_size": 7, "padding": 3, "padding_mode": "reflect"}]),
    "circular_padding_equal_to_the_size": ([1, 3, 3], [{"type": "conv2d", "out_channels": 1, "kernel_size": 7, "padding": 3, "padding_mode": "circular"}]),
    "depthwise_groups": ([8, 9, 9], [{"type": "conv2d", "out_channels": 16, "kernel_size": 3, "groups": 8, "bias": False}]),
    "transposed_conv": ([4, 5, 7], [{"type": "convtranspose2d", "out_channels": 6, "kernel_size": 3, "stride": [2, 3], "padding": 1, "output_padding": [1, 2], "groups": 2}]),
    "transposed_dilated": ([2, 4, 4], [{"type": "convtranspose2d", "out_channels": 2, "kernel_size": 3, "stride": 2, "dilation": 2, "output_padding": 1}]),
    "adaptive_non_integer": ([3, 10, 7], [{"type": "adaptiveavgpool2d", "output_size": [3, None]}, {"type": "adaptivemaxpool2d", "output_size": 4}]),
    "zeropad_then_crop": ([1, 6, 6], [{"type": "zeropad2d", "padding": [1, 0, 2, 3]}, {"type": "zeropad2d", "padding": [-1, 0, -2, 0]}]),
    "residual_projection": ([4, 8, 8], [{"type": "residual", "body": [{"type": "conv2d", "out_channels": 6, "kernel_size": 3, "stride": 2, "padding": 1}, {"type": "batchnorm2d"}],
                                        "shortcut": [{"type": "conv2d", "out_channels": 6, "kernel_size": 1, "stride": 2}]}]),
    "concat_branches": ([3, 8, 8], [{"type": "concat", "branches": [[{"type": "conv2d", "out_channels": 2, "kernel_size": 1}],
                                                                   [{"type": "conv2d", "out_channels": 5, "kernel_size": 5, "padding": 2}],
                                                                   [{"type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1}]]}]),
}


@pytest.mark.parametrize("case", CORNERS)
def test_corner_cases_match_torch(case):
    input_shape, layers = CORNERS[case]
    report = shape_calculator(input_shape, layers)
    shape, params, buffers, macs = torch_totals(layers, input_shape)
    assert report.output_shape == shape
    assert (report.total_params, report.total_buffers, report.total_macs) == (params, buffers, macs)


def test_same_padding_with_an_even_kernel_puts_the_extra_pixel_bottom_right():
    report = receptive_field([1, 8, 8], [{"type": "conv2d", "out_channels": 1, "kernel_size": 4, "padding": "same"}], output_position=[0, 0])
    assert report.output_shape == [1, 8, 8]
    assert report.effective_padding == [1, 1]  # 3 pixels of padding: 1 top/left, 2 bottom/right
    assert report.input_region.model_dump() == {"top": -1, "left": -1, "bottom": 2, "right": 2}


@pytest.mark.parametrize(
    "layers, message",
    [
        ([{"type": "conv2d", "out_channels": 1, "kernel_size": 3, "stride": 2, "padding": "same"}], "padding='same' is not supported for strided"),
        ([{"type": "conv2d", "out_channels": 1, "kernel_size": 9, "padding": 4, "padding_mode": "reflect"}], "reflect padding must be smaller than the input: padding 4 >= H 4"),
        ([{"type": "conv2d", "out_channels": 1, "kernel_size": 11, "padding": 5, "padding_mode": "circular"}], "circular padding cannot wrap around more than once: padding 5 > H 4"),
        ([{"type": "maxpool2d", "kernel_size": 2, "padding": 2}], "pool padding must be at most half the kernel size"),
        ([{"type": "convtranspose2d", "out_channels": 1, "kernel_size": 3, "stride": 2, "output_padding": 2}], "output_padding must be smaller than either stride or dilation"),
        ([{"type": "conv2d", "out_channels": 4, "kernel_size": 1, "groups": 3}], "groups=3 must divide both channel counts, but not in_channels=1"),
        ([{"type": "conv2d", "out_channels": 1, "kernel_size": 3}, {"type": "conv2d", "out_channels": 1, "kernel_size": 3}],
         r"layer 1 \(conv2d\): kernel spans 3 px \(kernel_size=3, dilation=1\) but the padded input is 2 px"),
    ],
)
def test_what_torch_refuses_is_an_error_naming_the_layer_and_numbers(layers, message):
    torch = pytest.importorskip("torch")
    with pytest.raises(GeometryError, match=message) as info:
        shape_calculator([1, 4, 4], layers)
    assert str(info.value).startswith(f"layer {len(layers) - 1} (")
    with pytest.raises(Exception):  # noqa: B017 - torch raises RuntimeError or ValueError
        build(layers, [1, 4, 4])(torch.zeros(1, 1, 4, 4))


def test_a_kernel_bigger_than_the_map_is_the_contracts_message():
    with pytest.raises(GeometryError) as info:
        shape_calculator([3, 5, 5], [{"type": "relu"}, {"type": "identity"}, {"type": "dropout"},
                                     {"type": "conv2d", "out_channels": 8, "kernel_size": 7}])
    assert str(info.value).startswith("layer 3 (conv2d): kernel spans 7 px (kernel_size=7, dilation=1) but the padded input is 5 px")


def test_channel_mismatch_names_layer_field_and_both_numbers():
    layers = [{"type": "conv2d", "out_channels": 8, "kernel_size": 3}, {"type": "conv2d", "in_channels": 16, "out_channels": 8, "kernel_size": 3}]
    with pytest.raises(SpecError, match=r"layer 1 \(conv2d\): in_channels=16 but its input has 8 channels"):
        shape_calculator([3, 32, 32], layers)
    with pytest.raises(SpecError, match=r"layer 1 \(batchnorm2d\): num_features=4 but its input has 8 channels"):
        shape_calculator([3, 32, 32], [layers[0], {"type": "batchnorm2d", "num_features": 4}])
    with pytest.raises(SpecError, match=r"layer 2 \(linear\): in_features=10 but its input has 7,200 features \(shape \[7200\]\)"):
        shape_calculator([3, 32, 32], [layers[0], {"type": "flatten"}, {"type": "linear", "in_features": 10, "out_features": 2}])


def test_errors_inside_blocks_name_the_path():
    layers = [{"type": "conv2d", "out_channels": 8, "kernel_size": 3},
              {"type": "residual", "body": [{"type": "relu"}, {"type": "conv2d", "out_channels": 8, "kernel_size": 3}]}]
    with pytest.raises(SpecError, match=r"layer 1 \(residual\): body gives \[8, 28, 28\] but shortcut gives \[8, 30, 30\]"):
        shape_calculator([3, 32, 32], layers)
    layers[1]["body"][1]["kernel_size"] = 0
    with pytest.raises(SpecError, match=r"layer 1\.body\.1 \(conv2d\): kernel_size must be an int >= 1 or \[h, w\].*got 0"):
        shape_calculator([3, 32, 32], layers)
    concat = [{"type": "concat", "branches": [[{"type": "identity"}], [{"type": "maxpool2d", "kernel_size": 2}]]}]
    with pytest.raises(SpecError, match=r"layer 0 \(concat\): branch 1 gives \[3, 16, 16\] but branch 0 gives \[3, 32, 32\]"):
        shape_calculator([3, 32, 32], concat)
    deep = [{"type": "residual", "body": [{"type": "concat", "branches": [[{"type": "conv2d", "out_channels": 2, "kernel_size": 99}]]}]}]
    with pytest.raises(GeometryError, match=r"^layer 0\.body\.0\.branches\.0\.0 \(conv2d\): kernel spans 99 px"):
        shape_calculator([3, 32, 32], deep)


def test_unknown_type_and_misplaced_layers_are_clear():
    with pytest.raises(SpecError, match=r"layer 1: unknown type 'conv2dd'; did you mean 'conv2d'"):
        shape_calculator([3, 8, 8], [{"type": "relu"}, {"type": "conv2dd"}])
    with pytest.raises(SpecError, match=r"layer 0 \(linear\): linear needs a flattened input .* add \{\"type\": \"flatten\"\}"):
        shape_calculator([3, 8, 8], [{"type": "linear", "out_features": 3}])
    with pytest.raises(SpecError, match=r"layer 2 \(conv2d\): conv2d needs a \[C, H, W\] map but its input is flattened \(\[192\]\)"):
        shape_calculator([3, 8, 8], [{"type": "flatten"}, {"type": "relu"}, {"type": "conv2d", "out_channels": 1, "kernel_size": 1}])


def test_output_position_outside_the_output_is_an_error():
    with pytest.raises(GeometryError, match=r"output_position \[4, 0\] is outside the output: it is 4x4, so y must be 0\.\.3"):
        receptive_field([1, 8, 8], [{"type": "maxpool2d", "kernel_size": 2}], output_position=[4, 0])


def test_input_region_is_clipped_to_the_pixels_really_read():
    # k=3, s=2, p=0 over 6 pixels gives 2 pixels (reading 0..4: floor drops pixel 5); then k=3, p=1: output 1
    # reads pixels 0..2 of that map, where pixel 2 is padding, so input 5..6 is in the region but never read
    layers = [{"type": "conv2d", "out_channels": 1, "kernel_size": 3, "stride": 2}, {"type": "conv2d", "out_channels": 1, "kernel_size": 3, "padding": 1}]
    report = receptive_field([1, 6, 6], layers, output_position=[1, 1])
    assert report.input_region.model_dump() == {"top": 0, "left": 0, "bottom": 6, "right": 6}
    assert report.input_region_clipped.model_dump() == {"top": 0, "left": 0, "bottom": 4, "right": 4}
    assert report.input_region_clipped.model_dump() == probe_region(layers, (6, 6), (1, 1))


def test_transposed_conv_has_a_fractional_effective_stride_and_exact_regions():
    layers = [{"type": "conv2d", "out_channels": 1, "kernel_size": 2, "stride": 2},
              {"type": "convtranspose2d", "out_channels": 1, "kernel_size": 2, "stride": 2}]
    report = receptive_field([1, 8, 8], layers, output_position=[3, 5])
    assert report.layers[1].effective_stride == [1, 1]
    assert report.receptive_field == [2, 2]  # each output pixel comes from one encoder pixel, which saw 2
    assert report.input_region.model_dump() == {"top": 2, "left": 4, "bottom": 3, "right": 5}
    up = receptive_field([1, 8, 8], [{"type": "convtranspose2d", "out_channels": 1, "kernel_size": 3, "stride": 2}])
    assert up.effective_stride == [0.5, 0.5]
    assert up.receptive_field == [2, 2]


def test_misaligned_paths_are_a_warning():
    layers = [{"type": "residual", "body": [{"type": "conv2d", "out_channels": 1, "kernel_size": 3, "padding": [2, 1]},
                                            {"type": "zeropad2d", "padding": [0, 0, 0, -2]}]}]
    report = receptive_field([1, 8, 8], layers)
    assert len(report.warnings) == 1
    assert "layer 0 (residual): path centres do not line up along H" in report.warnings[0]
    assert report.receptive_field == [3, 3]  # hull of [y-2, y] (body) and [y, y] (identity) along H
    assert report.effective_padding == [2, 1]


def test_limits_name_the_limit():
    with pytest.raises(LimitError, match="max_layers=10") as info:
        shape_calculator([3, 8, 8], zoo.deep_stack(11), max_layers=10)
    assert info.value.limit == "max_layers"
    nested = {"type": "relu"}
    for _ in range(5):
        nested = {"type": "residual", "body": [nested]}
    with pytest.raises(LimitError, match="max_depth=3"):
        shape_calculator([3, 8, 8], [nested], max_depth=3)
    with pytest.raises(LimitError, match="max_spec_chars=5"):
        shape_calculator([3, 8, 8], spec="conv3-64", max_spec_chars=5)


def test_models_and_dicts_walk_alike():
    layers = zoo.mobilenet_v2()
    assert shape_calculator([3, 224, 224], validate_layers(layers)) == shape_calculator([3, 224, 224], layers)


def test_a_ten_thousand_layer_spec_walks_without_recursion():
    report = shape_calculator([4, 16, 16], zoo.deep_stack(10_000, channels=4))
    assert len(report.layers) == 10_000 and report.receptive_field == [10_001, 10_001]


# ---------------------------------------------------------------- property-based parity with PyTorch


@st.composite
def stacks(draw, probe=False):
    """Random small stacks over a random [C, H, W]; probe=True keeps to what the gradient probe can mirror."""
    c = draw(st.integers(1, 4))
    h, w = draw(st.integers(6, 24)), draw(st.integers(6, 24))
    layers = []
    for _ in range(draw(st.integers(1, 5))):
        layers.append(draw(layer(probe)))
    if not probe and draw(st.booleans()):
        layers += [{"type": "flatten"}, {"type": "linear", "out_features": draw(st.integers(1, 5))}]
    return [c, h, w], layers


def ints(lo, hi):
    return st.one_of(st.integers(lo, hi), st.lists(st.integers(lo, hi), min_size=2, max_size=2))


@st.composite
def layer(draw, probe):
    kind = draw(st.sampled_from(["conv", "conv", "pool", "transpose", "adaptive", "pad", "residual", "concat", "bn", "act"]))
    if kind == "concat":
        options = [
            [{"type": "conv2d", "out_channels": 2, "kernel_size": 1}],
            [{"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1}, {"type": "relu"}],
            [{"type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1}],
            [{"type": "zeropad2d", "padding": [1, 0, 1, 0]}, {"type": "conv2d", "out_channels": 1, "kernel_size": 2}],
            [{"type": "conv2d", "out_channels": 2, "kernel_size": 3, "dilation": 2, "padding": 2}],
        ]
        picked = draw(st.lists(st.sampled_from(range(len(options))), min_size=1, max_size=3))
        return {"type": "concat", "branches": [options[i] for i in picked]}
    if kind == "conv":
        out = {"type": "conv2d", "out_channels": draw(st.sampled_from([2, 4, 6])), "kernel_size": draw(ints(1, 4)),
               "stride": draw(ints(1, 3)), "dilation": draw(ints(1, 2)), "padding": draw(st.one_of(ints(0, 2), st.just("valid"))),
               "bias": draw(st.booleans())}
        if not probe:
            out["groups"] = draw(st.sampled_from([1, 2]))
            out["padding_mode"] = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
        return out
    if kind == "pool":
        k = draw(st.integers(1, 4))
        pool = {"type": draw(st.sampled_from(["maxpool2d", "avgpool2d"])), "kernel_size": k, "stride": draw(st.integers(1, 3)),
                "padding": draw(st.integers(0, k // 2)), "ceil_mode": draw(st.booleans())}
        if pool["type"] == "maxpool2d" and not probe:
            pool["dilation"] = draw(st.integers(1, 2))
        return pool
    if kind == "transpose":
        s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        return {"type": "convtranspose2d", "out_channels": draw(st.sampled_from([2, 4])), "kernel_size": draw(st.integers(1, 4)),
                "stride": s, "dilation": d, "padding": draw(st.integers(0, 1)), "output_padding": draw(st.integers(0, max(s, d) - 1))}
    if kind == "adaptive":
        return {"type": draw(st.sampled_from(["adaptiveavgpool2d", "adaptivemaxpool2d"])), "output_size": draw(ints(1, 9))}
    if kind == "pad":
        return {"type": "zeropad2d", "padding": draw(st.one_of(st.integers(0, 2), st.lists(st.integers(-1, 2), min_size=4, max_size=4)))}
    if kind == "residual":
        k = draw(st.sampled_from([1, 3, 5]))
        body = [{"type": "conv2d", "out_channels": 4, "kernel_size": k, "padding": k // 2}]
        if draw(st.booleans()):
            body.append({"type": "conv2d", "out_channels": 4, "kernel_size": 3, "dilation": 2, "padding": 2})
        return {"type": "residual", "body": body, "shortcut": [{"type": "conv2d", "out_channels": 4, "kernel_size": 1}]}
    if kind == "bn":
        return {"type": "batchnorm2d", "affine": draw(st.booleans())}
    return {"type": draw(st.sampled_from(["relu", "gelu", "silu", "identity", "dropout", "hardswish"]))}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks())
def test_random_stacks_match_torch_shapes_params_buffers_and_macs_or_both_refuse(case):
    torch = pytest.importorskip("torch")
    input_shape, layers = case
    try:
        report = shape_calculator(input_shape, layers)
    except (GeometryError, SpecError):
        with pytest.raises(Exception):  # noqa: B017 - torch refuses at construction or in forward
            net = build([x for x in layers if x["type"] != "linear"], input_shape)
            net.train()(torch.zeros(1, *input_shape))  # training mode, as this test always ran
        return
    shape, params, buffers, macs = torch_totals(layers, [1, *input_shape])
    assert [1, *report.output_shape] == shape
    assert (report.total_params, report.total_buffers, report.total_macs) == (params, buffers, macs)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks(probe=True), st.data())
def test_random_stacks_input_region_matches_a_gradient_probe(case, data):
    pytest.importorskip("torch")
    input_shape, layers = case
    try:
        report = shape_calculator(input_shape, layers)
    except (GeometryError, SpecError):
        return
    _, h, w = report.output_shape
    y = data.draw(st.integers(0, h - 1))
    x = data.draw(st.integers(0, w - 1))
    rf = receptive_field(input_shape, layers, output_position=[y, x])
    seen = probe_region(layers, input_shape[1:], (y, x))
    clipped = rf.input_region_clipped.model_dump() if rf.input_region_clipped else None
    assert clipped == seen
    if seen is not None:  # the unclipped region holds what is seen, and is no larger than the receptive field
        region = rf.input_region
        assert region.top <= seen["top"] and seen["bottom"] <= region.bottom
        assert region.left <= seen["left"] and seen["right"] <= region.right
        assert region.bottom - region.top + 1 <= rf.receptive_field[0]
        assert region.right - region.left + 1 <= rf.receptive_field[1]


def test_a_dilated_strided_transposed_conv_region_is_the_hull_over_every_tap():
    # found by hypothesis: after ConvTranspose2d(k=3, s=3, d=2) output 7 reads input 1 but output 6 reads input 2,
    # so a window over outputs 6..13 starts at input 1, not at the region of its first pixel
    layers = [{"type": "convtranspose2d", "out_channels": 1, "kernel_size": 3, "stride": 3, "dilation": 2},
              {"type": "adaptiveavgpool2d", "output_size": 3}]
    report = receptive_field([1, 6, 6], layers, output_position=[1, 1])
    assert report.input_region.model_dump() == {"top": 1, "left": 1, "bottom": 4, "right": 4}
    pytest.importorskip("torch")
    assert probe_region(layers, (6, 6), (1, 1)) == report.input_region_clipped.model_dump()


def test_parameter_count_of_a_lone_linear_needs_no_input_shape():
    # nn.Linear(10, 10): 10*10 + 10 = 110 parameters, known from in_features alone.
    report = parameter_count([{"type": "linear", "in_features": 10, "out_features": 10}])
    assert report.total_params == 110
    assert report.layers[0].formula == "10*10 + 10 = 110"
