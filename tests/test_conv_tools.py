"""The conv2d and conv2d_backward tools and the kernel/sample resources, through the real SDK Client."""

import base64
import json

import anyio
import numpy as np
import pytest
from mcp import Client

from server import conv_tools
from server.app import build_server
from server.limits import LIMITS
from skills.conv import conv2d, conv2d_backward, conv2d_job
from skills.kernels import KERNELS, depthwise_weight, sample_array

LESSON_X = [[1, 2, 0, 1, 2], [0, 1, 3, 1, 0], [2, 1, 0, 2, 1], [1, 0, 2, 1, 3], [2, 1, 1, 0, 1]]
LESSON_W = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def call(name, args, **kw):
    async with Client(build_server(), **kw) as client:
        return await client.call_tool(name, args)


@pytest.mark.anyio
async def test_tools_are_listed_with_the_contract_argument_names():
    async with Client(build_server()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    conv = tools["conv2d"].input_schema["properties"]
    for arg in ("x", "weight", "kernel", "bias", "stride", "padding", "padding_mode", "dilation", "groups", "method"):
        assert arg in conv, arg
    back = tools["conv2d_backward"].input_schema["properties"]
    for arg in ("x", "weight", "bias", "stride", "padding", "dilation", "groups", "grad_output"):
        assert arg in back, arg
    out = tools["conv2d"].output_schema["properties"]
    assert {"output", "output_shape", "method", "max_abs_diff"} <= set(out)
    assert {"grad_input", "grad_weight", "grad_bias"} <= set(tools["conv2d_backward"].output_schema["properties"])


@pytest.mark.anyio
async def test_hw_input_with_one_output_channel_comes_back_hw_as_the_contract_says():
    # The lesson's worked 5x5 example; expected output from skills.conv2d (itself checked by hand and against torch).
    r = await call("conv2d", {"x": LESSON_X, "weight": [[LESSON_W]]})
    assert not r.is_error
    s = r.structured_content
    assert s["output_shape"] == [3, 3]
    assert s["output"] == [[-3.0, 0.0, 3.0], [0.0, -3.0, 0.0], [1.0, -2.0, -3.0]]
    assert s["macs"] == 81
    assert r.content[0].text.endswith("output [3, 3]:\n-3  0  3\n 0 -3  0\n 1 -2 -3")  # the values in the text too


@pytest.mark.anyio
async def test_method_both_runs_naive_and_im2col_and_reports_their_difference():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 2, 3, 2)), rng.standard_normal(6)
    args = {
        "x": x.tolist(),
        "weight": w.tolist(),
        "bias": b.tolist(),
        "stride": [2, 1],
        "padding": [1, 2],
        "dilation": [1, 2],
        "groups": 2,
        "padding_mode": "reflect",
        "method": "both",
    }
    r = await call("conv2d", args)
    s = r.structured_content
    assert s["method"] == "both" and s["max_abs_diff"] < 1e-12
    expected = conv2d(x, w, b, [2, 1], [1, 2], [1, 2], 2, "reflect")
    assert s["output_shape"] == list(expected.shape)
    np.testing.assert_allclose(s["output"], expected, rtol=1e-12)


@pytest.mark.anyio
async def test_named_kernel_on_a_sample_is_applied_depthwise():
    r = await call("conv2d", {"sample": "rgb", "kernel": "sobel_y", "padding": "same"})
    s = r.structured_content
    assert s["kernel"] == "sobel_y" and s["groups"] == 3 and s["weight_shape"] == [3, 1, 3, 3]
    x = sample_array("rgb")
    np.testing.assert_allclose(s["output"], conv2d(x, depthwise_weight("sobel_y", 3), groups=3, padding="same"))


