"""The effective_receptive_field tool through the real SDK Client: schema, results, pictures, errors, limits, progress."""

import base64
import io

import anyio
import numpy as np
import pytest
from mcp import Client

from server import conv_tools
from server.app import build_server
from server.limits import LIMITS
from skills.erf import effective_receptive_field, erf_job

UNIFORM_10 = [{"type": "conv2d", "out_channels": 1, "kernel_size": 3, "padding": 1}] * 10


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def call(args, **kw):
    async with Client(build_server(), **kw) as client:
        return await client.call_tool("effective_receptive_field", args)


def _png(block) -> tuple[int, int]:
    from PIL import Image

    data = base64.b64decode(block.data)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and block.mime_type == "image/png"
    return Image.open(io.BytesIO(data)).size


@pytest.mark.anyio
async def test_the_tool_is_listed_with_the_contract_arguments_and_result_fields():
    async with Client(build_server()) as client:
        tool = {t.name: t for t in (await client.list_tools()).tools}["effective_receptive_field"]
    args = tool.input_schema["properties"]
    for name in ("input_shape", "layers", "spec", "graph", "output", "weights", "seed", "samples", "output_position", "image"):
        assert name in args, name
    assert args["weights"]["anyOf"][0]["enum"] == ["uniform", "random"]
    out = tool.output_schema["properties"]
    assert {"erf_std", "mass_width_50", "mass_width_95", "receptive_field", "gradient", "rf_fraction_95"} <= set(out)
    assert "sum over its channels" in tool.description


@pytest.mark.anyio
async def test_uniform_stack_gives_the_papers_numbers_and_a_heatmap():
    r = await call({"input_shape": [1, 48, 48], "layers": UNIFORM_10, "image": True})
    assert not r.is_error
    s = r.structured_content
    # ten 3x3 all-ones layers: std sqrt(10 * 2/3) per axis, RF 21 (Luo et al.'s uniform case)
    assert s["erf_std"] == pytest.approx([np.sqrt(20 / 3)] * 2, rel=1e-12)
    assert s["receptive_field"] == [21, 21] and s["mass_width_95"] == [11, 11]
    assert s["output_position"] == [24, 24] and s["samples"] == 1 and s["forward_pass"] is False
    assert s["gradient"]["map_shape"] == [48, 48] and s["gradient"]["map"][24][24] == s["gradient"]["peak_value"]
    assert "std 2.58 px; 95% of the gradient mass within 11 px" in r.content[0].text
    width, height = _png(r.content[1])
    assert width > 192 and height > 192
    r = await call({"input_shape": [1, 72, 72], "layers": UNIFORM_10})  # 5,184 values: more than max_output_elements_inline
    assert r.structured_content["gradient"]["map"] is None
    assert any("max_output_elements_inline=4,096" in w for w in r.structured_content["warnings"])


