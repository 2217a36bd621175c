"""Compile every Triton kernel ahead of time for a GPU architecture, on a machine without a GPU.

The interpreter (``TRITON_INTERPRET=1``) checks the kernels' arithmetic but not what only the GPU
compiler sees: unsupported tile shapes, type mismatches in loops, shared memory beyond the
device's limit, registers spilled to local memory. Triton can compile for a named target
(``GPUTarget("cuda", arch, 32)``) without a driver, down to the cubin that ``ptxas`` emits, and
``cuobjdump`` (shipped with Triton) reads its register and stack use back
(``kernels.compile_check_cubin``). This module records the kernel launches the real wrappers make
(so argument types come from the code that launches them, not from a hand-kept copy; see
``kernels.launches``), then compiles each launch for every autotune configuration.

    python benchmarks/compile_kernels.py --arch sm90 sm87
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from edge_reid.errors import InvalidInputError, MissingDependencyError
from kernels._triton_utils import HAS_TRITON, interpreting
# reading a cubin back lives in compile_check_cubin; its names stay importable from here
from kernels.compile_check_cubin import SASS_OPCODES, resource_usage, sass_counts
from kernels.launches import Launch, recording

#: Named targets -> CUDA compute capability (major * 10 + minor).
ARCHS: Dict[str, int] = {
    "sm90": 90, "h100": 90, "h200": 90,
    "sm89": 89, "l4": 89, "l40s": 89, "rtx4090": 89,
    "sm87": 87, "orin": 87,
    "sm86": 86, "a10g": 86, "rtx3090": 86,
    "sm80": 80, "a100": 80,
}

#: Most dynamic shared memory one block may use, bytes, per compute capability (CUDA guide, table 21).
SHARED_LIMIT: Dict[int, int] = {80: 163 * 1024, 86: 99 * 1024, 87: 163 * 1024, 89: 99 * 1024, 90: 227 * 1024}

_TRITON_TYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16",
                 torch.int32: "i32", torch.int64: "i64", torch.uint8: "u8", torch.bool: "u1"}


def parse_arch(name: str) -> int:
    """Compute capability for a target name (``sm90``, ``h100``, ``orin``, or a number like ``87``)."""
    key = name.strip().lower().replace("_", "")
    if key in ARCHS:
        return ARCHS[key]
    digits = key[2:] if key.startswith("sm") else key
    if digits.isdigit() and int(digits) in SHARED_LIMIT:
        return int(digits)
    raise InvalidInputError(f"unknown GPU architecture {name!r}; choose from {', '.join(sorted(ARCHS))}")


@dataclass
class BuildReport:
    """What compiling one launch with one configuration for one architecture gave."""

    kernel: str
    config: str
    dtype: str
    shapes: str
    arch: int
    ok: bool
    seconds: float
    shared_bytes: Optional[int] = None
    registers: Optional[int] = None
    spill_bytes: Optional[int] = None
    fits: Optional[bool] = None
    error: Optional[str] = None
    hgmma: Optional[int] = None  # SASS instruction counts (cuobjdump --dump-sass), see sass_counts
    hmma: Optional[int] = None
    gmma_waits: Optional[int] = None
    async_copies: Optional[int] = None

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


#: Sample problem sizes: the spec's benchmark shapes (batch 2) and odd ones (ragged tiles, no
#: divisibility by 16), which the JIT specializes differently.
SHAPES: Dict[str, Dict[str, Any]] = {
    "spec": {"maps": (2, 2048, 8, 4), "projection": ((2, 1024, 16, 8), 2048)},
    "odd": {"maps": (2, 48, 15, 7), "projection": ((2, 40, 45, 21), 24)},
}


def sample_launches(dtype: torch.dtype, shapes: str = "spec") -> List[Launch]:
    """Every launch the kernel families make, on CPU tensors of ``dtype`` (nothing runs on a GPU).

    ``shapes`` picks :data:`SHAPES`: "spec" (VisNet at 256x128: stage 3 with 1024 channels at
    16 x 8 projected to 2048 x 8 x 4 maps; the attention shapes of :data:`ATTENTION_SHAPES`) or
    "odd" (N = 100, C = 200, a 15 x 7 map, an odd resize factor) so that the masked edges and the
    single-tap projection are compiled as well.
    """
    from kernels.scale_fusion import triton_fusion as fusion
    from kernels.scale_fusion import triton_projection as proj

    if shapes not in SHAPES:
        raise InvalidInputError(f"unknown sample shapes {shapes!r}; choose from {', '.join(SHAPES)}")
    sizes = SHAPES[shapes]
    g = torch.Generator().manual_seed(0)
    rand = lambda *s: torch.randn(*s, generator=g).to(dtype)  # noqa: E731
    (pb, pc, ph, pw), pout = sizes["projection"]
    maps_shape = sizes["maps"]
    from kernels.compile_check_attention import attention_launches

    launches = attention_launches(dtype, shapes)
    with recording([fusion, proj]) as recorded:
        maps = [rand(*maps_shape) for _ in range(3)]
        w = torch.rand(maps_shape[0], 3, generator=g).to(dtype)
        fusion.wsum_forward(maps, w)
        fusion.wsum_backward(maps, w, rand(*maps_shape), rand(*maps_shape[:2]))
        proj.projection_forward(rand(pb, pc, ph, pw), rand(pout, pc), rand(pout), rand(pout),
                                (maps_shape[2], maps_shape[3]))
    launches += recorded
    from kernels.compile_check_linear import linear_attention_launches

    launches += linear_attention_launches(dtype, shapes)
    for launch in launches:
        launch.shapes = shapes
    return launches


def _signature(launch: Launch, config: Any) -> Tuple[Dict[str, str], Dict[str, Any], Dict[Tuple[int, ...], list]]:
    """Triton's signature, constexprs and attributes for this launch under this autotune config.

    Mirrors the JIT's specialization of a real launch: an integer equal to 1 becomes a constant,
    integers divisible by 16 and 16-byte aligned pointers carry ``tt.divisibility = 16``.
    """
    fn = launch.tuner.fn
    names = list(fn.arg_names)
    consts = dict(launch.constexprs)
    consts.update(config.kwargs)
    sig: Dict[str, str] = {}
    attrs: Dict[Tuple[int, ...], list] = {}
    divisible = [["tt.divisibility", 16]]
    for i, (name, value) in enumerate(zip(names, launch.args)):
        if isinstance(value, torch.Tensor):
            sig[name] = "*" + _TRITON_TYPES[value.dtype]
            if value.data_ptr() % 16 == 0:
                attrs[(i,)] = divisible
        elif isinstance(value, bool):
            sig[name] = "u1"
        elif isinstance(value, int):
            if value == 1:
                sig[name], consts[name] = "constexpr", 1
                continue
            sig[name] = "i32" if -2 ** 31 <= value < 2 ** 31 else "i64"
            if value % 16 == 0:
                attrs[(i,)] = divisible
        elif isinstance(value, float):
            sig[name] = "fp32"
        else:
            raise TypeError(f"{launch.name}: cannot type argument {name}={value!r}")
    for name in names[len(launch.args):]:
        if name not in consts:
            raise TypeError(f"{launch.name}: argument {name} was not given")
        sig[name] = "constexpr"
    return sig, {k: v for k, v in consts.items() if k in names}, attrs


def _config_label(config: Any) -> str:
    blocks = ",".join(f"{k}={v}" for k, v in config.kwargs.items())
    return f"{blocks} w{config.num_warps} s{config.num_stages}"


def _launch_dtype(launch: Launch) -> str:
    first = next(a for a in launch.args if isinstance(a, torch.Tensor))
    return _TRITON_TYPES[first.dtype]


def compile_launch(launch: Launch, config: Any, arch: int) -> BuildReport:
    """Compile one launch with one autotune config for ``sm_<arch>``; errors are reported, not raised."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    report = BuildReport(launch.name, _config_label(config), _launch_dtype(launch), launch.shapes, arch,
                         ok=False, seconds=0.0)
    start = time.perf_counter()
    try:
        sig, consts, attrs = _signature(launch, config)
        options = {"num_warps": config.num_warps, "num_stages": config.num_stages}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kernel = triton.compile(ASTSource(launch.tuner.fn, sig, consts, attrs),
                                    target=GPUTarget("cuda", arch, 32), options=options)
    except Exception as exc:  # a compile error is the finding, reported in the table
        report.error = " ".join(str(exc).split())[:300]
        report.seconds = time.perf_counter() - start
        return report
    report.seconds = time.perf_counter() - start
    report.ok = True
    report.shared_bytes = int(kernel.metadata.shared)
    report.fits = report.shared_bytes <= SHARED_LIMIT[arch]
    report.registers, report.spill_bytes = resource_usage(kernel.asm["cubin"])
    for key, count in sass_counts(kernel.asm["cubin"]).items():
        setattr(report, key, count)
    return report