@pytest.mark.anyio
async def test_image_content_is_a_png_beside_the_numbers_when_asked():
    r = await call("conv2d", {"sample": "step", "kernel": "sobel_x", "padding": 1, "image": True})
    kinds = [c.type for c in r.content]
    assert kinds == ["text", "image"]
    assert r.content[1].mime_type == "image/png"
    assert base64.b64decode(r.content[1].data).startswith(b"\x89PNG")
    r = await call("conv2d", {"sample": "step", "kernel": "sobel_x", "padding": 1})
    assert [c.type for c in r.content] == ["text"]


@pytest.mark.anyio
async def test_show_columns_returns_the_im2col_matrix_for_small_inputs():
    r = await call("conv2d", {"x": [LESSON_X], "weight": [[LESSON_W]], "show_columns": True})
    s = r.structured_content
    assert s["columns_shape"] == [9, 9]
    cols = np.array(s["columns"])
    # column 0 is the top-left window, flattened; weight @ columns is the output
    np.testing.assert_array_equal(cols[:, 0], np.array(LESSON_X)[0:3, 0:3].reshape(-1))
    np.testing.assert_array_equal((np.array(LESSON_W).reshape(1, 9) @ cols).reshape(3, 3), s["output"][0])


@pytest.mark.anyio
async def test_large_output_is_summarised_with_a_note_not_flooded():
    x = np.random.default_rng(1).standard_normal((1, 70, 70))
    r = await call("conv2d", {"x": x.tolist(), "kernel": "identity", "padding": 1})
    s = r.structured_content
    assert s["output"] is None
    summ = s["summary"]
    assert summ["shape"] == [1, 70, 70]
    assert "max_output_elements_inline=4,096" in summ["note"] and "--max-output-elements-inline" in summ["note"]
    assert np.isclose(summ["mean"], x.mean()) and np.isclose(summ["max"], x.max())
    np.testing.assert_allclose(summ["corner"], x[0, :8, :8])
    assert len(r.content[0].text) < 1000


@pytest.mark.anyio
async def test_tool_errors_are_clear_and_the_server_answers_the_next_call():
    async with Client(build_server()) as client:
        r = await client.call_tool("conv2d", {"x": [[1, 2], [3]], "kernel": "identity"})
        assert r.is_error and "x is ragged" in r.content[0].text
        r = await client.call_tool("conv2d", {"x": [[[1, 2], [3, 4]]] * 3, "weight": [[[[1]]] * 2]})
        assert r.is_error and "C_in=3" in r.content[0].text
        r = await client.call_tool("conv2d", {"x": [[[1, 2], [3, 4]]] * 3, "weight": [[[[1]]]] * 4, "groups": 3})
        assert r.is_error and "groups" in r.content[0].text
        r = await client.call_tool("conv2d", {"sample": "step", "kernel": "sobel_x", "groups": 2})
        assert r.is_error and "groups must be 1" in r.content[0].text
        r = await client.call_tool("conv2d", {"sample": "step", "kernel": "nope"})
        assert r.is_error and "unknown kernel 'nope'" in r.content[0].text and "sobel_x" in r.content[0].text
        r = await client.call_tool("conv2d", {"sample": "step"})
        assert r.is_error and "exactly one of weight" in r.content[0].text
        r = await client.call_tool("conv2d", {"x": [[1.0] * 3] * 3, "kernel": "gaussian_5x5"})
        assert r.is_error and "kernel spans 5 px" in r.content[0].text
        r = await client.call_tool("conv2d", {"x": LESSON_X, "weight": [[LESSON_W]]})
        assert not r.is_error and r.structured_content["output_shape"] == [3, 3]


