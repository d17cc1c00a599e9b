"""Turn the domain's errors into the SDK's ToolError, the only exception whose text reaches the client."""

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from skills.errors import ConvError

F = TypeVar("F", bound=Callable[..., Any])


def domain_errors(fn: F) -> F:
    """Re-raise skills' ConvError (and its subclasses) as ToolError with the same message."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except ConvError as exc:
                raise ToolError(str(exc)) from exc

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConvError as exc:
            raise ToolError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]
