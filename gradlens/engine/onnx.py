"""``torch.onnx`` for the native engine: importable (scripts import it at the top), export not provided.

Exporting to ONNX means tracing the program into ONNX operators, which the native engine does not do; the
error says so and points to real torch, instead of writing a file that is not a model.
"""

from __future__ import annotations


def export(model, args=(), f=None, *rest, **kwargs):
    raise NotImplementedError("gradlens.engine cannot export to ONNX; run the script with real torch "
                              "(import torch) to export the model")


def is_in_onnx_export() -> bool:
    return False


__all__ = ["export", "is_in_onnx_export"]
