"""Per-layer profile of a model: every leaf layer's type, shapes, cost (see :mod:`.cost` for what
is counted) and, optionally, its forward and backward time on this machine, grouped by type.

    >>> p = profile(torchvision.models.mobilenet_v2(), (1, 3, 224, 224))
    >>> p.macs, p.params
    (300774272, 3504872)
    >>> for row in p.by_type(): print(row.kind, row.macs_share)

Layers are found with forward hooks on the leaf modules (modules without children); a module
called twice gives two rows (its parameters counted once). Parameters held directly by a non-leaf
module (ConvNeXt's layer scale, for one) go into one extra row, so the total equals
``model.parameters()``. Work done in ``forward`` code outside modules (residual adds,
``F.adaptive_avg_pool2d``, reshapes) has no row; its time is the gap between the whole model's time
and the layers' sum (:attr:`Profile.unattributed_fwd_s`).

Timing runs each layer alone, right where the model calls it, on a copy of the input it got
(``torch.utils.benchmark.Timer.blocked_autorange``, median): forward under ``no_grad``, backward as
``autograd.grad`` of the output with respect to its input (unless the input is the model's own
input, which needs no gradient in training) and its parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.benchmark import Timer

from . import cost as _cost
from .cost import Cost

__all__ = ["LayerProfile", "TypeSummary", "Profile", "profile", "classify", "time_model"]

CONV_KINDS = ("standard", "grouped", "depthwise", "pointwise", "channelwise")

_NORM = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


@dataclass
class LayerProfile:
    """One call of one leaf layer. Times in seconds (None when not measured)."""

    name: str
    module_type: str
    kind: str
    cost: Cost
    fwd_s: float | None = None
    bwd_s: float | None = None

    @property
    def in_shape(self):
        return self.cost.in_shape

    @property
    def out_shape(self):
        return self.cost.out_shape


@dataclass
class TypeSummary:
    """The layers of one kind together, with their shares of the model's totals (0..1)."""

    kind: str
    layers: int
    params: int
    macs: int
    min_bytes: int
    fwd_s: float | None
    bwd_s: float | None
    params_share: float
    macs_share: float
    fwd_share: float | None
    bwd_share: float | None

    @property
    def intensity(self) -> float:
        return 2 * self.macs / self.min_bytes if self.min_bytes else 0.0

    @property
    def train_s(self) -> float | None:
        return None if self.fwd_s is None or self.bwd_s is None else self.fwd_s + self.bwd_s


@dataclass
class Profile:
    """The layers of one model run, plus the whole model's times when measured."""

    layers: list[LayerProfile]
    model_fwd_s: float | None = None
    model_train_s: float | None = None
    info: dict = field(default_factory=dict)

    @property
    def params(self) -> int:
        return sum(layer.cost.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.cost.macs for layer in self.layers)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def timed(self) -> bool:
        return any(layer.fwd_s is not None for layer in self.layers)

    def _sum(self, attr) -> float | None:
        vals = [getattr(layer, attr) for layer in self.layers if getattr(layer, attr) is not None]
        return sum(vals) if vals else None

    @property
    def fwd_s(self) -> float | None:
        """Sum of the layers' forward times."""
        return self._sum("fwd_s")

    @property
    def bwd_s(self) -> float | None:
        """Sum of the layers' backward times."""
        return self._sum("bwd_s")

    @property
    def unattributed_fwd_s(self) -> float | None:
        """Whole-model forward time minus the layers' sum: code outside modules, dispatch gaps."""
        if self.model_fwd_s is None or self.fwd_s is None:
            return None
        return self.model_fwd_s - self.fwd_s

    def by_type(self) -> list[TypeSummary]:
        """One row per kind, most MACs first (ties: most parameters)."""
        kinds: dict[str, list[LayerProfile]] = {}
        for layer in self.layers:
            kinds.setdefault(layer.kind, []).append(layer)
        total_p, total_m = self.params or 1, self.macs or 1
        total_f, total_b = self.fwd_s, self.bwd_s
        rows = []
        for kind, layers in kinds.items():
            fwd = [x.fwd_s for x in layers if x.fwd_s is not None]
            bwd = [x.bwd_s for x in layers if x.bwd_s is not None]
            f = sum(fwd) if fwd else None
            b = sum(bwd) if bwd else None
            params = sum(x.cost.params for x in layers)
            macs = sum(x.cost.macs for x in layers)
            rows.append(TypeSummary(
                kind, len(layers), params, macs, sum(x.cost.min_bytes for x in layers), f, b,
                params / total_p, macs / total_m,
                f / total_f if f is not None and total_f else None,
                b / total_b if b is not None and total_b else None))
        rows.sort(key=lambda r: (-r.macs, -r.params, r.kind))
        return rows

    def summary(self, kind: str) -> TypeSummary | None:
        return next((r for r in self.by_type() if r.kind == kind), None)


