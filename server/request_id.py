"""Reading the JSON-RPC id of a request too large to parse, from its first (or last) bytes, and the error text for
it: shared by the stdio reader (server/__main__.py) and the HTTP body gate (server/http.py), so a refused request is
answered with the id its client waits on."""

import json
import re

MAX_REQUEST_BYTES_ENV = "CONV_MCP_MAX_REQUEST_BYTES"
ID_PREFIX_BYTES = 64 * 1024
"""How much of an oversize request is kept to find its id (the rest is read past, never held)."""
ID_TAIL_BYTES = 4 * 1024
"""How much of its end is kept, for clients that write the id last (the TypeScript SDK does)."""


_WS = re.compile(rb"\s*")
_STRING = rb'"(?:[^"\\]|\\.)*"'
_KEY = re.compile(_STRING)
_NUMBER = rb"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
_SCALAR = re.compile(_STRING + rb"|" + _NUMBER + rb"|true|false|null")
_NESTED = re.compile(_STRING + rb'|"|[\[\]{}]')  # where a nested value ends; a lone quote: a string cut off
# `"id": V` as the last key of the object the text ends with, only scalar members after it (up to 8, which bounds
# the search): {...,"id":7} or {...,"id":7,"jsonrpc":"2.0"}. The `}` that ends a JSON text closes its top-level
# object, and the members between the id and it hold no brackets, so this id is a top-level key; a start inside a
# string cannot match (an unescaped quote flips both it and the text, so the match would end inside a string).
_TAIL_ID = re.compile(
    rb'[{,]\s*"id"\s*:\s*(' + _STRING + rb"|-?\d+|null)\s*"
    rb"(?:,\s*" + _STRING + rb"\s*:\s*(?:" + _SCALAR.pattern + rb")\s*){0,8}}\s*\Z"
)


def _as_request_id(raw: bytes):
    """A JSON scalar as a JSON-RPC request id (int or str), or None (null, a float, unreadable)."""
    try:
        value = json.loads(raw)
        if isinstance(value, str):
            value.encode()  # a lone surrogate ("\ud800") would fail later, when the SDK writes the answer
    except (ValueError, UnicodeError):  # ValueError covers ints over the int-to-str digit limit
        return None
    return value if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)) else None


def request_id_from_prefix(prefix: bytes):
    """The top-level "id" of the JSON object `prefix` begins, when its value is complete in it; else None.

    `prefix` is the first bytes of a request too large to parse: the keys before "id" are skipped, nested values
    included, as long as they end inside the prefix.
    """
    end = len(prefix)
    pos = _WS.match(prefix).end()
    if not prefix.startswith(b"{", pos):
        return None
    pos += 1
    while True:
        pos = _WS.match(prefix, pos).end()
        key = _KEY.match(prefix, pos)
        if key is None:
            return None
        pos = _WS.match(prefix, key.end()).end()
        if not prefix.startswith(b":", pos):
            return None
        pos = _WS.match(prefix, pos + 1).end()
        if key.group() == b'"id"':
            value = _SCALAR.match(prefix, pos)
            if value is None or (value.end() == end and not value.group().startswith(b'"')):
                return None  # a number that reaches the end of the prefix may go on past it
            return _as_request_id(value.group())
        if prefix.startswith((b"{", b"["), pos):
            depth = 0
            for token in _NESTED.finditer(prefix, pos):
                t = token.group()
                if t == b'"':
                    return None  # a string runs past the prefix: the brackets after its quote are its text
                if t in (b"{", b"["):
                    depth += 1
                elif t in (b"}", b"]"):
                    depth -= 1
                    if depth == 0:
                        pos = token.end()
                        break
            else:
                return None  # the value runs past the prefix (the usual case for "params")
        else:
            value = _SCALAR.match(prefix, pos)
            if value is None:
                return None
            pos = value.end()
        pos = _WS.match(prefix, pos).end()
        if not prefix.startswith(b",", pos):
            return None  # the object ended (no id: a notification) or the text is no JSON object
        pos += 1


def request_id_from_tail(tail: bytes):
    """The top-level "id" when it is the last key of the JSON object that `tail` (a text's last bytes) ends; else None."""
    match = _TAIL_ID.search(tail)
    return _as_request_id(match.group(1)) if match else None


def too_large_message(what: str, limit: int) -> str:
    """The error text for a request over --max-request-bytes: the size, the limit, the flag and the variable."""
    return f"{what} exceeds max_request_bytes={limit}; raise it with --max-request-bytes or {MAX_REQUEST_BYTES_ENV}"
