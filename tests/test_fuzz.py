"""Fuzz every tool through the protocol: arguments drawn from its inputSchema, then broken on purpose.

For each tool in list_tools() (whichever tools this build has), hypothesis draws arguments that fit the tool's
inputSchema and then, most of the time, breaks them at a random place: a wrong type, a huge or negative number,
deep nesting, an empty or very long list, a string where a number goes, a missing or an unknown field. Every call
goes through the real SDK Client in memory, in one session per tool and protocol era. A call must come back within
CALL_TIMEOUT_S as a result or as a tool error whose text a model can act on (not the SDK's opaque
"Error executing tool X", no traceback), and the same session must then answer conv_output_size correctly.
"""

import json
from contextlib import contextmanager
from dataclasses import fields

import anyio
import jsonschema
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from server.app import build_server
from server.limits import LIMITS

EXAMPLES_PER_TOOL = 50
CALL_TIMEOUT_S = 30
MAX_SCHEMA_DEPTH = 3  # nested residual/concat blocks drawn from a recursive schema
# The deepest a generated argument may nest (lists and dicts, counted from the argument's value). The SDK client
# serialises each request with pydantic-core (`request.model_dump(mode="json")` in mcp/client/session.py,
# send_request), whose recursion guard refuses anything deeper with `ValueError: Maximum serialization depth
# exceeded`, raised in the client before anything is sent (RECURSION_GUARD_LIMIT = 255 in pydantic-core's
# src/recursion_guard.rs on Linux and macOS, lower on Windows and PyPy). With the installed pydantic-core 254 levels
# below an argument go and 255 do not; test_client_max_depth_is_what_the_installed_sdk_client_can_serialise checks
# it. A case deeper than that tests the client, not the server: it is not generated.
CLIENT_MAX_DEPTH = 254
PROBE = ("conv_output_size", {"input_size": 32, "kernel_size": 3}, [30, 30])  # nn.Conv2d(k=3) on 32 px -> 30 px

# Smaller work bounds while fuzzing, so a drawn design search or convolution ends in seconds, not minutes.
FUZZ_LIMITS = {
    "max_input_elements": 20_000,
    "max_macs": 5_000_000,
    "max_design_states": 20_000,
    "max_design_time_s": 1.0,
    "max_layers": 2_000,
}


def examples(n: int) -> int:
    """n examples under the ci profile (max_examples=100, see conftest.py); proportionally more under a wider one."""
    return max(1, n * settings.default.max_examples // 100)


async def _tools():
    async with Client(build_server()) as client:
        return (await client.list_tools()).tools


TOOLS = {tool.name: tool for tool in anyio.run(_tools)}


# ---- JSON schema -> hypothesis strategy ---------------------------------------------------------------------


def _resolve(schema: dict, defs: dict) -> dict:
    while "$ref" in schema:
        schema = {**defs[schema["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _recursive(schema: dict) -> bool:
    """True when the schema can reach a $ref (so drawing it may nest further)."""
    return '"$ref"' in json.dumps(schema)


def from_schema(schema: dict, defs: dict, depth: int = 0) -> st.SearchStrategy:
    """A strategy for JSON values valid against `schema` (the subset pydantic emits), kept small and finite."""
    if "$ref" in schema:
        ref = schema["$ref"]
        return st.deferred(lambda: from_schema(_resolve({"$ref": ref}, defs), defs, depth + 1))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = schema[key]
            if depth >= MAX_SCHEMA_DEPTH:
                shallow = [o for o in options if not _recursive(_resolve(o, defs))]
                options = shallow or options
            return st.one_of([from_schema(o, defs, depth) for o in options])
    if "allOf" in schema:
        return from_schema({k: v for k, v in schema.items() if k != "allOf"} | schema["allOf"][0], defs, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": t}, defs, depth) for t in kind])
    if kind == "integer":
        lo = schema.get("minimum", schema.get("exclusiveMinimum", -17) + ("exclusiveMinimum" in schema))
        hi = schema.get("maximum", schema.get("exclusiveMaximum", 10**9) - ("exclusiveMaximum" in schema))
        return st.one_of(st.integers(lo, max(lo, min(hi, lo + 16))), st.integers(lo, max(lo, min(hi, lo + 100_000))))
    if kind == "number":
        lo = schema.get("minimum", schema.get("exclusiveMinimum", -100.0))
        hi = schema.get("maximum", schema.get("exclusiveMaximum", 100.0))
        return st.floats(
            lo,
            hi,
            allow_nan=False,
            allow_infinity=False,
            exclude_min="exclusiveMinimum" in schema,
            exclude_max="exclusiveMaximum" in schema,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=max(schema.get("minLength", 0), 12))
    if kind == "array":
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", low + 4), low + (1 if depth >= MAX_SCHEMA_DEPTH else 4))
        if "prefixItems" in schema:
            return st.tuples(*[from_schema(s, defs, depth) for s in schema["prefixItems"]]).map(list)
        return st.lists(from_schema(schema.get("items", {}), defs, depth), min_size=low, max_size=max(low, high))
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v, defs, depth) for k, v in props.items() if k in required},
            optional={k: from_schema(v, defs, depth) for k, v in props.items() if k not in required},
        )
    return JSON_SCALARS  # {} accepts anything


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5))


