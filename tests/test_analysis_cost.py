"""The cost model against hand-computed small cases and the published MobileNet counts."""

import pytest
import torch
import torch.nn.functional as F

from dwconv.analysis import cost as C
from dwconv.analysis.profile import profile
from dwconv.models import mobilenet_v1, mobilenet_v1_fullconv


def test_standard_conv_by_hand():
    # 1x2x5x5 input, 3 filters of 2x3x3, padding 1: 5x5 outputs of 18 taps each
    c = C.standard(1, 2, 5, 5, 3, kernel=3, padding=1)
    assert c.out_shape == (1, 3, 5, 5)
    assert c.params == 54
    assert c.macs == 25 * 3 * 18 == 1350
    assert c.flops == 2700
    assert c.min_bytes == 4 * (50 + 54 + 75)
    assert c.feature_map_bytes == 4 * (50 + 75)
    assert c.intensity == pytest.approx(2700 / (4 * 179))


def test_grouped_and_bias():
    c = C.grouped(2, 8, 6, 6, 4, groups=2, kernel=3, stride=2, padding=1, bias=True)
    # out 3x3; each output sees 8/2 channels x 9 taps
    assert c.out_shape == (2, 4, 3, 3)
    assert c.params == 4 * 4 * 9 + 4
    assert c.macs == 2 * 9 * 4 * 36
    assert c.kind == "grouped"


def test_depthwise_intensity_matches_the_rule_of_thumb():
    # large maps, fp32: k^2 / b = 2.25 FLOP/byte at stride 1, 0.9 at stride 2 (weights negligible)
    s1 = C.depthwise(32, 64, 112, 112, kernel=3, padding=1)
    s2 = C.depthwise(32, 64, 112, 112, kernel=3, stride=2, padding=1)
    assert s1.intensity == pytest.approx(2.25, rel=1e-4)
    assert s2.intensity == pytest.approx(0.9, rel=1e-4)
    assert C.depthwise(32, 64, 112, 112, 3, padding=1, dtype=torch.bfloat16).intensity == \
        pytest.approx(4.5, rel=1e-4)


def test_depthwise_multiplier_and_dilation_exact():
    # 10x10 input, 3x3 dilation 2: span 5, padding 0 -> 6x6; multiplier 2 -> 2*C output channels
    c = C.depthwise(1, 3, 10, 10, kernel=3, dilation=2, multiplier=2)
    assert c.out_shape == (1, 6, 6, 6)
    assert c.params == 6 * 9
    assert c.macs == 36 * 6 * 9
    y = F.conv2d(torch.zeros(1, 3, 10, 10), torch.zeros(6, 1, 3, 3), dilation=2, groups=3)
    assert tuple(y.shape) == c.out_shape


@pytest.mark.parametrize("h,k,s,p,d", [(7, 3, 2, 1, 1), (8, 3, 2, 1, 1), (9, 5, 3, 2, 2),
                                       (13, 4, 2, 0, 3), (1, 3, 1, 1, 1)])
def test_output_size_matches_pytorch(h, k, s, p, d):
    c = C.conv2d(1, 4, h, h + 1, 4, k, s, p, d, groups=4)
    y = F.conv2d(torch.zeros(1, 4, h, h + 1), torch.zeros(4, 1, k, k), None, s, p, d, 4)
    assert c.out_shape == tuple(y.shape)


def test_same_padding_even_kernel():
    c = C.conv2d(1, 2, 9, 9, 2, kernel=4, padding="same", groups=2)
    assert c.out_shape == (1, 2, 9, 9)


def test_kernel_too_large_is_a_clear_error():
    with pytest.raises(ValueError, match="does not fit"):
        C.depthwise(1, 4, 3, 3, kernel=5)


def test_pointwise_and_separable():
    pw = C.pointwise(1, 16, 8, 8, 32)
    assert pw.macs == 64 * 16 * 32 and pw.params == 512 and pw.kind == "pointwise"
    sep = C.depthwise_separable(1, 16, 8, 8, 32, kernel=3, stride=2, padding=1)
    assert sep.kind == "depthwise_separable"
    assert [p.kind for p in sep.parts] == ["depthwise", "pointwise"]
    assert sep.macs == 16 * 16 * 9 + 16 * 16 * 32
    assert sep.params == 16 * 9 + 16 * 32
    assert sep.out_shape == (1, 32, 4, 4)
    # the separable block's MACs are 1/c_out + 1/k^2 of the standard conv's (MobileNet eq. 5)
    std = C.standard(1, 16, 8, 8, 32, 3, 2, 1)
    assert sep.macs / std.macs == pytest.approx(1 / 32 + 1 / 9)


def test_flattened():
    f = C.flattened(1, 8, 10, 12, 16, kernel=3, padding=1)
    assert [p.kind for p in f.parts] == ["depthwise", "depthwise", "pointwise"]
    assert f.params == 8 * 3 + 8 * 3 + 8 * 16
    assert f.macs == 120 * 8 * 3 * 2 + 120 * 8 * 16
    assert f.out_shape == (1, 16, 10, 12)
    g = C.flattened(1, 8, 10, 12, 16, kernel=(3, 5), stride=2, padding=(1, 2), dilation=(1, 2))
    # H: (10+2-3)//2+1 = 5; W: (12+4-9)//2+1 = 4
    assert g.out_shape == (1, 16, 5, 4)
    assert g.parts[0].out_shape == (1, 8, 5, 12)


