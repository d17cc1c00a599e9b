"""Model files (skills.onnx_file, skills.onnx_model): ONNX's own rules for single ops, parity with PyTorch and
onnx.shape_inference on exported networks, completeness, and files that are not models.

Networks are exported with torch.onnx.export(..., dynamo=False); training=TrainingMode.TRAINING keeps the BatchNorm
nodes (an eval-mode export folds them into the convs). Expected values come from the references: the torch module
(params), onnx.shape_inference (shapes), the walk of the equivalent spec (MACs) and a gradient probe (receptive field).
"""

from __future__ import annotations

import copy
import io
import itertools
import warnings

import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper, shape_inference

from skills import zoo
from skills.errors import ConvError, LimitError, SpecError
from skills.onnx_file import read_base64, read_path, resolve_path, scan
from skills.onnx_model import EXPORT_LINE, analyse, analyse_file, completeness_text
from skills.walk import receptive_field, shape_calculator

# ---------------------------------------------------------------- helpers


def model_bytes(nodes, inputs, outputs, initializers=(), opset=17, **kw) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kw).SerializeToString()


def vi(name, dims, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, dims)


def weight(name, dims, dtype=TensorProto.FLOAT):
    import numpy as np

    return numpy_helper.from_array(np.zeros(dims, dtype=helper.tensor_dtype_to_np_dtype(dtype)), name)


def inferred(data: bytes) -> dict[str, list]:
    """Every tensor's dims by onnx.shape_inference on the file as onnx.load reads it (the reference); large weights
    are handed to it as typed inputs, which is all shape inference reads of them (VGG16's 553 MB would be copied four
    times otherwise)."""
    model = onnx.load_model_from_string(data)
    keep = []
    for t in model.graph.initializer:
        if t.ByteSize() > 1 << 16:
            model.graph.input.append(vi(t.name, list(t.dims), t.data_type))
        else:
            keep.append(t)
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    model = shape_inference.infer_shapes(model, data_prop=True)
    out = {}
    for v in (*model.graph.value_info, *model.graph.output):
        out[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
    return out


def one_op(op: str, in_dims, attrs=None, inits=(), extra_inputs=(), opset=17) -> bytes:
    """A model of one node reading x (and initializers)."""
    node = helper.make_node(op, ["x", *extra_inputs], ["y"], **(attrs or {}))
    return model_bytes([node], [vi("x", in_dims)], [vi("y", None)], inits, opset=opset)


def export(module, shape, *, train=True) -> bytes:
    """torch.onnx.export of module at a zeros input of `shape` (batch axis included), as bytes."""
    torch = pytest.importorskip("torch")
    f = io.BytesIO()
    kwargs = {"training": torch.onnx.TrainingMode.TRAINING} if train else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.zeros(shape), f, dynamo=False, **kwargs)
    return f.getvalue()


def geometry_twin(module):
    """The module's geometric twin for gradient probes, in float64: convs with positive weights and no bias, max pools
    as average pools of the same geometry, normalisation and activations as identities. The gradient of one output
    pixel is then positive exactly on the input pixels it depends on."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    twin = copy.deepcopy(module).double()
    avg = {nn.MaxPool1d: nn.AvgPool1d, nn.MaxPool2d: nn.AvgPool2d, nn.MaxPool3d: nn.AvgPool3d}
    plain = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.ReLU, nn.ReLU6, nn.Dropout, nn.Sigmoid, nn.Hardswish)

    def swap(parent):
        for name, child in parent.named_children():
            if type(child) in avg:
                assert child.dilation in (1, (1,), (1, 1), (1, 1, 1))
                setattr(parent, name, avg[type(child)](child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode))
            elif isinstance(child, plain):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                with torch.no_grad():
                    child.weight.fill_(1.0 / child.weight[0].numel())
                    if child.bias is not None:
                        child.bias.zero_()
            else:
                swap(child)

    swap(twin)
    return twin.eval()


def probe(twin, shape, position) -> list[tuple[int, int]]:
    """Per spatial axis, (first, last) input index that output element `position` (spatial indices) depends on."""
    torch = pytest.importorskip("torch")
    x = torch.ones(shape, dtype=torch.float64, requires_grad=True)
    y = twin(x)
    y[(0, 0, *position)].backward()
    seen = x.grad[0, 0] > 0
    spans = []
    for axis in range(seen.dim()):
        others = tuple(a for a in range(seen.dim()) if a != axis)
        hit = seen.any(dim=others) if others else seen
        idx = hit.nonzero().flatten().tolist()
        spans.append((idx[0], idx[-1]))
    return spans


def region_spans(region) -> list[tuple[int, int]]:
    d = region.model_dump()
    if "start" in d:
        return [(d["start"], d["end"])]
    if "front" in d:
        return [(d["front"], d["back"]), (d["top"], d["bottom"]), (d["left"], d["right"])]
    return [(d["top"], d["bottom"]), (d["left"], d["right"])]


def rows_match_shape_inference(report, data: bytes, module_shapes: dict | None = None) -> int:
    """Every row's output shape equals onnx.shape_inference's for its node's first output, or where shape inference
    cannot tell (a training-mode export computes Pad's pads in a constant subgraph it does not fold), the torch
    module's (`module_shapes`: module path -> output shape, the node named '/path/Op'); returns rows checked."""
    model = onnx.load_model_from_string(data)
    shapes = inferred(data)
    first_output = {n.name: n.output[0] for n in model.graph.node}
    checked = 0
    for row in report.layers:
        want = shapes.get(first_output.get(row.name))
        if (want is None or None in want) and module_shapes is not None:
            want = module_shapes.get(row.name.strip("/").rsplit("/", 1)[0].replace("/", "."))
        if want is not None and None not in want:
            assert row.output_shape == want, (row.name, row.op_type, row.output_shape, want)
            checked += 1
    return checked


def module_output_shapes(net, shape) -> dict[str, list[int]]:
    """Each submodule's output shape in a forward pass of zeros (forward hooks), by module path."""
    torch = pytest.importorskip("torch")
    seen: dict[str, list[int]] = {}

    def hook(name):
        def record(module, args, out):  # returns None: the output is left as it is
            seen.setdefault(name, list(out.shape))

        return record

    hooks = [m.register_forward_hook(hook(name)) for name, m in net.named_modules() if name]
    with torch.no_grad():
        net(torch.zeros(shape))
    for h in hooks:
        h.remove()
    return seen


# ---------------------------------------------------------------- the file framing


def test_the_protobuf_field_numbers_are_onnxs():
    from skills import onnx_file as f

    t = {x.name: x.number for x in TensorProto.DESCRIPTOR.fields}
    assert onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number == f.MODEL_GRAPH
    assert onnx.GraphProto.DESCRIPTOR.fields_by_name["initializer"].number == f.GRAPH_INITIALIZER
    assert (t["dims"], t["data_type"], t["float_data"], t["int32_data"], t["string_data"], t["int64_data"], t["name"],
            t["raw_data"], t["double_data"], t["uint64_data"], t["external_data"], t["data_location"]) == (
        f.T_DIMS, f.T_DATA_TYPE, f.T_FLOAT, f.T_INT32, f.T_STRING, f.T_INT64, f.T_NAME, f.T_RAW, f.T_DOUBLE, f.T_UINT64,
        f.T_EXTERNAL, f.T_LOCATION)


def test_the_scan_keeps_every_node_and_describes_every_initializer_as_onnx_load_reads_them():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 30 * 30, 10))
    data = export(net, [1, 3, 32, 32])
    full = onnx.load_model_from_string(data)
    mf = scan(data)
    assert list(mf.model.graph.node) == list(full.graph.node)
    assert {t.name: (tuple(t.dims), t.data_type) for t in full.graph.initializer} == {
        n: (t.dims, t.dtype) for n, t in mf.tensors.items()}
    big = {t.name for t in full.graph.initializer if t.ByteSize() > 64 * 1024}
    assert big and not big & {t.name for t in mf.model.graph.initializer}  # large payloads are never parsed


