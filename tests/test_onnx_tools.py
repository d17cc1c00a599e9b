"""Model files through the walk tools, over the real SDK Client: `model` paths and `model_base64`, the path policy
(working directory and --model-dir over stdio, only --model-dir over HTTP), the size limit, and bad files, each a
tool error after which the server answers the next call."""

import base64
import os
import sys

import pytest
from mcp import Client, StdioServerParameters
from onnx import helper
from test_onnx_model import BAD, bad_file, model_bytes, vi, weight

from server import model_files
from server.app import build_server
from server.limits import LIMITS

pytestmark = pytest.mark.anyio
ERAS = ["auto", "legacy"]


def small_cnn(head: bool = True) -> bytes:
    """conv 3x3 (pads 1) -> BatchNorm -> Relu -> MaxPool 2 (-> GlobalAveragePool -> Flatten -> Gemm), on [1, 3, 16, 16]."""
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], name="bn"),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    inits = [weight("w", [8, 3, 3, 3]), weight("b", [8]), weight("s", [8]), weight("bb", [8]), weight("m", [8]), weight("v", [8])]
    if head:
        nodes += [
            helper.make_node("GlobalAveragePool", ["p"], ["g"], name="gap"),
            helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
            helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], name="fc", transB=1),
        ]
        inits += [weight("fc", [10, 8]), weight("fcb", [10])]
    return model_bytes(nodes, [vi("x", [1, 3, 16, 16])], [vi("y" if head else "p", None)], inits)


SMALL_PARAMS = 8 * 27 + 8 + 16 + 80 + 10


