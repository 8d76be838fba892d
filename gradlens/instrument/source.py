"""Reading the user's source with ``ast``: the function a frame runs, and in it the statements that bind a
name, change it in place, pass it on, call ``backward()``, or open a ``torch.no_grad()`` block.

The explanations of torch's loud errors (``explain.py``) combine these static facts with the frame's live
values: the values say *which* variable is wrong (a non-leaf, a freed graph, a tensor cut from the graph),
the source says *on which line* it became so. Everything here is plain ``ast``: no engine objects.
"""

from __future__ import annotations

import ast
import io
import linecache
import tokenize
from collections.abc import Iterator

__all__ = ["Scope", "scope_of", "receiver_names"]

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_NO_GRAD = ("no_grad", "inference_mode")
# methods ending in "_" that do not change the tensor's values (or are not tensor ops)
_NOT_INPLACE = {"requires_grad_", "retain_grad", "share_memory_", "register_hook", "pin_memory_"}
_CUT_METHODS = ("detach", "detach_", "item", "numpy", "tolist")
_TENSOR_FROM = ("tensor", "as_tensor", "from_numpy", "Tensor", "FloatTensor")


def _parse(filename: str) -> ast.Module | None:
    text = "".join(linecache.getlines(filename))
    if not text:
        return None
    try:
        return ast.parse(text, filename)
    except (SyntaxError, ValueError):
        return None


