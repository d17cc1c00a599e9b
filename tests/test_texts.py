"""The two texts a model reads (the cnn-architect prompt and the conv-shape-calculator skill): every number in them is recomputed here.

How the texts are made checkable:
- a worked example is a ```json block holding shape_calculator's arguments, followed by its layer table; every row
  is recomputed with the walk engine (skills.walk) and, independently, with PyTorch modules (shapes, params,
  buffers, MACs by forward hooks, receptive field and jump by the gradient of one output pixel);
- an inline code span is arithmetic (`64*3*3*3 + 64 = 1,792`, evaluated exactly), a tool call with its result
  (`conv_output_size(...) -> output_size [4, 4]`, called through the real Client), a formula listed in FORMULAS
  below with a check against skills.arithmetic or PyTorch, a keyword argument whose name is part of the API, or
  a plain name; a span that is none of these fails the test;
- a digit in prose (outside code, tables and fenced blocks) must be one of the reviewed phrases in PROSE.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import operator
import re
import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
from mcp import Client
from torch_reference import build

from server.app import build_server
from server.texts import raw_text, split_front_matter
from skills.arithmetic import (
    conv_output_length,
    effective_kernel,
    pool_output_length,
    same_padding,
    transpose_output_length,
)
from skills.arithmetic import conv_output_size as arithmetic_conv_output_size
from skills.walk import shape_calculator

SKILL = "conv-shape-calculator"
PROMPT = "cnn-architect"
TEXTS = (SKILL, PROMPT)

# The tools' arguments (CONTRACT.md, "Tools", plus the designer's extras); checked against the live input schemas.
TOOL_ARGUMENTS = {
    "conv_output_size": {"input_size", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "output_padding", "kind"},
    "shape_calculator": {"input_shape", "layers", "spec"},
    "receptive_field": {"input_shape", "layers", "spec", "output_position"},
    "parameter_count": {"layers", "spec", "input_shape"},
    "design_architecture": {
        "input_shape", "param_budget", "target_receptive_field", "output_size", "max_layers", "kernel_sizes",
        "strides", "dilations", "widths", "objective", "top_k", "time_limit_s",
        "batch_norm", "activation", "monotone_widths", "reject_gridding", "reject_redundant", "pareto_front",  # beyond the contract
    },
}
# Layer arguments of the network spec (CONTRACT.md, "Network spec"), for `name=value` spans.
SPEC_ARGUMENTS = {
    "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias", "padding_mode", "output_padding",
    "ceil_mode", "count_include_pad", "output_size", "affine", "eps", "momentum", "out_features", "body", "shortcut",
    "branches", "in_channels", "num_features", "in_features", "output_position",
}
PROMPT_ARGUMENTS = {"input_shape", "param_budget", "target_receptive_field", "output_size"}


# ---------------------------------------------------------------- reading the markdown


def body(name: str) -> str:
    return split_front_matter(raw_text(name))[1]


def parse_front_matter(text: str) -> dict[str, Any]:
    """The YAML subset the two texts use: `key: value` lines and one list of flat mappings (`- name: ...`)."""
    data: dict[str, Any] = {}
    current_list: list[dict[str, Any]] | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            key, _, value = line.partition(":")
            assert _, f"not a YAML mapping line: {line!r}"
            value = value.strip()
            if value:
                data[key.strip()] = value
                current_list = None
            else:
                current_list = data[key.strip()] = []
            continue
        assert current_list is not None, f"indented line outside a list: {line!r}"
        stripped = line.strip()
        if stripped.startswith("- "):
            current_list.append({})
            stripped = stripped[2:]
        key, _, value = stripped.partition(":")
        value = value.strip()
        current_list[-1][key.strip()] = {"true": True, "false": False}.get(value, value)
    return data


FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
TABLE = re.compile(r"(?:^\|.*\|\n)+", re.M)


def strip_fences(text: str) -> str:
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def code_spans(name: str) -> list[str]:
    """Inline code spans outside fenced blocks (a span may wrap a line)."""
    return [re.sub(r"\s*\n\s*", " ", s) for s in re.findall(r"`([^`]+)`", strip_fences(body(name)))]


def parse_table(text: str) -> list[dict[str, str]]:
    lines = [line.strip() for line in text.strip().splitlines()]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert set(lines[1].replace("|", "").strip()) <= {"-", " "}, lines[1]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[2:]]


def worked_examples(name: str) -> list[tuple[dict[str, Any], list[dict[str, str]]]]:
    """Each ```json block and the table right after it (blank lines between them only)."""
    text = body(name)
    examples = []
    for match in FENCE.finditer(text):
        if match.group(1) != "json":
            continue
        after = text[match.end() :]
        table = TABLE.match(after.lstrip("\n"))
        assert table, f"{name}: a ```json block must be followed by its layer table"
        examples.append((json.loads(match.group(2)), parse_table(table.group(0))))
    return examples


def number(cell: str) -> int:
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", cell), f"not a number with thousands commas: {cell!r}"
    return int(cell.replace(",", ""))


def pair_of(cell: str) -> list[int]:
    """A table cell holding one number (same on both axes) or [h, w]."""
    return json.loads(cell) if cell.startswith("[") else [number(cell)] * 2


# ---------------------------------------------------------------- exact arithmetic

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv}
_CMPOPS = {ast.LtE: operator.le, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.Gt: operator.gt, ast.Eq: operator.eq}
_FUNCS = {"floor": math.floor, "ceil": math.ceil, "max": max, "min": min}


