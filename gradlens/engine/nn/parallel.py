"""``torch.nn.parallel`` on a CPU-only engine: there is one device, so data parallelism is the module itself.

``DataParallel(module)`` runs ``module`` unchanged (torch does the same when no GPU is visible: it calls the
wrapped module directly) and keeps torch's ``.module`` attribute and ``module.``-prefixed state-dict keys.
``DistributedDataParallel`` needs a process group and several processes; it is not provided.
"""

from __future__ import annotations

from .modules.module import Module


class DataParallel(Module):
    """Wraps ``module``; with no accelerator, ``forward`` is ``module.forward`` (as torch without GPUs)."""

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0):
        super().__init__()
        if device_ids:
            from ..device import require_available

            for dev in device_ids:
                require_available(dev)
        self.module = module
        self.device_ids = []
        self.output_device = output_device
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


def data_parallel(module: Module, inputs, device_ids=None, output_device=None, dim: int = 0,
                  module_kwargs=None):
    """``module(*inputs)`` on the one device there is (torch's functional form)."""
    if not isinstance(inputs, tuple):
        inputs = (inputs,) if inputs is not None else ()
    return module(*inputs, **(module_kwargs or {}))


__all__ = ["DataParallel", "data_parallel"]
