"""A real notebook run headless with nbclient: %load_ext gradlens, the %%gradlens cell magic, and the
inline HTML/SVG displays of lenses and graphs."""

from __future__ import annotations

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("torch")

CELLS = [
    "%load_ext gradlens",
    "import torch\ntorch.manual_seed(0)\nmodel = torch.nn.Linear(3, 1)\n"
    "opt = torch.optim.SGD(model.parameters(), lr=0.01)\nx, y = torch.randn(8, 3), torch.randn(8, 1)",
    "%%gradlens --as lens\nfor step in range(4):\n    loss = torch.nn.functional.mse_loss(model(x), y)\n"
    "    loss.backward()  # BUG: no opt.zero_grad()\n    opt.step()\nprint('trained')",
    "sorted(lens.kinds())",
    "lens",
    "%%gradlens --quiet\nfor step in range(4):\n    opt.zero_grad()\n"
    "    torch.nn.functional.mse_loss(model(x), y).backward()\n    opt.step()",
    "import gradlens\ngradlens.graph(torch.nn.functional.mse_loss(model(x), y))",
    "%%gradlens --bogus\n1",
]


def _outputs(cell):
    return cell.get("outputs", [])


def _data(cell, mime):
    return [o["data"][mime] for o in _outputs(cell) if mime in o.get("data", {})]


@pytest.mark.slow
def test_notebook_magic_and_displays(tmp_path, monkeypatch):
    from tests.integrations.conftest import SOURCE_ROOT

    monkeypatch.setenv("PYTHONPATH", SOURCE_ROOT)  # the kernel imports the gradlens under test
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells for o in _outputs(c) if o.get("output_type") == "error"]
    assert not errors, errors

    magic = nb.cells[2]
    assert any("trained" in o.get("text", "") for o in _outputs(magic))
    (html,) = _data(magic, "text/html")
    assert "missing-zero-grad" in html and "<table" in html and "error" in html
    (text,) = _data(magic, "text/plain")
    assert "missing-zero-grad" in text

    assert _data(nb.cells[3], "text/plain") == ["['missing-zero-grad']"]
    assert any("missing-zero-grad" in h for h in _data(nb.cells[4], "text/html"))  # a Lens shows as HTML
    assert _outputs(nb.cells[5]) == []  # --quiet and a clean loop: nothing shown

    graph_cell = nb.cells[6]  # drawn with Graphviz when installed, else with gradlens's own layout
    (svg,) = _data(graph_cell, "image/svg+xml")
    assert "<svg" in svg and "MseLossBackward0" in svg

    usage = "".join(o.get("text", "") for o in _outputs(nb.cells[7]))
    assert "unrecognized arguments: --bogus" in usage
