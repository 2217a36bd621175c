"""Latency table of the supernet's candidate blocks, measured with torch on this machine.

Each candidate of each layer is timed alone, at each of the layer's output widths (input at the
widest width of the previous layer), at the feature-map size it sees for the given input size
(batch 1, eval mode, no grad): the fastest of ``repeats`` timed runs after ``warmup`` runs
(the minimum, not the median: on a shared machine the slow runs measure the neighbours).
The table is cached as JSON, keyed by space, input size, device and thread count, so a search
re-uses it; the FBNet-style latency cost sums the chosen (or expected) candidates' entries,
``layers[i][candidate][str(width)]`` in microseconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch

from edge_reid.errors import InvalidInputError
from edge_reid.models.dnas.space import SearchSpace, candidate_key, make_block
from edge_reid.utils.atomic import atomic_write_json
from edge_reid.utils.paths import cache_dir

#: Version of the table layout (2: one entry per candidate and output width).
TABLE_FORMAT = 2


def time_module(module: torch.nn.Module, x: torch.Tensor, repeats: int = 20, warmup: int = 3) -> float:
    """Fastest wall time of ``module(x)`` over ``repeats`` runs, in microseconds (eval mode, no grad)."""
    module.eval()
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            if x.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            module(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e6)
    return float(min(times))


def default_table_path(space: SearchSpace, input_size: Sequence[int], device: str, threads: int) -> Path:
    """Where the table of this space/size/device/thread count is cached."""
    h, w = (int(v) for v in input_size)
    return cache_dir() / "dnas" / f"latency-{space.name}-{h}x{w}-{device}-t{threads}.json"


def measure_latency_table(
    space: SearchSpace,
    input_size: Sequence[int] = (256, 128),
    device: Union[str, torch.device] = "cpu",
    repeats: int = 20,
    warmup: int = 3,
    path: Optional[Union[str, Path]] = None,
    refresh: bool = False,
    threads: int = 1,
) -> Dict[str, Any]:
    """Per-layer, per-candidate latency (microseconds) of ``space``; read from / written to a JSON cache.

    CPU timing uses ``threads`` intra-op threads (default 1: the edge-device case, and stable on a
    machine shared with other jobs); the previous thread count is restored afterwards.
    """
    device = torch.device(device)
    h, w = (int(v) for v in input_size)
    if h < 32 or w < 32 // 2 or h % 32 or w % 16:
        raise InvalidInputError(f"The input size must be multiples of 32 x 16 (at least 32 x 16), got {h} x {w}.")
    threads = int(threads) if device.type == "cpu" else torch.get_num_threads()
    path = Path(path) if path is not None else default_table_path(space, (h, w), device.type, threads)
    key = {"format": TABLE_FORMAT, "space": space.name, "input_size": [h, w], "device": device.type, "threads": threads}
    if path.is_file() and not refresh:
        try:
            cached = json.loads(path.read_text())
        except json.JSONDecodeError:
            cached = {}
        if all(cached.get(k) == v for k, v in key.items()) and len(cached.get("layers", [])) == len(space.layers()):
            return cached
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        layers = _measure(space, (h, w), device, repeats, warmup)
    finally:
        torch.set_num_threads(previous)
    table = dict(key, unit="us", repeats=repeats, layers=layers)
    atomic_write_json(path, table)
    return table


def _measure(space: SearchSpace, input_size: Sequence[int], device: torch.device, repeats: int, warmup: int) -> list:
    layers = []
    size = (input_size[0] // 2, input_size[1] // 2)  # after the stride-2 stem
    for spec in space.layers():
        x = torch.randn(1, spec["cin"], *size, device=device)
        row: Dict[str, Dict[str, float]] = {}
        for choice in spec["candidates"]:
            row[candidate_key(choice)] = {}
            for width in spec["widths"]:
                if choice == "skip":  # the identity: nothing to run
                    row[candidate_key(choice)][str(width)] = 0.0
                    continue
                block = make_block(spec["cin"], width, spec["stride"], choice, residual=False).to(device)
                row[candidate_key(choice)][str(width)] = round(time_module(block, x, repeats, warmup), 2)
        layers.append(row)
        size = ((size[0] + spec["stride"] - 1) // spec["stride"], (size[1] + spec["stride"] - 1) // spec["stride"])
    return layers
