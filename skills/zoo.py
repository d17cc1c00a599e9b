"""Reference networks as layer specs (JSON-ready dicts), built exactly like torchvision's models.

Each function returns a fresh list that `shape_calculator` accepts as is. Golden numbers at
[3, 224, 224] (torchvision's model docs, "Params" and "GFLOPS" = GMACs): VGG16 138,357,544 params and
15,470,264,320 MACs; ResNet-50 25,557,032 and 4,089,184,256; MobileNetV2 3,504,872 and 300,774,272.
"""

from __future__ import annotations

VGG16_NOTATION = (
    "conv3-64, conv3-64, maxpool, conv3-128, conv3-128, maxpool, conv3-256, conv3-256, conv3-256, maxpool, "
    "conv3-512, conv3-512, conv3-512, maxpool, conv3-512, conv3-512, conv3-512, maxpool, FC-4096, FC-4096, FC-1000, soft-max"
)
"""VGG16 (configuration D) in the paper's notation (Simonyan & Zisserman 2015, Table 1)."""

_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def conv(out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int | str | None = None, **extra) -> dict:
    """A conv2d layer dict (PyTorch's defaults left out); padding defaults to kernel_size//2 (size-preserving for odd kernels)."""
    layer = {"type": "conv2d", "out_channels": out_channels, "kernel_size": kernel_size}
    if stride != 1:
        layer["stride"] = stride
    padding = kernel_size // 2 if padding is None else padding
    if padding != 0:
        layer["padding"] = padding
    layer.update(extra)
    return layer


def vgg16_features() -> list[dict]:
    """torchvision vgg16().features: 13 conv3x3 (padding 1) + ReLU, 5 max-pools; RF 212, effective stride 32, padding 90."""
    layers: list[dict] = []
    for v in _VGG16_CFG:
        if v == "M":
            layers.append({"type": "maxpool2d", "kernel_size": 2, "stride": 2})
        else:
            layers += [conv(v, 3, padding=1), {"type": "relu", "inplace": True}]
    return layers


def vgg16(num_classes: int = 1000) -> list[dict]:
    """torchvision vgg16(): features, AdaptiveAvgPool2d((7, 7)), flatten, classifier with dropout."""
    return vgg16_features() + [
        {"type": "adaptiveavgpool2d", "output_size": [7, 7]},
        {"type": "flatten"},
        {"type": "linear", "out_features": 4096},
        {"type": "relu", "inplace": True},
        {"type": "dropout", "p": 0.5},
        {"type": "linear", "out_features": 4096},
        {"type": "relu", "inplace": True},
        {"type": "dropout", "p": 0.5},
        {"type": "linear", "out_features": num_classes},
    ]


def _bn_relu(relu: str = "relu") -> list[dict]:
    return [{"type": "batchnorm2d"}, {"type": relu, "inplace": True}]


def _bottleneck(inplanes: int, planes: int, stride: int) -> dict:
    width, out = planes, planes * 4
    body = [
        conv(width, 1, bias=False), *_bn_relu(),
        conv(width, 3, stride=stride, padding=1, bias=False), *_bn_relu(),  # torchvision (v1.5): stride on the 3x3
        conv(out, 1, bias=False), {"type": "batchnorm2d"},
    ]
    shortcut = [conv(out, 1, stride=stride, bias=False), {"type": "batchnorm2d"}] if stride != 1 or inplanes != out else []
    return {"type": "residual", "body": body, "shortcut": shortcut}


def resnet50_features() -> list[dict]:
    """torchvision resnet50() up to layer4 (output [2048, 7, 7] at 224)."""
    layers: list[dict] = [
        conv(64, 7, stride=2, padding=3, bias=False), *_bn_relu(),
        {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1},
    ]
    inplanes = 64
    for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for b in range(blocks):
            layers += [_bottleneck(inplanes, planes, stride if b == 0 else 1), {"type": "relu", "inplace": True}]
            inplanes = planes * 4
    return layers


def resnet50(num_classes: int = 1000) -> list[dict]:
    """torchvision resnet50(): Bottleneck blocks [3, 4, 6, 3] as residual layers, then avgpool, flatten, fc."""
    return resnet50_features() + [
        {"type": "adaptiveavgpool2d", "output_size": 1},
        {"type": "flatten"},
        {"type": "linear", "out_features": num_classes},
    ]


def _inverted_residual(inp: int, oup: int, stride: int, expand: int) -> list[dict]:
    hidden = inp * expand
    body: list[dict] = []
    if expand != 1:
        body += [conv(hidden, 1, bias=False), *_bn_relu("relu6")]
    body += [
        conv(hidden, 3, stride=stride, padding=1, groups=hidden, bias=False), *_bn_relu("relu6"),
        conv(oup, 1, bias=False), {"type": "batchnorm2d"},
    ]
    if stride == 1 and inp == oup:
        return [{"type": "residual", "body": body}]
    return body


def mobilenet_v2_features() -> list[dict]:
    """torchvision mobilenet_v2().features (width 1.0): output [1280, 7, 7] at 224."""
    layers: list[dict] = [conv(32, 3, stride=2, padding=1, bias=False), *_bn_relu("relu6")]
    inp = 32
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            layers += _inverted_residual(inp, c, s if i == 0 else 1, t)
            inp = c
    layers += [conv(1280, 1, bias=False), *_bn_relu("relu6")]
    return layers


def mobilenet_v2(num_classes: int = 1000) -> list[dict]:
    """torchvision mobilenet_v2(): features, global average pool, flatten, dropout 0.2, linear."""
    return mobilenet_v2_features() + [
        {"type": "adaptiveavgpool2d", "output_size": 1},
        {"type": "flatten"},
        {"type": "dropout", "p": 0.2},
        {"type": "linear", "out_features": num_classes},
    ]


def lesson_exercise(channels: int = 16) -> list[dict]:
    """The lesson's exercise: four 3x3 convs, strides 1, 2, 1, 2, padding 1 (for a [1, 128, 128] input)."""
    return [conv(channels, 3, stride=s, padding=1) for s in (1, 2, 1, 2)]


def deep_stack(depth: int, channels: int = 16) -> list[dict]:
    """`depth` layers of 3x3 conv (padding 1) alternating with ReLU, for benchmarks of the walk's cost."""
    layers: list[dict] = []
    while len(layers) < depth:
        layers.append(conv(channels, 3, padding=1))
        if len(layers) < depth:
            layers.append({"type": "relu"})
    return layers