def json_depth(value) -> int:
    """How deep lists and dicts nest in `value` (a scalar: 0, [1]: 1, [[1], {}]: 2), without recursion."""
    depth, level = 0, [value]
    while level := [v for v in level if isinstance(v, list | dict)]:
        depth += 1
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v)]
    return depth


def _places_for(places: list[tuple], value) -> list[tuple]:
    """The places (top-level argument name, then keys) where `value` keeps its argument within CLIENT_MAX_DEPTH."""
    room = CLIENT_MAX_DEPTH - json_depth(value)
    return [p for p in places if len(p) - 1 <= room]


def nested(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def deep_residual(depth: int) -> list:
    """A network spec of `depth` residual blocks nested inside each other."""
    layers = [{"type": "relu"}]
    for _ in range(depth):
        layers = [{"type": "residual", "body": layers}]
    return layers


# Values no schema asks for: each is what a confused model, a bad client or an attacker might send.
# fmt: off
HOSTILE_VALUES = [
    None, True, False, 0, -1, -(10**18), 2**31, 2**63, 10**30, 10**300, 10**5000,
    1e308, -1e308, 1e-300, 0.5, -2.5, float("inf"), float("-inf"), float("nan"),
    "", "3", "1e9", "same", "NaN", "x" * 10_000, ["a"] * 10_000, "\x00\ud7ff\U0001f600", "[1, 2]",
    [], [[]], {}, {"a": 1}, [1] * 100_000, [[1] * 300] * 300, [0.5] * 10,
    nested(64), nested(200), nested(20, leaf={"type": "conv2d"}), deep_residual(100),
    [{"type": "conv2d", "out_channels": 8, "kernel_size": 3}] * 5000,
]
# fmt: on
HOSTILE = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.lists(st.integers(-3, 3), max_size=6),
    st.dictionaries(st.text(max_size=5), st.integers(-3, 3), max_size=3),
)


