"""A tiny four-convolution embedder whose one outlier channel makes a layer hard to quantize,
shared by the INT8 sensitivity and QAT search tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

SIZE = (64, 32)
OUTLIER = 300.0


class Tiny(nn.Module):
    """Four convolutions and a linear embedding; ``c2``'s channel 0 carries an outlier."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)      # 32 x 16
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)     # 16 x 8
        self.c3 = nn.Conv2d(16, 24, 3, stride=2, padding=1)    # 8 x 4
        self.c4 = nn.Conv2d(24, 32, 3, stride=1, padding=1)    # 8 x 4
        self.fc = nn.Linear(32, 16, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in (self.c1, self.c2, self.c3, self.c4):
            x = torch.relu(conv(x))
        return self.fc(x.mean(dim=(2, 3)))

    def add_outlier(self) -> None:
        """Scale c2's output channel 0 by OUTLIER and c3's input channel 0 by 1/OUTLIER: the float
        function is unchanged (ReLU is positively homogeneous), but one channel of the activation
        between them is OUTLIER times larger than the rest, which a per-tensor scale cannot hold."""
        with torch.no_grad():
            self.c2.weight[0] *= OUTLIER
            self.c2.bias[0] *= OUTLIER
            self.c3.weight[:, 0] /= OUTLIER


def smooth_images(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = rng.random((count, 3, SIZE[0] // 8, SIZE[1] // 8)).astype(np.float32)
    up = torch.nn.functional.interpolate(torch.from_numpy(low), size=SIZE, mode="bilinear", align_corners=False)
    return ((up.numpy() - 0.45) / 0.25).astype(np.float32)


def conv_nodes(path: Path):
    """ONNX Conv/Gemm node name by the layer it came from (output channels identify it)."""
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    by_channels = {8: "c1", 16: "c2", 24: "c3", 32: "c4"}
    names = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            names[by_channels[inits[node.input[1]].dims[0]]] = node.name
        elif node.op_type in ("Gemm", "MatMul"):
            names["fc"] = node.name
    return names