def _walk_scope(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node`` that belongs to its scope (nested functions and classes left out)."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        n = stack.pop()
        yield n
        if not isinstance(n, _DEFS):
            stack.extend(ast.iter_child_nodes(n))


def _names_in(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _names_in(elt)]
    if isinstance(target, ast.Starred):
        return _names_in(target.value)
    return []


def _call_name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _is_no_grad(expr: ast.AST) -> bool:
    """``torch.no_grad()``, ``torch.inference_mode()``, ``torch.set_grad_enabled(False)`` (any prefix)."""
    if not isinstance(expr, ast.Call):
        return isinstance(expr, (ast.Attribute, ast.Name)) and _call_name(expr) in _NO_GRAD  # @torch.no_grad
    name = _call_name(expr.func)
    if name in _NO_GRAD:
        return not (expr.args and isinstance(expr.args[0], ast.Constant) and expr.args[0].value is False)
    if name == "set_grad_enabled":
        return bool(expr.args) and isinstance(expr.args[0], ast.Constant) and expr.args[0].value is False
    return False


def receiver_names(expr: ast.AST) -> list[str]:
    """The variable names an expression reads, in source order."""
    names = [n for n in ast.walk(expr) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    names.sort(key=lambda n: (n.lineno, n.col_offset))
    return list(dict.fromkeys(n.id for n in names))


class Scope:
    """The function (or module) a frame runs, parsed once.

    Args:
        tree: the function's (or module's) AST node.
        lines: the file's source lines (for quoting a statement).
    """

    def __init__(self, tree: ast.AST, lines: list[str]):
        self.tree = tree
        self.lines = lines
        self.nodes = list(_walk_scope(tree))
        self.statements = sorted((n for n in self.nodes if isinstance(n, ast.stmt)), key=lambda n: n.lineno)

    # --- quoting --------------------------------------------------------------------------------------
    def text(self, line: int) -> str:
        """The source line, stripped, without its trailing comment."""
        text = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        try:
            for tok in tokenize.generate_tokens(io.StringIO(text).readline):
                if tok.type == tokenize.COMMENT:
                    return text[:tok.start[1]].rstrip()
        except (tokenize.TokenError, SyntaxError):  # a line of a multi-line statement
            pass
        return text

    def statement_at(self, line: int) -> ast.stmt | None:
        """The innermost simple statement (not a block) spanning ``line``."""
        best = None
        for st in self.statements:
            if isinstance(st, (ast.For, ast.While, ast.If, ast.With, ast.Try, ast.AsyncFor, ast.AsyncWith)):
                continue
            if st.lineno <= line <= (st.end_lineno or st.lineno):
                if best is None or st.lineno >= best.lineno:
                    best = st
        return best

    # --- bindings ------------------------------------------------------------------------------------
    def assignments(self, name: str) -> list[ast.stmt]:
        """Statements binding ``name`` (``=``, annotated ``=``, ``for`` targets, ``with ... as``), in line order."""
        out = []
        for st in self.statements:
            targets: list[ast.AST] = []
            if isinstance(st, ast.Assign):
                targets = st.targets
            elif isinstance(st, ast.AnnAssign) and st.value is not None:
                targets = [st.target]
            elif isinstance(st, (ast.For, ast.AsyncFor)):
                targets = [st.target]
            elif isinstance(st, (ast.With, ast.AsyncWith)):
                targets = [it.optional_vars for it in st.items if it.optional_vars is not None]
            if any(name in _names_in(t) for t in targets):
                out.append(st)
        return out

    def binding_before(self, name: str, line: int) -> ast.stmt | None:
        """The assignment of ``name`` that ran last before ``line`` (in straight-line order: the last one
        above it; in a loop whose binding is below, the last one overall)."""
        found = self.assignments(name)
        above = [st for st in found if st.lineno < line]
        if above:
            return above[-1]
        return found[-1] if found else None

    def value_of(self, st: ast.stmt) -> ast.AST | None:
        return st.value if isinstance(st, (ast.Assign, ast.AnnAssign)) else None

    def reads_itself(self, st: ast.stmt, name: str) -> bool:
        """Whether the assignment computes ``name`` from its own previous value (``h = f(x, h)``)."""
        value = self.value_of(st)
        return value is not None and name in receiver_names(value)

    # --- uses ----------------------------------------------------------------------------------------
    def uses(self, name: str, after: int, before: int) -> list[ast.stmt]:
        """Simple statements strictly between two lines that read ``name``."""
        out = []
        for st in self.statements:
            if not after < st.lineno < before:
                continue
            if isinstance(st, (ast.For, ast.While, ast.If, ast.With, ast.Try, ast.AsyncFor, ast.AsyncWith)):
                continue
            if name in receiver_names(st):
                out.append(st)
        return out

    def backward_lines(self) -> list[int]:
        """Lines that call ``backward`` (``loss.backward()``, ``torch.autograd.backward(...)``)."""
        return sorted({n.lineno for n in self.nodes if isinstance(n, ast.Call) and _call_name(n.func) == "backward"})

    def grad_reads(self, st: ast.AST) -> list[str]:
        """Names whose ``.grad`` the statement reads (``w.grad``)."""
        return [n.value.id for n in ast.walk(st)
                if isinstance(n, ast.Attribute) and n.attr == "grad" and isinstance(n.value, ast.Name)]

    def backward_receivers(self, line: int) -> list[str]:
        """The names a ``backward`` call on ``line`` differentiates (``loss`` in ``loss.backward()``)."""
        st = self.statement_at(line)
        if st is None:
            return []
        for n in ast.walk(st):
            if isinstance(n, ast.Call) and _call_name(n.func) == "backward":
                if isinstance(n.func, ast.Attribute) and not (
                    isinstance(n.func.value, ast.Attribute) and n.func.value.attr == "autograd"
                ):
                    return receiver_names(n.func.value)
                if n.args:
                    return receiver_names(n.args[0])
        return []

    # --- in-place changes ----------------------------------------------------------------------------
    def inplace_changes(self, name: str) -> list[ast.stmt]:
        """Simple statements that change ``name`` in place: ``name.add_(...)``, ``name += ...``,
        ``name[...] = ...``, ``torch.relu_(name)``, ``f(name, inplace=True)``; in line order."""
        out = []
        for st in self.statements:
            if self.statement_at(st.lineno) is not st:
                continue
            if isinstance(st, ast.AugAssign) and name in _names_in(st.target):
                out.append(st)
                continue
            targets = st.targets if isinstance(st, ast.Assign) else [st.target] if isinstance(
                st, (ast.AugAssign, ast.AnnAssign)) else []
            if any(isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id == name
                   for t in targets):
                out.append(st)
                continue
            if any(self._inplace_call(n, name) for n in ast.walk(st)):
                out.append(st)
        return out

    @staticmethod
    def _inplace_call(n: ast.AST, name: str) -> bool:
        if not isinstance(n, ast.Call):
            return False
        method = _call_name(n.func)
        first = n.args[0] if n.args else None
        if method.endswith("_") and not method.startswith("_") and method not in _NOT_INPLACE:
            if isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name) and n.func.value.id == name:
                return True  # name.add_(1)
            if isinstance(first, ast.Name) and first.id == name and isinstance(n.func, ast.Attribute):
                return isinstance(n.func.value, ast.Name) and n.func.value.id in ("torch", "F", "nn", "init")
        return (isinstance(first, ast.Name) and first.id == name
                and any(k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True
                        for k in n.keywords))

    # --- graph cuts ----------------------------------------------------------------------------------
    def no_grad_block(self, line: int) -> int | None:
        """The line of the innermost ``with torch.no_grad():`` (or ``@torch.no_grad()`` on the function)
        whose body holds ``line``, or None."""
        best = None
        for st in self.statements:
            if isinstance(st, (ast.With, ast.AsyncWith)) and any(_is_no_grad(it.context_expr) for it in st.items):
                if st.lineno < line <= (st.end_lineno or st.lineno) and (best is None or st.lineno > best):
                    best = st.lineno
        if best is None and isinstance(self.tree, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for dec in self.tree.decorator_list:
                if _is_no_grad(dec):
                    return dec.lineno
        return best

    def cut_in(self, st: ast.stmt) -> tuple[str, str | None] | None:
        """How an assignment's value leaves the graph, if it visibly does: ``("detach", receiver)``,
        ``("round trip", receiver)`` for ``.item()``/``.numpy()``/``.tolist()`` turned back into a tensor,
        ``("data", receiver)`` for ``.data``. The receiver is the name the cut was applied to, when simple."""
        value = self.value_of(st)
        if value is None:
            return None
        for n in ast.walk(value):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in _CUT_METHODS:
                recv = n.func.value.id if isinstance(n.func.value, ast.Name) else None
                if n.func.attr in ("detach", "detach_"):
                    return "detach", recv
                return "round trip", recv
            if isinstance(n, ast.Attribute) and n.attr == "data" and isinstance(n.ctx, ast.Load):
                return "data", n.value.id if isinstance(n.value, ast.Name) else None
        return None

    def detach_statement(self, name: str, after: int, before: int) -> ast.stmt | None:
        """A statement ``name.detach_()`` / ``name.requires_grad_(False)`` between two lines."""
        for st in self.statements:
            if not after <= st.lineno < before:
                continue
            for n in ast.walk(st):
                if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                        and isinstance(n.func.value, ast.Name) and n.func.value.id == name
                        and (n.func.attr == "detach_" or (n.func.attr == "requires_grad_" and n.args
                             and isinstance(n.args[0], ast.Constant) and n.args[0].value is False))):
                    return st
        return None


def scope_of(filename: str, function: str, line: int) -> Scope | None:
    """The innermost function named ``function`` whose body holds ``line`` in ``filename`` (the module for
    ``<module>``), or None when the source cannot be read."""
    tree = _parse(filename)
    if tree is None:
        return None
    lines = linecache.getlines(filename)
    if function == "<module>":
        return Scope(tree, lines)
    best = None
    for n in ast.walk(tree):
        if (isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == function
                and n.lineno <= line <= (n.end_lineno or n.lineno)):
            if best is None or n.lineno > best.lineno:
                best = n
    return Scope(best, lines) if best is not None else None
