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


# ---------------------------------------------------------------- tool arguments


MAX_ARGUMENT_ERRORS = 3


def strict_arguments(server: Any) -> None:
    """Make every tool's argument model strict: a number must be a JSON number ("2" is refused the same way by every
    tool; the SDK still unwraps arrays and objects sent as JSON text, which some clients do)."""
    for tool in server._tool_manager.list_tools():
        model = tool.fn_metadata.arg_model
        model.model_config["strict"] = True
        model.model_rebuild(force=True)


def argument_errors(server: Any):
    """Middleware: a tools/call with an unknown argument, or one that fails validation, is answered with one line per
    argument that names it and the rule (the SDK's own text is pydantic's multi-line dump with a link, and it
    ignores unknown arguments)."""

    async def check(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call" and ctx.params:
            name = ctx.params.get("name")
            arguments = ctx.params.get("arguments") or {}
            tool = server._tool_manager.get_tool(name) if isinstance(name, str) else None
            if tool is not None and isinstance(arguments, dict):
                problem = argument_problem(tool, arguments)
                if problem:
                    return CallToolResult(content=[TextContent(type="text", text=f"Error executing tool {name}: {problem}")], is_error=True)
        return await call_next(ctx)

    return check


def argument_problem(tool: Any, arguments: dict) -> str | None:
    """What is wrong with a tool's arguments, in one line per argument (at most MAX_ARGUMENT_ERRORS), or None."""
    import difflib

    from pydantic import ValidationError

    meta = tool.fn_metadata
    fields = meta.arg_model.model_fields
    known = set(fields) | {f.alias for f in fields.values() if f.alias}
    unknown = [k for k in arguments if k not in known]
    if unknown:
        key = unknown[0]
        near = difflib.get_close_matches(str(key)[:60], sorted(known), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        return f"unknown argument {_shown(key)}{hint} ({tool.name} takes: {', '.join(fields)})"
    try:
        meta.validate_arguments(arguments)
    except ValidationError as exc:
        return _describe(exc)
    return None


def _describe(exc: Any) -> str:
    lines: list[str] = []
    seen: set[str] = set()
    errors = exc.errors()
    for error in errors:
        where = _where(error["loc"])
        head = where.split("[", 1)[0].split(".", 1)[0]
        if head in seen:
            continue
        seen.add(head)
        if len(lines) == MAX_ARGUMENT_ERRORS:
            lines.append(f"and {len({_where(e['loc']).split('[', 1)[0] for e in errors}) - MAX_ARGUMENT_ERRORS} more arguments with errors")
            break
        kind, msg = error["type"], error["msg"]
        if kind == "missing":
            lines.append(f"missing required argument {where!r}")
        elif kind == "value_error" and msg.startswith("Value error, "):
            lines.append(msg[len("Value error, "):])  # our validators' messages name the argument and the rule
        else:
            lines.append(f"argument {where}: {msg[0].lower()}{msg[1:]}, got {_shown(error.get('input'))}")
    return "; ".join(lines)


def _where(loc: tuple) -> str:
    """An error location as the argument and its index path, 'input_shape[1]' (union branch tags left out)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not out:
            out = part
        elif "[" not in part and "-" not in part:  # a key, not a union tag such as 'list[int]' or 'function-plain[...]'
            out += f".{part}"
    return out


def _shown(value: Any, limit: int = 60) -> str:
    from .argtypes import shown

    return shown(value, limit)
