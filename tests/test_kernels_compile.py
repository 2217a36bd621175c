"""Ahead-of-time compilation of the Triton kernels for GPU targets, on this GPU-less machine.

What the interpreter cannot see (tile shapes the GPU compiler rejects, loop-carried type changes,
shared memory over the device limit) shows up here: every kernel is compiled down to a cubin for
sm_90 (H100/H200) and sm_87 (Jetson Orin) with the launch arguments the real wrappers pass.
"""


import pytest
import torch

from edge_reid.errors import InvalidInputError
from kernels._triton_utils import HAS_TRITON, interpreting
from scripts import load_script

pytestmark = pytest.mark.skipif(not HAS_TRITON or interpreting(),
                                reason="needs Triton, outside its interpreter")

FUSION = {"triton_fusion._wsum_fwd", "triton_fusion._wsum_bwd", "triton_projection._proj_fwd"}
ONE_TILE_SPLIT = {"triton_forward._fwd", "triton_backward._delta", "triton_backward._bwd_dq", "triton_backward._bwd_dkv"}
TILED = {"triton_tiled._mca_fwd", "triton_tiled._mca_bwd_dq", "triton_tiled._mca_bwd_dkv"}
#: Launched kernels per sample shape set: "spec" has C = 256 (one tile, split backward), 24 (one
#: tile, symmetric backward) and 2048 (channel-tiled); "odd" has C = 200 (one tile, split backward).
LINEAR = {"triton_linear._la_gram", "triton_linear._la_apply", "triton_linear._la_key_grad"}
KERNELS = {"spec": FUSION | ONE_TILE_SPLIT | TILED | {"triton_backward._bwd_sym"} | LINEAR,
           "odd": FUSION | ONE_TILE_SPLIT | LINEAR}


def test_parse_arch_names_and_numbers() -> None:
    from kernels.compile_check import parse_arch

    assert parse_arch("h100") == parse_arch("sm90") == parse_arch("90") == 90
    assert parse_arch("Orin") == 87 and parse_arch("sm_87") == 87
    with pytest.raises(InvalidInputError, match="unknown GPU architecture"):
        parse_arch("sm12")


def test_recording_captures_every_launch_and_restores_the_kernels() -> None:
    from triton.runtime.autotuner import Autotuner

    from kernels.compile_check import sample_launches
    from kernels.masked_attention import triton_forward

    launches = sample_launches(torch.float16, "odd")
    assert {launch.name for launch in launches} == KERNELS["odd"]
    assert isinstance(triton_forward._fwd, Autotuner)
    fwd = next(launch for launch in launches if launch.name.endswith("._fwd"))
    assert fwd.constexprs == {"HEAD": 256, "EVEN_C": False, "PREC": "tf32"} and fwd.args[0].dtype == torch.float16
    assert fwd.args[0].shape[-1] == 208  # C = 200 padded to aligned rows
    proj = next(launch for launch in launches if launch.name.endswith("_proj_fwd"))
    assert proj.constexprs["TH"] == 1 and proj.constexprs["TW"] == 1  # odd factor 3: one tap per axis


def test_signature_mirrors_the_jit_specialization() -> None:
    from kernels.compile_check import _signature, sample_launches

    fwd = next(launch for launch in sample_launches(torch.float32, "spec") if launch.name.endswith("_mca_fwd"))
    config = fwd.tuner.configs[0]
    sig, consts, attrs = _signature(fwd, config)
    names = list(fwd.tuner.fn.arg_names)
    assert sig["sxc"] == "constexpr" and consts["sxc"] == 1  # unit channel stride: a constant, as the JIT does
    assert sig["N"] == "i32" and attrs[(names.index("N"),)] == [["tt.divisibility", 16]]  # N = 2048
    assert sig["X"] == "*fp32" and consts["IEEE"] is True and consts["BLOCK_M"] == config.kwargs["BLOCK_M"]
    assert sig["scale_log2"] == "fp32" and (names.index("scale_log2"),) not in attrs


