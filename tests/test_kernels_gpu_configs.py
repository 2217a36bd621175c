"""Every GPU autotune configuration of every kernel, computed under the interpreter.

The interpreted kernel tests run the single small CPU configuration; on a GPU the autotuner may
pick any entry of the kernels' GPU lists (other tile sizes, so other edge masks and loop trip
counts). Here each GPU configuration is forced (``kernels.launches.fixed_config``) and the same
error measurements as the per-kernel tests are taken, with their float32 tolerances:
masked attention relative error <= 1e-4 (Y, dX, dM), weighted sum + GAP <= 1e-5 absolute,
sampled projection <= 1e-4 absolute.
"""

import json
import sys

import pytest

from interpreted import run_interpreted
from test_kernels_masked_attention import FAST_CASES as ATTENTION_CASES
from test_kernels_masked_attention import _errors as attention_errors
from test_kernels_projection import CASES as PROJECTION_CASES
from test_kernels_projection import _errors as projection_errors
from test_kernels_scale_fusion import WSUM_CASES, _wsum_errors


def _families():
    """(family, kernel modules, their GPU configs, cases, error function, error keys, tolerance)."""
    from kernels.masked_attention import triton_backward, triton_forward, triton_tiled
    from kernels.masked_attention.triton_common import table_configs
    from kernels.scale_fusion import triton_fusion, triton_projection

    # the one-tile kernels share their tile names (BLOCK_M, BLOCK_N): each tile of any of their tables
    # is forced on the forward and every backward kernel at once (warps / stages do not change the
    # interpreter's arithmetic: one run per distinct tile), on a symmetric-backward case (C = 24)
    # and a split-backward one (C = 200)
    tiles = {(c["BLOCK_M"], c["BLOCK_N"]): c for c in table_configs(
        {0: [*triton_forward.FWD_CONFIGS, *triton_backward.BWD_CONFIGS]})}
    one_tile_cases = [c for c in ATTENTION_CASES if c[3] <= 256][:2]
    return [
        ("attention", [triton_forward, triton_backward], list(tiles.values()), one_tile_cases,
         attention_errors, ("y", "dx", "dm"), 1e-4),
        ("attention_tiled", [triton_tiled], table_configs({0: triton_tiled._GPU_CONFIGS + triton_tiled._DKV_CONFIGS}),
         [c for c in ATTENTION_CASES if c[3] > 256],
         attention_errors, ("y", "dx", "dm"), 1e-4),
        ("weighted_sum", [triton_fusion], triton_fusion._GPU, WSUM_CASES, _wsum_errors, ("fwd", "bwd"), 1e-5),
        ("projection", [triton_projection], triton_projection._GPU, PROJECTION_CASES, projection_errors,
         ("fwd", "bwd", "direct"), 1e-4),
    ]


def _measure(family: str) -> dict:
    from kernels.launches import fixed_config

    out = {}
    for name, modules, configs, cases, errors, keys, _ in _families():
        if name != family:
            continue
        for i, config in enumerate(configs):
            with fixed_config(modules, config):
                for case in cases:
                    r = errors(case)
                    out[f"{i}/{case[0]}"] = {"triton": r["triton"], **{k: r[k] for k in keys}}
    return out


@pytest.mark.parametrize("family", ["attention", "attention_tiled", "weighted_sum", "projection"])
def test_every_gpu_config_is_exact_under_the_interpreter(family: str) -> None:
    from kernels._triton_utils import HAS_TRITON

    if not HAS_TRITON:
        pytest.skip("Triton is not installed")
    _, _, configs, cases, _, keys, tol = next(f for f in _families() if f[0] == family)
    res = run_interpreted(__file__, family, timeout=1500)
    assert len(res) == len(configs) * len(cases) > 0
    for key, r in res.items():
        assert r["triton"], key
        assert all(0.0 <= r[k] <= tol for k in keys), (key, r)


if __name__ == "__main__":  # run by the test above in a TRITON_INTERPRET=1 subprocess
    print(json.dumps(_measure(sys.argv[1])))