def evaluate(expr: str, env: dict[str, int] | None = None) -> Any:
    """Exact value of an arithmetic expression (Fractions, no floats); names come from env; 2P means 2*P."""
    env = env or {}
    expr = re.sub(r"(?<=\d),(?=\d{3}\b)", "", expr)  # thousands commas
    expr = re.sub(r"\b(\d+)([A-Za-z_])", r"\1*\2", expr)  # implicit product: 2P

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        if isinstance(node, ast.Name):
            return Fraction(env[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
            return Fraction(_FUNCS[node.func.id](*(ev(a) for a in node.args)))
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMPOPS:
            return _CMPOPS[type(node.ops[0])](ev(node.left), ev(node.comparators[0]))
        raise ValueError(f"not plain arithmetic: {ast.dump(node)} in {expr!r}")

    return ev(ast.parse(expr.strip(), mode="eval"))


def is_numeric(span: str) -> bool:
    """A span of numbers and operators, optionally labelled (`P_eff = 1*1 + ... = 6`)."""
    rest = re.sub(r"\b(floor|ceil|max|min)\(", "(", re.sub(r"^[A-Za-z_]\w* = ", "", span))
    return bool(re.search(r"\d", rest)) and re.fullmatch(r"[\d,\s+\-*/()=<>]+", rest) is not None


# ---------------------------------------------------------------- the reference: PyTorch modules


def torch_or_skip():
    return pytest.importorskip("torch")


def torch_rows(layers: list[dict[str, Any]], in_shape: list[int]) -> dict[str, dict[str, Any]]:
    """Per row path ('3', '3.body.1', and '' for the whole network): output shape, params, buffers and MACs,
    measured on the nn modules in one forward pass (MACs by forward hooks on the conv and linear leaves)."""
    torch = torch_or_skip()
    net = build(layers, in_shape)
    batched = len(in_shape) in (2, 4)
    shapes: dict[str, list[int]] = {}
    leaf_macs: dict[str, int] = {}

    def hook(name):
        def record(module, inputs, output):
            shapes[name] = list(output.shape) if batched else list(output.shape[1:])
            if isinstance(module, torch.nn.Conv2d):
                leaf_macs[name] = output.numel() * module.weight[0].numel()  # each output element: C_in/G*kH*kW
            elif isinstance(module, torch.nn.ConvTranspose2d):
                leaf_macs[name] = inputs[0].numel() * module.weight[0].numel()  # each input element: C_out/G*kH*kW
            elif isinstance(module, torch.nn.Linear):
                leaf_macs[name] = output.numel() * module.in_features
        return record

    for name, module in net.named_modules():
        module.register_forward_hook(hook(name))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", UserWarning)  # padding="same" with an even kernel copies the input
        net(torch.zeros(in_shape if batched else [1, *in_shape]))
    rows = {}
    for name, module in net.named_modules():
        if name in shapes:  # Sequential containers of blocks answer under their own names too
            rows[name] = {
                "output_shape": shapes[name],
                "params": sum(p.numel() for p in module.parameters()),
                "buffers": sum(b.numel() for b in module.buffers()),
                "macs": sum(m for leaf, m in leaf_macs.items() if name == "" or leaf == name or leaf.startswith(name + ".")),
            }
    return rows


def torch_row(layers: list[dict[str, Any]], in_shape: list[int]) -> dict[str, Any]:
    """Output shape, params, buffers and MACs of a whole network (source: PyTorch modules)."""
    return torch_rows(layers, in_shape)[""]


def touched(y, x, i, j) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): the rows and columns of input x that output pixel [i, j] of y (all channels,
    first image) gets gradient from."""
    (grad,) = torch_or_skip().autograd.grad(y[0, :, i, j].sum(), x, retain_graph=True)
    rows = grad[0].abs().sum(dim=(0, 2)).nonzero().flatten()
    cols = grad[0].abs().sum(dim=(0, 1)).nonzero().flatten()
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def torch_receptive_field(layers: list[dict[str, Any]], size: int = 160) -> tuple[list[int], list[int], int]:
    """([RF_h, RF_w], [jump_h, jump_w], P_eff on H) measured by back-propagating from output pixels.

    All weights 1, biases 0, BatchNorm at its initial eval statistics, max-pools swapped for average pools of the
    same geometry (a max-pool's gradient reaches one pixel only), on an input large enough that no region is clipped.
    """
    torch = torch_or_skip()

    def as_rf(spec):
        spec = dict(spec)
        if spec["type"] == "maxpool2d":
            spec["type"] = "avgpool2d"
        if "out_channels" in spec:  # the RF does not depend on the widths: one channel keeps this cheap
            spec["out_channels"], spec["groups"] = 1, 1
        for key in ("body", "shortcut"):
            if key in spec:
                spec[key] = [as_rf(s) for s in spec[key]]
        if "branches" in spec:
            spec["branches"] = [[as_rf(s) for s in b] for b in spec["branches"]]
        return spec

    net = build([as_rf(s) for s in layers], [1, size, size], dtype="float64", ones=True)
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        y = net(x)
    oh, ow = y.shape[2] // 2, y.shape[3] // 2
    top, bottom, left, right = touched(y, x, oh, ow)
    assert 0 < top and bottom < size - 1 and 0 < left and right < size - 1, "region clipped: use a larger size"
    next_top = touched(y, x, oh + 1, ow)[0]
    next_left = touched(y, x, oh, ow + 1)[2]
    return [bottom - top + 1, right - left + 1], [next_top - top, next_left - left], oh * (next_top - top) - top


# ---------------------------------------------------------------- the worked examples

def describe(spec: dict[str, Any]) -> str:
    """The table's layer column, derived from the spec: `conv2d 3x3 s2 p1 g64 no bias`."""
    def hw(v):
        v = v if isinstance(v, list) else [v, v]
        return f"{v[0]}x{v[1]}"

    def one(v):
        return v if not isinstance(v, list) else (v[0] if v[0] == v[-1] else "x".join(map(str, v)))

    kind = spec["type"]
    if kind in ("conv2d", "convtranspose2d"):
        text = f"{kind} {hw(spec['kernel_size'])} s{one(spec.get('stride', 1))} p{one(spec.get('padding', 0))}"
        for key, tag, default in (("dilation", "d", 1), ("groups", "g", 1), ("output_padding", "op", 0)):
            if spec.get(key, default) != default:
                text += f" {tag}{one(spec[key])}"
        return text + (" no bias" if spec.get("bias", True) is False else "")
    if kind in ("maxpool2d", "avgpool2d"):
        k = spec["kernel_size"]
        text = f"{kind} {hw(k)} s{one(spec.get('stride', k))}"
        if spec.get("padding", 0):
            text += f" p{one(spec['padding'])}"
        return text + (" ceil" if spec.get("ceil_mode") else "")
    if kind.startswith("adaptive"):
        return f"{kind} {hw(spec['output_size'])}"
    return kind


def resolve(layers: list[dict[str, Any]], path: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the layers an input goes through up to and including the row at `path`, that row's spec).

    Paths are the walk's: `3`, `3.body.1`, `3.shortcut.0`, `4.branches.0.1`. A row inside a block is walked as
    a plain network ending at that row: `3.body.1` is layers[:3] + body[:2].
    """
    parts = path.split(".")
    prefix: list[dict[str, Any]] = []
    current, i = layers, 0
    while True:
        k = int(parts[i])
        spec = current[k]
        if i == len(parts) - 1:
            return prefix + current[: k + 1], spec
        prefix += current[:k]
        if parts[i + 1] == "branches":
            current, i = spec["branches"][int(parts[i + 2])], i + 3
        else:
            current, i = spec.get(parts[i + 1]) or [], i + 2


EXAMPLES = [(name, i) for name in TEXTS for i in range(len(worked_examples(name)))]


def example(name: str, i: int):
    spec, rows = worked_examples(name)[i]
    return spec["input_shape"], spec["layers"], rows


def test_every_text_has_worked_examples_and_every_top_level_layer_has_a_row():
    assert len(worked_examples(SKILL)) >= 2 and len(worked_examples(PROMPT)) >= 1
    for name, i in EXAMPLES:
        _, layers, rows = example(name, i)
        indices = [r["#"] for r in rows if re.fullmatch(r"\d+", r["#"])]
        assert indices == [str(k) for k in range(len(layers))], (name, i)
        assert rows[-1]["#"] == "total", (name, i)
        for row in rows:
            assert set(row) == {"#", "layer", "output shape", "RF", "jump", "params", "MACs"}, row


@pytest.mark.parametrize(("name", "i"), EXAMPLES)
def test_worked_example_layer_column_says_what_the_spec_says(name, i):
    _, layers, rows = example(name, i)
    for row in rows[:-1]:
        assert row["layer"] == describe(resolve(layers, row["#"])[1]), row


@pytest.mark.parametrize(("name", "i"), EXAMPLES)
def test_worked_example_rows_match_pytorch_modules(name, i):
    """Shapes, params and MACs of each row from real nn modules; RF and jump from gradients (source: PyTorch)."""
    shape, layers, rows = example(name, i)
    measured = torch_rows(layers, shape)
    for row in rows:
        path = "" if row["#"] == "total" else row["#"]
        prefix = layers if row["#"] == "total" else resolve(layers, row["#"])[0]
        got = measured[path]
        assert json.loads(row["output shape"]) == got["output_shape"], row
        assert number(row["params"]) == got["params"], row
        assert number(row["MACs"]) == got["macs"], row
        spatial = [s for s in prefix if s["type"] not in ("flatten", "linear")]
        rf, jump, _ = torch_receptive_field(spatial)
        if len(spatial) < len(prefix):
            # flatten is one window over the whole last map (the walk's convention): the span of all its windows
            size = torch_row(spatial, shape)["output_shape"][-2:]
            rf = [r + (n - 1) * j for r, n, j in zip(rf, size, jump, strict=True)]
            jump = [j * n for j, n in zip(jump, size, strict=True)]
        assert pair_of(row["RF"]) == rf, row
        assert pair_of(row["jump"]) == jump, row


@pytest.mark.parametrize(("name", "i"), EXAMPLES)
def test_worked_example_rows_match_the_walk_engine(name, i):
    shape, layers, rows = example(name, i)
    report = shape_calculator(shape, layers)
    total = rows[-1]
    assert json.loads(total["output shape"]) == list(report.output_shape)
    assert number(total["params"]) == report.total_params
    assert number(total["MACs"]) == report.total_macs
    assert pair_of(total["RF"]) == list(report.receptive_field)
    assert pair_of(total["jump"]) == list(report.effective_stride)
    assert number(total["params"]) == sum(number(r["params"]) for r in rows if re.fullmatch(r"\d+", r["#"]))
    assert number(total["MACs"]) == sum(number(r["MACs"]) for r in rows if re.fullmatch(r"\d+", r["#"]))
    by_path = {r.path: r for r in [*report.layers, *report.block_layers]}
    assert {r["#"] for r in rows[:-1]} == set(by_path), "one table row per layer, blocks' inner layers included"
    for row in rows[:-1]:
        got = by_path[row["#"]]
        assert got.type == resolve(layers, row["#"])[1]["type"], row
        assert json.loads(row["output shape"]) == list(got.output_shape), row
        assert number(row["params"]) == got.params, row
        assert number(row["MACs"]) == got.macs, row
        assert pair_of(row["RF"]) == list(got.receptive_field), row
        assert pair_of(row["jump"]) == list(got.effective_stride), row


@pytest.mark.anyio
async def test_worked_examples_give_the_same_table_through_the_shape_calculator_tool():
    async with Client(build_server()) as client:
        for name, i in EXAMPLES:
            shape, layers, rows = example(name, i)
            result = await client.call_tool("shape_calculator", {"input_shape": shape, "layers": layers})
            assert not result.is_error, result.content[0].text
            report = result.structured_content
            assert number(rows[-1]["params"]) == report["total_params"]
            assert number(rows[-1]["MACs"]) == report["total_macs"]
            assert not report.get("warnings"), report["warnings"]
            for row in rows[:-1]:
                if "." not in row["#"]:
                    got = report["layers"][int(row["#"])]
                    assert json.loads(row["output shape"]) == got["output_shape"], row
                    assert pair_of(row["RF"]) == got["receptive_field"], row


# ---------------------------------------------------------------- specific claims around the examples


def test_skill_example_two_buffer_count_is_what_pytorch_holds():
    """`65 + 3*129 = 452`: the four BatchNorms' running_mean, running_var, num_batches_tracked (source: PyTorch)."""
    shape, layers, _ = example(SKILL, 1)
    assert "`65 + 3*129 = 452` buffers" in re.sub(r"\s+", " ", body(SKILL))
    assert torch_row(layers, shape)["buffers"] == 452
    assert shape_calculator(shape, layers).total_buffers == 452


def test_skill_example_one_input_region_is_what_the_gradient_touches():
    """Output pixel [y, x] sees rows `4*y - 6` to `4*y + 6` (P_eff = 6), measured by autograd (source: PyTorch)."""
    check_example_one_region()


def check_example_one_region() -> None:
    torch = torch_or_skip()
    shape, layers, _ = example(SKILL, 0)
    text = re.sub(r"\s+", " ", body(SKILL))
    assert "`4*y - 6` to `4*y + 6`" in text and "`P_eff = 1*1 + 1*1 + 1*2 + 1*2 = 6`" in text
    net = build(layers, shape, dtype="float64", ones=True)
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    y = net(x)
    for row in (0, 1, 7, 31):
        assert touched(y, x, row, 5)[:2] == (max(0, 4 * row - 6), min(shape[1] - 1, 4 * row + 6))


@pytest.mark.anyio
async def test_skill_example_one_input_region_through_the_receptive_field_tool():
    shape, layers, _ = example(SKILL, 0)
    async with Client(build_server()) as client:
        result = await client.call_tool("receptive_field", {"input_shape": shape, "layers": layers, "output_position": [7, 7]})
    assert not result.is_error, result.content[0].text
    region = result.structured_content["input_region"]
    assert (region["top"], region["bottom"]) == (4 * 7 - 6, 4 * 7 + 6)
    assert result.structured_content["effective_padding"] == [6, 6]


def prompt_example_arguments() -> dict[str, Any]:
    spans = [s for s in code_spans(PROMPT) if re.fullmatch(r"\w+=.+", s) and s.split("=")[0] in PROMPT_ARGUMENTS]
    return {s.split("=", 1)[0]: json.loads(s.split("=", 1)[1]) for s in spans}


def test_prompt_example_meets_the_constraints_it_was_designed_for():
    args = prompt_example_arguments()
    assert set(args) == PROMPT_ARGUMENTS
    shape, layers, rows = example(PROMPT, 0)
    assert shape == args["input_shape"]
    got = torch_row(layers, shape)
    rf, _, _ = torch_receptive_field(layers)
    assert got["params"] <= args["param_budget"]
    assert min(rf) >= args["target_receptive_field"]
    assert got["output_shape"][1:] == args["output_size"]
    text = re.sub(r"\s+", " ", body(PROMPT))
    checks = re.search(r"Checks: `([\d,]+) <= ([\d,]+)` params; RF `(\d+) >= (\d+)`; output `(\[[\d, ]+\])` as required", text)
    assert checks, "the example's Checks line"
    assert number(checks.group(1)) == number(rows[-1]["params"]) == got["params"]
    assert number(checks.group(2)) == args["param_budget"]
    assert int(checks.group(3)) == min(rf) and int(checks.group(4)) == args["target_receptive_field"]
    assert json.loads(checks.group(5)) == args["output_size"]


def test_prompt_example_plain_convs_would_break_the_budget():
    """`2*36,928 = 73,856`: two full 3x3 convs at 64 channels instead of the two separable blocks (source: PyTorch)."""
    shape, layers, _ = example(PROMPT, 0)
    plain = layers[:3] + [{"type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1}] * 2
    args = prompt_example_arguments()
    assert torch_row(plain, shape)["params"] > args["param_budget"]
    assert torch_row(plain, shape)["params"] - torch_row(layers[:3], shape)["params"] == 73_856


@pytest.mark.anyio
async def test_design_architecture_answers_the_prompt_example_with_a_fitting_design_or_an_error():
    args = prompt_example_arguments()
    async with Client(build_server()) as client:
        result = await client.call_tool("design_architecture", {**args, "time_limit_s": 5})
    # the designer has no groups: it may not fit the budget, but when it answers its design must fit
    if not result.is_error:
        best = result.structured_content["designs"][0]
        assert best["params"] <= args["param_budget"] and min(best["receptive_field"]) >= args["target_receptive_field"]


def test_residual_paths_whose_centres_differ_are_warned_about_and_aligned_ones_are_not():
    """The skill: a 1x1 stride-2 shortcut lines up with a 3x3 stride-2 padding-1 body, a 2x2 stride-2 one does not."""
    text = re.sub(r"\s+", " ", body(SKILL))
    assert "(a 2x2 stride-2 shortcut beside a 3x3 padding-1 body) the tools warn" in text
    conv3 = {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1}
    for k, warned in ((1, False), (2, True)):
        block = {"type": "residual", "body": [conv3], "shortcut": [{"type": "conv2d", "out_channels": 4, "kernel_size": k, "stride": 2}]}
        report = shape_calculator([4, 8, 8], [block])
        assert report.output_shape == [4, 4, 4]
        assert bool(report.warnings) is warned, (k, report.warnings)


def test_dilation_rates_with_a_common_factor_leave_holes_and_coprime_rates_do_not():
    """Gridding (Wang et al., 2018): the input offsets a stack of 3x3 dilated convs reaches, by brute force."""
    def reach(rates):
        offsets = {0}
        for d in rates:
            offsets = {o + t * d for o in offsets for t in (-1, 0, 1)}
        return offsets

    text = re.sub(r"\s+", " ", body(PROMPT))
    assert "`1 + 2*2 + 2*2 = 9`" in text and "`1 + 2*1 + 2*2 + 2*5 = 17`" in text
    holes = reach([2, 2])
    assert max(holes) - min(holes) + 1 == 9 and holes == set(range(-4, 5, 2))  # every other pixel
    full = reach([1, 2, 5])
    assert full == set(range(-8, 9))  # all 17, none missed


# ---------------------------------------------------------------- inline code spans


def _grid(**ranges):
    keys = list(ranges)
    for values in itertools.product(*ranges.values()):
        yield dict(zip(keys, values, strict=True))


def check_conv_size(rhs: str) -> None:
    for v in _grid(H=range(1, 14), K=range(1, 6), S=range(1, 4), P=range(0, 3), D=range(1, 4)):
        if v["H"] + 2 * v["P"] >= effective_kernel(v["K"], v["D"]):
            assert evaluate(rhs, v) == conv_output_length(v["H"], v["K"], v["S"], v["P"], v["P"], v["D"]), v


def check_transpose_size(rhs: str) -> None:
    for v in _grid(H=range(1, 8), K=range(1, 5), S=range(1, 4), P=range(0, 2), D=range(1, 3), OP=range(0, 3)):
        if v["OP"] < max(v["S"], v["D"]) and (v["H"] - 1) * v["S"] - 2 * v["P"] + v["D"] * (v["K"] - 1) + v["OP"] >= 0:
            assert evaluate(rhs, v) == transpose_output_length(v["H"], v["K"], v["S"], v["P"], v["OP"], v["D"]), v


def torch_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def check_conv_params(expr: str) -> None:
    nn = torch_or_skip().nn
    for c_in, c_out, g, kh, kw in [(3, 64, 1, 3, 3), (8, 12, 4, 3, 5), (16, 16, 16, 3, 3), (6, 9, 3, 1, 7)]:
        got = torch_params(nn.Conv2d(c_in, c_out, (kh, kw), groups=g))
        assert evaluate(expr, {"C_in": c_in, "C_out": c_out, "G": g, "kH": kh, "kW": kw}) == got


def check_transpose_params(expr: str) -> None:
    nn = torch_or_skip().nn
    for c_in, c_out, g, kh, kw in [(16, 32, 1, 4, 4), (8, 12, 4, 3, 5), (6, 9, 3, 2, 1)]:
        got = torch_params(nn.ConvTranspose2d(c_in, c_out, (kh, kw), groups=g))
        assert evaluate(expr, {"C_in": c_in, "C_out": c_out, "G": g, "kH": kh, "kW": kw}) == got


def check_linear_params(expr: str) -> None:
    nn = torch_or_skip().nn
    for i, o in [(4096, 10), (7, 3)]:
        assert evaluate(expr, {"in_features": i, "out_features": o}) == torch_params(nn.Linear(i, o))


def check_macs(layer_type: str, expr: str) -> None:
    """Against the forward-hook count (source: PyTorch shapes; the contract's MAC convention)."""
    cases = {
        "conv2d": [({"type": "conv2d", "out_channels": 12, "kernel_size": [3, 5], "stride": 2, "padding": 1, "groups": 4}, [8, 11, 13])],
        "convtranspose2d": [({"type": "convtranspose2d", "out_channels": 12, "kernel_size": [3, 2], "stride": 2, "groups": 3}, [6, 5, 7])],
        "linear": [({"type": "linear", "out_features": 10}, [4096])],
    }
    for spec, shape in cases[layer_type]:
        out = torch_row([spec], shape)
        k = spec.get("kernel_size", 1)
        kh, kw = (k, k) if isinstance(k, int) else k
        env = {"H": shape[-2] if len(shape) == 3 else 0, "W": shape[-1] if len(shape) == 3 else 0,
               "C_in": shape[0], "C_out": spec.get("out_channels", 0), "G": spec.get("groups", 1), "kH": kh, "kW": kw,
               "in_features": shape[0], "out_features": spec.get("out_features", 0)}
        if len(out["output_shape"]) == 3:
            env |= {"H_out": out["output_shape"][1], "W_out": out["output_shape"][2]}
        assert evaluate(expr, env) == out["macs"], spec


def check_batchnorm(expr: str, what: str) -> None:
    nn = torch_or_skip().nn
    for c in (1, 64):
        bn = nn.BatchNorm2d(c)
        got = torch_params(bn) if what == "params" else sum(b.numel() for b in bn.buffers())
        assert evaluate(expr, {"C": c}) == got


def check_flatten(expr: str, batched: bool) -> None:
    shape = [2, 5, 3, 4] if batched else [5, 3, 4]
    got = torch_row([{"type": "flatten"}], shape)["output_shape"]
    env = {"N": 2, "C": 5, "H": 3, "W": 4}
    assert [evaluate(part, env) for part in expr.strip("[]").split(",")] == got


def check_zeropad(rhs: str) -> None:
    for top, bottom in [(0, 2), (3, 1)]:
        got = torch_row([{"type": "zeropad2d", "padding": [1, 1, top, bottom]}], [2, 5, 5])["output_shape"][1]
        assert evaluate(rhs, {"H": 5, "top": top, "bottom": bottom}) == got


def check_span(expr: str) -> None:
    for k, d in itertools.product(range(1, 6), range(1, 4)):
        taps = [t * d for t in range(k)]  # positions of the taps from the first
        assert evaluate(expr, {"K": k, "D": d}) == taps[-1] - taps[0] + 1 == effective_kernel(k, d)


def check_kernel_must_fit(expr: str) -> None:
    """The padded input `H + 2P` must hold the span: a span of H + 2P gives 1 pixel, one more is refused by torch."""
    torch = torch_or_skip()
    h, p = 5, 1
    size = evaluate(expr, {"H": h, "P": p})
    conv = torch.nn.Conv2d(1, 1, int(size), padding=p)
    assert conv(torch.zeros(1, 1, h, h)).shape[-1] == 1
    with pytest.raises(RuntimeError):
        torch.nn.Conv2d(1, 1, int(size) + 1, padding=p)(torch.zeros(1, 1, h, h))


def check_same_split(total: str, before: str) -> None:
    """padding="same" equals an explicit pad of `before` on top/left and the rest on bottom/right (source: PyTorch)."""
    torch = torch_or_skip()
    F = torch.nn.functional
    x = torch.randn(1, 1, 9, 9, dtype=torch.float64)
    for k, d in itertools.product(range(1, 6), range(1, 3)):
        w = torch.randn(1, 1, k, k, dtype=torch.float64)
        t = evaluate(total, {"K": k, "D": d})
        lo = evaluate(before, {"K": k, "D": d})
        assert (int(lo), int(t - lo)) == same_padding(k, d)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            same = F.conv2d(x, w, padding="same", dilation=d)
        explicit = F.conv2d(F.pad(x, (int(lo), int(t - lo), int(lo), int(t - lo))), w, dilation=d)
        assert torch.equal(same, explicit), (k, d)


def check_same_keeps_size(rhs: str, dilations=(1, 2, 3)) -> None:
    for h, k, d in itertools.product(range(1, 12), (1, 3, 5, 7), dilations):
        p = evaluate(rhs, {"K": k, "D": d})
        if h + 2 * p >= effective_kernel(k, d):
            assert p.denominator == 1 and conv_output_length(h, k, 1, int(p), int(p), d) == h


def check_odd_stride(expr: str) -> None:
    """For odd K and P = (K-1)/2 the strided output is floor((H - 1) / S) + 1 = ceil(H / S)."""
    for h, k, s in itertools.product(range(1, 20), (1, 3, 5, 7), (1, 2, 3, 4)):
        if h + k - 1 >= k:
            assert evaluate(expr, {"H": h, "S": s}) == conv_output_length(h, k, s, (k - 1) // 2, (k - 1) // 2)


def check_halving(expr: str) -> None:
    for h in range(1, 40):
        assert evaluate(expr, {"H": h}) == conv_output_length(h, 3, 2, 1, 1) == conv_output_length(h, 1, 2)


def check_rf_step(_: str) -> None:
    """RF = RF + D*(K-1)*J then J = J*S, against the gradient-measured RF of a few random stacks (source: PyTorch)."""
    import random

    rng = random.Random(6)
    for _case in range(6):
        layers, rf, jump = [], 1, 1
        for _layer in range(rng.randint(1, 4)):
            k, s, d = rng.choice([1, 2, 3, 5]), rng.choice([1, 2, 3]), rng.choice([1, 2])
            if rng.random() < 0.3:
                layers.append({"type": "maxpool2d", "kernel_size": k, "stride": s})
            else:
                layers.append({"type": "conv2d", "out_channels": 2, "kernel_size": k, "stride": s, "dilation": d})
                rf, jump = int(evaluate("RF + D*(K-1)*J", {"RF": rf, "D": d, "K": k, "J": jump})), int(evaluate("J*S", {"J": jump, "S": s}))
                continue
            rf, jump = int(evaluate("RF + D*(K-1)*J", {"RF": rf, "D": 1, "K": k, "J": jump})), int(evaluate("J*S", {"J": jump, "S": s}))
        got_rf, got_jump, _ = torch_receptive_field(layers, size=2 * rf + 6 * jump + 10)
        assert got_rf == [rf, rf] and got_jump == [jump, jump], layers


def check_stride1_stack(rhs: str) -> None:
    for length, k in itertools.product(range(0, 6), (1, 3, 5)):
        rf = 1
        for _ in range(length):
            rf += k - 1
        assert evaluate(rhs, {"L": length, "K": k}) == rf


def check_layers_needed(expr: str) -> None:
    for target, rf0, jump in itertools.product(range(2, 40), (1, 3, 15), (1, 2, 8)):
        if target > rf0:
            n, rf = 0, rf0
            while rf < target:
                rf, n = rf + 2 * jump, n + 1
            assert evaluate(expr, {"target": target, "RF": rf0, "J": jump}) == n


def check_transpose_jump(_: str) -> None:
    """A stride-2 transposed conv on the image: two output pixels per input pixel (the walk's exact fraction)."""
    report = shape_calculator([1, 8, 8], [{"type": "convtranspose2d", "out_channels": 1, "kernel_size": 4, "stride": 2, "padding": 1}])
    assert list(report.effective_stride) == [evaluate("1/2")] * 2


def check_adaptive_windows(_: str) -> None:
    """Adaptive pooling's windows floor(i*H/out) .. ceil((i+1)*H/out), and a plain pool when out divides H (source: PyTorch)."""
    torch = torch_or_skip()
    for h, out in itertools.product(range(1, 13), range(1, 9)):
        x = torch.arange(h, dtype=torch.float64).reshape(1, 1, h, 1).expand(1, 1, h, 2)
        got = torch.nn.AdaptiveAvgPool2d((out, 1))(x)[0, 0, :, 0]
        for i in range(out):
            start, end = int(evaluate("floor(i*H/out)", {"i": i, "H": h, "out": out})), int(evaluate("ceil((i+1)*H/out)", {"i": i, "H": h, "out": out}))
            assert got[i].item() == pytest.approx(sum(range(start, end)) / (end - start)), (h, out, i)
        if h % out == 0:
            k = int(evaluate("H/out", {"H": h, "out": out}))
            assert torch.equal(torch.nn.AdaptiveAvgPool2d((out, 2))(x), torch.nn.AvgPool2d((k, 1), (k, 1))(x))


def check_depthwise(_: str) -> None:
    nn = torch_or_skip().nn
    conv = nn.Conv2d(64, 64, 3, groups=64)
    assert list(conv.weight.shape) == [64, 1, 3, 3]


def check_transpose_weight(_: str) -> None:
    nn = torch_or_skip().nn
    assert list(nn.ConvTranspose2d(6, 9, (3, 2), groups=3).weight.shape) == [6, 9 // 3, 3, 2]


def check_bias_term(_: str) -> None:
    nn = torch_or_skip().nn
    assert torch_params(nn.Conv2d(3, 7, 3)) - torch_params(nn.Conv2d(3, 7, 3, bias=False)) == 7
    assert torch_params(nn.Linear(5, 4)) - torch_params(nn.Linear(5, 4, bias=False)) == 4


def check_region(_: str) -> None:
    """Rows y*J - P_eff .. y*J - P_eff + RF - 1: P_eff from the gradient of a stack with uneven paddings."""
    layers = [{"type": "conv2d", "out_channels": 1, "kernel_size": 5, "stride": 2, "padding": 2},
              {"type": "conv2d", "out_channels": 1, "kernel_size": 3, "stride": 3, "padding": 0},
              {"type": "conv2d", "out_channels": 1, "kernel_size": 3, "padding": 1, "dilation": 2}]
    rf, jump, p_eff = torch_receptive_field(layers, size=120)
    assert p_eff == evaluate("2*1 + 0*2 + 1*6")  # top padding times the jump before each layer


FORMULAS: dict[str, Callable[[], None]] = {
    "H_out = floor((H + 2P - D*(K-1) - 1) / S) + 1": lambda: check_conv_size("floor((H + 2P - D*(K-1) - 1) / S) + 1"),
    "H_out = (H - 1)*S - 2P + D*(K-1) + OP + 1": lambda: check_transpose_size("(H - 1)*S - 2P + D*(K-1) + OP + 1"),
    "H_out = H + top + bottom": lambda: check_zeropad("H + top + bottom"),
    "C_out*(C_in/G)*kH*kW + C_out": lambda: check_conv_params("C_out*(C_in/G)*kH*kW + C_out"),
    "C_in*(C_out/G)*kH*kW + C_out": lambda: check_transpose_params("C_in*(C_out/G)*kH*kW + C_out"),
    "in_features*out_features + out_features": lambda: check_linear_params("in_features*out_features + out_features"),
    "H_out*W_out*C_out*(C_in/G)*kH*kW": lambda: check_macs("conv2d", "H_out*W_out*C_out*(C_in/G)*kH*kW"),
    "H*W*C_in*(C_out/G)*kH*kW": lambda: check_macs("convtranspose2d", "H*W*C_in*(C_out/G)*kH*kW"),
    "in_features*out_features": lambda: check_macs("linear", "in_features*out_features"),
    "2C": lambda: check_batchnorm("2C", "params"),
    "2C + 1": lambda: check_batchnorm("2C + 1", "buffers"),
    "[C*H*W]": lambda: check_flatten("[C*H*W]", batched=False),
    "[N, C*H*W]": lambda: check_flatten("[N, C*H*W]", batched=True),
    "D*(K-1) + 1": lambda: check_span("D*(K-1) + 1"),
    "H + 2P": lambda: check_kernel_must_fit("H + 2P"),
    "D*(K-1)": lambda: check_same_split("D*(K-1)", "floor(D*(K-1)/2)"),
    "floor(D*(K-1)/2)": lambda: check_same_split("D*(K-1)", "floor(D*(K-1)/2)"),
    "P = (K-1)/2": lambda: check_same_keeps_size("(K-1)/2", dilations=(1,)),
    "P = D*(K-1)/2": lambda: check_same_keeps_size("D*(K-1)/2"),
    "D*(K-1)//2": lambda: check_same_keeps_size("D*(K-1)//2"),
    "floor((H - 1) / S) + 1": lambda: check_odd_stride("floor((H - 1) / S) + 1"),
    "ceil(H / S)": lambda: check_odd_stride("ceil(H / S)"),
    "ceil(H / 2)": lambda: check_halving("ceil(H / 2)"),
    "RF = RF + D*(K-1)*J": lambda: check_rf_step(""),
    "J = J*S": lambda: check_rf_step(""),
    "RF = 1 + L*(K-1)": lambda: check_stride1_stack("1 + L*(K-1)"),
    "2*J": lambda: check_layers_needed("ceil((target - RF) / (2*J))"),
    "ceil((target - RF) / (2*J))": lambda: check_layers_needed("ceil((target - RF) / (2*J))"),
    "G = C_in": lambda: check_depthwise(""),
    "J = 1/2": lambda: check_transpose_jump(""),
    "floor(i*H/out)": lambda: check_adaptive_windows(""),
    "ceil((i+1)*H/out)": lambda: check_adaptive_windows(""),
    "H/out": lambda: check_adaptive_windows(""),
    "[C_in, C_out/G, kH, kW]": lambda: check_transpose_weight(""),
    "+ C_out": lambda: check_bias_term(""),
    "+ out_features": lambda: check_bias_term(""),
    "4*y - 6": lambda: check_example_one_region(),
    "4*y + 6": lambda: check_example_one_region(),
    "y*J - P_eff": lambda: check_region(""),
    "y*J - P_eff + RF - 1": lambda: check_region(""),
}
# Names, layouts and fragments that state no arithmetic.
PLAIN = re.compile(r"^(\[?[A-Za-z_][\w, ]*\]?|\"\w+\"|\{\"input_shape\": \.\.\., \"layers\": \[\.\.\.\]\}|\[N, C, H, W\]|"
                   r"\| # \| layer \| output shape \| RF \| jump \| params \| MACs \||optimal: true|max\(S, D\)|"
                   r"layer \d+\.body\.\d+|print\(model\)|torch\.flatten|forward\(\))$")
GIVEN = re.compile(r"^[A-Za-z_]\w* = \d+(, [A-Za-z_]\w* = \d+)*$")  # a stated input: `K = 4, S = 2, P = 1`
TOOL_CALL = re.compile(r"^(\w+)\((.*?)\)(?: -> (\w+) (.+))?$")


# Literals that a dedicated test above recomputes.
CHECKED_ELSEWHERE = {"[8, 8]"}  # test_prompt_example_meets_the_constraints_it_was_designed_for


def classify(span: str) -> str:
    if span in FORMULAS:
        return "formula"
    if span in CHECKED_ELSEWHERE:
        return "elsewhere"
    m = TOOL_CALL.match(span)
    if m and m.group(1) in TOOL_ARGUMENTS:
        return "tool"
    if GIVEN.match(span):
        return "given"
    if is_numeric(span):
        return "arithmetic"
    if re.fullmatch(r"\w+=.+", span):
        return "keyword"
    if PLAIN.match(span) and not re.search(r"[=+*/]", span):
        return "plain"
    if span.startswith("layer ") and PLAIN.match(span):
        return "plain"
    return "unchecked"


@pytest.mark.parametrize("name", TEXTS)
def test_every_code_span_is_a_checked_kind(name):
    unchecked = [s for s in code_spans(name) if classify(s) == "unchecked"]
    assert not unchecked, f"{name}: spans no test checks (add a check in FORMULAS or rewrite): {unchecked}"


@pytest.mark.parametrize("name", TEXTS)
def test_arithmetic_in_the_texts_is_exact(name):
    spans = [s for s in code_spans(name) if classify(s) == "arithmetic"]
    assert len(spans) >= 10
    for span in spans:
        parts = re.sub(r"^[A-Za-z_]\w* = ", "", span).split(" = ")
        if len(parts) == 1:
            assert evaluate(parts[0]) is True, span  # a comparison such as `47 >= 40`
            continue
        values = [evaluate(p) for p in parts]
        assert all(v == values[-1] for v in values), (span, values)
        result = parts[-1].strip()
        assert re.fullmatch(r"\d{1,3}(,\d{3})*|\d{1,4}", result), f"write results >= 10,000 with commas: {span}"


FORMULA_SPANS = sorted({s for name in TEXTS for s in code_spans(name) if classify(s) == "formula"})


@pytest.mark.parametrize("span", FORMULA_SPANS)
def test_formula_holds_against_the_reference(span):
    FORMULAS[span]()


def test_every_registered_formula_is_still_in_a_text():
    stale = set(FORMULAS) - set(FORMULA_SPANS)
    assert not stale, f"FORMULAS entries no text uses any more: {stale}"


def tool_spans() -> list[tuple[str, str]]:
    return [(name, s) for name in TEXTS for s in code_spans(name) if classify(s) == "tool"]


def call_arguments(args: str) -> tuple[list[str], dict[str, Any]]:
    """(bare argument names, keyword arguments with JSON values) of `f(a, b, c=1, d="x")`."""
    names, kwargs = [], {}
    for part in re.split(r",\s*(?![^\[]*\])", args) if args.strip() else []:
        key, eq, value = part.partition("=")
        if not eq:
            names.append(key.strip())
        else:
            try:
                kwargs[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                kwargs[key.strip()] = value  # a placeholder such as [y, x]
    return names, kwargs


@pytest.mark.anyio
async def test_tool_mentions_use_the_contract_argument_names():
    async with Client(build_server()) as client:
        schemas = {t.name: set(t.input_schema.get("properties", {})) for t in (await client.list_tools()).tools}
    seen = set()
    for name, span in tool_spans():
        tool, args = TOOL_CALL.match(span).group(1, 2)
        names, kwargs = call_arguments(args)
        used = set(names) | set(kwargs)
        assert used <= TOOL_ARGUMENTS[tool], (name, span)
        assert used <= schemas[tool], (name, span, schemas[tool])
        seen.add(tool)
    assert seen == set(TOOL_ARGUMENTS), f"tools the texts never show: {set(TOOL_ARGUMENTS) - seen}"


@pytest.mark.anyio
async def test_tool_calls_in_the_texts_give_the_stated_results():
    calls = [(n, s) for n, s in tool_spans() if " -> " in s]
    assert len(calls) >= 4
    async with Client(build_server()) as client:
        for name, span in calls:
            tool, args, field, expected = TOOL_CALL.match(span).groups()
            _, kwargs = call_arguments(args)
            result = await client.call_tool(tool, kwargs)
            assert not result.is_error, (span, result.content[0].text)
            assert result.structured_content[field] == json.loads(expected), (name, span)


def test_output_size_calls_in_the_texts_match_pytorch():
    """The conv_output_size examples again, with nn modules (source: PyTorch)."""
    torch = torch_or_skip()
    nn = torch.nn
    for _, span in tool_spans():
        tool, args, field, expected = TOOL_CALL.match(span).groups()
        if tool != "conv_output_size" or not field:
            continue
        _, a = call_arguments(args)
        kind = a.pop("kind", "conv")
        size = a.pop("input_size")
        if kind == "pool":
            module = nn.MaxPool2d(a["kernel_size"], a.get("stride"), a.get("padding", 0), ceil_mode=a.get("ceil_mode", False))
        elif kind == "transpose":
            module = nn.ConvTranspose2d(1, 1, a["kernel_size"], a.get("stride", 1), a.get("padding", 0), a.get("output_padding", 0))
        else:
            module = nn.Conv2d(1, 1, a["kernel_size"], a.get("stride", 1), a.get("padding", 0), a.get("dilation", 1))
        out = module(torch.zeros(1, 1, size, size))
        assert list(out.shape[-2:]) == json.loads(expected), span
        assert arithmetic_conv_output_size(size, kind=kind, **a).output_size == json.loads(expected), span


def test_keyword_spans_name_real_arguments():
    for name in TEXTS:
        for span in code_spans(name):
            if classify(span) == "keyword":
                assert span.split("=", 1)[0] in SPEC_ARGUMENTS | PROMPT_ARGUMENTS | set().union(*TOOL_ARGUMENTS.values()), span


def test_skill_transposed_and_pool_examples_match_pytorch():
    """The prose examples of transposed conv, ceil_mode and even-kernel "same" padding (source: PyTorch)."""
    torch = torch_or_skip()
    nn = torch.nn
    text = re.sub(r"\s+", " ", body(SKILL))
    assert "`(16 - 1)*2 - 2*1 + 1*(4 - 1) + 0 + 1 = 32`" in text
    assert nn.ConvTranspose2d(1, 1, 4, 2, 1)(torch.zeros(1, 1, 16, 16)).shape[-1] == 32
    assert "`(16 - 1)*2 - 2*1 + 1*(3 - 1) + 1 + 1 = 32`" in text
    assert nn.ConvTranspose2d(1, 1, 3, 2, 1, output_padding=1)(torch.zeros(1, 1, 16, 16)).shape[-1] == 32
    assert "`floor((5 - 2) / 2) + 1 = 2`" in text
    assert nn.MaxPool2d(2, 2)(torch.zeros(1, 1, 5, 5)).shape[-1] == 2
    assert "`ceil((5 + 2*1 - 2) / 2) + 1 = 4`" in text
    assert pool_output_length(5, 2, 2, 1, 1, ceil_mode=True) == 3
    assert "`3 // 2 = 1` on top and `3 - 1 = 2` at the bottom" in text
    assert same_padding(4, 1) == (1, 2)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")


def test_vgg16_mac_count_is_torchvisions():
    """Contract golden value: torchvision's VGG16 at 224 is 15,470,264,320 MACs (listed as 15.47 GFLOPS)."""
    layers: list[dict[str, Any]] = []
    for width, n in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(n):
            layers += [{"type": "conv2d", "out_channels": width, "kernel_size": 3, "padding": 1}, {"type": "relu"}]
        layers.append({"type": "maxpool2d", "kernel_size": 2})
    layers += [{"type": "flatten"}, {"type": "linear", "out_features": 4096}, {"type": "linear", "out_features": 4096},
               {"type": "linear", "out_features": 1000}]
    report = shape_calculator([3, 224, 224], layers)
    assert report.total_macs == 15_470_264_320
    assert report.total_params == 138_357_544  # torchvision vgg16 num_params


# ---------------------------------------------------------------- numbers in prose

# Every digit outside code, tables and fenced blocks must sit in one of these reviewed phrases: inputs the text
# states, not results (results go in code spans or tables, where the tests above recompute them).
PROSE = {
    SKILL: ["Worked example 1", "Worked example 2", "Strides 1, 2, 1, 2, padding 1", "with padding 1",
            "64 channels", "16 px", "to 10 classes", "at layer 1", "Params of layer 1",
            "layer 2 adds twice as much as layer 0"],
    PROMPT: ["(16 to 64)", "is 3 and", "at 64 channels", "64 filters", "to 64 channels", "such as 1, 2, 5", "two stacked",
             "Two or three sentences"],
}


@pytest.mark.parametrize("name", TEXTS)
def test_digits_in_prose_are_reviewed_inputs(name):
    text = strip_fences(body(name))
    text = TABLE.sub("", text)
    text = re.sub(r"^(\s*)\d+\. ", r"\1", text, flags=re.M)  # list numbering
    text = re.sub(r"`[^`]+`", "", text)
    text = re.sub(r"\s+", " ", text)
    for phrase in PROSE[name]:
        assert phrase in text, f"{name}: reviewed phrase no longer present: {phrase!r}"
        text = text.replace(phrase, "")
    text = re.sub(r"\b\d+x\d+\b", "", text)  # kernel names: 3x3
    text = re.sub(r"\b(stride|stride above|jump|padding)[ -]\d\b", "", text)  # "stride 1", "a stride-2 conv", "padding-1 body"
    text = re.sub(r"\b\w+2d\b", "", text)  # layer names: Conv2d
    text = re.sub(r"\{\{\w+\}\}", "", text)
    leftover = re.findall(r".{0,30}\d.{0,30}", text)
    assert not leftover, f"{name}: digits in prose no test recomputes (put them in a code span or review them): {leftover}"


# ---------------------------------------------------------------- front matter and the MCP prompts


def test_skill_front_matter_follows_the_agent_skills_format():
    front, rest = split_front_matter(raw_text(SKILL))
    meta = parse_front_matter(front)
    assert meta["name"] == "conv-shape-calculator"
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", meta["name"]) and len(meta["name"]) <= 64
    description = meta["description"]
    assert 0 < len(description) <= 1024
    assert "<" not in description and ">" not in description  # no XML tags
    assert "Use when" in description  # what it does and when to use it
    assert set(meta) <= {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
    # a plain YAML scalar: no ": " or " #" inside, no indicator first, so any YAML parser reads the same string
    for value in meta.values():
        assert ": " not in value and " #" not in value and value[0] not in "!&*[]{}|>'\"%@`-?:,#", value
    assert rest.lstrip().startswith("# ")


def test_prompt_front_matter_declares_its_placeholders():
    front, rest = split_front_matter(raw_text(PROMPT))
    meta = parse_front_matter(front)
    assert meta["name"] == PROMPT
    declared = {a["name"] for a in meta["arguments"]}
    assert declared == set(re.findall(r"\{\{(\w+)\}\}", rest)) == PROMPT_ARGUMENTS


@pytest.mark.anyio
async def test_prompt_front_matter_matches_the_mcp_prompt_arguments():
    meta = parse_front_matter(split_front_matter(raw_text(PROMPT))[0])
    async with Client(build_server()) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    served = [(a.name, a.description, bool(a.required)) for a in prompts[PROMPT].arguments]
    declared = [(a["name"], a["description"], a["required"]) for a in meta["arguments"]]
    assert served == declared
    assert prompts[PROMPT].description == meta["description"]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_filled_prompts_leave_no_placeholder_and_resources_are_the_raw_files(mode):
    async with Client(build_server(), mode=mode) as client:
        architect = await client.get_prompt(
            PROMPT, {"input_shape": "[3, 224, 224]", "param_budget": "500000", "target_receptive_field": "200"}
        )
        calculator = await client.get_prompt(SKILL, {"network": '[{"type": "conv2d", "out_channels": 8, "kernel_size": 3}]',
                                                     "input_shape": "[1, 28, 28]"})
        resources = {uri: await client.read_resource(uri)
                     for uri in ("conv://prompts/cnn-architect", "conv://skills/conv-shape-calculator")}
    text = architect.messages[0].content.text
    assert "{{" not in text and "}}" not in text
    assert "- Input shape: [3, 224, 224]" in text and "- Required output size: not given" in text
    assert not text.startswith("---")  # front matter is not sent to the model
    text = calculator.messages[0].content.text
    assert "{{" not in text and "## Your task" in text and "[1, 28, 28]" in text
    for uri, name in (("conv://prompts/cnn-architect", PROMPT), ("conv://skills/conv-shape-calculator", SKILL)):
        (content,) = resources[uri].contents
        assert content.mime_type == "text/markdown" and content.text == raw_text(name)