@pytest.mark.anyio
async def test_limits_refuse_at_once_naming_the_limit_and_how_to_raise_it(monkeypatch):
    monkeypatch.setattr(LIMITS, "max_input_elements", 100)
    r = await call("conv2d", {"x": [[1.0] * 11] * 11, "kernel": "identity"})
    assert r.is_error
    text = r.content[0].text
    assert (
        "121" in text
        and "max_input_elements=100" in text
        and "--max-input-elements" in text
        and "CONV_MCP_MAX_INPUT_ELEMENTS" in text
    )
    monkeypatch.setattr(LIMITS, "max_input_elements", 1_000_000)
    monkeypatch.setattr(LIMITS, "max_macs", 1000)
    r = await call("conv2d", {"x": [[1.0] * 12] * 12, "kernel": "blur_3x3"})  # 10*10*9 = 900 MACs: fine
    assert not r.is_error
    r = await call("conv2d", {"x": [[1.0] * 12] * 12, "kernel": "blur_3x3", "method": "both"})  # twice: 1,800
    assert r.is_error and "1,800" in r.content[0].text and "max_macs=1,000" in r.content[0].text
    r = await call("conv2d_backward", {"x": [[1.0] * 12] * 12, "kernel": "blur_3x3"})  # 2 x forward
    assert r.is_error and "max_macs" in r.content[0].text and "--max-macs" in r.content[0].text


@pytest.mark.anyio
async def test_backward_tool_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 4, 6, 7)), rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)
    go = rng.standard_normal((2, 4, 3, 4))
    r = await call(
        "conv2d_backward",
        {
            "x": x.tolist(),
            "weight": w.tolist(),
            "bias": b.tolist(),
            "stride": 2,
            "padding": 1,
            "groups": 2,
            "grad_output": go.tolist(),
        },
    )
    s = r.structured_content
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    out = torch.nn.functional.conv2d(xt, wt, bt, 2, 1, 1, 2)
    gx, gw, gb = torch.autograd.grad(out, (xt, wt, bt), torch.from_numpy(go))
    np.testing.assert_allclose(s["grad_input"], gx.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s["grad_weight"], gw.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s["grad_bias"], gb.numpy(), rtol=1e-10, atol=1e-12)
    assert s["grad_output"] == "given" and s["output_shape"] == [2, 4, 3, 4]


@pytest.mark.anyio
async def test_backward_defaults_to_ones_and_grad_bias_is_null_without_bias():
    r = await call("conv2d_backward", {"x": LESSON_X, "weight": [[LESSON_W]], "padding": "same"})
    s = r.structured_content
    assert s["grad_bias"] is None and s["grad_output"] == "ones"
    gi, gw, _ = conv2d_backward(np.array(LESSON_X, float)[None], np.array([[LESSON_W]], float), None, padding="same")
    assert s["grad_input_shape"] == [5, 5] and s["output_shape"] == [5, 5]
    np.testing.assert_allclose(s["grad_input"], gi[0])
    np.testing.assert_allclose(s["grad_weight"], gw)
    # an [H, W] x with one output channel takes grad_output as [H_out, W_out] too
    r = await call("conv2d_backward", {"x": LESSON_X, "weight": [[LESSON_W]], "grad_output": [[1.0] * 3] * 3})
    assert not r.is_error and r.structured_content["grad_weight_shape"] == [1, 1, 3, 3]


@pytest.mark.anyio
async def test_progress_is_reported_while_working():
    seen = []

    async def progress(p, total, message):
        seen.append((p, total, message))

    x = np.ones((2, 3, 20, 20)).tolist()
    async with Client(build_server()) as client:
        r = await client.call_tool(
            "conv2d", {"x": x, "weight": np.ones((4, 3, 3, 3)).tolist(), "method": "both"}, progress_callback=progress
        )
    assert not r.is_error
    assert seen and seen[-1][0] == seen[-1][1]  # ends at total
    assert {m for _, _, m in seen} == {"conv2d (naive)", "conv2d (im2col)"}


@pytest.mark.anyio
async def test_cancelled_work_stops_between_chunks():
    # The naive method takes one chunk per output row (4 images x 3 channels x 10 rows); cancel at the first progress report.
    job = conv2d_job(np.ones((4, 2, 12, 12)), np.ones((3, 2, 3, 3)), method="naive")
    monkey_chunk = conv_tools.CHUNK_SECONDS
    conv_tools.CHUNK_SECONDS = 0  # one chunk per worker-thread hop
    try:
        with anyio.CancelScope() as scope:

            class Ctx:
                async def report_progress(self, progress, total, message):
                    scope.cancel()

            await conv_tools._run(job, Ctx(), "test")
    finally:
        conv_tools.CHUNK_SECONDS = monkey_chunk
    assert scope.cancelled_caught
    assert 0 < job.done < job.total == 120