@pytest.mark.anyio
async def test_the_structured_result_is_the_python_api_result():
    layers = [{"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1}, {"type": "relu"},
              {"type": "maxpool2d", "kernel_size": 2}, {"type": "conv2d", "out_channels": 2, "kernel_size": 3}]
    args = {"input_shape": [2, 20, 20], "layers": layers, "weights": "random", "seed": 3, "samples": 4, "output_position": [3, 5]}
    r = await call(args)
    expected = effective_receptive_field([2, 20, 20], layers, weights="random", seed=3, samples=4, output_position=[3, 5])
    assert r.structured_content == expected.model_dump(mode="json")
    assert r.structured_content["gradient"]["map"] is not None  # 400 values: inline


@pytest.mark.anyio
async def test_given_weights_as_nested_lists_and_a_1d_profile_picture():
    layers = [{"type": "conv1d", "out_channels": 2, "kernel_size": 3, "dilation": 2}]
    w = np.arange(12, dtype=float).reshape(2, 1, 2, 3) - 5
    weights = {"0.weight": w[:, :, 0].tolist(), "0.bias": [0.5, -0.5]}
    r = await call({"input_shape": [1, 30], "layers": layers, "weights": weights, "image": True})
    assert not r.is_error
    s = r.structured_content
    assert s["weights"] == "given" and s["receptive_field"] == [5]
    # one conv: the gradient is the two kernels summed over output channels, at taps 13, 15, 17 (dilation 2)
    grad = np.zeros(30)
    grad[[13, 15, 17]] = np.abs(w[:, 0, 0].sum(axis=0))
    np.testing.assert_allclose(s["gradient"]["map"], grad)
    _png(r.content[1])


@pytest.mark.anyio
async def test_graphs_and_3d_networks_work_3d_without_a_picture():
    graph = [
        {"name": "a", "inputs": ["input"], "type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
        {"name": "b", "inputs": ["input"], "type": "conv2d", "out_channels": 2, "kernel_size": 1},
        {"name": "s", "inputs": ["a", "b"], "type": "add"},
    ]
    r = await call({"input_shape": [1, 9, 9], "graph": graph})
    assert not r.is_error and r.structured_content["receptive_field"] == [3, 3]
    r = await call({"input_shape": [1, 7, 8, 9], "layers": [{"type": "conv3d", "out_channels": 2, "kernel_size": 3, "padding": 1}],
                    "image": True})
    assert not r.is_error and len(r.content) == 1 and "no picture for a 3-D network" in r.content[0].text
    assert r.structured_content["mass_width_95"] == [3, 3, 3]


@pytest.mark.anyio
async def test_bad_input_is_a_clear_tool_error_and_the_server_keeps_answering():
    async with Client(build_server()) as client:
        r = await client.call_tool("effective_receptive_field", {"input_shape": [1, 8, 8], "layers": UNIFORM_10[:2], "weights": "gaussian"})
        assert r.is_error and "weights must be 'uniform'" in r.content[0].text and "'gaussian'" in r.content[0].text
        r = await client.call_tool("effective_receptive_field", {"input_shape": [1, 8, 8], "layers": UNIFORM_10[:2], "output_position": [8, 0]})
        assert r.is_error and "outside the output: it is 8x8" in r.content[0].text
        layers = [*UNIFORM_10[:2], {"type": "flatten"}, {"type": "linear", "out_features": 3}]
        r = await client.call_tool("effective_receptive_field", {"input_shape": [1, 8, 8], "layers": layers})
        assert not r.is_error and r.structured_content["at_layer"] == "1"
        assert "stops at the last layer with a spatial output" in r.content[0].text
        r = await client.call_tool("effective_receptive_field", {"input_shape": [1, 8, 8], "layers": UNIFORM_10[:2]})
        assert not r.is_error


@pytest.mark.anyio
async def test_limits_refuse_at_once_naming_the_limit_and_how_to_raise_it(monkeypatch):
    layers = [{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "relu"}] * 2
    monkeypatch.setattr(LIMITS, "max_macs", 100_000)
    r = await call({"input_shape": [3, 16, 16], "layers": layers})
    assert r.is_error
    text = r.content[0].text
    assert "max_macs=100,000" in text and "--max-macs" in text and "CONV_MCP_MAX_MACS" in text and "forward + backward" in text
    monkeypatch.setattr(LIMITS, "max_macs", 10**9)
    monkeypatch.setattr(LIMITS, "max_input_elements", 1000)
    r = await call({"input_shape": [3, 16, 16], "layers": layers})
    assert r.is_error and "max_input_elements=1,000" in r.content[0].text and "--max-input-elements" in r.content[0].text


@pytest.mark.anyio
async def test_progress_is_reported_while_working():
    seen = []

    async def progress(p, total, message):
        seen.append((p, total, message))

    layers = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"type": "relu"}] * 3
    async with Client(build_server()) as client:
        r = await client.call_tool("effective_receptive_field", {"input_shape": [2, 24, 24], "layers": layers, "weights": "random",
                                                                 "samples": 3}, progress_callback=progress)
    assert not r.is_error
    assert seen and seen[-1][0] == seen[-1][1] == 3 * 2 * 6  # samples x (forward + backward) x layers
    assert {m for _, _, m in seen} == {"effective_receptive_field"}


@pytest.mark.anyio
async def test_cancelled_work_stops_between_chunks():
    layers = [{"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1}, {"type": "relu"}] * 4
    job = erf_job([1, 16, 16], layers, weights="random", samples=5)
    chunk = conv_tools.CHUNK_SECONDS
    conv_tools.CHUNK_SECONDS = 0  # one chunk per worker-thread hop
    try:
        with anyio.CancelScope() as scope:

            class Ctx:
                async def report_progress(self, progress, total, message):
                    scope.cancel()

            await conv_tools._run(job, Ctx(), "test")
    finally:
        conv_tools.CHUNK_SECONDS = chunk
    assert scope.cancelled_caught
    assert job.done < job.total == 5 * 2 * 8
    assert job.result().report.samples == 5  # a stopped job is only paused: it can still be run to the end


@pytest.mark.anyio
async def test_the_older_protocol_era_works_too():
    r = await call({"input_shape": [1, 12, 12], "layers": UNIFORM_10[:3]}, mode="legacy")
    assert not r.is_error and r.structured_content["receptive_field"] == [7, 7]


def test_importing_the_tool_module_does_not_import_numpy():
    import subprocess
    import sys

    code = "import sys, server.erf_tools; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
