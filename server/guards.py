"""Server middleware that keeps tool errors short: the SDK prints one paragraph per invalid list element.

A `bias` of 100,000 strings fails validation 100,000 times and the SDK's message (str(ValidationError)) is then
about 20 MB: a 50-fold amplification of the request and no help to a model. `cap_tool_errors` cuts any tool
error text to its first MAX_ERROR_CHARS characters, at a line boundary, and says how much was left out.
Register it with `server.middleware.append(cap_tool_errors)` in build_server().
"""

from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import CallToolResult, TextContent

MAX_ERROR_CHARS = 4_000


def cap_text(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` if short, else its first lines up to `limit` characters and a note of what was cut."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    cut = head.rfind("\n")
    if cut > limit // 2:
        head = head[:cut]
        last = head.rfind("\n")
        if last > 0 and not head[last + 1 :].startswith(" "):  # a field name whose message was cut off
            head = head[:last]
    omitted = text[len(head) :]
    more = omitted.count("\n  Input should") + omitted.count("\n  Field required") + omitted.count("\n  Value error")
    what = f"{more} more validation errors like these" if more else f"{len(omitted):,} more characters"
    return f"{head}\n[... {what} left out; fix the ones above and call again]"


async def cap_tool_errors(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Middleware: shorten the text of an isError tools/call result to MAX_ERROR_CHARS."""
    result = await call_next(ctx)
    if ctx.method != "tools/call":
        return result
    if isinstance(result, CallToolResult) and result.is_error:
        result.content = [
            TextContent(type="text", text=cap_text(c.text)) if isinstance(c, TextContent) else c for c in result.content
        ]
    elif isinstance(result, dict) and result.get("isError"):
        for item in result.get("content", []):
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                item["text"] = cap_text(item["text"])
    return result
