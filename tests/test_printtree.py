"""print(model) of any module (skills.printtree): parameter_count reads custom modules as their module tree, named by
module path; shape_calculator refuses them naming the module that hides its forward() and the ONNX export line.

The modules are torchvision's architectures rebuilt from torch.nn in the tests (torchvision does not import here),
with torchvision's attribute names, so their print is torchvision's."""

import time
from collections import OrderedDict

import pytest
from mcp import Client

from server.app import build_server
from skills.errors import SpecError
from skills.onnx_file import EXPORT_LINE
from skills.printtree import leaves
from skills.walk import parameter_count, shape_calculator


def torchvision_like():
    """(ResNet-50, VGG16, an inverted residual block), built like torchvision's."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Bottleneck(nn.Module):
        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.layer1, self.layer2 = self._make(64, 3), self._make(128, 4, 2)
            self.layer3, self.layer4 = self._make(256, 6, 2), self._make(512, 3, 2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(2048, 1000)

        def _make(self, planes, blocks, stride=1):
            down = None
            if stride != 1 or self.inplanes != planes * 4:
                down = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
            layers = [Bottleneck(self.inplanes, planes, stride, down)]
            self.inplanes = planes * 4
            return nn.Sequential(*layers, *[Bottleneck(self.inplanes, planes) for _ in range(1, blocks)])

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [], 3
            for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                    c = v
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(nn.Linear(512 * 49, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 4096),
                                            nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000))

    class Conv2dNormActivation(nn.Sequential):  # torchvision.ops.misc's
        pass

    class InvertedResidual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(
                Conv2dNormActivation(nn.Conv2d(16, 96, 1, bias=False), nn.BatchNorm2d(96), nn.ReLU6(inplace=True)),
                Conv2dNormActivation(nn.Conv2d(96, 96, 3, 1, 1, groups=96, bias=False), nn.BatchNorm2d(96), nn.ReLU6(inplace=True)),
                nn.Conv2d(96, 16, 1, bias=False), nn.BatchNorm2d(16))

    return ResNet(), VGG(), InvertedResidual()


def torch_counts(module) -> tuple[int, int]:
    return sum(p.numel() for p in module.parameters()), sum(b.numel() for b in module.buffers())


def test_parameter_count_reads_a_print_with_custom_modules_as_its_module_tree():
    resnet, vgg, block = torchvision_like()
    for module in (resnet, vgg, block):
        report = parameter_count(spec=str(module))
        assert (report.total_params, report.total_buffers) == torch_counts(module)
        assert sum(r.params for r in report.layers) == report.total_params
        assert report.completeness.params.status == "complete"
        names = dict(module.named_modules())
        assert all(r.name in names and not list(names[r.name].children()) for r in report.layers)  # leaves, by module path
    report = parameter_count(spec=str(resnet))
    assert report.total_params == 25_557_032  # torchvision docs
    row = next(r for r in report.layers if r.name == "layer1.0.downsample.0")
    assert (row.type, row.params, row.formula) == ("conv2d", 16_384, "256*64*1*1 = 16,384")
    assert "custom modules (ResNet, Bottleneck) are counted by their printed children" in report.warnings[0]
    assert parameter_count(spec=str(vgg)).total_params == 138_357_544


def test_shape_calculator_refuses_a_custom_module_naming_it_and_the_onnx_export():
    resnet, vgg, block = torchvision_like()
    with pytest.raises(SpecError) as info:
        shape_calculator([3, 224, 224], spec=str(vgg))
    message = str(info.value)
    assert message.startswith("spec line 1: VGG(...) is a custom module (the top-level module)")
    assert EXPORT_LINE in message and "parameter_count reads this text" in message
    nn = pytest.importorskip("torch").nn
    net = nn.Sequential(OrderedDict([("stem", nn.Conv2d(3, 16, 1)), ("block", block)]))
    with pytest.raises(SpecError, match=r"spec line 3: InvertedResidual\(\.\.\.\) is a custom module \(module 'block'\)") as info:
        shape_calculator([3, 32, 32], spec=str(net))
    assert "Conv2dNormActivation x2" in str(info.value)  # the other custom modules in the print


def test_an_unknown_leaf_is_a_row_that_says_it_is_not_counted():
    text = "Net(\n  (conv): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))\n  (drop): StochasticDepth(p=0.1, mode=row)\n  (0-1): 2 x Linear(in_features=8, out_features=8, bias=True)\n)"
    report = parameter_count(spec=text)
    assert [(r.name, r.type, r.params) for r in report.layers] == [
        ("conv", "conv2d", 224), ("drop", "StochasticDepth", 0), ("0", "linear", 72), ("1", "linear", 72)]
    assert report.layers[1].formula == "not counted: StochasticDepth is not a layer the walk knows"
    c = report.completeness.params
    assert (c.status, c.from_node) == ("partial", "drop")
    assert "StochasticDepth" in report.warnings[-1]


def test_rows_of_a_printed_sequential_keep_the_module_names_it_shows():
    nn = pytest.importorskip("torch").nn
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 3)), *[nn.ReLU() for _ in range(3)])
    report = shape_calculator([3, 16, 16], spec=str(net))
    assert [r.name for r in report.layers] == ["0", "1.0", "1.1", "2", "3", "4"]
    assert [r.path for r in report.layers] == ["0", "1", "2", "3", "4", "5"]  # paths stay the walk's indices


def test_a_print_nested_thousands_deep_reads_in_linear_time_with_short_names():
    depth = 20_000
    text = "".join(f"({i % 10}): Block(\n" for i in range(depth)) + "(x): ReLU()\n" * 5000 + ")\n" * depth
    start = time.perf_counter()
    found, custom = leaves(text)
    assert time.perf_counter() - start < 10
    assert len(found) == 5000 and custom == ["Block"] and all(len(leaf.path) <= 200 for leaf in found)
    bomb = "Sequential(\n  (0): 1000000000 x Sequential(\n  )\n  (1): ReLU()\n)"
    assert [leaf.path for leaf in leaves(bomb)[0]] == ["1"]  # an empty module repeated a billion times costs nothing


@pytest.mark.anyio
async def test_the_tools_take_any_print_for_params_and_point_shapes_to_onnx():
    resnet, _, _ = torchvision_like()
    text = str(resnet)
    async with Client(build_server()) as client:
        params = await client.call_tool("parameter_count", {"spec": text})
        shapes = await client.call_tool("shape_calculator", {"input_shape": [3, 224, 224], "spec": text})
    assert params.structured_content["total_params"] == 25_557_032
    assert params.structured_content["layers"][4]["name"] == "layer1.0.conv1"
    assert params.structured_content["completeness"] == {"params": {"status": "complete"}}
    assert shapes.is_error and "ResNet(...) is a custom module (the top-level module)" in shapes.content[0].text
    assert EXPORT_LINE in shapes.content[0].text