# ---------------------------------------------------------------- ONNX's rules, op by op, against onnx.shape_inference


POOLS = [
    # (kernel, stride, pads, ceil_mode, dilation, size): asymmetric pads, ceil windows starting in the padding,
    # padding beyond half the kernel (ONNX allows it, PyTorch does not)
    (k, s, p, c, d, n)
    for k, s, p, c, d, n in itertools.product((1, 2, 3), (1, 2, 3), ([0, 0], [1, 0], [0, 2], [1, 1], [3, 3]), (0, 1), (1, 2), (5, 6, 9))
    if (k - 1) * d + 1 <= n + p[0] + p[1]
]


@pytest.mark.parametrize("k, s, pads, ceil, d, n", POOLS[::3])
def test_pool_sizes_follow_onnx_shape_inference(k, s, pads, ceil, d, n):
    for op in ("MaxPool", "AveragePool"):
        if op == "AveragePool" and d != 1:
            continue
        attrs = {"kernel_shape": [k], "strides": [s], "pads": pads, "ceil_mode": ceil}
        if op == "MaxPool":
            attrs["dilations"] = [d]
        data = one_op(op, [1, 2, n], attrs)
        report = analyse_file("shape_calculator", scan(data))
        assert report.output_shape == inferred(data)["y"], (op, attrs, n)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("k, s, n", [(3, 1, 7), (3, 2, 7), (4, 2, 8), (2, 3, 10), (1, 4, 6), (5, 3, 6)])
def test_auto_pad_gives_onnxs_sizes_and_puts_the_odd_pixel_where_onnx_does(auto_pad, k, s, n):
    data = one_op("Conv", [1, 1, n, n], {"auto_pad": auto_pad, "strides": [s, s]}, [weight("w", [4, 1, k, k])], ["w"])
    report = analyse_file("receptive_field", scan(data))
    assert report.output_shape == inferred(data)["y"]
    out = report.output_shape[2]
    total = max(0, (out - 1) * s + k - n) if auto_pad != "VALID" else 0
    before = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
    assert report.effective_padding == [before, before]  # region of output pixel 0 starts at -padding before
    pool = one_op("MaxPool", [1, 1, n, n], {"auto_pad": auto_pad, "kernel_shape": [k, k], "strides": [s, s]})
    assert analyse_file("shape_calculator", scan(pool)).output_shape == inferred(pool)["y"]


def test_asymmetric_conv_pads_shift_the_region_by_the_leading_pad():
    data = one_op("Conv", [1, 1, 9, 9], {"pads": [2, 0, 0, 1], "strides": [2, 2]}, [weight("w", [1, 1, 3, 3])], ["w"])
    report = analyse_file("receptive_field", scan(data), output_position=[0, 0])
    assert report.output_shape == inferred(data)["y"] == [1, 1, 5, 4]  # H: (9+2+0-3)//2+1, W: (9+0+1-3)//2+1
    assert report.effective_padding == [2, 0]
    assert report.input_region.model_dump() == {"top": -2, "left": 0, "bottom": 0, "right": 2}
    assert report.input_region_clipped.model_dump() == {"top": 0, "left": 0, "bottom": 0, "right": 2}


@pytest.mark.parametrize("attrs, n", [
    ({"strides": [2, 2]}, 5),
    ({"strides": [2, 2], "pads": [1, 0, 0, 1], "output_padding": [1, 1]}, 5),
    ({"strides": [2, 2], "auto_pad": "SAME_UPPER"}, 4),
    ({"strides": [3, 3], "auto_pad": "SAME_LOWER", "dilations": [2, 2]}, 4),
    ({"strides": [2, 2], "output_shape": [9, 10]}, 4),
])
def test_conv_transpose_sizes_follow_onnx_shape_inference(attrs, n):
    data = one_op("ConvTranspose", [1, 2, n, n], {**attrs}, [weight("w", [2, 3, 3, 3])], ["w"])
    report = analyse_file("shape_calculator", scan(data))
    assert report.output_shape == inferred(data)["y"]
    assert report.total_params == 2 * 3 * 3 * 3