def classify(module: nn.Module, input: torch.Tensor | None = None) -> str:
    """The layer kind: a conv is 'standard', 'pointwise' (all kernel sizes 1, groups 1), 'depthwise'
    (groups == in_channels > 1, out_channels a multiple), 'grouped' or 'channelwise' (a Conv3d with
    one input channel and a (dc, 1, 1) kernel, as ChannelNets' PyTorch ports write it); a Linear is
    'pointwise' on a 4-D (channels-last image) input and 'fc' otherwise; then 'norm', 'activation',
    'pool' or 'other'."""
    if isinstance(module, nn.modules.conv._ConvNd):
        k = tuple(module.kernel_size)
        if isinstance(module, nn.Conv3d) and module.in_channels == 1 and k[1:] == (1, 1) \
                and k[0] > 1:
            return "channelwise"
        if module.groups == 1:
            return "pointwise" if math.prod(k) == 1 else "standard"
        return _cost.classify_conv2d(module.in_channels, module.out_channels, k, module.groups)
    if isinstance(module, nn.Linear):
        return "pointwise" if input is not None and input.dim() == 4 else "fc"
    if isinstance(module, _NORM):
        return "norm"
    mod = type(module).__module__
    if mod == "torch.nn.modules.activation":
        return "activation"
    if mod == "torch.nn.modules.pooling":
        return "pool"
    return "other"


def _own_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def _layer_cost(module: nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor) -> Cost:
    dtype = x.dtype if x.is_floating_point() else torch.float32
    if isinstance(module, nn.Conv2d) and x.dim() == 4:
        c = _cost.conv2d(x.shape[0], module.in_channels, x.shape[2], x.shape[3],
                         module.out_channels, module.kernel_size, module.stride, module.padding,
                         module.dilation, module.groups, module.bias is not None, dtype, kind)
        if tuple(c.out_shape) != tuple(y.shape):  # the formula and PyTorch must agree
            raise AssertionError(f"cost model gives output {c.out_shape} for {module}, PyTorch "
                                 f"{tuple(y.shape)}")
        return c
    if isinstance(module, nn.modules.conv._ConvNd):
        macs = y.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
        params = _own_params(module)
        return Cost(kind, params, macs, x.numel(), params, y.numel(), x.element_size(),
                    tuple(x.shape), tuple(y.shape))
    if isinstance(module, nn.Linear):
        n = x.numel() // module.in_features
        c = _cost.linear(n, module.in_features, module.out_features, module.bias is not None, dtype)
        c.kind, c.in_shape, c.out_shape = kind, tuple(x.shape), tuple(y.shape)
        return c
    return _cost.elementwise(tuple(x.shape), tuple(y.shape), _own_params(module), kind, dtype)


def _median(fn, min_run_time: float) -> float:
    return Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median


def _time_layer(module, args, kwargs, input_grad: bool, min_run_time: float,
                backward: bool) -> tuple[float, float | None]:
    inplace = getattr(module, "inplace", False)
    if inplace:
        module.inplace = False  # an in-place op on a leaf that needs grad cannot run
    try:
        with torch.no_grad():
            fwd = _median(lambda: module(*args, **kwargs), min_run_time)
        if not backward:
            return fwd, None
        inputs = [a.detach().requires_grad_() if input_grad and isinstance(a, torch.Tensor) and
                  a.is_floating_point() else a for a in args]
        wrt = [a for a in inputs if isinstance(a, torch.Tensor) and a.requires_grad]
        wrt += [p for p in module.parameters() if p.requires_grad]
        if not wrt:
            return fwd, None
        with torch.enable_grad():
            out = module(*inputs, **kwargs)
            if not isinstance(out, torch.Tensor) or not out.requires_grad:
                return fwd, None
            grad = torch.randn_like(out)
            bwd = _median(lambda: torch.autograd.grad(out, wrt, grad, retain_graph=True),
                          min_run_time)
        return fwd, bwd
    finally:
        if inplace:
            module.inplace = True


