"""The MCP Apps view through the real SDK Client: the tools link it, it reads as an app, and the text stays whole."""

import re

import pytest
from mcp import Client
from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from server.app import build_server
from server.apps_view import LAYERS_VIEW_URI, layers_html
from server.walk_tools import rf_text, shape_text
from skills.walk import receptive_field, shape_calculator

pytestmark = pytest.mark.anyio

ERAS = ["auto", "legacy"]
VIEW_TOOLS = {"shape_calculator", "receptive_field"}
NET = [
    {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "residual", "body": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "relu"}]},
    {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "stride": 2},
    {"type": "flatten"},
    {"type": "linear", "out_features": 10},
]
# What a host that renders MCP Apps advertises (ext-apps' McpUiClientCapabilities).
APPS_CLIENT = [advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]


@pytest.mark.parametrize("mode", ERAS)
async def test_the_walk_tools_link_the_layers_view_and_the_others_link_nothing(mode):
    async with Client(build_server(), mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    for name in VIEW_TOOLS:
        assert tools[name].meta["ui"] == {"resourceUri": LAYERS_VIEW_URI}, name
        assert tools[name].meta["ui/resourceUri"] == LAYERS_VIEW_URI, name  # the deprecated flat key, for older hosts
    for name in set(tools) - VIEW_TOOLS:
        assert "ui" not in (tools[name].meta or {}), name


@pytest.mark.parametrize("mode", ERAS)
async def test_the_server_advertises_mcp_apps_and_every_linked_view_reads_as_an_app(mode):
    async with Client(build_server(), mode=mode) as client:
        # ServerCapabilities.extensions is a 2026-07-28 field: the SDK leaves it out of the older era's
        # initialize result. Hosts find the view by the tools' _meta in both eras.
        advertised = client.server_capabilities.extensions or {}
        assert (EXTENSION_ID in advertised) == (mode == "auto")
        linked = {t.meta["ui"]["resourceUri"] for t in (await client.list_tools()).tools if t.meta and "ui" in t.meta}
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        assert linked == {LAYERS_VIEW_URI}
        for uri in linked:
            assert listed[uri].mime_type == APP_MIME_TYPE
            (contents,) = (await client.read_resource(uri)).contents
            assert contents.mime_type == APP_MIME_TYPE
            assert contents.text == layers_html()
            assert contents.text.startswith("<!DOCTYPE html>")
            assert contents.meta == {"ui": {"prefersBorder": True}}  # no csp: hosts apply the no-network default


def test_the_view_is_one_file_that_fetches_nothing():
    html = layers_html()
    # The only URL is the SVG namespace name (createElementNS), which is never fetched.
    assert re.findall(r"\w+://[^\s\"'<>]*", html) == ["http://www.w3.org/2000/svg"]
    for fetching in ("<link", "src=", "fetch(", "XMLHttpRequest", "WebSocket", "import(", "@import", "url("):
        assert fetching not in html, fetching
    assert "connect-src 'none'" in html
    # The handshake the ext-apps spec (2026-01-26) asks of a view, and the notification it renders from.
    for method in ("ui/initialize", "ui/notifications/initialized", "ui/notifications/tool-result", "ui/resource-teardown"):
        assert f'"{method}"' in html, method


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("apps", [False, True], ids=["plain-client", "apps-client"])
async def test_tool_results_keep_the_whole_text_with_or_without_apps(mode, apps):
    args = {"input_shape": [3, 32, 32], "layers": NET}
    async with Client(build_server(), mode=mode, extensions=APPS_CLIENT if apps else None) as client:
        shapes = await client.call_tool("shape_calculator", {**args, "detail": "full"})  # block rows too
        default = await client.call_tool("shape_calculator", args)
    assert default.structured_content["block_layers"] == [] and len(default.structured_content["layers"]) == len(NET)
    assert default.content[0].text == shapes.content[0].text  # the detail is the structured content's only
    async with Client(build_server(), mode=mode, extensions=APPS_CLIENT if apps else None) as client:
        rf = await client.call_tool("receptive_field", {**args, "layers": NET[:4], "output_position": [3, 3]})
    assert not shapes.is_error and not rf.is_error
    # The same text as without any view: the table a host without Apps shows is the whole answer.
    assert shapes.content[0].text == shape_text(shape_calculator(input_shape=[3, 32, 32], layers=NET))
    assert rf.content[0].text == rf_text(receptive_field(input_shape=[3, 32, 32], layers=NET[:4], output_position=[3, 3]))
    for row in shapes.structured_content["layers"]:
        if row["type"] != "relu":
            assert row["type"] in shapes.content[0].text
    assert "output pixel [3, 3] sees input rows/cols" in rf.content[0].text
    # What the view draws from is there: per-axis geometry on every row, block rows by path.
    rows = shapes.structured_content["layers"] + shapes.structured_content["block_layers"]
    assert {r["path"] for r in shapes.structured_content["block_layers"]} == {"2.body.0", "2.body.1"}
    for row in rows:
        assert len(row["receptive_field"]) == len(row["effective_stride"]) == len(row["effective_padding"]) == 2
