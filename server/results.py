"""What every tool module shares: the read-only annotations and the structured-result builder.

It imports nothing from the server package, so the imports run one way: app -> tool modules -> results.
"""

from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
"""Every tool here computes from its arguments alone: no side effects, same answer twice, no outside world."""


def structured(model: BaseModel, text: str) -> CallToolResult:
    """A tool result with the model as structured content and a short readable text beside it."""
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=model.model_dump(mode="json"))
