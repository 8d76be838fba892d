"""The IPython extension in-process (a real InteractiveShell, no kernel): the magic's options, the Lens
display, and unloading."""

from __future__ import annotations

import pytest

pytest.importorskip("IPython")

import gradlens  # noqa: E402
import gradlens.engine as nt  # noqa: E402
from gradlens.integrations.ipython import lens_html, magic_parser  # noqa: E402


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    yield ip
    InteractiveShell.clear_instance()


def test_magic_options():
    opts = magic_parser().parse_args(["--accumulation", "4", "--ignore", "accumulation", "--as", "lens"])
    assert (opts.accumulation, opts.ignore, opts.name, opts.on_finding) == (4, ["accumulation"], "lens",
                                                                             "collect")


def test_extension_watches_a_cell_and_displays_lenses(shell):
    gradlens.load_ipython_extension(shell)
    shell.user_ns["nt"] = nt
    shell.run_cell_magic("gradlens", "--as lens --accumulation 2", (
        "m = nt.nn.Linear(2, 1)\nopt = nt.optim.SGD(m.parameters(), lr=0.1)\nx = nt.randn(4, 2)\n"
        "for _ in range(3):\n    opt.zero_grad()\n    m(x).sum().backward()\n    m(x).sum().backward()\n"
        "    opt.step()\n"))
    lens = shell.user_ns["lens"]
    assert lens.kinds() == {"accumulation"}
    html = shell.display_formatter.formatters["text/html"](lens)
    assert html == lens_html(lens) and "declared accumulation=2" in html

    from gradlens.integrations.ipython import unload_ipython_extension

    unload_ipython_extension(shell)
    assert shell.display_formatter.formatters["text/html"](lens) is None
