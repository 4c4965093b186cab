"""The per-layer profiler and the roofline placement on small models."""

import pytest
import torch
from torch import nn

import dwconv
from dwconv.analysis.profile import classify, profile
from dwconv.analysis.roofline import Roofline, place, place_cost


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.dw = nn.Conv2d(8, 16, 3, 1, 1, groups=8)  # multiplier 2
        self.bn = nn.BatchNorm2d(16)
        self.act = nn.ReLU(inplace=True)
        self.grouped = nn.Conv2d(16, 16, 3, 1, 1, groups=4, bias=False)
        self.pw = nn.Conv2d(16, 4, 1)
        self.scale = nn.Parameter(torch.ones(1))  # held by a non-leaf module
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        x = self.act(self.bn(self.dw(self.stem(x))))
        x = self.act(self.pw(self.grouped(x))) * self.scale
        return self.fc(x.mean((2, 3)))


def test_layers_kinds_and_counts():
    model = Block()
    p = profile(model, (2, 3, 16, 16))
    assert [x.kind for x in p.layers] == ["standard", "depthwise", "norm", "activation",
                                          "grouped", "pointwise", "activation", "fc", "other"]
    assert [x.name for x in p.layers][:8] == ["stem", "dw", "bn", "act", "grouped", "pw", "act#2",
                                              "fc"]
    by = {x.name: x for x in p.layers}
    assert by["stem"].cost.macs == 2 * 8 * 8 * 8 * 27
    assert by["dw"].cost.macs == 2 * 8 * 8 * 16 * 9
    assert by["grouped"].cost.macs == 2 * 8 * 8 * 16 * 4 * 9
    assert by["pw"].cost.macs == 2 * 8 * 8 * 4 * 16
    assert by["fc"].cost.macs == 2 * 40
    assert by["dw"].out_shape == (2, 16, 8, 8)
    assert p.params == sum(q.numel() for q in model.parameters())
    assert p.layers[-1].cost.params == 1  # the non-leaf parameter
    rows = {r.kind: r for r in p.by_type()}
    assert rows["depthwise"].layers == 1 and rows["activation"].layers == 2
    assert sum(r.macs_share for r in rows.values()) == pytest.approx(1)
    assert sum(r.params_share for r in rows.values()) == pytest.approx(1)
    assert rows["activation"].params == 0 and rows["activation"].macs == 0


def test_shared_module_counted_once():
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    model = nn.Sequential(conv, conv)
    p = profile(model, (1, 4, 5, 5))
    assert len(p.layers) == 2 and p.params == 40
    assert p.layers[0].cost.macs == p.layers[1].cost.macs == 25 * 4 * 9


def test_classify_other_layers():
    assert classify(nn.Conv3d(1, 2, (8, 1, 1), stride=(2, 1, 1))) == "channelwise"
    assert classify(nn.Conv1d(4, 4, 3, groups=4)) == "depthwise"
    assert classify(nn.Conv2d(4, 8, 1, groups=2)) == "grouped"
    assert classify(nn.Conv2d(1, 8, 3)) == "standard"
    assert classify(nn.Linear(4, 4), torch.zeros(1, 7, 7, 4)) == "pointwise"  # ConvNeXt-style
    assert classify(nn.Linear(4, 4), torch.zeros(1, 4)) == "fc"
    assert classify(nn.LayerNorm(4)) == "norm"
    assert classify(nn.Hardswish()) == "activation"
    assert classify(nn.AdaptiveAvgPool2d(1)) == "pool"


def test_conv3d_channelwise_macs():
    # ChannelNets' PyTorch form: Conv3d(1, g, (dc,1,1), stride (g,1,1)) on x.unsqueeze(1)
    conv = nn.Conv3d(1, 2, (8, 1, 1), stride=(2, 1, 1), padding=(3, 0, 0), bias=False)
    p = profile(conv, torch.randn(1, 1, 64, 7, 7))
    (layer,) = p.layers
    assert layer.kind == "channelwise" and layer.cost.params == 16
    assert layer.cost.macs == 2 * 32 * 49 * 8


def test_timed_profile_and_convert():
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8),
                          nn.ReLU(inplace=True), nn.Conv2d(8, 16, 1)).eval()
    x = torch.randn(2, 8, 12, 12)
    p = profile(model, x, time=True, min_run_time=0.002)
    assert all(layer.fwd_s > 0 for layer in p.layers)
    # the first layer gets the model's input: its backward is weight-gradient only, still timed
    assert all(layer.bwd_s is not None and layer.bwd_s > 0 for layer in p.layers)
    assert p.model_fwd_s > 0 and p.model_train_s > 0
    rows = p.by_type()
    assert sum(r.fwd_share for r in rows) == pytest.approx(1)
    # the in-place ReLU was restored and the model still computes the same thing
    assert model[2].inplace
    converted = torch.nn.Sequential(*[m for m in model])
    dwconv.convert(converted)
    q = profile(converted, x, time=True, backward=False, min_run_time=0.002)
    assert q.layers[0].module_type == "DepthwiseConv2d" and q.layers[0].kind == "depthwise"
    assert q.layers[0].bwd_s is None and q.model_train_s is None


def test_roofline_placement():
    roof = Roofline("cpu", "float32", peak_gflops=100.0,
                    bandwidth=[(32 << 10, 200.0), (1 << 20, 50.0), (256 << 20, 10.0)], threads=1)
    assert roof.ridge == 10.0
    assert roof.attainable_gflops(2.0) == 20.0  # DRAM
    assert roof.attainable_gflops(2.0, 1 << 10) == 100.0  # capped by the peak
    assert roof.attainable_gflops(2.0, 100 << 10) == 100.0
    assert roof.attainable_gflops(0.5, 100 << 10) == 25.0
    assert roof.attainable_gflops(0.5, 1 << 30) == 5.0
    pl = place_cost("dw", "depthwise", flops=2_000_000, min_bytes=8_000_000, seconds=1e-3,
                    roof=roof)
    assert pl.intensity == 0.25 and pl.bound == "memory"
    assert pl.achieved_gflops == pytest.approx(2.0) and pl.achieved_gbs == pytest.approx(8.0)
    assert pl.attainable_gflops == pytest.approx(2.5) and pl.efficiency == pytest.approx(0.8)
    p = profile(nn.Conv2d(4, 4, 3, groups=4), (1, 4, 8, 8))
    assert place(p, roof) == []  # untimed layers are not placed
    p.layers[0].fwd_s = 1e-6
    (one,) = place(p, roof)
    assert one.kind == "depthwise" and one.intensity == p.layers[0].cost.intensity


def test_importing_the_analysis_modules_prints_no_cuda_runtime_warning():
    """torch.utils.cpp_extension warns "No CUDA runtime is found" on import where a CUDA toolkit
    exists without a GPU (this machine); every analysis module imports it through
    torch.utils.benchmark, and the package drops exactly that message whichever module loads first."""
    import subprocess
    import sys
    for module in ("profile", "roofline", "machine", "explain"):
        r = subprocess.run([sys.executable, "-c", f"import dwconv.analysis.{module}"],
                           capture_output=True, text=True, check=True)
        assert "No CUDA runtime" not in r.stderr, (module, r.stderr)