@pytest.mark.parametrize("mode, pads, axes", [
    ("constant", [0, 0, 1, 2, 0, 0, 3, 0], None), ("reflect", [0, 0, 1, 1, 0, 0, 2, 0], None),
    ("edge", [0, 0, 0, 2, 0, 0, 1, 0], None), ("wrap", [0, 0, 2, 0, 0, 0, 0, 1], None),
    ("constant", [1, 2, 3, 0], [2, 3]), ("constant", [0, 0, -1, 0, 0, 0, 0, -2], None),
])
def test_pad_maps_onto_the_pytorch_pad_layers(mode, pads, axes):
    import numpy as np

    inits = [numpy_helper.from_array(np.array(pads, dtype=np.int64), "pads")]
    names = ["pads"]
    if axes is not None:
        inits += [numpy_helper.from_array(np.array(0.0, dtype=np.float32), "value"), numpy_helper.from_array(np.array(axes, dtype=np.int64), "axes")]
        names += ["value", "axes"]
    data = one_op("Pad", [1, 2, 6, 7], {"mode": mode}, inits, names, opset=19)
    report = analyse_file("receptive_field", scan(data), output_position=[0, 0])
    assert report.output_shape == inferred(data)["y"]
    assert report.layers[0].type.endswith("pad2d") and report.completeness.receptive_field.status == "complete"
    before_h = pads[2] if axes is None else pads[0]
    assert report.effective_padding[0] == before_h


def test_resize_as_pytorch_exports_upsample_is_walked_and_its_receptive_field_probed():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    for mode, corners in (("nearest", None), ("bilinear", False), ("bilinear", True), ("bicubic", False)):
        net = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.Upsample(scale_factor=2, mode=mode, align_corners=corners))
        data = export(net, [1, 1, 11, 11])
        report = analyse_file("receptive_field", scan(data), output_position=[3, 6])
        assert report.layers[1].type == "upsample" and report.warnings == [], mode
        assert report.output_shape == list(net(torch.zeros(1, 1, 11, 11)).shape)
        assert region_spans(report.input_region_clipped) == probe(geometry_twin(net), [1, 1, 11, 11], (3, 6)), mode


def test_gemm_matmul_flatten_reshape_squeeze_and_unsqueeze_walk_as_linear_flatten_and_unflatten():
    import numpy as np

    shape = numpy_helper.from_array(np.array([1, 4, 2, 3], dtype=np.int64), "shape")
    axes = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
        helper.make_node("Squeeze", ["g", "axes"], ["s"], name="squeeze"),
        helper.make_node("Gemm", ["s", "fc", "fcb"], ["f"], name="fc", transB=1),
        helper.make_node("MatMul", ["f", "mm"], ["m"], name="matmul"),
        helper.make_node("Add", ["m", "bias"], ["a"], name="bias"),
        helper.make_node("Reshape", ["a", "shape"], ["r"], name="reshape"),
        helper.make_node("Unsqueeze", ["r", "axes1"], ["u"], name="unsqueeze"),
        helper.make_node("Flatten", ["r"], ["z"], name="flatten"),
    ]
    inits = [weight("w", [8, 3, 3, 3]), axes, weight("fc", [16, 8]), weight("fcb", [16]), weight("mm", [16, 24]),
             weight("bias", [24]), shape, numpy_helper.from_array(np.array([0], dtype=np.int64), "axes1")]
    data = model_bytes(nodes, [vi("x", [1, 3, 10, 10])], [vi("z", None)], inits)
    report = analyse_file("shape_calculator", scan(data))
    types = {r.name: r.type for r in report.layers}
    assert types == {"conv": "conv2d", "gap": "adaptiveavgpool2d", "squeeze": "flatten", "fc": "linear", "matmul": "linear",
                     "bias": "pointwise", "reshape": "unflatten", "unsqueeze": "opaque", "flatten": "flatten"}
    assert rows_match_shape_inference(report, data) == 9
    by = {r.name: r for r in report.layers}
    assert by["fc"].macs == 8 * 16 and by["matmul"].macs == 16 * 24 and by["bias"].params == 24
    assert report.total_params == 8 * 27 + 16 * 8 + 16 + 16 * 24 + 24
    assert report.completeness.shapes.status == "complete"


