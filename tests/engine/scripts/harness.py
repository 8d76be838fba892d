"""Run an unchanged PyTorch example script (from a checkout of github.com/pytorch/examples; checked at
77f55b9) on either engine with synthetic data, to find what the native engine still lacks.

``python harness.py ENGINE SCRIPT [ARGS...]``: ENGINE is ``torch`` or ``native``; SCRIPT is the script's path
(``.../examples/mnist/main.py``). For ``native``, ``import torch`` (and ``torch.nn``,
``torch.optim.lr_scheduler`` ...) resolves to ``gradlens.engine`` (and its submodules), exactly what
``import gradlens.engine as torch`` gives a user. ``torchvision`` is replaced by a small synthetic stand-in
(MNIST-shaped random images, ``FakeData``, the transforms the scripts use, a ``save_image`` that writes
nothing), and ``requests.get`` by a synthetic Cora archive, so no network or data set is needed. The
script's source is not modified; tests/engine/test_example_scripts.py reads the losses it prints.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import io
import os
import runpy
import sys
import tarfile
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``torch.X`` -> the already importable ``gradlens.engine.X``."""

    def find_spec(self, fullname, path, target=None):
        if fullname == "torch" or fullname.startswith("torch."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        target = "gradlens.engine" + spec.name[len("torch"):]
        module = importlib.import_module(target)
        return module

    def exec_module(self, module):
        pass


def _install_native() -> None:
    sys.meta_path.insert(0, _AliasFinder())
    import torch  # noqa: F401 - through the alias


def _torch():
    return sys.modules["torch"]


# --- synthetic torchvision -----------------------------------------------------------------------------------
class _Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class _ToTensor:
    def __call__(self, img):  # img: an (H, W) or (H, W, C) uint8 array
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return _torch().tensor(np.ascontiguousarray(arr))


class _Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, x):
        t = _torch()
        mean = t.tensor(np.asarray(self.mean, np.float32)).view(-1, 1, 1)
        std = t.tensor(np.asarray(self.std, np.float32)).view(-1, 1, 1)
        return (x - mean) / std


class _Lambda:
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)


class _Identity:
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, x):
        return x


class _SyntheticImages:
    """A data set of seeded random uint8 images and labels (the length the env var asks, default 128)."""

    def __init__(self, shape, num_classes=10, transform=None, target_transform=None, size=None):
        n = size or int(os.environ.get("GRADLENS_SYNTH_SIZE", "128"))
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        self.labels = rng.integers(0, num_classes, size=n)
        self.transform, self.target_transform = transform, target_transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img, label = self.images[i], int(self.labels[i])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label


def _mnist(root=None, train=True, download=False, transform=None, target_transform=None):
    return _SyntheticImages((28, 28), transform=transform, target_transform=target_transform)


def _fake_data(size=1000, image_size=(3, 224, 224), num_classes=10, transform=None, **kwargs):
    c, h, w = image_size
    return _SyntheticImages((h, w, c), num_classes, transform, size=min(size, 128))


def _save_image(*args, **kwargs):
    """Writes nothing: the scripts' image dumps are not what is being tested."""


def _install_torchvision() -> None:
    tv = types.ModuleType("torchvision")
    datasets = types.ModuleType("torchvision.datasets")
    datasets.MNIST = _mnist
    datasets.FakeData = _fake_data
    transforms = types.ModuleType("torchvision.transforms")
    transforms.Compose, transforms.ToTensor, transforms.Normalize, transforms.Lambda = \
        _Compose, _ToTensor, _Normalize, _Lambda
    transforms.Resize = transforms.CenterCrop = _Identity
    utils = types.ModuleType("torchvision.utils")
    utils.save_image = _save_image
    tv.datasets, tv.transforms, tv.utils = datasets, transforms, utils
    for name, mod in (("torchvision", tv), ("torchvision.datasets", datasets),
                      ("torchvision.transforms", transforms), ("torchvision.utils", utils)):
        sys.modules[name] = mod


# --- synthetic Cora for gcn ------------------------------------------------------------------------------------
def _cora_tgz(n_nodes=1600, n_words=24, n_edges=4000) -> bytes:
    rng = np.random.default_rng(0)
    ids = rng.choice(10**6, size=n_nodes, replace=False)
    classes = ["A", "B", "C", "D"]
    content = "\n".join(
        "\t".join([str(i), *map(str, rng.integers(0, 2, n_words)), classes[int(rng.integers(0, 4))]]) for i in ids)
    cites = "\n".join(f"{ids[a]}\t{ids[b]}" for a, b in rng.integers(0, n_nodes, size=(n_edges, 2)))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (("cora/cora.content", content), ("cora/cora.cites", cites)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _FakeResponse:
    def __init__(self, payload: bytes):
        self.raw = io.BytesIO(payload)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _install_requests() -> None:
    fake = types.ModuleType("requests")
    fake.get = lambda url, **kwargs: _FakeResponse(_cora_tgz())
    sys.modules["requests"] = fake


def _write_corpus(path: str) -> None:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(50)]
    os.makedirs(path, exist_ok=True)
    for name, lines in (("train.txt", 40), ("valid.txt", 10), ("test.txt", 10)):
        with open(os.path.join(path, name), "w") as fh:
            for _ in range(lines):
                fh.write(" ".join(rng.choice(words, size=12)) + "\n")


def main(argv: list[str]) -> None:
    engine, script, *args = argv
    if engine == "native":
        _install_native()
    import torch

    torch.manual_seed(0)
    _install_torchvision()
    _install_requests()
    path = os.path.abspath(script)
    if os.path.basename(os.path.dirname(path)) == "word_language_model":
        _write_corpus(os.path.join(os.getcwd(), "corpus"))
        sys.path.insert(0, os.path.dirname(path))
    sys.argv = [path, *args]
    runpy.run_path(path, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