def profile(model: nn.Module, input: torch.Tensor | tuple[int, ...], *, time: bool = False,
            backward: bool = True, min_run_time: float = 0.05, model_time: bool = True) -> Profile:
    """Profiles `model` on `input` (a tensor, or a shape for ``torch.randn`` on the model's device
    and dtype).

    Args:
        time: measure each layer's forward (and backward) time. Default: False
        backward: with `time`, measure backward too. Default: True
        min_run_time: seconds of repeated runs per measurement. Default: 0.05
        model_time: with `time`, also time the whole model (forward; forward + backward).
            Default: True
    """
    if not isinstance(input, torch.Tensor):
        p = next(model.parameters(), None)
        input = torch.randn(*input, device=p.device if p is not None else "cpu",
                            dtype=p.dtype if p is not None and p.is_floating_point() else None)
    layers: list[LayerProfile] = []
    seen: set[int] = set()  # parameters already counted
    counts: dict[str, int] = {}
    state = {"active": True}
    pending: dict[int, list] = {}

    def pre_hook(module, args, kwargs):
        if not state["active"]:
            return
        # copy now: in-place layers after this one change the tensors it was given; a layer fed
        # the model's own input needs no input gradient in training
        pending.setdefault(id(module), []).append(
            ([a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args], kwargs,
             not any(a is input for a in args)))

    def post_hook(name):
        def hook(module, args, kwargs, output):
            if not state["active"]:
                return
            saved_args, saved_kwargs, input_grad = pending[id(module)].pop()
            x = next((a for a in saved_args if isinstance(a, torch.Tensor)), None)
            y = output if isinstance(output, torch.Tensor) else next(
                (o for o in (output if isinstance(output, (tuple, list)) else ())
                 if isinstance(o, torch.Tensor)), None)
            if x is None or y is None:
                return
            kind = classify(module, x)
            c = _layer_cost(module, kind, x, y)
            new = [p for p in module.parameters(recurse=False) if id(p) not in seen]
            if len(new) != len(list(module.parameters(recurse=False))):  # shared or called again
                c.params = sum(p.numel() for p in new)
            seen.update(id(p) for p in new)
            counts[name] = counts.get(name, 0) + 1
            label = name if counts[name] == 1 else f"{name}#{counts[name]}"
            record = LayerProfile(label, type(module).__name__, kind, c)
            if time:
                state["active"] = False
                try:
                    record.fwd_s, record.bwd_s = _time_layer(
                        module, saved_args, saved_kwargs, input_grad, min_run_time, backward)
                finally:
                    state["active"] = True
            layers.append(record)
        return hook

    handles = []
    for name, module in model.named_modules():
        if next(module.children(), None) is None:  # a leaf (the model itself when it has none)
            handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
            handles.append(module.register_forward_hook(post_hook(name or type(module).__name__),
                                                        with_kwargs=True))
    try:
        with torch.no_grad():
            model(input)
    finally:
        for h in handles:
            h.remove()
    outside = sum(p.numel() for p in model.parameters() if id(p) not in seen)
    if outside:
        layers.append(LayerProfile("(parameters outside leaf layers)", "-", "other",
                                   Cost("other", outside, 0, 0, outside, 0,
                                        input.element_size() if input.is_floating_point() else 4)))
    result = Profile(layers, info={"input_shape": tuple(input.shape), "dtype": str(input.dtype),
                                   "device": str(input.device)})
    if time and model_time:
        result.model_fwd_s, result.model_train_s = time_model(model, input, min_run_time, backward)
    return result


def time_model(model: nn.Module, input: torch.Tensor, min_run_time: float = 0.05,
               backward: bool = True) -> tuple[float, float | None]:
    """The whole model's forward time (under no_grad) and forward + backward time (gradients of
    the parameters for a random output gradient; None without `backward` or parameters), median
    seconds."""
    with torch.no_grad():
        fwd = _median(lambda: model(input), min_run_time)
    params = [p for p in model.parameters() if p.requires_grad]
    if not backward or not params:
        return fwd, None
    grad = torch.randn_like(model(input))
    return fwd, _median(lambda: torch.autograd.grad(model(input), params, grad), min_run_time)