def test_the_silu_pattern_and_elementwise_activations_keep_shapes_and_receptive_field():
    import numpy as np

    lo, hi = numpy_helper.from_array(np.array(0.0, np.float32), "lo"), numpy_helper.from_array(np.array(6.0, np.float32), "hi")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c"], ["s"], name="sigmoid"),
        helper.make_node("Mul", ["c", "s"], ["silu"], name="silu"),
        helper.make_node("Clip", ["silu", "lo", "hi"], ["r6"], name="relu6"),
        helper.make_node("HardSwish", ["r6"], ["hs"], name="hardswish"),
        helper.make_node("HardSigmoid", ["hs"], ["hg"], name="hardsigmoid"),
        helper.make_node("LeakyRelu", ["hg"], ["lr"], name="leaky", alpha=0.2),
        helper.make_node("Gelu", ["lr"], ["ge"], name="gelu", approximate="tanh"),
        helper.make_node("Tanh", ["ge"], ["t"], name="tanh"),
        helper.make_node("Dropout", ["t"], ["d"], name="dropout"),
        helper.make_node("Identity", ["d"], ["i"], name="identity"),
        helper.make_node("Relu", ["i"], ["y"], name="relu"),
    ]
    data = model_bytes(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", None)], [weight("w", [4, 3, 3, 3]), lo, hi], opset=20)
    report = analyse_file("shape_calculator", scan(data))
    assert [r.type for r in report.layers] == ["conv2d", "sigmoid", "mul", "relu6", "hardswish", "hardsigmoid", "leakyrelu",
                                               "gelu", "tanh", "dropout", "identity", "relu"]
    assert report.receptive_field == [3, 3] and report.total_params == 4 * 27
    assert all(r.output_shape == [1, 4, 8, 8] for r in report.layers)


# ---------------------------------------------------------------- parity with PyTorch on exported networks


def _bn(): return {"type": "batchnorm2d"}  # noqa: E704
def _relu(): return {"type": "relu", "inplace": True}  # noqa: E704


def resnet18() -> list[dict]:
    """torchvision resnet18() as a layer spec (BasicBlock [2, 2, 2, 2]); torchvision docs: 11,689,512 params."""
    layers = [zoo.conv(64, 7, stride=2, padding=3, bias=False), _bn(), _relu(),
              {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1}]
    inplanes = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for b in range(2):
            s = stride if b == 0 else 1
            body = [zoo.conv(planes, 3, stride=s, padding=1, bias=False), _bn(), _relu(),
                    zoo.conv(planes, 3, padding=1, bias=False), _bn()]
            shortcut = [zoo.conv(planes, 1, stride=s, bias=False), _bn()] if s != 1 or inplanes != planes else []
            layers += [{"type": "residual", "body": body, "shortcut": shortcut}, _relu()]
            inplanes = planes
    return layers + [{"type": "adaptiveavgpool2d", "output_size": 1}, {"type": "flatten"}, {"type": "linear", "out_features": 1000}]


def test_resnet18_spec_is_torchvisions():
    assert shape_calculator([3, 224, 224], resnet18()).total_params == 11_689_512  # torchvision docs


def _check_parity(data: bytes, net, spec_report, features, in_shape, position, *, bn_layers: int, last_map="GlobalAveragePool"):
    """Shapes = onnx.shape_inference's, params = the torch module's, buffers = torch's less num_batches_tracked,
    MACs = the walk of the spec, and the receptive field of one pixel = the gradient probe's."""
    mf = scan(data)
    report = analyse_file("shape_calculator", mf)
    assert rows_match_shape_inference(report, data) >= len(report.layers) // 2
    assert report.total_params == sum(p.numel() for p in net.parameters())
    assert report.total_buffers == sum(b.numel() for b in net.buffers()) - bn_layers  # ONNX holds no num_batches_tracked
    assert report.total_macs == spec_report.total_macs
    assert report.output_shape == spec_report.output_shape
    c = report.completeness
    assert (c.shapes.status, c.params.status, c.macs.status, c.receptive_field.status) == ("complete",) * 4
    assert not [w for w in report.warnings if "onnx.shape_inference gives" in w]
    from torch_reference import build

    pool = next(i for i, r in enumerate(report.layers) if r.op_type == last_map)
    rf = analyse_file("receptive_field", mf, output_position=list(position), at_layer=report.layers[pool - 1].name)
    twin = build(features, in_shape, dtype="float64", geometry=True)
    assert region_spans(rf.input_region_clipped) == probe(twin, in_shape, position)
    return report


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_exported_networks_match_torch_shape_inference_the_spec_and_the_gradient_probe(name):
    pytest.importorskip("torch")
    from torch_reference import build

    spec = resnet18() if name == "resnet18" else zoo.mobilenet_v2()
    features = spec[:-3] if name == "resnet18" else zoo.mobilenet_v2_features()
    net = build(spec, [1, 3, 224, 224])
    data = export(net, [1, 3, 224, 224])
    bns = sum(1 for m in net.modules() if m.__class__.__name__.startswith("BatchNorm"))
    _check_parity(data, net, shape_calculator([1, 3, 224, 224], spec), features, [1, 1, 224, 224], (3, 5), bn_layers=bns)


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    pytest.importorskip("torch")
    from torch_reference import build

    net = build(zoo.resnet50(), [1, 3, 224, 224])
    path = tmp_path_factory.mktemp("models") / "resnet50.onnx"
    path.write_bytes(export(net, [1, 3, 224, 224]))
    return path, net


def test_resnet50_export_matches_torch_and_the_spec(resnet50_file):
    path, net = resnet50_file
    report = _check_parity(path.read_bytes(), net, shape_calculator([1, 3, 224, 224], zoo.resnet50()), zoo.resnet50_features(),
                           [1, 1, 224, 224], (2, 4), bn_layers=53)
    assert report.total_params == 25_557_032 and report.total_macs == 4_089_184_256  # torchvision docs
    read = analyse("parameter_count", str(path), roots=[str(path.parent)])
    assert read.total_params == 25_557_032
    row = next(r for r in read.layers if r.op_type == "BatchNormalization")
    assert (row.params, row.buffers, row.formula) == (128, 128, "'1.weight' 64 + '1.bias' 64 = 128")
    assert row.buffers_formula == "'1.running_mean' 64 + '1.running_var' 64 = 128"


def test_vgg16_export_matches_torch_and_the_spec(tmp_path):
    torch = pytest.importorskip("torch")
    from torch_reference import build

    nn = torch.nn
    init = nn.Linear.reset_parameters, nn.Conv2d.reset_parameters
    nn.Linear.reset_parameters = nn.Conv2d.reset_parameters = lambda self: None  # the values do not matter here
    try:
        net = build(zoo.vgg16(), [1, 3, 224, 224])
    finally:
        nn.Linear.reset_parameters, nn.Conv2d.reset_parameters = init
    data = export(net, [1, 3, 224, 224])
    spec = shape_calculator([1, 3, 224, 224], zoo.vgg16())
    report = _check_parity(data, net, spec, zoo.vgg16_features(), [1, 1, 224, 224], (0, 6), bn_layers=0, last_map="AveragePool")
    assert (report.total_params, report.total_macs) == (138_357_544, 15_470_264_320)  # torchvision docs
    del net
    path = tmp_path / "vgg16.onnx"
    path.write_bytes(data)
    del data
    with pytest.raises(LimitError, match="max_model_bytes=536,870,912"):  # 553 MB: over the default limit
        analyse("shape_calculator", str(path), roots=[str(tmp_path)])
    rf = analyse("receptive_field", str(path), roots=[str(tmp_path)], max_bytes=None, output_position=[0, 6])
    assert rf.input_region_clipped.model_dump() == {"top": 0, "left": 102, "bottom": 121, "right": 223}  # as test_walk_tools


def test_eval_mode_export_reports_the_files_own_params(resnet50_file):
    torch = pytest.importorskip("torch")
    net = copy.deepcopy(resnet50_file[1])
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():  # trained-like statistics: the folded biases differ (identical tensors are stored once)
        for m in bns:
            for t in (m.weight, m.bias, m.running_mean):
                t.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    data = export(net, [1, 3, 224, 224], train=False)
    report = analyse_file("shape_calculator", scan(data))
    # BatchNorm folded into the convs: each conv gains a bias of its C outputs and each BN's 2C params go, so the file
    # holds C fewer params per BatchNorm than the module (26,560 over ResNet-50's 53)
    assert report.total_params == sum(p.numel() for p in net.parameters()) - sum(m.num_features for m in bns)
    zeros = analyse_file("parameter_count", scan(export(resnet50_file[1], [1, 3, 224, 224], train=False)))
    assert zeros.total_params < report.total_params  # untrained: equal zero biases are stored once, counted once
    assert any(r.buffers_formula is None and "shared with" in r.formula for r in zeros.layers)
    assert report.total_buffers == 0 and report.total_macs == 4_089_184_256
    assert not any(r.op_type == "BatchNormalization" for r in report.layers)


class UNet:
    """A small U-Net (two levels, transposed-conv and bilinear upsampling, concatenated skips) and its graph spec."""

    @staticmethod
    def module():
        torch = pytest.importorskip("torch")
        nn = torch.nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.enc1 = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
                self.pool1 = nn.MaxPool2d(2)
                self.enc2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
                self.pool2 = nn.MaxPool2d(2)
                self.mid = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU())
                self.up2 = nn.ConvTranspose2d(32, 16, 2, stride=2)
                self.dec2 = nn.Sequential(nn.Conv2d(32, 16, 3, padding=1), nn.ReLU())
                self.up1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(16, 8, 1))
                self.dec1 = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.ReLU())
                self.head = nn.Conv2d(8, 2, 1)

            def forward(self, x):
                e1 = self.enc1(x)
                e2 = self.enc2(self.pool1(e1))
                m = self.mid(self.pool2(e2))
                d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
                d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
                return self.head(d1)

        return Net().eval()

    GRAPH = [
        {"name": "e1", "inputs": ["input"], "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"name": "e1b", "type": "batchnorm2d"}, {"name": "e1r", "type": "relu"},
        {"name": "p1", "type": "maxpool2d", "kernel_size": 2},
        {"name": "e2", "type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
        {"name": "e2b", "type": "batchnorm2d"}, {"name": "e2r", "type": "relu"},
        {"name": "p2", "type": "maxpool2d", "kernel_size": 2},
        {"name": "m", "type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1}, {"name": "mr", "type": "relu"},
        {"name": "u2", "type": "convtranspose2d", "out_channels": 16, "kernel_size": 2, "stride": 2},
        {"name": "c2", "inputs": ["u2", "e2r"], "type": "concat"},
        {"name": "d2", "type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1}, {"name": "d2r", "type": "relu"},
        {"name": "u1", "type": "upsample", "scale_factor": 2, "mode": "bilinear"},
        {"name": "u1c", "type": "conv2d", "out_channels": 8, "kernel_size": 1},
        {"name": "c1", "inputs": ["u1c", "e1r"], "type": "concat"},
        {"name": "d1", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"name": "d1r", "type": "relu"},
        {"name": "head", "type": "conv2d", "out_channels": 2, "kernel_size": 1},
    ]


def test_a_unet_export_matches_torch_the_graph_spec_and_the_gradient_probe():
    net = UNet.module()
    shape = [1, 1, 32, 32]
    data = export(net, shape)
    mf = scan(data)
    report = analyse_file("shape_calculator", mf)
    spec = shape_calculator(shape, graph=UNet.GRAPH)
    assert rows_match_shape_inference(report, data) == len(report.layers)
    assert report.total_params == sum(p.numel() for p in net.parameters()) == spec.total_params
    assert report.total_macs == spec.total_macs and report.output_shape == spec.output_shape
    assert [r.op_type for r in report.layers].count("Concat") == 2
    twin = geometry_twin(net)
    for position in ((0, 0), (5, 17), (31, 30)):
        rf = analyse_file("receptive_field", mf, output_position=list(position))
        assert region_spans(rf.input_region_clipped) == probe(twin, shape, position), position
    assert rf.receptive_field == receptive_field(shape, graph=UNet.GRAPH).receptive_field


def _nd_nets():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    one = nn.Sequential(
        nn.Conv1d(2, 8, 5, stride=2, padding=2), nn.BatchNorm1d(8), nn.ReLU(), nn.ConstantPad1d((1, 2), 0.0),
        nn.MaxPool1d(3, 2, ceil_mode=True), nn.Conv1d(8, 16, 3, dilation=2, padding=2), nn.ReLU(),
        nn.AvgPool1d(2), nn.Flatten(), nn.Linear(16 * 13, 4),
    )
    one_spec = [
        {"type": "conv1d", "out_channels": 8, "kernel_size": 5, "stride": 2, "padding": 2}, {"type": "batchnorm1d"}, {"type": "relu"},
        {"type": "constantpad1d", "padding": [1, 2]}, {"type": "maxpool1d", "kernel_size": 3, "stride": 2, "ceil_mode": True},
        {"type": "conv1d", "out_channels": 16, "kernel_size": 3, "dilation": 2, "padding": 2}, {"type": "relu"},
        {"type": "avgpool1d", "kernel_size": 2}, {"type": "flatten"}, {"type": "linear", "out_features": 4},
    ]
    three = nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.MaxPool3d(2),
        nn.Conv3d(4, 8, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)), nn.ReLU(),
        nn.ConvTranspose3d(8, 4, 2, stride=2), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 3),
    )
    three_spec = [
        {"type": "conv3d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"type": "batchnorm3d"}, {"type": "relu"},
        {"type": "maxpool3d", "kernel_size": 2},
        {"type": "conv3d", "out_channels": 8, "kernel_size": [1, 3, 3], "stride": [1, 2, 2], "padding": [0, 1, 1]}, {"type": "relu"},
        {"type": "convtranspose3d", "out_channels": 4, "kernel_size": 2, "stride": 2},
        {"type": "adaptiveavgpool3d", "output_size": 1}, {"type": "flatten"}, {"type": "linear", "out_features": 3},
    ]
    return [("1-D", one, one_spec, [1, 2, 100], 7, (5,)), ("3-D", three, three_spec, [1, 1, 8, 16, 16], 6, (1, 2, 3))]


@pytest.mark.parametrize("which", [0, 1], ids=["1-D", "3-D"])
def test_1d_and_3d_exports_match_torch_the_spec_and_the_gradient_probe(which):
    torch = pytest.importorskip("torch")
    _, net, spec, shape, last_map, position = _nd_nets()[which]
    net = net.eval()
    data = export(net, shape)
    mf = scan(data)
    report = analyse_file("shape_calculator", mf)
    walked = shape_calculator(shape, spec)
    assert rows_match_shape_inference(report, data, module_output_shapes(net, shape)) == len(report.layers)
    assert report.total_params == sum(p.numel() for p in net.parameters()) == walked.total_params
    assert report.total_macs == walked.total_macs
    assert report.output_shape == list(net(torch.zeros(shape)).shape)
    features = net[:last_map]
    rf = analyse_file("receptive_field", mf, output_position=list(position), at_layer=report.layers[last_map - 1].name)
    assert region_spans(rf.input_region_clipped) == probe(geometry_twin(features), shape, position)


def test_a_max_pool_that_onnx_and_pytorch_size_differently_is_named():
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.MaxPool2d(2, 2, padding=1, ceil_mode=True))
    data = export(net, [1, 1, 5, 5])
    report = analyse_file("shape_calculator", scan(data))
    assert report.output_shape == inferred(data)[onnx.load_model_from_string(data).graph.output[0].name] == [1, 1, 4, 4]
    assert list(net(torch.zeros(1, 1, 5, 5)).shape) == [1, 1, 3, 3]
    assert any("ONNX keeps it (4 px along axis 2), PyTorch drops it (3 px)" in w for w in report.warnings)


# ---------------------------------------------------------------- inputs: fixed, symbolic, channels-last


def _dynamic_resnet18(tmp_path):
    torch = pytest.importorskip("torch")
    from torch_reference import build

    net = build(resnet18(), [1, 3, 64, 64])
    path = tmp_path / "resnet18_dynamic.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 3, 64, 64), str(path), dynamo=False, input_names=["image"],
                          dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}}, training=torch.onnx.TrainingMode.TRAINING)
    return path


