"""dwconv.models: ChannelNets' layers against the paper's definition, counted by the profiler."""

import pytest
import torch

from dwconv.analysis import cost as C
from dwconv.analysis.profile import profile
from dwconv.models import ChannelWiseConv2d, ConvClassifier, DepthwiseSeparableChannelWise


def _channelwise_reference(x, kernels, stride, pad):
    """Y[i, g*n_g + j, h, w] = sum_t w_g[t] X[i, j*s + t - pad_before, h, w], in float64 loops."""
    x = x.double()
    n, m, h, w = x.shape
    dc = kernels.shape[1]
    n_g = (m + sum(pad) - dc) // stride + 1
    out = torch.zeros(n, kernels.shape[0] * n_g, h, w, dtype=torch.float64)
    for g, k in enumerate(kernels.double()):
        for j in range(n_g):
            for t in range(dc):
                c = j * stride + t - pad[0]
                if 0 <= c < m:
                    out[:, g * n_g + j] += k[t] * x[:, c]
    return out


@pytest.mark.parametrize("m,dc,stride,groups,padding", [
    (16, 8, 1, 1, "same"), (16, 8, 2, 2, "same"), (12, 3, 1, 1, "same"), (10, 4, 3, 2, (1, 2)),
    (9, 9, 1, 1, "valid")])
def test_channelwise_matches_the_paper(m, dc, stride, groups, padding):
    layer = ChannelWiseConv2d(m, dc, stride, padding, groups)
    x = torch.randn(2, m, 3, 4)
    kernels = layer.conv.weight.detach().reshape(groups, dc)
    y = layer(x)
    ref = _channelwise_reference(x, kernels, stride, layer.pad)
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=1e-5)
    expected = C.channelwise(2, m, 3, 4, dc, stride, padding, groups)
    assert tuple(y.shape) == expected.out_shape
    (counted,) = profile(layer, x).layers
    assert counted.kind == "channelwise"
    assert counted.cost.macs == expected.macs and counted.cost.params == expected.params


def test_depthwise_separable_channelwise_params():
    block = DepthwiseSeparableChannelWise(1024, 3, 64)
    assert sum(p.numel() for p in block.parameters()) == 9 * 1024 + 64  # not 153,664 (issue #5)
    p = profile(block, (1, 1024, 7, 7))
    assert [x.kind for x in p.layers] == ["depthwise", "channelwise"]
    assert p.macs == 49 * 1024 * 9 + 49 * 1024 * 64


def test_conv_classifier():
    head = ConvClassifier(1024, 1000, 7)
    assert sum(p.numel() for p in head.parameters()) == 7 * 7 * 25 == 1225
    assert head(torch.randn(2, 1024, 7, 7)).shape == (2, 1000)
    with pytest.raises(ValueError, match="num_classes"):
        ConvClassifier(10, 20, 7)
    with pytest.raises(ValueError, match="expects"):
        ChannelWiseConv2d(8, 3)(torch.randn(1, 9, 2, 2))
