"""The spec: models with PyTorch's defaults, the printed nn.Sequential form, the VGG paper's notation, and their errors."""

import inspect

import pytest

from skills import zoo
from skills.errors import GeometryError, SpecError
from skills.spec import MODELS, parse_printed, parse_spec, parse_vgg_notation
from skills.walk import parameter_count, shape_calculator

PRINTED = """\
Sequential(
  (0): Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (1): ReLU(inplace=True)
  (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (3): BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
  (4): AdaptiveAvgPool2d(output_size=(7, 7))
  (5): Flatten(start_dim=1, end_dim=-1)
  (6): Linear(in_features=3136, out_features=4096, bias=True)
  (7): Dropout(p=0.5, inplace=False)
)"""


def test_the_printed_lines_of_the_brief_parse_into_layers():
    layers, lines = parse_spec(PRINTED)
    assert [x["type"] for x in layers] == [
        "conv2d", "relu", "maxpool2d", "batchnorm2d", "adaptiveavgpool2d", "flatten", "linear", "dropout"
    ]
    assert layers[0] == {"type": "conv2d", "in_channels": 3, "out_channels": 64, "kernel_size": [3, 3], "stride": [1, 1], "padding": [1, 1]}
    assert lines == [2, 3, 4, 5, 6, 7, 8, 9]
    report = shape_calculator([3, 32, 32], spec=PRINTED)
    # 64*3*3*3 + 64, BatchNorm 2*64, Linear 4096*3136 + 4096
    assert report.total_params == 1792 + 128 + 4096 * 3136 + 4096
    assert report.total_buffers == 129
    assert report.output_shape == [4096]


def test_printed_models_from_torch_walk_like_torch():
    torch = pytest.importorskip("torch")
    from collections import OrderedDict

    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(3, 8, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2), bias=False, padding_mode="reflect"),
        nn.BatchNorm2d(8, affine=False),
        nn.Sequential(OrderedDict(act=nn.LeakyReLU(0.2), pad=nn.ZeroPad2d((1, 0, 2, 1)),
                                  inner=nn.Sequential(nn.Conv2d(8, 8, 4, padding="same", groups=4), nn.GELU(approximate="tanh")))),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
        nn.Conv2d(6, 4, 3, padding="valid", padding_mode="circular"),
        nn.AdaptiveMaxPool2d((None, 3)),
        nn.Hardswish(), nn.SiLU(), nn.ReLU6(), nn.Sigmoid(), nn.Tanh(), nn.Identity(), nn.Dropout2d(0.1),
        nn.Flatten(),
        nn.Linear(4 * 14 * 3, 10, bias=False),
    )
    report = shape_calculator([2, 3, 21, 17], spec=str(model))
    y = model.eval()(torch.zeros(2, 3, 21, 17))
    assert report.output_shape == list(y.shape)
    assert report.total_params == sum(p.numel() for p in model.parameters())
    assert report.total_buffers == sum(b.numel() for b in model.buffers())


def test_the_printed_avgpool_hides_ceil_mode_so_the_walk_says_what_it_assumed():
    text = "Sequential(\n  (0): AvgPool2d(kernel_size=3, stride=2, padding=1)\n)"
    report = shape_calculator([1, 8, 8], spec=text)
    assert any("ceil_mode" in w for w in report.warnings)


def test_repeated_modules_in_a_modulelist_expand():
    text = "ModuleList(\n  (0-2): 3 x Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n  (3): ReLU()\n)"
    layers, lines = parse_printed(text)
    assert [x["type"] for x in layers] == ["conv2d", "conv2d", "conv2d", "relu"]
    assert lines == [2, 2, 2, 3]


def test_a_custom_module_like_basicblock_is_refused_with_the_json_way_out():
    text = """\
Sequential(
  (0): BasicBlock(
    (conv1): Conv2d(64, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
    (relu): ReLU(inplace=True)
  )
)"""
    with pytest.raises(SpecError, match=r"spec line 2: BasicBlock\(\.\.\.\) is a custom module.*\"type\": \"residual\""):
        parse_spec(text)


def test_a_printed_custom_module_from_torch_is_refused_too():
    pytest.importorskip("torch")
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return x + self.conv(x)

    with pytest.raises(SpecError, match="custom module"):
        parse_spec(str(nn.Sequential(Block())))


