"""Minimal end-to-end check of the skeleton (the full matrix lives in test_dw2d_*.py)."""

import torch

import dwconv
from tolerances import assert_close


def test_forward_backward_matches_reference(cpu_isa):
    x = torch.randn(2, 6, 9, 11, requires_grad=True)
    w = torch.randn(12, 1, 3, 3, requires_grad=True)
    b = torch.randn(12, requires_grad=True)
    y = dwconv.depthwise_conv2d(x, w, b, stride=2, padding=1, backend="cpu")
    r = dwconv.reference.depthwise_conv2d(x, w, b, stride=2, padding=1)
    assert_close(y, r, backend="cpu", dtype=torch.float32)
    g = torch.randn_like(r)
    grads = torch.autograd.grad(y, (x, w, b), g.float())
    refs = torch.autograd.grad(r, (x, w, b), g)
    for name, a, e in zip(("grad_input", "grad_weight", "grad_bias"), grads, refs):
        assert_close(a, e, backend="cpu", dtype=torch.float32, what=name)
