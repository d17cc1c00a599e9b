"""The MCP Apps view (extension `io.modelcontextprotocol/ui`) of shape_calculator and receptive_field.

Hosts that render MCP Apps show the tool result in `ui://conv-arithmetic/layers.html` (server/views/layers.html):
the layer table and, for the layer under the mouse, the input region one of its pixels sees, drawn over the input
grid. The HTML is one self-contained file (inline script and style, no network), and it reads only the result's
structuredContent, so the text content stays the whole answer for every other host.
"""

from functools import cache
from importlib.resources import files
from typing import Any

from mcp.server.apps import Apps

LAYERS_VIEW_URI = "ui://conv-arithmetic/layers.html"


def view_meta(uri: str = LAYERS_VIEW_URI) -> dict[str, Any]:
    """The tool `_meta` that links a `ui://` view: `ui.resourceUri`, plus the flat `ui/resourceUri` key that
    ext-apps' own registerAppTool still sets for older hosts (deprecated in the 2026-01-26 spec)."""
    return {"ui": {"resourceUri": uri}, "ui/resourceUri": uri}


@cache
def layers_html() -> str:
    """The view's HTML, read from the installed package."""
    return files("server").joinpath("views", "layers.html").read_text(encoding="utf-8")


def apps_extension() -> Apps:
    """The MCP Apps extension with the layers view registered, for `MCPServer(extensions=[...])`.

    The tools link the view by their own `meta=view_meta()` (they are registered with `server.tool`, not
    `apps.tool`), so tests/test_apps_view.py checks that every linked URI resolves."""
    apps = Apps()
    apps.add_html_resource(
        LAYERS_VIEW_URI,
        layers_html(),
        name="layers-view",
        title="Layer table and receptive-field view",
        description="MCP Apps view of shape_calculator and receptive_field: the layer table; hover a layer to see "
        "the input region one of its output pixels sees, drawn over the input grid.",
        prefers_border=True,
    )
    return apps
