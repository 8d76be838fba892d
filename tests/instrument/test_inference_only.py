"""Scripts without an optimizer or a backward (inference, feature extraction, evaluation) get the same
findings on torch as on the native engine (issue 16).

The cause of the difference was the end of the run: evaluation graphs still alive when the watch ended were
reported only if the engine happened to free them before the recorder closed (native tensors die with the
script's globals; torch's did not in time). They are now reported at close, kept alive, on both engines.
"""

from __future__ import annotations

import io

import gradlens
from gradlens.runner import Target, run

from . import rootline_loops as rl

INFERENCE_SCRIPT = """
import sys
import importlib
lib = importlib.import_module(sys.argv[1])
nn = lib.nn
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
model.eval()
preds = []
for i in range(5):
    batch = lib.randn(8, 4)
    preds.append(model(batch))  # <root>
print(len(preds))
"""


def test_kept_outputs_are_found_at_the_end_of_the_watch(lib):
    with gradlens.watch(on_finding="collect") as lens:
        preds = rl.bug_inference_keeps_outputs(lib, batches=4)
    (f,) = lens.findings
    assert f.kind == "graph-without-backward" and f.evidence["kept_alive"] is True
    assert f.evidence["graphs"] == 4 and f.evidence["saved_bytes_per_forward"]
    assert lens.session.steps == 0
    del preds


def test_dropped_outputs_are_found_once_each(lib):
    model = rl.mlp(lib)
    model.eval()
    with gradlens.watch(on_finding="collect") as lens:
        for _ in range(5):
            out = model(lib.randn(8, 4))
            float(out.detach().sum())
        del out
    (f,) = lens.findings
    assert f.kind == "graph-without-backward" and f.evidence["graphs"] == 5


def test_no_grad_inference_is_silent(lib):
    with gradlens.watch(on_finding="collect") as lens:
        preds = rl.clean_inference(lib)
    assert lens.findings == [] and len(preds) == 6


def test_gradlens_report_on_an_inference_script(lib, tmp_path):
    """The issue's case through ``gradlens report``: "no findings in 0 optimizer steps" on torch before."""
    path = tmp_path / "infer.py"
    path.write_text(INFERENCE_SCRIPT)
    record = run(Target("script", str(path), (lib.__name__,)), stderr=io.StringIO())
    assert record.exit_status == 0
    (f,) = record.findings
    root = INFERENCE_SCRIPT.splitlines().index("    preds.append(model(batch))  # <root>") + 1
    assert (f.kind, f.location.file, f.location.line) == ("graph-without-backward", str(path), root)
    assert f.evidence["graphs"] == 5 and f.subject == ("model",)