@pytest.mark.parametrize("arch,dtype,shapes", [
    (90, torch.bfloat16, "spec"), (87, torch.float16, "odd"),
    # float32's tf32x3 dots take 30-80 s to compile on the shared 2-core CPU
    pytest.param(90, torch.float32, "spec", marks=pytest.mark.slow)], ids=["sm90_bf16_spec", "sm87_fp16_odd", "sm90_fp32_spec"])
def test_every_kernel_compiles_for_the_gpu(arch: int, dtype: torch.dtype, shapes: str) -> None:
    from kernels.compile_check import SHARED_LIMIT, check_kernels

    reports = check_kernels([arch], [dtype], shapes=[shapes], first_config_only=True)
    expected = KERNELS[shapes]
    if dtype == torch.float32:  # C = 256 float32 takes the channel-tiled kernels on a GPU (one_tile)
        expected = expected - {"triton_backward._bwd_dq", "triton_backward._bwd_dkv"}
    assert {r.kernel for r in reports} == expected
    for r in reports:
        assert r.ok, f"{r.kernel}: {r.error}"
        assert 0 <= r.shared_bytes <= SHARED_LIMIT[arch] and r.fits
        assert r.registers is None or 0 < r.registers <= 255


def test_script_rejects_an_unknown_arch_in_one_sentence(capsys) -> None:
    assert load_script("benchmarks/compile_kernels.py").main(["--arch", "sm12"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("compile_kernels.py: error: unknown GPU architecture") and "\n" not in err


def test_interceptions_do_not_nest() -> None:
    from kernels.launches import fixed_config, recording
    from kernels.scale_fusion import triton_fusion

    with recording([triton_fusion]):
        with pytest.raises(RuntimeError, match="already intercepted"):
            with fixed_config([triton_fusion], {"BLOCK_D": 32, "BLOCK_HW": 32}):
                pass



@pytest.mark.slow
def test_attention_bf16_sm90_builds_chain_hgmma_without_spills() -> None:
    """Every configuration the masked-attention kernels may run at the benchmark's channel tiles
    (C = 256, 24, 2048; both mask kinds), bf16, sm_90: compiles, no spill, shared memory within
    the 227 KiB limit, and every tensor-core dot is wgmma (HGMMA > 0, no HMMA fallback; the
    D = rowsum(dY * Y) kernel has no dot)."""
    from kernels.compile_check import SHARED_LIMIT
    from kernels.compile_check_attention import check_attention_kernels

    reports = check_attention_kernels([90], [torch.bfloat16])
    assert {r.kernel for r in reports} == ONE_TILE_SPLIT | TILED | {"triton_backward._bwd_sym"}
    for r in reports:
        where = f"{r.kernel} {r.config} {r.shapes}"
        assert r.ok, f"{where}: {r.error}"
        assert r.spill_bytes == 0 and r.shared_bytes <= SHARED_LIMIT[90], where
        if r.kernel != "triton_backward._delta":
            assert r.hgmma > 0 and r.hmma == 0, (where, r.hgmma, r.hmma)


@pytest.mark.slow
def test_attention_fp16_sm87_every_launch_has_a_fitting_config_without_spills() -> None:
    """Jetson Orin (sm_87, 163 KiB per block, no wgmma): for every launch at least one of its
    candidate configurations fits and does not spill (the runtime pruner drops the others by the
    device's shared memory)."""
    from kernels.compile_check import SHARED_LIMIT
    from kernels.compile_check_attention import check_attention_kernels

    reports = check_attention_kernels([87], [torch.float16])
    good = {(r.kernel, r.shapes) for r in reports if r.ok and r.spill_bytes == 0 and r.shared_bytes <= SHARED_LIMIT[87]}
    assert good == {(r.kernel, r.shapes) for r in reports}
