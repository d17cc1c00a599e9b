"""Where the walk tools may read model files by path: the server's working directory over stdio, --model-dir
directories over any transport.

Over stdio the client is the user's own process, started in a directory of the user's choosing, so that directory
is allowed. Over HTTP a client may be anyone the server answers, so only --model-dir directories are (none by
default: models then come as `model_base64`). The transport is known at tool time from the request itself (an
HTTP request object rides on the context; in-memory and stdio requests have none) and from the command line
(`python -m server --transport http` writes TRANSPORT). The MCP `roots` request is not used: it is deprecated in
the current protocol era, and roots are the client's wish, not the server operator's permission.
"""

import os

MODEL_DIRS_ENV = "CONV_MCP_MODEL_DIRS"
"""os.pathsep-separated directories (how --model-dir reaches HTTP worker processes)."""
MODEL_DIRS: list[str] = [d for d in os.environ.get(MODEL_DIRS_ENV, "").split(os.pathsep) if d]
"""--model-dir directories; server.__main__ replaces them from the command line."""
TRANSPORT = "stdio"
"""The transport `python -m server` serves; any request that arrives over HTTP counts as HTTP whatever this says."""


def configure(transport: str, model_dirs: list[str]) -> None:
    """Record the command line's transport and model directories (in the environment too, for worker processes)."""
    global TRANSPORT
    TRANSPORT = transport
    MODEL_DIRS[:] = [os.path.realpath(d) for d in model_dirs]
    if MODEL_DIRS:
        os.environ[MODEL_DIRS_ENV] = os.pathsep.join(MODEL_DIRS)
    else:
        os.environ.pop(MODEL_DIRS_ENV, None)


def over_http(ctx) -> bool:
    """Whether this request came over HTTP (or the server serves HTTP)."""
    if TRANSPORT == "http":
        return True
    try:
        return ctx is not None and ctx.request_context.request is not None
    except (AttributeError, ValueError):  # no request context: an in-process call
        return False


def allowed_roots(ctx) -> list[str]:
    """The directories a `model` path may resolve under, for this request."""
    return list(MODEL_DIRS) if over_http(ctx) else [os.getcwd(), *MODEL_DIRS]
