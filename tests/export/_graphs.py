"""Graphs the SVG tests draw, and a reader of the node boxes and labels in gradlens's SVG markup."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import gradlens
import gradlens.engine as ge

SVG_NS = "{http://www.w3.org/2000/svg}"


def transformer_ish(blocks: int = 8, with_modules: bool = True):
    """A stack of attention + MLP blocks (residuals, layer norms, softmax) on the native engine, with the
    module names the watch would record."""
    ge.manual_seed(0)
    dim = 8
    h = ge.randn(4, dim)
    params = {}
    for b in range(blocks):
        q, k, v, o = (ge.nn.Linear(dim, dim) for _ in range(4))
        up, down = ge.nn.Linear(dim, 2 * dim), ge.nn.Linear(2 * dim, dim)
        for name, layer in (("q", q), ("k", k), ("v", v), ("o", o), ("up", up), ("down", down)):
            params[f"layers.{b}.{name}.weight"] = layer.weight
            params[f"layers.{b}.{name}.bias"] = layer.bias
        x = ge.nn.functional.layer_norm(h, (dim,))
        att = ge.nn.functional.softmax(q(x) @ k(x).t() * (dim ** -0.5), dim=-1)
        h = h + o(att @ v(x))
        h = h + down(ge.nn.functional.relu(up(ge.nn.functional.layer_norm(h, (dim,)))))
        if with_modules:
            _tag(h, f"layers.{b}")
    return gradlens.graph(h.pow(2).mean(), params=params)


def _tag(t, module: str) -> None:
    """What the watch does: name the module that made the op nodes not named yet."""
    stack, seen = [t.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen or type(node).__name__ == "AccumulateGrad":
            continue
        seen.add(id(node))
        if "gradlens.module" not in node.metadata:
            node.metadata["gradlens.module"] = module
        stack.extend(child for child, _ in node.next_functions)


def chain(n: int):
    x = ge.ones(3, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * 1.0001
    return gradlens.graph(y.sum(), params={"x": x}, max_nodes=None)


def _box_of(shape: ET.Element) -> tuple[float, float, float, float]:
    if shape.tag == SVG_NS + "rect":
        x, y = float(shape.get("x", 0)), float(shape.get("y", 0))
        return x, y, x + float(shape.get("width")), y + float(shape.get("height"))
    m = re.match(r"M(-?[\d.]+),(-?[\d.]+) H(-?[\d.]+) L(-?[\d.]+),(-?[\d.]+) V(-?[\d.]+)", shape.get("d", ""))
    assert m, f"unexpected node outline {shape.get('d')!r}"
    x0, y0, _, x1, _, y1 = (float(g) for g in m.groups())
    return x0, y0, x1, y1


def nodes(svg: str) -> list[dict]:
    """Each drawn node: its name, its box (x0, y0, x1, y1, the union of its outlines) and label lines."""
    root = ET.fromstring(svg)
    out = []
    for g in root.iter(SVG_NS + "g"):
        if g.get("class") != "node":
            continue
        boxes = [_box_of(s) for s in g if s.tag in (SVG_NS + "rect", SVG_NS + "path")]
        box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
               max(b[3] for b in boxes))
        lines = [t.text or "" for t in g if t.tag == SVG_NS + "text"]
        out.append({"name": g.get("data-node"), "box": box, "lines": lines})
    return out


def clusters(svg: str) -> list[dict]:
    root = ET.fromstring(svg)
    out = []
    for g in root.iter(SVG_NS + "g"):
        if g.get("class") == "cluster":
            rect = g.find(SVG_NS + "rect")
            out.append({"box": _box_of(rect), "label": g.find(SVG_NS + "text").text})
    return out


def overlap(a, b, margin: float = 0.0) -> bool:
    return a[0] < b[2] - margin and b[0] < a[2] - margin and a[1] < b[3] - margin and b[1] < a[3] - margin
