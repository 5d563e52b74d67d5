"""Which cells cannot change the namespace: they need no restore point, and
``%undo`` (and the UI's undo key) do not count them as cells to take back.

Works on the transformed cell (plain Python; magics are calls of ``__ipytui__``).
"""

from __future__ import annotations

import ast

_INERT_NODES = (
    ast.Module,
    ast.Expr,
    ast.Pass,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Attribute,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.Tuple,
    ast.List,
    ast.Set,
    ast.Dict,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)


def is_inert(source: str) -> bool:
    """True for cells that cannot change the namespace (``pass``, ``x``, ``a + 1``).

    They need no new snapshot: the previous one already holds this state.
    Anything with a call, an assignment, an import or a subscript is not inert.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return _inert_magic(tree) or all(isinstance(node, _INERT_NODES) for node in ast.walk(tree))


# Magics that read or steer the kernel but leave the namespace alone: no restore point,
# and an undo does not count them as cells to take back. %px, %%px (and so every cell
# under %autopx) and %pxresult run code on the engines or show their results: the
# engines' state is theirs, no local restore point holds it or could take it back.
_INERT_MAGICS = {
    "undo",
    "timeline",
    "protection",
    "who",
    "whos",
    "history",
    "pwd",
    "lsmagic",
    "magic",
    "px",
    "pxresult",
}
_INERT_CELL_MAGICS = {"px"}


def _inert_magic(tree: ast.Module) -> bool:
    """A cell that is one ``__ipytui__.line_magic('NAME', ...)`` (or ``cell_magic``) call
    of an inert magic."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        return False
    call = tree.body[0].value
    if not (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id == "__ipytui__"
        and call.args
        and isinstance(call.args[0], ast.Constant)
    ):
        return False
    names = {"line_magic": _INERT_MAGICS, "cell_magic": _INERT_CELL_MAGICS}.get(
        call.func.attr, set()
    )
    return call.args[0].value in names