def test_symbolic_dims_are_filled_from_input_shape_or_named_in_the_error(tmp_path):
    path = _dynamic_resnet18(tmp_path)
    roots = [str(tmp_path)]
    with pytest.raises(SpecError) as info:
        analyse("shape_calculator", str(path), roots=roots)
    assert "the model's input 'image' is [N, 3, H, W]: N (axis 0), H (axis 2), W (axis 3) are symbolic" in str(info.value)
    assert "e.g. [1, 3, 224, 224]" in str(info.value)
    report = analyse("shape_calculator", str(path), roots=roots, input_shape=[2, 3, 224, 224])
    fixed = shape_calculator([2, 3, 224, 224], resnet18())
    assert (report.output_shape, report.total_macs, report.total_params) == ([2, 1000], fixed.total_macs, 11_689_512)
    assert report.completeness.shapes.status == "complete"
    with pytest.raises(SpecError, match=r"input_shape\[1\]=4 but the model fixes that axis of 'image' at 3"):
        analyse("shape_calculator", str(path), roots=roots, input_shape=[1, 4, 64, 64])
    with pytest.raises(SpecError, match="has 3 dims but the model's input 'image' is"):
        analyse("shape_calculator", str(path), roots=roots, input_shape=[3, 64, 64])
    params = analyse("parameter_count", str(path), roots=roots)  # params need no input shape
    assert params.total_params == 11_689_512 and params.completeness.params.status == "complete"


