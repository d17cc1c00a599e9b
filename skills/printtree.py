"""print(model) of any module as its tree of module paths: the params of every leaf, without knowing forward().

    parameter_count(print_text_of_torchvision_resnet50)  # rows 'conv1', 'bn1', 'layer1.0.conv1', ...; 25,557,032

A printed module is a tree: a line `(key): Class(` opens a module whose children follow until its `)`, a line
`(key): Class(arguments)` is a leaf, and `(1-3): 3 x Class(...)` repeats one. Params live in the leaves (a Conv2d,
a BatchNorm2d, a Linear) and do not depend on the order forward() calls them in, so every leaf the walk knows is
counted from its printed arguments with the walk's own rules, named by its module path (`layer1.0.conv1`). A leaf
of a class the walk does not know is a row that says so (the total is then partial). What a print cannot show
either: parameters a custom module holds itself (nn.Parameter attributes, e.g. ViT's class_token), named in a warning.
Shapes need forward(): skills.textspec refuses them for custom modules and points to an ONNX export.
"""

from __future__ import annotations

from .errors import ConvError, SpecError
from .layers import text
from .reports import PARAM_FIELDS, PARAM_ROW_FIELDS, Completeness, Coverage, ParameterReport, ParamRow, construct
from .spec import short
from .textspec import _PRINTED, TEXT_MAX_LAYERS, _leaf, flatten_tree, read_tree


class Leaf:
    """One printed leaf: module path, class, arguments text, source line."""

    __slots__ = ("path", "cls", "rest", "line")

    def __init__(self, path: str, cls: str, rest: str, line: int):
        self.path, self.cls, self.rest, self.line = path, cls, rest, line


def leaves(text: str, *, max_layers: int | None = None) -> tuple[list[Leaf], list[str]]:
    """(every leaf with its module path, repeats expanded; the classes of custom modules that have children)."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError("spec is empty: give the text print(model) shows")
    custom: list[str] = []

    def module(cls: str, number: int, path: str) -> None:
        if cls not in custom and len(custom) < 1000:
            custom.append(cls)

    root = read_tree(text, TEXT_MAX_LAYERS if max_layers is None else max_layers, lambda cls, rest, number: (cls, rest), module)
    return [Leaf(path, cls, rest, number) for (cls, rest), number, path in flatten_tree(root)], custom


def parameter_count(spec: str, *, max_layers: int | None = None) -> ParameterReport:
    """Params and buffers of every leaf module of any print(model), by module path, and the totals."""
    from .walk import walk

    found, custom = leaves(spec, max_layers=max_layers)
    rows: list[ParamRow] = []
    cache: dict[tuple[str, str], tuple] = {}
    params = buffers = 0
    unknown: list[Leaf] = []
    for i, leaf in enumerate(found):
        counted = cache.get((leaf.cls, leaf.rest))
        if counted is None:
            counted = cache[(leaf.cls, leaf.rest)] = _count(leaf, walk)
        ltype, p, b, formula, bformula, known = counted
        if not known:
            unknown.append(leaf)
        params += p
        buffers += b
        rows.append(construct(ParamRow, PARAM_ROW_FIELDS, {
            "index": i, "path": leaf.path, "type": ltype, "params": p, "buffers": b, "formula": formula,
            "buffers_formula": bformula, "name": leaf.path or None, "op_type": None,
            "note": None if known else formula,
        }))
    warnings = []
    if custom:
        warnings.append(
            f"custom modules ({', '.join(_name(c) for c in custom[:5])}{', ...' if len(custom) > 5 else ''}) are counted by their printed "
            "children; print(model) does not show parameters a module holds itself (nn.Parameter attributes such as "
            "ViT's class_token or a MultiheadAttention's in_proj_weight), which are not counted"
        )
    if unknown:
        classes = sorted({leaf.cls for leaf in unknown})
        warnings.append(
            f"{len(unknown)} leaf module{'s' if len(unknown) > 1 else ''} of classes the walk does not know "
            f"({', '.join(_name(c) for c in classes[:5])}{', ...' if len(classes) > 5 else ''}) {'are' if len(unknown) > 1 else 'is'} not counted"
        )
        coverage = Coverage(status="partial", from_node=unknown[0].path or _name(unknown[0].cls),
                            reason=f"{_name(unknown[0].cls)} is not a layer the walk knows: its params are not counted")
    else:
        coverage = Coverage(status="complete")
    return construct(ParameterReport, PARAM_FIELDS, {
        "total_params": params, "total_buffers": buffers, "layers": rows, "block_layers": [], "input_shape": None,
        "warnings": warnings, "completeness": Completeness(params=coverage),
    })


def _count(leaf: Leaf, walk) -> tuple:
    """(type, params, buffers, formula, buffers formula, whether the walk knows the class) of one printed leaf."""
    cls = leaf.cls
    if cls not in _PRINTED:
        return _name(cls), 0, 0, f"not counted: {_name(cls)} is not a layer the walk knows", None, False
    try:
        rec = walk(None, [_leaf(cls, leaf.rest, leaf.line)]).records[0]
    except ConvError as exc:
        return cls.lower(), 0, 0, f"not counted: {exc}", None, False
    return rec.type, rec.params, rec.buffers, text(rec.formula), text(rec.buffers_formula), True


def _name(cls: str) -> str:
    """A class name as messages show it (never a huge one echoed back)."""
    return cls if len(cls) <= 80 else short(cls)
