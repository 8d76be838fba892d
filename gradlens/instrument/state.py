"""Per-object bookkeeping of the recorder: one record per parameter, optimizer and module.

Records hold weak references, ints and names only, never a tensor, a gradient or a node, so that the
recorder cannot keep anything of the user's alive across iterations.
"""

from __future__ import annotations

from .engines import EngineHooks

__all__ = ["_ParamState", "_OptState", "_ModInfo"]


class _ParamState:
    """Gradient bookkeeping for one parameter (weak references and ints only)."""

    __slots__ = (
        "name",
        "ref",
        "acc_ref",
        "acc_ver",
        "step_ref",
        "step_ver",
        "stepped",
        "count",
        "since_step",
        "carried",
        "received",
        "received_step",
        "held",
        "evalc",
        "repc",
        "eng",
        "bare",
        "updated",
        "mark_ver",
        "mark_ptr",
        "mark_fp",
        "by_version",
        "next_fp",
    )

    def __init__(self, name: str, ref, eng: EngineHooks):
        self.name = name
        self.ref = ref
        self.eng = eng
        self.acc_ref = None
        self.acc_ver = -1
        self.step_ref = None
        self.step_ver = -1
        self.stepped = False
        self.count = 0
        self.since_step = 0
        self.carried = False
        self.received = False
        self.received_step = 0
        self.held = False
        self.evalc = 0
        self.repc = 0
        self.bare = False  # found by a backward's graph walk, not through a module or an optimizer
        self.updated = False  # changed by hand since its last accumulation (judged before each backward)
        self.mark_ver = -1  # version, storage and values at the last accumulation (updates.mark)
        self.mark_ptr = None
        self.mark_fp = None
        self.by_version = False  # its updates show in version or storage: marks skip the value fingerprint
        self.next_fp = None  # the fingerprint read before this backward, reused by the next mark


class _OptState:
    """One optimizer's parameters (as ``_ParamState``), how often it stepped, and a weak reference to it."""

    __slots__ = ("label", "states", "key", "steps", "eng", "ref", "folded", "mutates", "depth", "closure")

    def __init__(self, label: str, eng: EngineHooks, ref):
        self.ref = ref
        self.label = label
        self.states: list[_ParamState] = []
        self.key: tuple = ()
        self.steps = 0
        self.eng = eng
        self.folded = False  # this step's pre-step pass took the post-step snapshot (steps.py)
        self.mutates = False  # seen changing gradients in its step: its snapshot is taken after the step
        self.depth = 0  # step calls in flight: a subclass's step calling its parent's fires the hooks twice
        self.closure = False  # the step in flight was given a closure (which may run backward inside it)


class _ModInfo:
    """What the recorder knows of one module: its name, whether it holds parameters, whether it is the
    outermost module of a call (a root), and whether hooks skip it (compiled modules)."""

    __slots__ = ("name", "has_params", "root", "skip", "eng", "ref")

    def __init__(self, name: str, has_params: bool, root: bool, skip: bool, eng: EngineHooks, ref):
        self.ref = ref  # weak: ids are reused once a module dies
        self.name = name
        self.has_params = has_params
        self.root = root
        self.skip = skip
        self.eng = eng