def test_a_channels_last_input_transposed_by_the_first_node_is_walked_in_pytorchs_layout():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="to_nchw", perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "w"], ["y"], name="conv", strides=[2, 2], auto_pad="SAME_UPPER")]
    data = model_bytes(nodes, [vi("x", [1, 32, 32, 3])], [vi("y", None)], [weight("w", [8, 3, 3, 3])])
    report = analyse_file("shape_calculator", scan(data))
    assert report.input_shape == [1, 3, 32, 32] and report.output_shape == inferred(data)["y"] == [1, 8, 16, 16]
    assert report.receptive_field == [3, 3] and "channels-last [1, 32, 32, 3]" in report.warnings[0]


# ---------------------------------------------------------------- ops the table does not know


def test_an_unknown_op_continues_through_shape_inference_and_names_the_node_where_the_receptive_field_stops():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("LRN", ["c"], ["l"], name="lrn", size=3),  # an op the table does not map
        helper.make_node("Conv", ["l", "w2"], ["y"], name="conv2"),
    ]
    data = model_bytes(nodes, [vi("x", [1, 3, 16, 16])], [vi("y", None)], [weight("w", [8, 3, 3, 3]), weight("w2", [4, 8, 3, 3])])
    report = analyse_file("shape_calculator", scan(data))
    assert [r.type for r in report.layers] == ["conv2d", "opaque", "conv2d"]
    assert report.layers[1].note == "op LRN is not analysed: its output shape comes from onnx.shape_inference"
    assert report.layers[0].note is None
    assert report.output_shape == inferred(data)["y"] == [1, 4, 12, 12]
    assert report.total_params == 8 * 27 + 4 * 72
    c = report.completeness
    assert (c.shapes.status, c.params.status) == ("complete", "complete")
    assert (c.macs.status, c.macs.from_node) == ("partial", "lrn")
    assert (c.receptive_field.status, c.receptive_field.from_node) == ("partial", "lrn")
    assert "op LRN is not analysed" in c.receptive_field.reason
    assert report.layers[0].receptive_field == [3, 3] and report.layers[2].receptive_field == []
    text = completeness_text(c)
    assert "receptive field partial from node 'lrn'" in text and "shapes complete" in text
    with pytest.raises(ConvError, match="the receptive field is not known at the output"):
        analyse_file("receptive_field", scan(data), output_position=[0, 0])