@pytest.fixture
def in_cwd(tmp_path, monkeypatch):
    """The in-memory server's working directory is tmp_path (it reads models there, as a stdio server would)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(model_files, "MODEL_DIRS", [])
    monkeypatch.setattr(model_files, "TRANSPORT", "stdio")
    (tmp_path / "cnn.onnx").write_bytes(small_cnn())
    (tmp_path / "features.onnx").write_bytes(small_cnn(head=False))
    return tmp_path


@pytest.mark.parametrize("mode", ERAS)
async def test_a_model_path_and_its_base64_bytes_give_the_same_walk_with_op_types_and_completeness(in_cwd, mode):
    async with Client(build_server(), mode=mode) as client:
        by_path = await client.call_tool("shape_calculator", {"model": "cnn.onnx"})
        by_bytes = await client.call_tool("shape_calculator", {"model_base64": base64.b64encode(small_cnn()).decode()})
        params = await client.call_tool("parameter_count", {"model": str(in_cwd / "cnn.onnx")})
        rf = await client.call_tool("receptive_field", {"model": "features.onnx", "output_position": [3, 4]})
    assert not by_path.is_error, by_path.content[0].text
    data = by_path.structured_content
    assert data == by_bytes.structured_content
    assert (data["input_shape"], data["output_shape"], data["total_params"], data["total_buffers"]) == ([1, 3, 16, 16], [1, 10], SMALL_PARAMS, 16)
    assert [(r["name"], r["op_type"], r["type"]) for r in data["layers"][:3]] == [
        ("conv", "Conv", "conv2d"), ("bn", "BatchNormalization", "batchnorm2d"), ("relu", "Relu", "relu")]
    assert data["completeness"] == {k: {"status": "complete"} for k in ("shapes", "params", "macs", "receptive_field")}
    assert "completeness: shapes complete; params complete; MACs complete; receptive field complete" in by_path.content[0].text
    rows = params.structured_content["layers"]
    assert rows[0]["formula"] == "'w' 8*3*3*3 + 'b' 8 = 224" and rows[1]["buffers_formula"] == "'m' 8 + 'v' 8 = 16"
    assert rf.structured_content["input_region_clipped"] == {"top": 5, "left": 7, "bottom": 8, "right": 10}  # pool 2 after conv 3, pads 1


async def test_the_walk_tools_say_how_to_give_a_model(in_cwd):
    async with Client(build_server()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        both = await client.call_tool("shape_calculator", {"model": "cnn.onnx", "layers": [{"type": "relu"}]})
        neither = await client.call_tool("shape_calculator", {})
    for name in ("shape_calculator", "receptive_field", "parameter_count"):
        props = tools[name].input_schema["properties"]
        assert {"model", "model_base64"} <= set(props) and "ctx" not in props
        # the export line once, in shape_calculator's; the others point there (the tool list is read every conversation)
        want = "torch.onnx.export(model, torch.zeros(1, 3, 224, 224), \"model.onnx\", dynamo=False)" if name == "shape_calculator" else "as in shape_calculator"
        assert want in props["model"]["description"]
    assert both.is_error and "not both" in both.content[0].text
    assert neither.is_error and "input_shape is required" in neither.content[0].text


async def test_bad_files_are_tool_errors_and_the_server_answers_after_each(in_cwd):
    async with Client(build_server()) as client:
        for name in BAD:
            path = in_cwd / f"bad-{name.replace(' ', '_')}.onnx"
            path.write_bytes(bad_file(name))
            result = await client.call_tool("shape_calculator", {"model": path.name})
            assert result.is_error, name
            assert BAD[name][1] in result.content[0].text, (name, result.content[0].text)
            again = await client.call_tool("parameter_count", {"model_base64": base64.b64encode(bad_file(name)).decode()})
            assert again.is_error, name
            good = await client.call_tool("parameter_count", {"model": "cnn.onnx"})
            assert not good.is_error and good.structured_content["total_params"] == SMALL_PARAMS
        garbage = await client.call_tool("shape_calculator", {"model_base64": "@@ not base64 @@"})
        assert garbage.is_error and "not valid base64" in garbage.content[0].text


async def test_paths_outside_the_working_directory_and_model_dirs_are_refused(in_cwd, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "secret.onnx").write_bytes(small_cnn())
    (in_cwd / "link.onnx").symlink_to(elsewhere / "secret.onnx")
    (in_cwd / "folder").mkdir()
    async with Client(build_server()) as client:
        for path, message in (
            ("../../etc/passwd", "is outside the directories this server may read"),
            (str(elsewhere / "secret.onnx"), "is outside the directories"),
            ("link.onnx", "is a symbolic link that leads outside the directories"),
            ("folder", "is a directory"),
            ("missing.onnx", "does not exist"),
        ):
            result = await client.call_tool("shape_calculator", {"model": path})
            assert result.is_error and message in result.content[0].text, (path, result.content[0].text)
        model_files.MODEL_DIRS[:] = [str(elsewhere)]
        allowed = await client.call_tool("shape_calculator", {"model": "secret.onnx"})  # found under the model dir
        assert not allowed.is_error and allowed.structured_content["total_params"] == SMALL_PARAMS
        linked = await client.call_tool("shape_calculator", {"model": "link.onnx"})  # the link now ends in an allowed root
        assert not linked.is_error


async def test_over_http_only_model_dirs_are_read_and_base64_always_works(in_cwd, tmp_path_factory, monkeypatch):
    monkeypatch.setattr(model_files, "TRANSPORT", "http")
    async with Client(build_server()) as client:
        refused = await client.call_tool("shape_calculator", {"model": "cnn.onnx"})
        assert refused.is_error and "send the file's bytes base64-encoded as model_base64" in refused.content[0].text
        inline = await client.call_tool("shape_calculator", {"model_base64": base64.b64encode(small_cnn()).decode()})
        assert not inline.is_error
        models = tmp_path_factory.mktemp("models")
        (models / "cnn.onnx").write_bytes(small_cnn())
        model_files.MODEL_DIRS[:] = [str(models)]
        read = await client.call_tool("shape_calculator", {"model": "cnn.onnx"})
        assert not read.is_error and read.structured_content["total_params"] == SMALL_PARAMS
        cwd = await client.call_tool("shape_calculator", {"model": str(in_cwd / "cnn.onnx")})
        assert cwd.is_error and "outside" in cwd.content[0].text


async def test_the_model_size_limit_is_named_with_how_to_raise_it(in_cwd, monkeypatch):
    monkeypatch.setattr(LIMITS, "max_model_bytes", 100)
    async with Client(build_server()) as client:
        by_path = await client.call_tool("shape_calculator", {"model": "cnn.onnx"})
        by_bytes = await client.call_tool("parameter_count", {"model_base64": base64.b64encode(small_cnn()).decode()})
    for result in (by_path, by_bytes):
        text = result.content[0].text
        assert result.is_error and "more than max_model_bytes=100" in text
        assert "--max-model-bytes" in text and "CONV_MCP_MAX_MODEL_BYTES" in text


async def test_symbolic_dims_need_input_shape_and_an_unknown_op_leaves_a_partial_result(in_cwd):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), helper.make_node("LRN", ["c"], ["y"], name="lrn", size=3)]
    data = model_bytes(nodes, [vi("x", ["N", 3, "H", "W"])], [vi("y", None)], [weight("w", [4, 3, 3, 3])])
    (in_cwd / "dyn.onnx").write_bytes(data)
    async with Client(build_server()) as client:
        missing = await client.call_tool("shape_calculator", {"model": "dyn.onnx"})
        given = await client.call_tool("shape_calculator", {"model": "dyn.onnx", "input_shape": [2, 3, 32, 32]})
        params = await client.call_tool("parameter_count", {"model": "dyn.onnx"})
    assert missing.is_error and "N (axis 0), H (axis 2), W (axis 3) are symbolic" in missing.content[0].text
    data = given.structured_content
    assert data["output_shape"] == [2, 4, 30, 30] and data["layers"][1]["type"] == "opaque"
    assert data["layers"][1]["note"].startswith("op LRN is not analysed") and "note" not in data["layers"][0]
    assert data["completeness"]["receptive_field"] == {
        "status": "partial", "from_node": "lrn", "reason": "LRN: op LRN is not analysed: its output shape comes from onnx.shape_inference"}
    assert "receptive field partial from node 'lrn'" in given.content[0].text
    assert params.structured_content["total_params"] == 4 * 27


def test_the_stdio_server_reads_its_working_directory_and_model_dirs_and_nothing_else(tmp_path):
    import anyio

    work, models, secret = tmp_path / "work", tmp_path / "models", tmp_path / "secret"
    for d in (work, models, secret):
        d.mkdir()
    (work / "here.onnx").write_bytes(small_cnn())
    (models / "there.onnx").write_bytes(small_cnn())
    (secret / "private.onnx").write_bytes(small_cnn())
    (work / "escape.onnx").symlink_to(secret / "private.onnx")
    env = {k: v for k, v in os.environ.items() if k != model_files.MODEL_DIRS_ENV}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env.get("PYTHONPATH", "")])
    params = StdioServerParameters(command=sys.executable, args=["-m", "server", "--model-dir", str(models)], cwd=str(work), env=env)

    async def run():
        async with Client(params) as client:
            outcomes = {}
            for path in ("here.onnx", "there.onnx", str(models / "there.onnx"), str(secret / "private.onnx"), "escape.onnx",
                         "../secret/private.onnx", "../../../../etc/passwd", str(models)):
                result = await client.call_tool("parameter_count", {"model": path})
                outcomes[path] = result.structured_content["total_params"] if not result.is_error else result.content[0].text
            return outcomes

    outcomes = anyio.run(run)
    assert outcomes["here.onnx"] == outcomes["there.onnx"] == outcomes[str(models / "there.onnx")] == SMALL_PARAMS
    assert "is a symbolic link that leads outside the directories this server may read" in outcomes["escape.onnx"]
    for path in (str(secret / "private.onnx"), "escape.onnx", "../secret/private.onnx", "../../../../etc/passwd"):
        assert "outside the directories this server may read" in outcomes[path], path
        assert str(work) in outcomes[path] and str(models) in outcomes[path]  # the error names the allowed roots
    assert "is a directory" in outcomes[str(models)]


def test_the_http_server_reads_model_files_only_from_model_dirs(tmp_path):
    import anyio
    from test_http import http_server

    (tmp_path / "cnn.onnx").write_bytes(small_cnn())
    inline = base64.b64encode(small_cnn()).decode()
    for flags, readable in (((), False), (("--model-dir", str(tmp_path)), True)):
        with http_server(*flags) as (base, _):

            async def run(base=base):
                async with Client(f"{base}/mcp") as client:
                    by_path = await client.call_tool("parameter_count", {"model": str(tmp_path / "cnn.onnx")})
                    by_bytes = await client.call_tool("parameter_count", {"model_base64": inline})
                    return by_path, by_bytes

            by_path, by_bytes = anyio.run(run)
        assert by_bytes.structured_content["total_params"] == SMALL_PARAMS
        assert by_path.is_error != readable, by_path.content[0].text
        if not readable:
            assert "model_base64" in by_path.content[0].text


def test_server_start_up_does_not_import_onnx():
    import subprocess

    code = "import sys; from server.app import build_server; build_server(); print('onnx' in sys.modules, 'skills.onnx_model' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.split() == ["False", "False"]  # both load on the first model call
