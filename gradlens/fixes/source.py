"""A user's source file, parsed once, with the few questions fix writers ask of it: the statement at a
line, the loops and blocks around it, a statement's indentation, and the name the script uses for torch.

Only the ``ast`` module is used: the file is read, never imported or executed.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterator, Sequence

from .edits import Edit

__all__ = ["SourceFile", "LOOPS", "calls_method", "holder_name", "in_no_grad"]

LOOPS = (ast.For, ast.AsyncFor, ast.While)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_TORCH_ATTRS = {"no_grad", "enable_grad", "inference_mode", "optim", "nn", "randn", "zeros", "ones", "tensor",
                "manual_seed", "set_grad_enabled", "autograd"}


def calls_method(node: ast.AST, method: str) -> list[ast.Call]:
    """Calls ``X.method(...)`` anywhere under ``node``, not looking into nested functions or classes."""
    found = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Call) and isinstance(current.func, ast.Attribute) and \
                current.func.attr == method:
            found.append(current)
        stack.extend(child for child in ast.iter_child_nodes(current) if not isinstance(child, _SCOPES))
    return found


class SourceFile:
    """A parsed source file.

    Args:
        path: the file.
        text: its contents.

    Raises:
        SyntaxError: the file does not parse.
    """

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.tree = ast.parse(text, filename=path)
        self._parents: dict[ast.AST, ast.AST] = {}
        for parent in ast.walk(self.tree):
            for child in ast.iter_child_nodes(parent):
                self._parents[child] = parent

    # --- where things are -----------------------------------------------------------------------------
    def statement_at(self, line: int) -> ast.stmt | None:
        """The innermost statement whose first line is ``line`` (else the innermost one spanning it)."""
        best: ast.stmt | None = None
        for node in ast.walk(self.tree):
            if isinstance(node, ast.stmt) and node.lineno <= line <= (node.end_lineno or node.lineno):
                if best is None or _inside(node, best):
                    best = node
        return best

    def parent(self, node: ast.AST) -> ast.AST | None:
        """The node directly around ``node``."""
        return self._parents.get(node)

    def parents(self, node: ast.AST) -> Iterator[ast.AST]:
        """The nodes around ``node``, innermost first."""
        current = self._parents.get(node)
        while current is not None:
            yield current
            current = self._parents.get(current)

    def enclosing_loops(self, node: ast.AST) -> list[ast.stmt]:
        """The loops around ``node`` within its function, innermost first."""
        out = []
        for parent in self.parents(node):
            if isinstance(parent, _SCOPES):
                break
            if isinstance(parent, LOOPS):
                out.append(parent)
        return out

    def scope_of(self, node: ast.AST) -> ast.AST:
        """The function (or the module) ``node`` is in."""
        for parent in self.parents(node):
            if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
                return parent
        return self.tree

    def body_holding(self, stmt: ast.stmt) -> tuple[list[ast.stmt], ast.AST] | None:
        """The statement list that holds ``stmt`` directly, and its owner."""
        parent = self._parents.get(stmt)
        if parent is None:
            return None
        for name in ("body", "orelse", "finalbody", "handlers"):
            body = getattr(parent, name, None)
            if isinstance(body, list) and stmt in body:
                return body, parent
        return None

    # --- text ------------------------------------------------------------------------------------------
    def indent(self, stmt: ast.stmt) -> str:
        line = self.lines[stmt.lineno - 1]
        return line[:len(line) - len(line.lstrip())]

    def unit(self, stmt: ast.stmt) -> str:
        """One level of indentation as the file writes it (a tab or four spaces)."""
        return "\t" if "\t" in self.indent(stmt) else "    "

    def span(self, stmt: ast.stmt) -> tuple[int, int]:
        """0-based half-open line range of ``stmt``, decorators included."""
        first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", ()))])
        return first - 1, stmt.end_lineno or stmt.lineno

    # --- edits ----------------------------------------------------------------------------------------
    def insert_before(self, stmt: ast.stmt, code: Sequence[str]) -> Edit:
        """Lines inserted above ``stmt`` at its indentation."""
        start, _ = self.span(stmt)
        return Edit(start, start, tuple(self.indent(stmt) + line for line in code))

    def insert_after(self, stmt: ast.stmt, code: Sequence[str]) -> Edit:
        """Lines inserted below ``stmt`` (after its last line) at its indentation."""
        _, end = self.span(stmt)
        return Edit(end, end, tuple(self.indent(stmt) + line for line in code))

    def wrap(self, first: ast.stmt, last: ast.stmt, header: str,
             replacement: Sequence[str] | None = None) -> Edit:
        """The statements ``first``..``last`` (siblings) placed inside ``header:`` one level deeper.

        ``replacement`` gives their new text (unindented lines) instead of their current text.
        """
        start, _ = self.span(first)
        _, end = self.span(last)
        indent, unit = self.indent(first), self.unit(first)
        if replacement is None:
            body = [unit + line if line.strip() else line for line in self.lines[start:end]]
        else:
            body = [indent + unit + line for line in replacement]
        return Edit(start, end, (indent + header, *body))

    def replace_in_line(self, node: ast.AST, text: str) -> Edit | None:
        """Replace the source of ``node`` (on one line) with ``text``; None for a node on several lines."""
        if node.lineno != node.end_lineno or node.end_col_offset is None:
            return None
        raw = self.lines[node.lineno - 1].encode("utf-8")  # ast offsets count UTF-8 bytes
        new = raw[:node.col_offset] + text.encode("utf-8") + raw[node.end_col_offset:]
        return Edit(node.lineno - 1, node.lineno, (new.decode("utf-8"),))

    def replace_nodes(self, replacements: Sequence[tuple[ast.AST, str]]) -> list[Edit] | None:
        """Replace the source of each node (each on one line) with its text: one ``Edit`` per line touched;
        None when a node spans several lines or two nodes overlap."""
        by_line: dict[int, list[tuple[ast.AST, str]]] = {}
        for node, text in replacements:
            if node.lineno != node.end_lineno or node.end_col_offset is None:
                return None
            by_line.setdefault(node.lineno, []).append((node, text))
        edits = []
        for lineno, items in sorted(by_line.items()):
            raw = self.lines[lineno - 1].encode("utf-8")  # ast offsets count UTF-8 bytes
            items.sort(key=lambda item: item[0].col_offset, reverse=True)  # right to left keeps offsets valid
            for (node, _), (later, _) in zip(items[1:], items):
                if node.end_col_offset > later.col_offset:
                    return None
            for node, text in items:
                raw = raw[:node.col_offset] + text.encode("utf-8") + raw[node.end_col_offset:]
            edits.append(Edit(lineno - 1, lineno, (raw.decode("utf-8"),)))
        return edits

    def segment(self, node: ast.AST) -> str | None:
        return ast.get_source_segment(self.text, node)

    def torch_name(self, near: ast.AST | None = None) -> str | None:
        """The name the script uses for torch: ``import torch [as X]``, else the name most used as
        ``X.no_grad``/``X.nn``/``X.optim``... (``torch = load_engine()``, a ``lib`` parameter)."""
        for node in self.tree.body:  # a module-level import (one under ``if __name__ == ...`` is not in scope)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "torch":
                        return alias.asname or "torch"
        counts = Counter(node.value.id for node in ast.walk(near if near is not None else self.tree)
                         if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                         and node.attr in _TORCH_ATTRS)
        if not counts and near is not None:
            return self.torch_name()
        return counts.most_common(1)[0][0] if counts else None


def holder_name(subject: str) -> str | None:
    """The variable a finding's subject names (``"history[0]"`` -> ``"history"``), or None."""
    name = subject.split("[", 1)[0].strip()
    return name if all(part.isidentifier() for part in name.split(".")) and name else None


def in_no_grad(src: SourceFile, node: ast.AST) -> bool:
    """Whether ``node`` already runs under ``with X.no_grad()`` / ``inference_mode()`` in its function."""
    for parent in src.parents(node):
        if isinstance(parent, _SCOPES):
            return False
        if isinstance(parent, (ast.With, ast.AsyncWith)):
            for item in parent.items:
                call = item.context_expr
                func = call.func if isinstance(call, ast.Call) else call
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("no_grad", "inference_mode"):
                    return True
    return False


def _inside(node: ast.AST, other: ast.AST) -> bool:
    """Whether ``node`` lies within ``other``'s span (and is not ``other``)."""
    a = (node.lineno, node.col_offset, node.end_lineno or node.lineno, node.end_col_offset or 0)
    b = (other.lineno, other.col_offset, other.end_lineno or other.lineno, other.end_col_offset or 0)
    return a != b and (a[0], a[1]) >= (b[0], b[1]) and (a[2], a[3]) <= (b[2], b[3])
