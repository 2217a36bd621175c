"""The pieces of QAT that mirror the Q/DQ graph: PyTorch fake quantization of a layer, BatchNorm
folding, matching PyTorch modules to ONNX nodes, and the inputs-only Q/DQ placement.

Fake quantization uses PyTorch's own operators with ONNX Runtime's symmetric rules: weights per
output channel, scale max|w| / 127 in -127..127 (``torch.fake_quantize_per_channel_affine``,
straight-through gradient); activations per tensor, zero point 0, saturating at -128..127, with a
learned scale (``torch._fake_quantize_learnable_per_tensor_affine``, the LSQ operator behind
``torch.ao.quantization._LearnableFakeQuantize``: straight-through for the input, the LSQ gradient
for the scale). The scale is kept as its logarithm (always positive; an optimizer step moves it by
a ratio, whatever its size) and starts at the calibrated post-training scale.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np


def _fq_tensor(x: Any, scale: Any) -> Any:
    """Per-tensor symmetric S8 fake quantization with a learnable ``scale`` (1-element tensor)."""
    import torch

    zero = torch.zeros(1, dtype=torch.float32)
    grad_factor = 1.0 / float(x.numel() * 127) ** 0.5  # LSQ's gradient scale (as torch.ao's learnable FakeQuantize)
    return torch._fake_quantize_learnable_per_tensor_affine(x, scale, zero, -128, 127, grad_factor)


def _fq_weight(w: Any, axis: int = 0) -> Any:
    import torch

    dims = [d for d in range(w.dim()) if d != axis]
    amax = w.detach().abs().amax(dim=dims).float() if dims else w.detach().abs()
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    zero = torch.zeros(scale.shape, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, axis, -127, 127)


def fake_quant_layer_class():
    import torch
    from torch import nn

    class FakeQuantLayer(nn.Module):
        """A Conv2d / Linear with fake-quantized weights and input. ``log_scale``: the log of the input's
        learned scale, one Parameter per graph tensor (layers reading the same tensor share it, as they
        share its one QuantizeLinear in the graph); None leaves the input in float."""

        def __init__(self, layer: nn.Module, log_scale: Optional[nn.Parameter]) -> None:
            super().__init__()
            self.layer, self.log_scale = layer, log_scale

        @property
        def in_scale(self) -> Optional[float]:
            """The input's quantization step as the exported graph stores it (float32)."""
            return None if self.log_scale is None else float(self.scale().detach().float()[0])

        def scale(self) -> torch.Tensor:
            return self.log_scale.exp()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.log_scale is not None:
                x = _fq_tensor(x, self.scale())
            w = _fq_weight(self.layer.weight)
            if isinstance(self.layer, nn.Conv2d):
                y = self.layer._conv_forward(x, w, self.layer.bias)
            else:
                y = torch.nn.functional.linear(x, w, self.layer.bias)
            return y

    return FakeQuantLayer


def log_scale_parameter(scale: float) -> Any:
    """A learnable log-scale starting at ``scale`` (the calibrated post-training step)."""
    import torch

    return torch.nn.Parameter(torch.tensor([float(np.log(scale))], dtype=torch.float32))