def test_a_custom_domain_op_is_opaque_and_its_stored_tensors_count_as_params():
    node = helper.make_node("Fancy", ["x", "k"], ["y"], name="fancy", domain="com.example")
    graph = helper.make_graph([node], "g", [vi("x", [1, 3, 8, 8])], [vi("y", None)], [weight("k", [3, 5])])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]).SerializeToString()
    report = analyse_file("shape_calculator", scan(data))
    row = report.layers[0]
    assert (row.type, row.op_type, row.params, row.output_shape) == ("opaque", "com.example.Fancy", 15, [])
    c = report.completeness
    assert (c.shapes.status, c.params.status, c.macs.status) == ("partial", "partial", "partial")


# ---------------------------------------------------------------- files that are not (valid) models


def _tiny() -> bytes:
    return one_op("Relu", [1, 3, 4, 4])


BAD = {
    "empty": (b"", "empty (0 bytes)"),
    "truncated": (None, "the file is truncated"),
    "random bytes": (bytes(range(7, 256, 3)) * 40, "not an ONNX model"),
    "a protobuf that is no model": (numpy_helper.from_array(__import__("numpy").zeros((2, 3), "float32"), "t").SerializeToString(),
                                    "holds no graph"),
    "a cycle": (model_bytes([helper.make_node("Relu", ["b"], ["a"], name="r1"), helper.make_node("Add", ["x", "a"], ["b"], name="add")],
                            [vi("x", [1, 2])], [vi("b", None)]), "the graph has a cycle ('r1' -> 'add' -> 'r1')"),
    "an undeclared op domain": (model_bytes([helper.make_node("Op", ["x"], ["y"], domain="com.unknown")], [vi("x", [1, 2])], [vi("y", None)]),
                                "uses op domain 'com.unknown', which the model does not declare"),
    "a 2 GiB claimed tensor": (None, "claims dims [536870912] of float32 (2,147,483,648 bytes, 2,048.0 MiB) but stores 0 bytes"),
    "a 2 GiB claimed field": (None, "claims 2,147,483,648 bytes but"),
}