def candidate_configs(launch: Launch) -> List[Any]:
    """The autotune configurations this launch may run: for a kernel with a tile table
    (``tuner.tile_table``, HEAD -> configs: the one-tile attention kernels) those listed for the
    launch's HEAD; for one with a ``tuner.fits(meta, args)`` rule those it accepts for the launch's
    arguments; else all of the kernel's configurations."""
    from kernels.autotune import config_label

    table = getattr(launch.tuner, "tile_table", None)
    fits = getattr(launch.tuner, "fits", None)
    if fits is not None:
        args = {**dict(zip(launch.tuner.fn.arg_names, launch.args)), **launch.constexprs}
        return [c for c in launch.tuner.configs
                if fits({**c.kwargs, "num_warps": c.num_warps, "num_stages": c.num_stages}, args)]
    if table is None or "HEAD" not in launch.constexprs:
        return list(launch.tuner.configs)
    listed = {config_label(c) for c in table.get(int(launch.constexprs["HEAD"]), ())}
    return [c for c in launch.tuner.configs if config_label(c) in listed]


def _check_ready() -> None:
    if not HAS_TRITON:
        raise MissingDependencyError("Triton is not installed; install the project's requirements to compile kernels")
    if interpreting():
        raise InvalidInputError("unset TRITON_INTERPRET: under the interpreter the kernels carry only the CPU config")


def check_kernels(archs: Sequence[int], dtypes: Sequence[torch.dtype], shapes: Sequence[str] = ("spec",),
                  first_config_only: bool = False,
                  on_report: Optional[Callable[[BuildReport], None]] = None) -> List[BuildReport]:
    """Compile every kernel launch x autotune config x dtype x sample shapes for each architecture."""
    _check_ready()
    reports: List[BuildReport] = []
    for dtype in dtypes:
        for launch in (launch for kind in shapes for launch in sample_launches(dtype, kind)):
            if launch.name.startswith("triton_linear."):  # linear form: the configs of the launch's channel tile
                from kernels.compile_check_linear import linear_fitting_configs

                configs = linear_fitting_configs(launch)
            else:
                configs = candidate_configs(launch)
            configs = configs[:1] if first_config_only else configs
            for arch in archs:
                for config in configs:
                    report = compile_launch(launch, config, arch)
                    reports.append(report)
                    if on_report is not None:
                        on_report(report)
    return reports


__all__ = ["ARCHS", "SASS_OPCODES", "SHAPES", "SHARED_LIMIT", "BuildReport", "candidate_configs", "check_kernels", "compile_launch", "parse_arch", "resource_usage", "sample_launches",
           "sass_counts"]
