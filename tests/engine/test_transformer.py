"""nn.MultiheadAttention, F.scaled_dot_product_attention and nn.TransformerEncoder(Layer) against torch: the
same weights (copied from a torch module) give the same outputs, attention weights and input/parameter grads."""

from __future__ import annotations

import numpy as np
import pytest

import gradlens.engine as ge
from tests.parity import HAS_TORCH, check_error, check_parity, rand

pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="torch is the oracle")


def _module(lib, cls: str, *args, **kwargs):
    """torch's module (seeded), or the native one carrying the same weights."""
    import torch

    torch.manual_seed(0)
    ref = getattr(torch.nn, cls)(*args, **kwargs).double()
    if lib is torch:
        return ref
    mine = getattr(ge.nn, cls)(*args, **kwargs).double()
    assert list(mine.state_dict()) == list(ref.state_dict())
    mine.load_state_dict({k: ge.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()})
    return mine


def _with_param_grads(lib, module, out):
    """The output plus every parameter's gradient of a fixed scalar of it, so parameter grads are compared."""
    params = [p for _, p in module.named_parameters()]
    grads = lib.autograd.grad((out * out).sum(), params, retain_graph=True, allow_unused=True)
    return [out, *[g for g in grads if g is not None]]


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_mha_need_weights_graph_values_and_grads(batch_first, bias):
    def fn(lib, x):
        m = _module(lib, "MultiheadAttention", 8, 2, bias=bias, batch_first=batch_first)
        out, weights = m(x, x, x)
        return out, weights
    check_parity(fn, rand(2, 3, 8, dtype=np.float64))


def test_mha_parameter_grads_and_per_head_weights():
    def fn(lib, q, kv):
        m = _module(lib, "MultiheadAttention", 6, 3)
        out, w = m(q, kv, kv, average_attn_weights=False)
        return [*_with_param_grads(lib, m, out), w]
    check_parity(fn, rand(4, 2, 6, dtype=np.float64), rand(5, 2, 6, dtype=np.float64), graph=False)


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_masks(need_weights):
    mask = np.triu(np.ones((3, 3), dtype=bool), 1)
    padding = np.array([[False, False, True], [False, False, False]])

    def fn(lib, x):
        m = _module(lib, "MultiheadAttention", 8, 2)
        out, _ = m(x, x, x, need_weights=need_weights, attn_mask=lib.tensor(mask),
                   key_padding_mask=lib.tensor(padding))
        return out
    check_parity(fn, rand(3, 2, 8, dtype=np.float64), graph=need_weights)


def test_mha_unbatched_and_separate_key_value():
    def fn(lib, q, k, v):
        m = _module(lib, "MultiheadAttention", 4, 2)
        return m(q, k, v)
    check_parity(fn, rand(3, 4, dtype=np.float64), rand(5, 4, dtype=np.float64), rand(5, 4, dtype=np.float64))


def test_mha_errors_like_torch():
    check_error(lambda lib: lib.nn.MultiheadAttention(6, 4), match="embed_dim must be divisible by num_heads")
    check_error(lambda lib: lib.nn.MultiheadAttention(0, 1), match="embed_dim and num_heads must be greater than 0")


@pytest.mark.parametrize("causal", [False, True])
def test_scaled_dot_product_attention(causal):
    def fn(lib, q, k, v):
        return lib.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    check_parity(fn, rand(2, 2, 4, 3, dtype=np.float64), rand(2, 2, 4, 3, dtype=np.float64),
                 rand(2, 2, 4, 3, dtype=np.float64), graph=False)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_and_stack(norm_first, activation):
    def fn(lib, x):
        layer = _module(lib, "TransformerEncoderLayer", 8, 2, dim_feedforward=16, dropout=0.0, batch_first=True,
                        norm_first=norm_first, activation=activation)
        kwargs = {"enable_nested_tensor": False} if lib is not ge else {}
        enc = lib.nn.TransformerEncoder(layer, 2, norm=lib.nn.LayerNorm(8).double(), **kwargs)
        mask = np.triu(np.full((4, 4), -np.inf), 1)
        out = enc(x, mask=lib.tensor(mask))
        return _with_param_grads(lib, enc, out)
    check_parity(fn, rand(2, 4, 8, dtype=np.float64), graph=False)


def test_encoder_state_dict_keys_match_torch():
    import torch

    ref = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16), 2, enable_nested_tensor=False)
    mine = ge.nn.TransformerEncoder(ge.nn.TransformerEncoderLayer(8, 2, 16), 2)
    assert list(mine.state_dict()) == list(ref.state_dict())
    assert [tuple(v.shape) for v in mine.state_dict().values()] == [tuple(v.shape) for v in ref.state_dict().values()]


def test_full_transformer_matches_torch():
    def fn(lib, src, tgt):
        model = _module(lib, "Transformer", d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=1,
                        dim_feedforward=12, dropout=0.0)
        mask = lib.nn.Transformer.generate_square_subsequent_mask(3).double()
        out = model(src, tgt, tgt_mask=mask)
        return _with_param_grads(lib, model, out)
    check_parity(fn, rand(4, 2, 8, dtype=np.float64), rand(3, 2, 8, dtype=np.float64), graph=False)
    check_error(lambda lib: _module(lib, "Transformer", d_model=8, nhead=2, num_encoder_layers=1,
                                    num_decoder_layers=1)(lib.ones(4, 2, 8).double(), lib.ones(3, 1, 8).double()),
                match="the batch number of src and tgt must be equal")