def bad_file(name: str) -> bytes:
    data, _ = BAD[name]
    if name == "truncated":
        return _tiny()[:-9]
    if name == "a 2 GiB claimed tensor":
        t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2**29], raw_data=b"")  # helper.make_tensor refuses it
        return model_bytes([helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", [2**29])], [vi("y", None)], [t])
    if name == "a 2 GiB claimed field":  # a graph field (7, length-delimited) whose length says 2 GiB, 16 bytes after it
        return _tiny() + b"\x3a\x80\x80\x80\x80\x08" + b"\x00" * 16
    return data


@pytest.mark.parametrize("name", list(BAD))
def test_bad_files_are_clear_errors(name):
    with pytest.raises(SpecError) as info:
        analyse_file("shape_calculator", scan(bad_file(name))) if name != "empty" else read_base64("")
    assert BAD[name][1] in str(info.value), str(info.value)


def test_base64_and_paths_refuse_oversized_files_before_reading_them(tmp_path):
    import base64

    data = _tiny()
    with pytest.raises(LimitError, match=f"model_base64 is {len(data):,} bytes") as info:
        read_base64(base64.b64encode(data).decode(), max_bytes=10)
    assert info.value.limit == "max_model_bytes"
    (tmp_path / "m.onnx").write_bytes(data)
    with pytest.raises(LimitError, match="more than max_model_bytes=10"):
        read_path("m.onnx", [str(tmp_path)], max_bytes=10)
    with pytest.raises(SpecError, match="not valid base64"):
        read_base64("not base64 at all!")
    assert read_path("m.onnx", [str(tmp_path)]).tensors == {}


def test_paths_must_stay_under_the_allowed_roots(tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    (root / "m.onnx").write_bytes(_tiny())
    (tmp_path / "outside.onnx").write_bytes(_tiny())
    (root / "link.onnx").symlink_to(tmp_path / "outside.onnx")
    (root / "sub").mkdir()
    roots = [str(root)]
    assert resolve_path("m.onnx", roots) == str(root / "m.onnx")
    assert resolve_path(str(root / "m.onnx"), roots) == str(root / "m.onnx")
    for path, message in (
        ("../../etc/passwd", "is outside the directories this server may read"),
        ("/etc/passwd", "is outside the directories this server may read"),
        ("link.onnx", "is a symbolic link that leads outside the directories this server may read"),
        ("../outside.onnx", "is outside the directories"),
        ("sub", "is a directory"),
        ("missing.onnx", "does not exist"),
        ("", "must be the path of an .onnx file"),
    ):
        with pytest.raises(SpecError, match=message):
            resolve_path(path, roots)
    with pytest.raises(SpecError, match="reads no model files by path"):
        resolve_path("m.onnx", [])


def test_the_export_line_is_one_runnable_line():
    torch = pytest.importorskip("torch")
    assert EXPORT_LINE.startswith("torch.onnx.export(model, torch.zeros(1, 3, 224, 224), \"model.onnx\", dynamo=False")
    compile(EXPORT_LINE, "<export>", "eval")
    assert "dynamo" in str(__import__("inspect").signature(torch.onnx.export))


def test_a_file_that_shrinks_while_it_is_read_is_a_truncated_file_not_a_crash(tmp_path):
    import os

    from skills.onnx_file import FileBytes

    path = tmp_path / "m.onnx"
    path.write_bytes(_tiny())
    fd = os.open(path, os.O_RDONLY)
    try:
        claimed = len(_tiny()) + 100  # the size fstat saw before the file was cut short
        with pytest.raises(SpecError, match="is truncated, or shrank while it was read"):
            scan(FileBytes(fd, claimed))
    finally:
        os.close(fd)


def test_external_weights_are_counted_from_their_dims_and_never_opened(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    graph = helper.make_graph(nodes, "g", [vi("x", [1, 3, 32, 32])], [vi("y", None)], [weight("w", [64, 3, 3, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, str(tmp_path / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    (tmp_path / "weights.bin").unlink()  # never read: its absence changes nothing
    report = analyse("shape_calculator", "m.onnx", roots=[str(tmp_path)])
    assert (report.total_params, report.output_shape) == (64 * 27, [1, 64, 30, 30])


def test_initializers_listed_as_graph_inputs_are_weights_not_inputs():
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 3, 8, 8), f, dynamo=False, keep_initializers_as_inputs=True)
    report = analyse_file("shape_calculator", scan(f.getvalue()))
    assert (report.input_shape, report.total_params, report.output_shape) == ([1, 3, 8, 8], 8 * 27 + 8, [1, 8, 6, 6])
    assert not [w for w in report.warnings if "inputs" in w]


def _fuzz_base() -> bytes:
    """A small model with constant subgraphs and most mapped ops: the bytes the fuzz breaks."""
    import numpy as np

    c = numpy_helper.from_array
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], name="bn"),
        helper.make_node("Clip", ["n", "lo", "hi"], ["r"], name="relu6"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("Constant", [], ["four"], value=c(np.array([4], np.int64))),
        helper.make_node("ConstantOfShape", ["four"], ["zeros"], value=c(np.array([0], np.int64))),
        helper.make_node("Concat", ["pp", "zeros"], ["pads"], axis=0),
        helper.make_node("Pad", ["p", "pads"], ["q"], name="pad"),
        helper.make_node("Resize", ["q", "", "scales"], ["u"], name="up", mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        helper.make_node("Shape", ["u"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "zero1"], ["b1"]),
        helper.make_node("Concat", ["b1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["u", "target"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc", transB=1),
    ]
    inits = [weight("w", [4, 3, 3, 3]), weight("b", [4]), weight("s", [4]), weight("m", [4]), weight("v", [4]),
             c(np.array(0.0, np.float32), "lo"), c(np.array(6.0, np.float32), "hi"), c(np.array([0, 0, 1, 0], np.int64), "pp"),
             c(np.array([1, 1, 2, 2], np.float32), "scales"), c(np.array(0, np.int64), "zero"), c(np.array([0], np.int64), "zero1"),
             c(np.array([-1], np.int64), "minus1"), weight("fc", [5, 4 * 10 * 8])]
    return model_bytes(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", None)], inits)


def test_the_fuzz_base_walks_completely():
    data = _fuzz_base()
    report = analyse_file("shape_calculator", scan(data))
    assert report.output_shape == [1, 5] and report.warnings == []  # the Shape -> Gather -> Concat -> Reshape folded
    assert [r.type for r in report.layers] == ["conv2d", "batchnorm2d", "relu6", "maxpool2d", "zeropad2d", "upsample", "flatten", "linear"]
    assert report.completeness.shapes.status == report.completeness.receptive_field.status == "complete"


def test_broken_bytes_give_a_result_or_a_clear_error_never_a_crash():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    base = _fuzz_base()
    edits = st.lists(st.tuples(st.integers(0, len(base) - 1), st.sampled_from(["set", "cut", "insert", "end"]), st.binary(min_size=1, max_size=8)),
                     min_size=1, max_size=4)

    @settings(max_examples=300, deadline=None)
    @given(edits)
    def broken(changes):
        data = bytearray(base)
        for at, how, value in changes:
            at %= max(1, len(data))
            if how == "set":
                data[at:at + len(value)] = value
            elif how == "cut":
                del data[at:at + len(value)]
            elif how == "insert":
                data[at:at] = value
            else:
                del data[at:]
        for tool in ("shape_calculator", "receptive_field", "parameter_count"):
            try:
                analyse_file(tool, scan(bytes(data)), output_position=[0, 0] if tool == "receptive_field" else None)
            except ConvError:
                pass

    broken()


def test_the_erf_engine_takes_conv_pads_and_refuses_onnx_pooling_rather_than_guessing():
    from skills.erf import effective_receptive_field

    padded = effective_receptive_field([1, 9, 9], [{"type": "conv2d", "out_channels": 1, "kernel_size": 3, "stride": 2, "pads": [2, 0, 0, 1]}],
                                       output_position=[0, 1])
    explicit = effective_receptive_field([1, 9, 9], [{"type": "zeropad2d", "padding": [0, 1, 2, 0]},
                                                     {"type": "conv2d", "out_channels": 1, "kernel_size": 3, "stride": 2}], output_position=[0, 1])
    assert padded.model_dump() == explicit.model_dump()
    with pytest.raises(SpecError, match="ONNX's per-side pads or pooling convention on a maxpool2d is not supported"):
        effective_receptive_field([1, 9, 9], [{"type": "maxpool2d", "kernel_size": 2, "convention": "onnx"}])