def _paths(value, prefix=()):
    """Every place in a JSON value (dict keys and list indices), the root included."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:8]):
            yield from _paths(v, (*prefix, i))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(value[head], rest, new)
    return copy


@st.composite
def arguments(draw, tool):
    """Arguments for `tool`: schema-valid, or broken in one place (the usual case)."""
    schema = tool.input_schema
    args = draw(from_schema({k: v for k, v in schema.items() if k != "$defs"}, schema.get("$defs", {})))
    how = draw(st.sampled_from(["valid", "replace", "replace", "replace", "drop", "extra", "empty"]))
    if how == "replace":
        value = draw(HOSTILE)
        paths = _places_for([p for p in _paths(args) if p], value)
        if paths:
            args = _replace(args, draw(st.sampled_from(paths)), value)
    elif how == "drop" and args:
        key = draw(st.sampled_from(sorted(args)))
        args = {k: v for k, v in args.items() if k != key}
    elif how == "extra":
        args = {**args, draw(st.text(min_size=1, max_size=8)): draw(HOSTILE)}
    elif how == "empty":
        args = {}
    return args


def minimal(schema: dict, defs: dict):
    """The smallest JSON value valid against `schema`: required fields only, lower bounds, first options."""
    schema = _resolve(schema, defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return minimal(schema[key][0], defs)
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind in ("integer", "number"):
        return schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
    if kind == "string":
        return "a" * schema.get("minLength", 0)
    if kind == "array":
        return [minimal(schema.get("items", {}), defs) for _ in range(schema.get("minItems", 0))]
    if kind == "boolean":
        return False
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: minimal(props[k], defs) for k in schema.get("required", [])}
    return None


# ---- the checks ---------------------------------------------------------------------------------------------


def actionable(name: str, text: str) -> str | None:
    """Why an error text would not help a model fix its call, or None when it is fine."""
    if not text.strip():
        return "empty error text"
    if text.strip() in (f"Error executing tool {name}", "Error executing tool"):
        return "opaque SDK error (an unexpected exception inside the tool)"
    if "Traceback" in text or 'File "/' in text:
        return "traceback text reached the client"
    if len(text) > 20_000:
        return f"error text of {len(text)} chars"
    return None


@contextmanager
def fuzz_limits():
    saved = {f.name: getattr(LIMITS, f.name) for f in fields(LIMITS)}
    for name, value in FUZZ_LIMITS.items():
        if hasattr(LIMITS, name):
            setattr(LIMITS, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(LIMITS, name, value)


@contextmanager
def session(mode: str):
    """One in-memory Client session, driven from sync code (so hypothesis can run its examples inside it)."""
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(Client(build_server(), mode=mode)) as client,
    ):

        def call(name, args):
            async def timed():
                with anyio.fail_after(CALL_TIMEOUT_S):
                    return await client.call_tool(name, args)

            return portal.call(timed)

        yield call


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_tool_answers_any_arguments_with_a_result_or_an_actionable_error_and_keeps_serving(name, mode):
    tool = TOOLS[name]
    with fuzz_limits(), session(mode) as call:

        @settings(
            max_examples=examples(EXAMPLES_PER_TOOL // 2 if mode == "legacy" else EXAMPLES_PER_TOOL),
            suppress_health_check=list(HealthCheck),
        )
        @given(args=arguments(tool))
        def check(args):
            result = call(name, args)
            if result.is_error:
                text = " ".join(getattr(c, "text", "") for c in result.content)
                problem = actionable(name, text)
                assert problem is None, f"{name}({_short(args)}): {problem}: {text[:500]!r}"
            elif tool.output_schema:
                jsonschema.validate(result.structured_content, tool.output_schema)
            probe = call(PROBE[0], PROBE[1])
            assert not probe.is_error and probe.structured_content["output_size"] == PROBE[2]

        check()


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_argument_of_every_tool_survives_each_hostile_value(name):
    """The deterministic half: each top-level argument in turn gets each hostile value, in one session."""
    tool = TOOLS[name]
    schema = tool.input_schema
    base = minimal({k: v for k, v in schema.items() if k != "$defs"}, schema.get("$defs", {}))
    problems = []
    with fuzz_limits(), session("auto") as call:
        for arg in schema.get("properties", {}):
            for value in HOSTILE_VALUES:
                args = {**base, arg: value}
                result = call(name, args)
                if result.is_error:
                    text = " ".join(getattr(c, "text", "") for c in result.content)
                    problem = actionable(name, text)
                    if problem:
                        problems.append(f"{name}({_short(args)[:120]}): {problem}")
                probe = call(PROBE[0], PROBE[1])
                assert not probe.is_error and probe.structured_content["output_size"] == PROBE[2]
    assert not problems, "\n".join(problems)


def _short(args) -> str:
    """A short printable form of arguments (huge ints shown by their size: str() refuses > 4300 digits)."""

    def tame(v):
        if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 256:
            return f"<int of ~{int(v.bit_length() * 0.30103)} digits>"
        if isinstance(v, list):
            return [tame(x) for x in v[:10]] + (["..."] if len(v) > 10 else [])
        if isinstance(v, dict):
            return {k: tame(x) for k, x in v.items()}
        return v

    try:
        text = json.dumps(tame(args), default=str)
    except (ValueError, RecursionError):
        text = "<unprintable>"
    return text if len(text) < 300 else text[:300] + "..."


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_the_schema_strategy_draws_arguments_that_fit_the_tools_own_input_schema(name):
    schema = TOOLS[name].input_schema
    strategy = from_schema({k: v for k, v in schema.items() if k != "$defs"}, schema.get("$defs", {}))

    @settings(max_examples=examples(20), suppress_health_check=list(HealthCheck))
    @given(strategy)
    def valid(args):
        jsonschema.validate(args, schema)

    valid()


def test_actionable_rejects_the_opaque_sdk_error_and_tracebacks():
    assert actionable("conv2d", "Error executing tool conv2d") is not None
    assert actionable("conv2d", "") is not None
    assert actionable("conv2d", 'Traceback (most recent call last):\n  File "/x.py"') is not None
    assert actionable("conv2d", "Error executing tool conv2d: stride must be >= 1, got 0") is None


def test_a_long_tool_error_is_cut_at_a_line_with_a_note_of_what_was_left_out():
    from server.guards import MAX_ERROR_CHARS, cap_text

    paragraph = "bias.{}\n  Input should be a valid number [type=float_type, input_value='a', input_type=str]\n"
    text = "Error executing tool conv2d: 1000 validation errors\n" + "".join(paragraph.format(i) for i in range(1000))
    short = cap_text(text)
    assert len(short) <= MAX_ERROR_CHARS + 100
    assert short.startswith("Error executing tool conv2d: 1000 validation errors\nbias.0\n")
    assert "more validation errors like these left out" in short
    assert short.rsplit("\n", 2)[-2].startswith("  Input should")  # no field name without its message
    assert cap_text("kernel spans 5 px") == "kernel spans 5 px"


def test_a_validation_error_over_thousands_of_elements_is_one_short_line_in_both_eras():
    from server.guards import MAX_ERROR_CHARS, cap_tool_errors

    async def scenario(mode):
        server = build_server()  # argument_errors answers first: one line per argument; cap_tool_errors stays the net
        assert cap_tool_errors in server.middleware

        @server.tool(name="takes_floats")
        def takes_floats(values: list[float]) -> int:  # an unbounded list: one error paragraph per bad element
            return len(values)

        async with Client(server, mode=mode) as client:
            bad = await client.call_tool("takes_floats", {"values": ["a"] * 5000})  # ~1 MB of text uncapped
            good = await client.call_tool(PROBE[0], PROBE[1])
        return bad, good

    for mode in ("auto", "legacy"):
        bad, good = anyio.run(scenario, mode)
        assert bad.is_error and len(bad.content[0].text) < MAX_ERROR_CHARS + 200
        assert bad.content[0].text.startswith("Error executing tool takes_floats: argument values[0]: input should be a valid number")
        assert "\n" not in bad.content[0].text and "pydantic.dev" not in bad.content[0].text
        assert good.structured_content["output_size"] == PROBE[2]


# ---- nested positions: a valid call broken at one place, at any depth ---------------------------------------
#
# The schema-drawn fuzz above mostly breaks arguments near the top (a drawn `layers` is a list of bare objects).
# Here each tool starts from a small call known to succeed, with layers inside residual and concat blocks, and one
# place at any depth (a field of a layer, an element of a per-axis pair, a branch of a concat, a row of an array)
# gets one hostile value. Found this way: a non-text layer 'type' of 5,000 digits crashed the error message
# (str() refuses ints over 4,300 digits) and a concat's 'branches' that is not a list crashed the layer count.

_CONV = {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}
_LAYERS = [
    _CONV,
    {"type": "batchnorm2d"},
    {
        "type": "residual",
        "body": [{"type": "conv2d", "out_channels": 4, "kernel_size": [3, 3], "padding": [1, 1]}, {"type": "relu"}],
        "shortcut": [],
    },
    {
        "type": "concat",
        "branches": [
            [{"type": "conv2d", "out_channels": 2, "kernel_size": 1}],
            [{"type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1}],
        ],
    },
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "adaptiveavgpool2d", "output_size": [1, 1]},
    {"type": "flatten"},
    {"type": "linear", "out_features": 10},
]
_X = [[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]
_W = [[[[1.0, 0.0], [0.0, -1.0]]]]
VALID_CALLS = {
    "conv_output_size": {
        "input_size": [32, 32],
        "kernel_size": [3, 3],
        "stride": [2, 2],
        "padding": [1, 1],
        "dilation": [1, 1],
    },
    "shape_calculator": {"input_shape": [1, 3, 16, 16], "layers": _LAYERS},
    "receptive_field": {"input_shape": [3, 16, 16], "layers": _LAYERS[:5], "output_position": [2, 2]},
    "parameter_count": {"layers": _LAYERS, "input_shape": [3, 16, 16]},
    "design_architecture": {
        "input_shape": [3, 32, 32],
        "param_budget": 100_000,
        "target_receptive_field": [9, 9],
        "output_size": [16, 16],
        "max_layers": 3,
        "kernel_sizes": [3, 5],
        "strides": [1, 2],
        "dilations": [1],
        "widths": [8, 16],
        "top_k": 2,
    },
    "conv2d": {"x": _X, "weight": _W, "bias": [0.5], "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1]},
    "conv2d_backward": {"x": _X, "weight": _W, "bias": [0.5], "grad_output": [[[1.0, 1.0], [1.0, 1.0]]]},
    "get_guide": {"name": "cnn-architect", "arguments": {"input_shape": "3x32x32", "param_budget": "100000"}},
}
_LAYERS_2 = [  # the other layer types and options; zeropad2d's padding of 1e9 before an adaptive pool once OOM-killed the walk
    {
        "type": "conv2d",
        "out_channels": 6,
        "kernel_size": [3, 5],
        "padding": "same",
        "padding_mode": "reflect",
        "dilation": [1, 2],
        "groups": 3,
        "bias": False,
    },
    {"type": "leakyrelu", "negative_slope": 0.1},
    {"type": "dropout", "p": 0.5},
    {"type": "zeropad2d", "padding": [1, 1, 2, 2]},
    {"type": "convtranspose2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1},
    {"type": "avgpool2d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
    {"type": "adaptivemaxpool2d", "output_size": [None, 2]},
    {"type": "flatten", "start_dim": 1},
]
MORE_VALID_CALLS = {  # id -> (tool, arguments)
    "shape_calculator-2": ("shape_calculator", {"input_shape": [3, 16, 16], "layers": _LAYERS_2}),
    "receptive_field-2": ("receptive_field", {"input_shape": [3, 16, 16], "layers": _LAYERS_2[:7]}),
    "conv2d-2": (
        "conv2d",
        {
            "sample": "checkerboard",
            "kernel": "sobel_x",
            "image": True,
            "show_columns": True,
            "method": "both",
            "stride": [2, 2],
            "padding": [1, 1],
        },
    ),
    "conv2d_backward-2": ("conv2d_backward", {"sample": "step", "kernel": "blur_3x3", "padding": [1, 1]}),
    "conv_output_size-2": (
        "conv_output_size",
        {
            "input_size": [7, 9],
            "kernel_size": 3,
            "stride": [2, 2],
            "padding": [1, 0],
            "output_padding": [1, 1],
            "dilation": [1, 2],
            "kind": "transpose",
        },
    ),
    "get_guide-2": (
        "get_guide",
        {"name": "conv-shape-calculator", "arguments": {"network": "conv3-64, maxpool", "input_shape": "3x224x224"}},
    ),
}
ALL_VALID_CALLS = {**{name: (name, args) for name, args in VALID_CALLS.items()}, **MORE_VALID_CALLS}
# fmt: off
NESTED_HOSTILE_VALUES = [
    10**5000, -(10**5000), 10**12, -1, 0, 1e308, -1e308, 0.5, "", "x" * 100_000, None, True, [], {},
    nested(200), [3] * 100_000, {"type": "conv2d"}, deep_residual(100), [_CONV] * 3000,
]
# fmt: on


def _nested_places(args) -> list[tuple]:
    """Every place below the top level (the top-level arguments are the deterministic test's job above)."""
    return [p for p in _paths(args) if len(p) > 1]


def _check(call, name, args, place=(), value=None) -> str | None:
    """Call once; the problem with the answer (None when fine). Then the session must still answer the probe."""
    result = call(name, args)
    problem = None
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        if problem := actionable(name, text):
            at = f" {'.'.join(map(str, place))} = {_short(value)[:60]}" if place else ""
            problem = f"{name}{at} ({_short(args)[:200]}): {problem}: {text[:300]!r}"
    probe = call(PROBE[0], PROBE[1])
    assert not probe.is_error and probe.structured_content["output_size"] == PROBE[2]
    return problem


@pytest.mark.parametrize("case", sorted(ALL_VALID_CALLS))
def test_each_valid_call_the_nested_fuzz_starts_from_succeeds_and_fits_the_schema(case):
    name, args = ALL_VALID_CALLS[case]
    assert name in TOOLS
    jsonschema.validate(args, TOOLS[name].input_schema)
    with fuzz_limits(), session("auto") as call:
        result = call(name, args)
    assert not result.is_error, result.content[0].text
    assert _nested_places(args)


@pytest.mark.parametrize("case", sorted(ALL_VALID_CALLS))
def test_a_valid_call_broken_at_any_nested_place_by_any_hostile_value_gets_an_actionable_answer(case):
    """The deterministic sweep: every place below the top level x every value in NESTED_HOSTILE_VALUES."""
    name, base = ALL_VALID_CALLS[case]
    with fuzz_limits(), session("auto") as call:
        problems = [
            p
            for place in _nested_places(base)
            for v in NESTED_HOSTILE_VALUES
            if (p := _check(call, name, _replace(base, place, v), place, v))
        ]
    assert not problems, "\n".join(problems)


@st.composite
def nested_breaks(draw):
    """A valid call with one nested place (or two) replaced by anything HOSTILE draws, within CLIENT_MAX_DEPTH.

    The second place may lie inside the first value (e.g. deep in a nested(200)): only places where the value still
    fits are drawn (a 300-deep `x` once failed here in the client, which cannot serialise it).
    """
    name, args = ALL_VALID_CALLS[draw(st.sampled_from(sorted(ALL_VALID_CALLS)))]
    for _ in range(draw(st.integers(1, 2))):
        value = draw(HOSTILE)
        places = _places_for(_nested_places(args), value)
        args = _replace(args, draw(st.sampled_from(places or [("x",)])), value)
    return name, args


def test_client_max_depth_is_what_the_installed_sdk_client_can_serialise():
    """The client's own serialisation (mcp/client/session.py, send_request), without a server."""
    import mcp_types as types

    def dump(value):
        request = types.CallToolRequest(params=types.CallToolRequestParams(name="t", arguments={"a": value}))
        return request.model_dump(by_alias=True, mode="json", exclude_none=True)

    dump(nested(CLIENT_MAX_DEPTH))
    dump(nested(CLIENT_MAX_DEPTH - 2, leaf={"k": [1]}))
    with pytest.raises(ValueError, match="serialization depth"):
        dump(nested(CLIENT_MAX_DEPTH + 1))
    assert all(json_depth(v) <= CLIENT_MAX_DEPTH for v in HOSTILE_VALUES + NESTED_HOSTILE_VALUES)
    for value, depth in [(1, 0), ([], 1), ([1], 1), ({"a": [1]}, 2), ([[1], {}], 2), (deep_residual(2), 6)]:
        assert json_depth(value) == depth, value


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_the_generated_cases_stay_within_what_the_client_can_send(name):
    """The strategies alone, no server: a case the client could not send fails here by name, not in the client."""

    @settings(max_examples=examples(100), suppress_health_check=list(HealthCheck))
    @given(args=arguments(TOOLS[name]), case=nested_breaks())
    def fits(args, case):
        for value in (*args.values(), *case[1].values()):
            assert json_depth(value) <= CLIENT_MAX_DEPTH

    fits()


def test_valid_calls_broken_at_drawn_nested_places_get_actionable_answers():
    with fuzz_limits(), session("auto") as call:

        @settings(max_examples=examples(150), suppress_health_check=list(HealthCheck))
        @given(case=nested_breaks())
        def check(case):
            problem = _check(call, *case)
            assert problem is None, problem

        check()


# Text specs broken on purpose: repeat bombs, huge numbers, long lines, unbalanced parentheses, unknown classes.
_C = "Conv2d(3, 3, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
_N = "9" * 5000  # int() refuses over 4,300 digits


def _seq(*lines: str) -> str:
    return "Sequential(\n" + "".join(f"  ({i}): {line}\n" for i, line in enumerate(lines)) + ")"


# fmt: off
HOSTILE_SPECS = [
    _seq("99999999 x " + _C), _seq("0 x " + _C), _seq(f"{_N} x ReLU()"), _seq("1000000000 x Sequential(\n)"),
    "Sequential(\n  (0): 100 x Sequential(\n    (0): 100 x Sequential(\n      (0): 100 x ReLU()\n    )\n  )\n)",
    "Sequential(\n" * 5000 + "ReLU()\n" + ")\n" * 5000,
    _seq(f"Conv2d(3, 3, kernel_size=({_N}, 3))"), _seq(f"Conv2d({_N}, 3, 3)"), _seq(f"Conv2d(3, 3, kernel_size=-{_N})"),
    _seq("Conv2d(3, 3, kernel_size=1e999)"), _seq("Conv2d(3, 3, kernel_size=10**5000)"), _seq("Conv2d(3, 3, kernel_size=1_000_000_000_000)"),
    _seq("Conv2d(3, 3, kernel_size=-3)"), _seq("Conv2d(3, 3, kernel_size=3j)"), _seq("Conv2d(3, 3, kernel_size=...)"),
    _seq("Conv2d(3, 3, kernel_size={1, 2})"), _seq("Conv2d(3, 3, kernel_size={1: 2})"), _seq("Conv2d(3, 3, kernel_size=b'x')"),
    _seq("Conv2d(3, 3, kernel_size=lambda: 1)"), _seq("Conv2d(**k)"), _seq("Conv2d(*k)"), _seq("Conv2d(3, 3, 3, 1, 1, 1, 1, True, 9, 9)"),
    _seq("Conv2d(3, 3, kernel_size=3, kernel_size=5)"), _seq("Conv2d(3, 3, kernel_size=(" + "(" * 5000 + "3" + ")" * 5000 + "))"),
    _seq("Conv2d(3, 3, kernel_size=" + "[" * 150 + "3" + "]" * 150 + ")"), _seq("Conv2d(3, 3, kernel_size=3" + ", x=1" * 50_000 + ")"),
    _seq("Conv2d(3, 3, kernel_size=3, padding='" + "x" * 100_000 + "')"), _seq("Conv2d(3, 3, kernel_size=3, padding=" + "x" * 100_000 + ")"),
    _seq("A" * 100_000 + "(1)"), "Sequential(\n  (0): " + "B" * 100_000 + "(\n    (0): ReLU()\n  )\n)",
    _seq("Foo(3)"), _seq("Conv2D(3, 3, 3)"), _seq("torch.nn.modules.conv.Conv2d(3, 3, 3)"),
    "Sequential(\n  (0): BasicBlock(\n    (conv1): " + _C + "\n  )\n)",
    "Sequential(\n" * 1000, ")\n" * 1000, "Sequential(\n  (0): " + _C + "\n))", _seq("Conv2d(3, 3, 3"), _seq("Conv2d(3, 3, 3))))"),
    "(" * 100_000, ")" * 100_000, "Conv2d(" * 20_000, "\x00\ud7ff\U0001f600(",
    "\n" * 900_000, " \n" * 400_000,  # the text/VGG test once matched `^\s*` across lines: quadratic, hours for 1 MB
    "x" * 900_000, "conv3-" + _N, "conv" + _N + "-3", "FC-" + _N, "conv0-64", "conv3-0", "FC-0", "conv99999999999-3",
    "maxpool " * 100_000, "conv3-64," * 90_000, "conv3-64 " + "x" * 100_000, "conv3-64, FC-10, FC-" + "1" * 12,
]
# fmt: on


@pytest.mark.parametrize("name", ["parameter_count", "receptive_field", "shape_calculator"])
def test_hostile_text_specs_get_an_actionable_answer_that_echoes_no_huge_value(name):
    problems = []
    with fuzz_limits(), session("auto") as call:
        for spec in HOSTILE_SPECS:
            args = {"spec": spec} if name == "parameter_count" else {"input_shape": [3, 16, 16], "spec": spec}
            result = call(name, args)
            text = " ".join(getattr(c, "text", "") for c in result.content)
            if result.is_error and (problem := actionable(name, text) or (len(text) > 2_000 and f"{len(text)} chars")):
                problems.append(f"{_short(spec)[:80]}: {problem}: {text[:200]!r}")
            probe = call(PROBE[0], PROBE[1])
            assert not probe.is_error and probe.structured_content["output_size"] == PROBE[2]
    assert not problems, "\n".join(problems)