@pytest.mark.parametrize(
    "text, message",
    [
        ("Sequential(\n  (0): Conv4d(3, 8, kernel_size=(3, 3, 3, 3))\n)", r"spec line 2: unsupported layer Conv4d \(did you mean Conv\dd\?\)"),
        ("Sequential(\n  (0): LPPool2d(norm_type=2, kernel_size=3)\n)", r"spec line 2: unsupported layer LPPool2d"),
        ("Sequential(\n  (0): ReLU()\n", r"spec line 1: the container opened here is never closed"),
        ("Sequential(\n  (0): ReLU()\n)\n)", r"spec line 4: unbalanced '\)'"),
        ("Sequential(\n  (0): Conv2d(3, 8, kernel_size=(3, 3)\n)", r"spec line 2: .*missing its closing|spec line 2: cannot read"),
        ("Sequential(\n)", "spec has no layers"),
    ],
)
def test_bad_printed_text_names_the_line(text, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(text)


def test_walk_errors_on_a_printed_spec_point_at_the_source_line():
    with pytest.raises(SpecError) as info:
        shape_calculator([1, 32, 32], spec=PRINTED)
    text = str(info.value)
    assert text.startswith("layer 0 (conv2d): in_channels=3 but its input has 1 channels")
    assert text.endswith("[spec line 2: (0): Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))]")
    with pytest.raises(GeometryError, match=r"layer 2 \(maxpool2d\): .*\[spec line 4: "):
        shape_calculator([3, 1, 1], spec=PRINTED)


def test_vgg_notation_follows_the_paper():
    # Simonyan & Zisserman 2015: conv<receptive field>-<channels>, stride 1, padding 1 for 3x3, ReLU after every
    # hidden layer, 2x2 max-pool with stride 2; FC-N fully connected
    layers, _ = parse_vgg_notation("conv3-64, conv1-128 maxpool\nFC-10, FC-2, soft-max")
    assert layers == [
        {"type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1},
        {"type": "relu", "inplace": True},
        {"type": "conv2d", "out_channels": 128, "kernel_size": 1, "padding": 0},
        {"type": "relu", "inplace": True},
        {"type": "maxpool2d", "kernel_size": 2, "stride": 2},
        {"type": "flatten"},
        {"type": "linear", "out_features": 10},
        {"type": "relu", "inplace": True},
        {"type": "linear", "out_features": 2},
    ]


def test_vgg16_notation_gives_torchvisions_vgg16_numbers():
    report = shape_calculator([3, 224, 224], spec=zoo.VGG16_NOTATION)
    assert (report.total_params, report.total_macs, report.output_shape) == (138_357_544, 15_470_264_320, [1000])


def test_bad_vgg_token_says_what_is_accepted():
    with pytest.raises(SpecError, match=r"spec line 1: cannot read 'conv3x3'; VGG notation takes convK-C"):
        parse_spec("conv3-64, conv3x3")


def test_spec_models_default_to_pytorchs_constructor_defaults():
    pytest.importorskip("torch")
    from torch import nn

    classes = {"conv2d": nn.Conv2d, "convtranspose2d": nn.ConvTranspose2d, "maxpool2d": nn.MaxPool2d, "avgpool2d": nn.AvgPool2d,
               "batchnorm2d": nn.BatchNorm2d, "relu": nn.ReLU, "relu6": nn.ReLU6, "leakyrelu": nn.LeakyReLU, "gelu": nn.GELU,
               "silu": nn.SiLU, "hardswish": nn.Hardswish, "dropout": nn.Dropout, "flatten": nn.Flatten, "linear": nn.Linear}
    checked = 0
    for name, cls in classes.items():
        params = inspect.signature(cls).parameters
        for field, info in MODELS[name].model_fields.items():
            if field in params and params[field].default is not inspect.Parameter.empty and not info.is_required():
                assert info.default == params[field].default, (name, field)
                checked += 1
    assert checked >= 30


@pytest.mark.parametrize(
    "layers, message",
    [
        ([{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "strides": 2}], r"layer 0 \(conv2d\): unknown field 'strides'; did you mean 'stride'\?"),
        ([{"type": "relu"}, {"out_channels": 3}], r"layer 1: missing 'type'"),
        ([{"type": "relu"}, "conv3-64"], r"layer 1: a layer must be an object with a 'type'"),
        ([{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": "half"}], r"padding must be an int >= 0, \[h, w\] of ints >= 0, 'same' or 'valid', got 'half'"),
        ([{"type": "conv2d", "out_channels": 8, "kernel_size": [3, 3, 3]}], r"kernel_size must be an int >= 1 or \[h, w\] of ints >= 1, got \[3, 3, 3\]"),
        ([{"type": "concat", "branches": [[{"type": "relu"}], [{"type": "maxpool2d"}]]}], r"layer 0\.branches\.1\.0 \(maxpool2d\): missing required field 'kernel_size'"),
        ([{"type": "convtranspose2d", "out_channels": 2, "kernel_size": 2, "padding_mode": "reflect"}], r"layer 0 \(convtranspose2d\): padding_mode"),
    ],
)
def test_invalid_layers_name_index_field_and_value(layers, message):
    # the models check types and ranges; the walk's rules check per-axis lengths (kernel_size [3, 3, 3] on conv2d)
    with pytest.raises(SpecError, match=message):
        parameter_count(layers, input_shape=[3, 8, 8])


def test_a_spec_is_layers_or_text_not_both_nor_neither():
    with pytest.raises(SpecError, match="not both"):
        shape_calculator([3, 8, 8], layers=[{"type": "relu"}], spec="conv3-8")
    with pytest.raises(SpecError, match="give the network as `layers`"):
        shape_calculator([3, 8, 8])