def test_channelwise():
    # ChannelNets: one kernel of 8 taps along 64 channels, 'same': 64 outputs, 8 params
    c = C.channelwise(2, 64, 7, 7, kernel=8, padding="same")
    assert c.params == 8 and c.out_shape == (2, 64, 7, 7)
    assert c.macs == 2 * 49 * 64 * 8
    # GCWC, g=2, dc=8, stride 2: two kernels, 32 outputs each
    g = C.channelwise(1, 64, 7, 7, kernel=8, stride=2, padding="same", groups=2)
    assert g.params == 16 and g.out_shape == (1, 64, 7, 7)
    # the conv classification layer: dc = m - n + 1, valid -> n outputs
    v = C.channelwise(1, 1024, 1, 1, kernel=1024 - 1000 + 1)
    assert v.out_shape[1] == 1000


def test_linear_and_backward():
    fc = C.linear(4, 1024, 1000)
    assert fc.params == 1_025_000 and fc.macs == 4 * 1_024_000
    b = fc.backward()
    assert b.macs == 2 * fc.macs
    assert b.min_bytes == 4 * (4 * 1024 + 4 * 1000 + 2 * 1_025_000 + 4 * 1024)


def _mobilenet_v1_cost(width=1.0, resolution=224, full_conv=False):
    """MobileNet v1 from the cost functions alone (no nn.Module)."""
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
        [(1024, 2), (1024, 1)]
    ch = lambda n: int(n * width)  # noqa: E731 (multiples of 8 for the widths tested)
    total = C.standard(1, 3, resolution, resolution, ch(32), 3, 2, 1)
    c, h = ch(32), total.out_shape[2]
    for c_out, s in blocks:
        block = (C.standard if full_conv else C.depthwise_separable)(1, c, h, h, ch(c_out), 3, s, 1)
        total, c, h = total + block, ch(c_out), block.out_shape[2]
    return total + C.linear(1, c, 1000)


def test_mobilenet_v1_published_counts_from_the_cost_model():
    t = _mobilenet_v1_cost()
    assert t.macs == 568_740_352
    assert t.params == 4_210_088


def _meta(build, *args, **kwargs):
    """The model with meta tensors: the profiler gets every shape without computing anything."""
    with torch.device("meta"):
        return build(*args, **kwargs)


def test_mobilenet_v1_published_counts_from_the_profiler():
    p = profile(_meta(mobilenet_v1, bn=False), (1, 3, 224, 224))
    assert p.macs == 568_740_352
    assert p.params == 4_210_088
    assert profile(_meta(mobilenet_v1), (1, 3, 224, 224)).params == 4_231_976  # + BN gamma/beta
    shares = {r.kind: r for r in p.by_type()}
    # the paper's Table 2, mult-adds
    assert round(100 * shares["pointwise"].macs_share, 2) == 94.86
    assert round(100 * shares["depthwise"].macs_share, 2) == 3.06
    assert round(100 * shares["fc"].macs_share, 2) == 0.18
    # its 1.19% for the 3x3 conv is a digit swap: 10,838,016 / 568,740,352 = 1.91%
    assert round(100 * shares["standard"].macs_share, 2) == 1.91
    # the paper's parameter shares leave out the FC bias (1,000 of 4,210,088)
    weights = p.params - 1000
    assert round(100 * shares["pointwise"].params / weights, 2) == 74.59
    assert round(100 * shares["depthwise"].params / weights, 2) == 1.06
    assert round(100 * (shares["fc"].params - 1000) / weights, 2) == 24.33


@pytest.mark.parametrize("width,resolution,published", [
    (0.75, 224, 325), (0.5, 224, 149), (0.25, 224, 41), (1.0, 192, 418), (1.0, 160, 290),
    (1.0, 128, 186)])
def test_mobilenet_v1_multipliers(width, resolution, published):
    # the paper's Tables 6 and 7 give whole millions, truncated
    p = profile(_meta(mobilenet_v1, width, resolution / 224, bn=False),
                (1, 3, resolution, resolution))
    assert p.macs == _mobilenet_v1_cost(width, resolution).macs
    assert p.macs // 1_000_000 == published


def test_full_conv_mobilenet():
    p = profile(_meta(mobilenet_v1_fullconv, bn=False), (1, 3, 224, 224))
    assert p.macs == _mobilenet_v1_cost(full_conv=True).macs
    # the paper's 4,866M is the convolutions' mult-adds (the FC adds 1.024M more): 4,866.27M
    conv_macs = sum(x.cost.macs for x in p.layers if x.kind == "standard")
    assert round(conv_macs / 1e6) == 4866
    assert round(p.params / 1e6, 1) == 29.3


def test_mobilenet_v1_runs():
    # the meta-device counts above never run the network: run the smallest one for real
    model = mobilenet_v1(0.25, 128 / 224)
    assert model(torch.randn(2, 3, model.input_size, model.input_size)).shape == (2, 1000)


def test_mobilenet_v2_torchvision():
    torchvision = pytest.importorskip("torchvision")
    p = profile(_meta(torchvision.models.mobilenet_v2), (1, 3, 224, 224))
    assert p.macs == 300_774_272
    assert p.params == 3_504_872
