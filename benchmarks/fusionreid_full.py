"""Measure the full-size FusionReID once: complexity, ONNX export, ONNX Runtime parity and latency.

    python benchmarks/fusionreid_full.py --out /tmp/fusionreid [--iters 3]

Untrained weights (751 ids, 6 cameras, 256x128): the numbers describe the architecture, not a
trained model. Writes ``fusionreid_fp32.onnx`` (about 670 MB) and ``result.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from edge_reid.bench.complexity import complexity
from edge_reid.bench.latency import measure_latency
from edge_reid.deploy.compat import check_tensorrt_compat
from edge_reid.deploy.onnx_export import OnnxExporter
from edge_reid.models import build_model
from edge_reid.runtime import load_embedder
from edge_reid.utils.atomic import atomic_write_json


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--iters", type=int, default=3, help="timed batch-1 calls per backend")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    res = {}
    t = time.perf_counter()
    model = build_model("fusionreid", num_classes=751).eval()
    rep = complexity(model, (256, 128))
    res.update(params=rep.params, gmacs=rep.gmacs, build_and_count_s=time.perf_counter() - t)
    print(rep.table(), flush=True)
    t = time.perf_counter()
    onnx_path = OnnxExporter(simplify=False).export(model, model.meta("untrained"), out / "fusionreid_fp32.onnx").path
    res.update(export_s=time.perf_counter() - t, tensorrt_parser_ok=check_tensorrt_compat(onnx_path).ok)
    embedder = load_embedder(onnx_path, "onnxruntime", threads=args.threads)
    x = np.random.default_rng(0).random((2, 3, 256, 128), dtype=np.float32)
    cams = np.array([1, 4])
    with torch.inference_mode():
        ref = model(torch.from_numpy(x), torch.from_numpy(cams)).numpy()
    res["max_abs_diff_batch2"] = float(np.abs(ref - embedder.embed(x, camera_ids=cams)).max())
    res["max_abs_diff_batch1"] = float(np.abs(ref[:1] - embedder.embed(x[:1], camera_ids=1)).max())

    def eager(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch), torch.zeros(len(batch), dtype=torch.long)).numpy()

    res["onnxruntime_fp32_batch1"] = measure_latency(lambda b: embedder.embed(b, camera_ids=0), x[:1], args.iters, 1)
    res["torch_eager_fp32_batch1"] = measure_latency(eager, x[:1], args.iters, 1)
    atomic_write_json(out / "result.json", res)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