@pytest.mark.anyio
async def test_kernel_bank_and_samples_are_resources():
    async with Client(build_server()) as client:
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert {"conv://kernels", "conv://samples"} <= uris
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert {"conv://kernels/{name}", "conv://samples/{name}"} <= templates
        bank = json.loads((await client.read_resource("conv://kernels")).contents[0].text)
        assert [k["name"] for k in bank["kernels"]] == list(KERNELS)
        sobel = json.loads((await client.read_resource("conv://kernels/sobel_x")).contents[0].text)
        assert sobel["values"] == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
        step = json.loads((await client.read_resource("conv://samples/step")).contents[0].text)
        assert step["shape"] == [1, 16, 16]


@pytest.mark.anyio
async def test_the_older_protocol_era_works_too():
    r = await call("conv2d", {"sample": "impulse", "kernel": "emboss", "padding": 1}, mode="legacy")
    assert not r.is_error and r.structured_content["output_shape"] == [1, 9, 9]


def test_importing_the_tool_module_does_not_import_numpy():
    import subprocess
    import sys

    code = "import sys, server.conv_tools; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


@pytest.mark.anyio
async def test_overflow_to_infinity_is_arithmetic_not_an_error():
    # IEEE overflow, as torch gives it; JSON has no inf, so structured content carries null and the text says Infinity.
    r = await call("conv2d", {"x": [[1e308, 1.0]], "weight": [[[[1e10]]]], "method": "both", "image": True})
    assert not r.is_error
    assert r.structured_content["output"] == [[None, 1e10]] and r.structured_content["max_abs_diff"] == 0
    assert "Infinity" in r.content[0].text
    r = await call(
        "conv2d_backward",
        {"x": [[1.0] * 3] * 3, "weight": [[[[1e308]]]], "bias": [0.0], "grad_output": [[1e308] * 3] * 3},
    )
    assert not r.is_error and r.structured_content["grad_weight"] == [[[[None]]]]


@pytest.mark.anyio
async def test_the_text_carries_the_values_a_text_only_client_needs():
    # a client that passes only the text content to the model still gives it the answer: gradients and outputs past
    # 256 elements are written as a compact grid up to TEXT_VALUES, and past it the text says where they are
    from server.conv_tools import TEXT_VALUES

    async with Client(build_server()) as client:
        back = await client.call_tool("conv2d_backward", {"x": [[1, 2, 3], [4, 5, 6], [7, 8, 9]], "weight": [[[[1, 0], [0, -1]]]], "bias": [0.5]})
        assert back.content[0].text.split("\n")[1:] == [
            "grad_input [3, 3]:", " 1  1  0", " 1  0 -1", " 0 -1 -1",  # torch: conv2d(x, w).sum().backward(), x.grad
            "grad_weight [1, 1, 2, 2]:", "[0, 0]", "12 16", "24 28", "grad_bias [1]: [4]",
        ]
        x = [[float(i + j) / 3 for j in range(20)] for i in range(20)]
        mid = await client.call_tool("conv2d", {"x": x, "kernel": "identity"})  # 18 x 18 = 324 values, more than 256
        text = mid.content[0].text
        assert "output [18, 18]:" in text and len(text.splitlines()) == 2 + 18 and "0.6667" in text
        big = await client.call_tool("conv2d", {"x": [[1.0] * 40 for _ in range(40)], "kernel": "identity"})  # 1,444
        assert big.structured_content["output"] is not None and 38 * 38 > TEXT_VALUES
        assert "1,444 values, more than the text shows (1,024); all of them are in the structured content's output" in big.content[0].text
