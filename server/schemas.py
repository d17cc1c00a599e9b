"""The tool list as a client receives it: compact schemas, so the tools cost few tokens of every conversation.

Pydantic's schemas repeat a `title` beside every property, spell optional arguments as `anyOf [X, null]` with
`default: null`, and publish every nested result model under `$defs`. A model reading the tool list needs the
argument names, types, bounds, defaults and descriptions, and the result's top-level fields; `compact_schemas`
keeps those and drops the rest. Nested result objects are published as `object` / `array` with their fields
named in the description (as the walk's rows already are), which also spares clients that validate structured
content (the SDK's Client does, in pure Python) a deep schema walk. The server still validates every result
against the full pydantic model before sending it.
"""

from __future__ import annotations

from typing import Any

_NULL = {"type": "null"}


def compact_schemas(server: Any) -> None:
    """Replace every registered tool's published input and output schema by its compact form."""
    for tool in server._tool_manager.list_tools():
        tool.parameters = compact_input(tool.parameters)
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = compact_output(tool.fn_metadata.output_schema)


def compact_input(schema: dict) -> dict:
    """An input schema without titles, null branches of optional arguments, or null defaults."""
    out = {k: v for k, v in schema.items() if k not in ("title", "$defs")}
    defs = schema.get("$defs", {})
    out["properties"] = {name: _argument(prop, defs) for name, prop in schema.get("properties", {}).items()}
    return out


def _per_axis(options: list) -> dict | None:
    """`anyOf [integer, array of integers]` (a per-axis value: an int, or one per axis) as one short schema."""
    if len(options) != 2:
        return None
    scalar, array = sorted(options, key=lambda o: o.get("type") == "array")
    if scalar.get("type") != "integer" or array.get("type") != "array" or array.get("items", {}).get("type") != "integer":
        return None
    out: dict[str, Any] = {"type": ["integer", "array"], "items": {"type": "integer"}}
    if "minimum" in scalar:
        out["minimum"] = out["items"]["minimum"] = scalar["minimum"]
    if "maxItems" in array:
        out["maxItems"] = array["maxItems"]
    return out


def _argument(prop: dict, defs: dict) -> dict:
    prop = _resolve(prop, defs)
    if "anyOf" in prop:
        short = _per_axis([o for o in prop["anyOf"] if o != _NULL])
        if short is not None and (_NULL not in prop["anyOf"] or prop.get("default", 0) is None):
            prop = {**{k: v for k, v in prop.items() if k != "anyOf" and not (k == "default" and v is None)}, **short}
    options = prop.get("anyOf")
    if options and _NULL in options and prop.get("default", 0) is None:
        rest = [o for o in options if o != _NULL]
        merged = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
        if len(rest) == 1:
            merged = {**_resolve(rest[0], defs), **merged}
        else:
            merged["anyOf"] = [_resolve(o, defs) for o in rest]
        prop = merged
    if prop.get("type") == "array" and prop.get("items") == {"type": "object"}:  # layers, graph: validated by skills.spec
        prop = {k: v for k, v in prop.items() if k != "items"}
    return _strip(prop)


def _resolve(prop: dict, defs: dict) -> dict:
    ref = prop.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        target = defs.get(ref.removeprefix("#/$defs/"), {})
        return {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


BIG = 10**9
"""Bounds at or past this (MAX_EXTENT and up) are left out of the published schema: they cost tokens in every
conversation, bind no real network, and the error that enforces one states it."""


def _strip(node: Any) -> Any:
    """Drop pydantic's titles everywhere below an argument (a property literally named `title` stays), and huge bounds."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "title" or (k == "maximum" and isinstance(v, (int, float)) and v >= BIG):
                continue
            out[k] = {name: _strip(p) for name, p in v.items()} if k == "properties" and isinstance(v, dict) else _strip(v)
        return out
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def compact_output(schema: dict) -> dict:
    """An output schema with its top-level fields typed, and nested objects and row lists named by their fields.

    The fields' prose stays out (the names are the contract's, the tool's description and the result's text say
    what they mean); a nested object or list keeps the names of its fields, which the names alone do not give."""
    defs = schema.get("$defs", {})
    props = {}
    for name, prop in schema.get("properties", {}).items():
        field = _shallow(prop, defs)
        text = field.pop("description", "")
        if "fields: " in text or "items: " in text or "Each row is an object with: " in text:
            field["description"] = _names_only(text)
        props[name] = field
    return {"type": "object", "properties": props}  # no `required`: every result carries its fields, and the list repeats them


def _names_only(text: str) -> str:
    """'... (items: a, b)' / 'Each row is an object with: a (what a is), b' -> 'items: a, b'."""
    for marker in ("Each row is an object with: ", "items: ", "fields: "):
        if marker in text:
            rest = text.split(marker, 1)[1].rstrip(")")
            names, depth, word = [], 0, ""
            for ch in rest:  # drop the parenthesised explanations
                if ch == "(":
                    depth += 1
                elif ch == ")":
                    depth -= 1
                elif depth == 0:
                    word += ch
            names = [w.strip() for w in word.split(",") if w.strip()]
            return f"{'fields' if marker == 'fields: ' else 'items'}: {', '.join(names)}"
    return text


def _shallow(prop: dict, defs: dict) -> dict:
    """A result field's schema one level deep: scalars and lists of scalars as they are, objects as `object`."""
    prop = _resolve(prop, defs)
    description = prop.get("description")
    options = prop.get("anyOf")
    if options:
        kinds = [_shallow(o, defs) for o in options]
        types = sorted({k.get("type", "object") for k in kinds if k.get("type") != "null"} or {"object"})
        nullable = any(k.get("type") == "null" for k in kinds)
        if len(types) == 1 and all(k.get("type") in (types[0], "null") for k in kinds):
            base = next(k for k in kinds if k.get("type") != "null") if any(k.get("type") != "null" for k in kinds) else {}
            out = dict(base)
            if nullable:
                out["type"] = [types[0], "null"]
        else:
            out = {"type": [*types, "null"] if nullable else types}
        if description:
            out["description"] = description
        return out
    kind = prop.get("type")
    if kind == "object" or "properties" in prop:
        fields = ", ".join(prop.get("properties", {}))
        text = description or prop.get("description") or ""
        if fields:
            text = f"{text} (fields: {fields})" if text else f"fields: {fields}"
        return {"type": "object", **({"description": text} if text else {})}
    if kind == "array":
        items = _resolve(prop.get("items", {}), defs)
        out: dict[str, Any] = {"type": "array"}
        if items.get("properties"):
            fields = ", ".join(items["properties"])
            description = f"{description} (items: {fields})" if description else f"items: {fields}"
        if description:
            out["description"] = description
        return out
    out = {k: v for k, v in prop.items() if k in ("type", "enum", "const", "description", "minimum", "maximum")}
    return out