def set_module(model: Any, name: str, module: Any) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def fold_batchnorm(model: Any, example: Any, extras: Optional[Dict[str, Any]] = None) -> int:
    """Fold every BatchNorm2d fed directly by a Conv2d into it (in place; the BN becomes Identity), as
    the exporter folds it. ``extras``: the model's other inputs (camera_ids, modality) for the trace."""
    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    produced: Dict[int, Tuple[Any, str]] = {}  # the tensor is kept alive so that its id is not reused
    pairs: Dict[str, str] = {}  # BN name -> the conv that feeds it
    names = {id(m): n for n, m in model.named_modules()}

    def after_conv(mod: Any, inp: Any, out: Any) -> None:
        produced[id(out)] = (out, names[id(mod)])

    def before_bn(mod: Any, inp: Any) -> None:
        hit = produced.get(id(inp[0]))
        if hit is not None and hit[0] is inp[0]:
            pairs.setdefault(names[id(mod)], hit[1])

    hooks = [m.register_forward_hook(after_conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_pre_hook(before_bn) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        model.eval()(example, **(extras or {}))
    for h in hooks:
        h.remove()
    produced.clear()
    # a conv read by two BatchNorms (modality-specific BNs of a shared conv) or by anything besides its
    # BN cannot be folded: each fold is kept only when the model's output stays the same
    feeds = [c for c in pairs.values()]
    with torch.no_grad():
        reference = model(example, **(extras or {}))
    folded = 0
    for bn_name, conv_name in pairs.items():
        if feeds.count(conv_name) > 1:
            continue
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        old = (conv.weight, conv.bias)
        w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                    bn.weight, bn.bias)
        conv.weight, conv.bias = w, b
        set_module(model, bn_name, nn.Identity())
        with torch.no_grad():
            out = model(example, **(extras or {}))
        if torch.allclose(out, reference, rtol=1e-3, atol=1e-4 * float(reference.abs().max()) + 1e-6):
            folded += 1
        else:  # undo
            conv.weight, conv.bias = old
            set_module(model, bn_name, bn)
    return folded


def quantize_inputs_only(model: Any) -> Any:
    """Q/DQ only on the activation inputs of quantized Conv/Gemm/MatMul (TensorRT's recommended
    placement, and what the fake-quantized PyTorch layers compute): every other consumer of a
    quantized activation reads the float tensor again, and Q/DQ pairs left unread are removed."""
    nodes = list(model.graph.node)
    q_of = {n.output[0]: n for n in nodes if n.op_type == "QuantizeLinear"}
    dq_act = {n.output[0]: q_of[n.input[0]].input[0] for n in nodes
              if n.op_type == "DequantizeLinear" and n.input[0] in q_of}  # DQ output -> float tensor
    weight_dq = {n.output[0] for n in nodes if n.op_type == "DequantizeLinear" and n.input[0] not in q_of}
    for n in nodes:
        quantized_op = n.op_type in ("Conv", "Gemm", "MatMul") and any(i in weight_dq for i in n.input[1:2])
        for k, name in enumerate(n.input):
            if name in dq_act and not (quantized_op and k == 0):
                n.input[k] = dq_act[name]
    outputs = {o.name for o in model.graph.output}
    for out in outputs & set(dq_act):  # producer -> Q -> DQ -> graph output: the producer writes it again
        inner = dq_act[out]
        for n in [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                  and (n.input[0] == inner or n.output[0] == out)]:
            model.graph.node.remove(n)
        for n in model.graph.node:
            n.output[:] = [out if o == inner else o for o in n.output]
            n.input[:] = [out if i == inner else i for i in n.input]
    while True:
        read = {i for n in model.graph.node for i in n.input} | outputs
        dead = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and n.output[0] not in read]
        if not dead:
            break
        for n in dead:
            model.graph.node.remove(n)
    return model


def activation_scales(trt_graph: Any) -> Dict[str, float]:
    """tensor name -> scale of every activation QuantizeLinear in a Q/DQ graph."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in trt_graph.graph.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in trt_graph.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits and inits[n.input[1]].size == 1}


def match_modules(model: Any, graph: Any) -> Tuple[Dict[str, str], List[str]]:
    """(ONNX node name -> module name) for Conv/Gemm/MatMul whose weight equals a module's; unmatched nodes."""
    from onnx import numpy_helper
    from torch import nn

    inits = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    modules = [(n, m.weight.detach().numpy()) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    matched, unmatched, used = {}, [], set()
    for node in graph.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        w = inits.get(node.input[1]) if len(node.input) > 1 else None
        hit = None
        if w is not None:
            same = [name for name, mw in modules
                    if name not in used and (mw.shape == w.shape and np.array_equal(mw, w)
                                             or mw.ndim == 2 and mw.T.shape == w.shape and np.array_equal(mw.T, w))]
            # equal weights (e.g. all zero: a non-local block's output conv folded with a zero BN scale) are
            # told apart by the exporter's scope path, '/body/body.2/body.2.4/w/w.0/Conv' -> 'body.2.4.w.0'
            scope = ".".join(c.rsplit(".", 1)[-1] for c in node.name.strip("/").split("/")[:-1])
            hit = next((n for n in same if scope == n or scope.endswith("." + n) or n.endswith("." + scope)),
                       same[0] if same else None)
        if hit is None:
            unmatched.append(node.name)
        else:
            matched[node.name], _ = hit, used.add(hit)
    return matched, unmatched
