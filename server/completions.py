"""Argument completions (completion/complete) for the prompts and the resource templates.

The modules that own a prompt or a template say what to propose (texts.PROMPT_COMPLETIONS,
conv_tools.TEMPLATE_COMPLETIONS); this one filters by what the user has typed and answers the request.
"""

from collections.abc import Callable, Mapping

from mcp.server import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)

MAX_VALUES = 100  # the protocol's cap on values in one completion result

Suggest = Callable[[str, Mapping[str, str]], list[str] | None]
"""(argument name, arguments already given) -> the values to propose, best first; None for an unknown argument."""


def _norm(text: str) -> str:
    return "".join(text.split()).lower()


def _word_starts(text: str) -> list[int]:
    """Where the words of a normalised value start: 0 and after each non-alphanumeric ('blur_|3x3', '[3,|224')."""
    return [0] + [i + 1 for i, ch in enumerate(text) if not ch.isalnum()]


def matching(values: list[str], typed: str) -> list[str]:
    """The values that begin with what was typed (ignoring case, spaces and an opening '['), then those with a word that does."""
    typed = _norm(typed)
    if not typed:
        return list(dict.fromkeys(values))
    first, then = [], []
    for value in dict.fromkeys(values):
        v = _norm(value)
        if v.startswith(typed) or v.lstrip("[").startswith(typed):
            first.append(value)
        elif any(v.startswith(typed, i) for i in _word_starts(v)):
            then.append(value)
    return first + then


def register_completions(server: MCPServer, prompts: Mapping[str, Suggest], templates: Mapping[str, Suggest]) -> None:
    """Answer completion/complete for the named prompts and the resource templates (keyed by URI template)."""

    @server.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument, context: CompletionContext | None
    ) -> Completion:
        if isinstance(ref, PromptReference):
            kind, key, owners = "prompt", ref.name, prompts
        else:
            kind, key, owners = "resource template", ref.uri, templates
        suggest = owners.get(key)
        if suggest is None:
            raise MCPError(INVALID_PARAMS, f"no {kind} {key[:80]!r} to complete; known: {', '.join(owners)}")
        given = (context.arguments if context else None) or {}
        values = suggest(argument.name, given)
        if values is None:
            raise MCPError(INVALID_PARAMS, f"{kind} {key!r} has no argument {argument.name[:80]!r}")
        found = matching(values, argument.value)
        return Completion(values=found[:MAX_VALUES], total=len(found), has_more=len(found) > MAX_VALUES)
