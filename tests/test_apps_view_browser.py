"""The MCP Apps view in a real browser: headless Chromium plays the host around the view's iframe.

The host page answers the view's `ui/initialize`, waits for `ui/notifications/initialized`, then posts
`ui/notifications/tool-input` and `ui/notifications/tool-result` with a CallToolResult recorded from this server.
The view's iframe is sandboxed to scripts only (an opaque origin, as hosts load it). Expected regions are computed
here from the rows (output pixel y sees y*stride - padding .. + receptive_field - 1), and for the last layer of a
receptive_field call they are the server's own `input_region`.

Needs Chromium, its driver and Selenium (Debian: `apt-get install chromium chromium-driver`); skips without them.
"""

import json
import math
import os
import shutil
import tempfile

import anyio
import pytest
from mcp import Client

from server.app import build_server
from server.apps_view import LAYERS_VIEW_URI

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait
except ImportError:
    webdriver = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = [name for name, found in (("selenium", webdriver), ("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not found]
# .ci/run sets CONV_MCP_REQUIRE_BROWSER after installing the browser: there a missing piece fails instead of skipping.
REQUIRED = bool(os.environ.get("CONV_MCP_REQUIRE_BROWSER"))
pytestmark = pytest.mark.skipif(bool(MISSING) and not REQUIRED, reason=f"needs {', '.join(MISSING)}")

# The background-networking flags matter on a closed network: without them Chromium's own connections fail.
FLAGS = (
    "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
    "--disable-component-update --disable-sync --window-size=1200,900"
).split()

NET = [
    {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "residual", "body": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "relu"}]},
    {"type": "conv2d", "out_channels": 16, "kernel_size": 5, "stride": 2, "dilation": 2},
    {"type": "flatten"},
    {"type": "linear", "out_features": 10},
]
INPUT = [3, 32, 32]

HOST_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>test host</title></head>
<body style="margin:0">
<iframe id="view" sandbox="allow-scripts" style="width:1150px;height:850px;border:0"></iframe>
<script>
window.hostLog = [];
var VIEW = %(view)s, TOOL_INPUT = %(input)s, TOOL_RESULT = %(result)s;
var frame = document.getElementById("view");
function toView(message) { frame.contentWindow.postMessage(message, "*"); }
window.addEventListener("message", function (event) {
  if (event.source !== frame.contentWindow) return;
  var msg = event.data;
  window.hostLog.push(msg);
  if (msg.method === "ui/initialize") {
    toView({jsonrpc: "2.0", id: msg.id, result: {
      protocolVersion: "2026-01-26", hostInfo: {name: "selenium-host", version: "1.0.0"}, hostCapabilities: {},
      hostContext: {theme: "light", displayMode: "inline", availableDisplayModes: ["inline"], platform: "web"}}});
  } else if (msg.method === "ui/notifications/initialized") {
    toView({jsonrpc: "2.0", method: "ui/notifications/tool-input", params: {arguments: TOOL_INPUT}});
    toView({jsonrpc: "2.0", method: "ui/notifications/tool-result", params: TOOL_RESULT});
  }
});
frame.srcdoc = VIEW;
</script></body></html>
"""


def _script_json(value) -> str:
    """JSON that can sit inside a <script> element (the view's own HTML contains '</script>')."""
    return json.dumps(value).replace("</", "<\\/")


async def _record(calls: list[tuple[str, dict]]) -> tuple[str, list[dict]]:
    """The view's HTML and each call's CallToolResult, as the host receives them over the wire."""
    async with Client(build_server()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        (contents,) = (await client.read_resource(LAYERS_VIEW_URI)).contents
        results = []
        for name, args in calls:
            assert tools[name].meta["ui"]["resourceUri"] == LAYERS_VIEW_URI
            result = await client.call_tool(name, args)
            assert not result.is_error, result.content
            results.append(result.model_dump(by_alias=True, mode="json", exclude_none=True))
    return contents.text, results


@pytest.fixture(scope="module")
def recorded():
    shapes_args = {"input_shape": INPUT, "layers": NET, "detail": "full"}  # the view indents block rows when they are there
    rf_args = {"input_shape": INPUT, "layers": NET[:5], "output_position": [2, 3]}
    html, (shapes, rf) = anyio.run(_record, [("shape_calculator", shapes_args), ("receptive_field", rf_args)])
    return {"html": html, "shape_calculator": (shapes_args, shapes), "receptive_field": (rf_args, rf)}


@pytest.fixture(scope="module")
def browser():
    assert not MISSING, f"CONV_MCP_REQUIRE_BROWSER is set but {', '.join(MISSING)} is missing"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def _host(browser, tmp_path, html: str, args: dict, result: dict):
    """Load the host page with the view in its iframe, then switch into the iframe."""
    page = tmp_path / "host.html"
    page.write_text(HOST_PAGE % {"view": _script_json(html), "input": _script_json(args), "result": _script_json(result)})
    browser.switch_to.default_content()
    browser.get(page.as_uri())
    browser.switch_to.frame(browser.find_element(By.ID, "view"))


def _rows(browser, n: int):
    WebDriverWait(browser, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#layers tbody tr")) == n)
    return browser.find_elements(By.CSS_SELECTOR, "#layers tbody tr")


def _ordered(sc: dict) -> list[dict]:
    """Top-level rows, each followed by its block's rows: the table's order."""
    rows = []
    for top in sc["layers"]:
        rows.append(top)
        rows += [b for b in sc["block_layers"] if b["index"] == top["index"]]
    return rows


def _expected(row: dict, input_shape: list[int], pos: list[int] | None = None):
    """(pixel, region, clipped) per axis: output pixel y sees y*J - P .. that + RF - 1, clipped to the image."""
    k = len(row["receptive_field"])
    size = input_shape[-k:]
    is_map = len(row["output_shape"]) == len(input_shape)
    out = row["output_shape"][-k:] if is_map else [1] * k
    pos = pos or [(n - 1) // 2 for n in out]
    region, clipped = [], []
    for y, rf, j, p, n in zip(pos, row["receptive_field"], row["effective_stride"], row["effective_padding"], size, strict=True):
        top = math.floor(y * j - p)
        region.append([top, top + rf - 1])
        clipped.append([max(0, top), min(n - 1, top + rf - 1)] if top <= n - 1 and top + rf - 1 >= 0 else None)
    return pos, region, clipped


def _drawn(browser) -> dict:
    svg = browser.find_element(By.ID, "input-grid")
    full = browser.find_element(By.ID, "region-full")
    clipped = browser.find_element(By.ID, "region-clipped")

    def box(rect):
        """The rect's data-* pixel indices and its drawn geometry."""
        indices = {a: float(rect.get_attribute(f"data-{a}")) for a in ("top", "left", "bottom", "right")}
        return indices | {a: float(rect.get_attribute(a)) for a in ("x", "y", "width", "height")}

    return {
        "layer": svg.get_attribute("data-layer"),
        "position": json.loads(svg.get_attribute("data-position")),
        "region": json.loads(svg.get_attribute("data-region")),
        "clipped": json.loads(svg.get_attribute("data-clipped")),
        "full": box(full),
        "inside": box(clipped),
    }


def _hover(browser, element):
    ActionChains(browser).move_to_element(element).perform()


def test_the_view_answers_the_handshake_and_shows_every_layer_row(browser, tmp_path, recorded):
    args, result = recorded["shape_calculator"]
    _host(browser, tmp_path, recorded["html"], args, result)
    sc = result["structuredContent"]
    rows = _rows(browser, len(sc["layers"]) + len(sc["block_layers"]))
    assert [r.get_attribute("data-path") for r in rows] == [r["path"] for r in _ordered(sc)]
    assert rows[0].find_elements(By.TAG_NAME, "td")[1].text == "conv2d"
    assert "224" in rows[0].text  # params column
    browser.switch_to.default_content()
    log = browser.execute_script("return window.hostLog")
    init, initialized = log[0], log[1]
    assert init["method"] == "ui/initialize" and init["id"] is not None
    assert init["params"]["protocolVersion"] == "2026-01-26"
    assert init["params"]["appInfo"]["name"] and init["params"]["appInfo"]["version"]
    assert init["params"]["appCapabilities"] == {}
    assert initialized == {"jsonrpc": "2.0", "method": "ui/notifications/initialized", "params": {}}
    # The host may ping and tear down; the view answers both requests.
    browser.execute_script(
        "toView({jsonrpc: '2.0', id: 'p1', method: 'ping'});"
        "toView({jsonrpc: '2.0', id: 't1', method: 'ui/resource-teardown', params: {reason: 'test'}});"
        "toView({jsonrpc: '2.0', id: 'u1', method: 'ui/no-such-method', params: {}});"
    )
    WebDriverWait(browser, 10).until(lambda d: len([m for m in d.execute_script("return window.hostLog") if m.get("id") == "u1"]) == 1)
    answers = {m["id"]: m for m in browser.execute_script("return window.hostLog") if m.get("id") in ("p1", "t1", "u1")}
    assert answers["p1"]["result"] == {} and answers["t1"]["result"] == {}
    assert answers["u1"]["error"]["code"] == -32601


def test_hovering_each_layer_draws_the_region_its_centre_pixel_sees(browser, tmp_path, recorded):
    args, result = recorded["shape_calculator"]
    _host(browser, tmp_path, recorded["html"], args, result)
    sc = result["structuredContent"]
    ordered = _ordered(sc)
    for element, row in zip(_rows(browser, len(ordered)), ordered, strict=True):
        _hover(browser, element)
        WebDriverWait(browser, 5).until(lambda d, p=row["path"]: d.find_element(By.ID, "input-grid").get_attribute("data-layer") == p)
        pos, region, clipped = _expected(row, sc["input_shape"])
        drawn = _drawn(browser)
        assert drawn["position"] == pos, row["path"]
        assert drawn["region"] == region, row["path"]
        assert drawn["clipped"] == clipped, row["path"]
        (top, bottom), (left, right) = region
        assert drawn["full"] == {"top": top, "left": left, "bottom": bottom, "right": right,
                                 "x": left, "y": top, "width": right - left + 1, "height": bottom - top + 1}, row["path"]
        (ctop, cbottom), (cleft, cright) = clipped
        assert drawn["inside"] == {"top": ctop, "left": cleft, "bottom": cbottom, "right": cright,
                                   "x": cleft, "y": ctop, "width": cright - cleft + 1, "height": cbottom - ctop + 1}, row["path"]
        assert "selected" in element.get_attribute("class")
    # The flattened rows see everything the last map saw: one region for every output, reaching past the image.
    assert _drawn(browser)["region"][0][0] < 0
    assert not browser.find_element(By.ID, "output-map").is_displayed()
    _hover(browser, browser.find_elements(By.CSS_SELECTOR, "#layers tbody tr")[0])
    assert browser.find_element(By.ID, "output-map").is_displayed()


def test_the_last_layer_shows_the_servers_own_region_for_output_position(browser, tmp_path, recorded):
    args, result = recorded["receptive_field"]
    _host(browser, tmp_path, recorded["html"], args, result)
    sc = result["structuredContent"]
    rows = _rows(browser, len(sc["layers"]) + len(sc["block_layers"]))
    _hover(browser, rows[-1])
    drawn = _drawn(browser)
    g, c = sc["input_region"], sc["input_region_clipped"]
    assert drawn["position"] == sc["output_position"] == [2, 3]
    assert drawn["region"] == [[g["top"], g["bottom"]], [g["left"], g["right"]]]
    assert drawn["clipped"] == [[c["top"], c["bottom"]], [c["left"], c["right"]]]
    assert drawn["region"] == _expected(sc["layers"][-1], sc["input_shape"], [2, 3])[1]


def test_clicking_a_pixel_of_the_output_map_moves_the_region(browser, tmp_path, recorded):
    args, result = recorded["shape_calculator"]
    _host(browser, tmp_path, recorded["html"], args, result)
    sc = result["structuredContent"]
    rows = _rows(browser, len(sc["layers"]) + len(sc["block_layers"]))
    _hover(browser, rows[2])  # the maxpool: 16x16 output, stride 2
    out = browser.find_element(By.ID, "output-map")
    # Where pixel (y=1, x=14) of the map is on screen, as an offset from the element's centre (Selenium's origin).
    dx, dy = browser.execute_script(
        "var s = arguments[0], r = s.getBoundingClientRect();"
        "var p = new DOMPoint(14.5, 1.5).matrixTransform(s.getScreenCTM());"
        "return [p.x - (r.left + r.width / 2), p.y - (r.top + r.height / 2)];",
        out,
    )
    ActionChains(browser).move_to_element_with_offset(out, round(dx), round(dy)).click().perform()
    WebDriverWait(browser, 5).until(lambda d: d.find_element(By.ID, "output-pixel").get_attribute("data-x") == "14")
    pixel = browser.find_element(By.ID, "output-pixel")
    assert (pixel.get_attribute("data-y"), pixel.get_attribute("data-x")) == ("1", "14")
    drawn = _drawn(browser)
    pos, region, clipped = _expected(sc["layers"][2], sc["input_shape"], [1, 14])
    assert drawn["layer"] == "2" and drawn["position"] == pos
    assert drawn["region"] == region == [[0, 5], [26, 31]]  # RF 6, stride 2, padding 2 after conv3, conv3, pool2
    assert drawn["clipped"] == clipped
    # The pick stays with that layer; another layer still starts at its centre.
    _hover(browser, rows[0])
    assert _drawn(browser)["position"] == [15, 15]
    _hover(browser, rows[2])
    assert _drawn(browser)["position"] == [1, 14]


# Hand-written in the contract's coming N-d format ([l] and [d, h, w] per-axis lists), until the walk emits it.
ND_RESULTS = {
    "1d": {
        "input_shape": [2, 50],
        "output_shape": [10],
        "receptive_field": [7], "effective_stride": [0.5], "effective_padding": [1],
        "layers": [
            {"index": 0, "path": "0", "type": "conv1d", "output_shape": [4, 50], "receptive_field": [5], "effective_stride": [1], "effective_padding": [2]},
            {"index": 1, "path": "1", "type": "convtranspose1d", "output_shape": [4, 100], "receptive_field": [3], "effective_stride": [0.5], "effective_padding": [1]},
            {"index": 2, "path": "2", "type": "linear", "output_shape": [10], "receptive_field": [], "effective_stride": [], "effective_padding": []},
        ],
        "block_layers": [],
        "warnings": [],
    },
    "3d": {
        "input_shape": [1, 3, 8, 16, 16],
        "output_shape": [1, 4, 4, 8, 8],
        "receptive_field": [4, 4, 4], "effective_stride": [2, 2, 2], "effective_padding": [1, 1, 1],
        "layers": [
            {"index": 0, "path": "0", "name": "stem", "type": "conv3d", "output_shape": [1, 4, 8, 16, 16], "receptive_field": [3, 3, 3], "effective_stride": [1, 1, 1], "effective_padding": [1, 1, 1]},
            {"index": 1, "path": "1", "name": "pool", "type": "maxpool3d", "output_shape": [1, 4, 4, 8, 8], "receptive_field": [4, 4, 4], "effective_stride": [2, 2, 2], "effective_padding": [1, 1, 1]},
        ],
        "block_layers": [],
        "warnings": ["a warning the view lists"],
    },
}


def _fake(sc: dict) -> dict:
    return {"content": [{"type": "text", "text": "the text table"}], "structuredContent": sc, "isError": False}


def test_a_1d_result_is_a_strip_and_fractional_strides_and_empty_fields_are_tolerated(browser, tmp_path, recorded):
    sc = ND_RESULTS["1d"]
    _host(browser, tmp_path, recorded["html"], {}, _fake(sc))
    rows = _rows(browser, 3)
    _hover(browser, rows[1])  # stride 0.5: pixel 49 starts at 49*0.5 - 1 = 23.5, floored
    drawn = _drawn(browser)
    assert drawn["position"] == [49] and drawn["region"] == [[23, 25]] and drawn["clipped"] == [[23, 25]]
    assert (drawn["full"]["top"], drawn["full"]["bottom"], drawn["full"]["left"], drawn["full"]["right"]) == (0, 0, 23, 25)
    assert "Approximate" in browser.find_element(By.ID, "region-text").text
    assert "0.5" in rows[1].text
    _hover(browser, rows[0])
    assert _drawn(browser)["region"] == _expected(sc["layers"][0], sc["input_shape"])[1] == [[22, 26]]
    _hover(browser, rows[2])  # no receptive field: no drawing, and no script error either
    assert not browser.find_element(By.ID, "input-grid").is_displayed()
    assert "no receptive field" in browser.find_element(By.ID, "input-cap").text


def test_a_3d_result_draws_the_hw_plane_and_keeps_the_depth_in_the_region(browser, tmp_path, recorded):
    sc = ND_RESULTS["3d"]
    _host(browser, tmp_path, recorded["html"], {}, _fake(sc))
    rows = _rows(browser, 2)
    assert [r.get_attribute("data-path") for r in rows] == ["0", "1"]
    assert [c.text for c in rows[0].find_elements(By.TAG_NAME, "td")[:3]] == ["0", "stem", "conv3d"]  # graph rows' names
    assert "a warning the view lists" in browser.find_element(By.ID, "warnings").text
    _hover(browser, rows[1])
    drawn = _drawn(browser)
    pos, region, clipped = _expected(sc["layers"][1], sc["input_shape"])
    assert drawn["position"] == pos == [1, 3, 3]
    assert drawn["region"] == region == [[1, 4], [5, 8], [5, 8]]
    assert drawn["clipped"] == clipped
    assert (drawn["full"]["top"], drawn["full"]["bottom"], drawn["full"]["left"], drawn["full"]["right"]) == (5, 8, 5, 8)
    assert "depth 1..4" in browser.find_element(By.ID, "region-text").text


def test_an_error_result_shows_its_text(browser, tmp_path, recorded):
    error = {"content": [{"type": "text", "text": "layer 3 (conv2d): kernel spans 7 px"}], "isError": True}
    _host(browser, tmp_path, recorded["html"], {}, error)
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "fallback").is_displayed())
    assert browser.find_element(By.ID, "fallback").text == "layer 3 (conv2d): kernel spans 7 px"
    assert not browser.find_element(By.ID, "main").is_displayed()
    assert not browser.find_element(By.ID, "status").is_displayed()


def test_a_huge_result_draws_its_first_2000_rows_and_says_how_many_more(browser, tmp_path, recorded):
    row = {"type": "conv2d", "output_shape": [8, 64, 64], "receptive_field": [3, 3], "effective_stride": [1, 1], "effective_padding": [1, 1]}
    sc = {"input_shape": [3, 64, 64], "output_shape": [8, 64, 64], "layers": [{"index": i, "path": str(i), **row} for i in range(2500)]}
    _host(browser, tmp_path, recorded["html"], {}, _fake(sc))
    rows = _rows(browser, 2001)
    assert rows[-1].text == "500 more rows are in the tool result, not drawn here"
    assert _drawn(browser)["layer"] == "1999"  # the picture starts on the last drawn layer
    _hover(browser, rows[5])
    assert _drawn(browser)["layer"] == "5"
