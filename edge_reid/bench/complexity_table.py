"""The ``complexity`` stage of ``edge-reid bench``: params (total, per part, on the inference path)
and multiply-adds of every registry model, beside the numbers the papers publish, each also
counted in that paper's own convention."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from edge_reid.bench import report as R
from edge_reid.errors import EdgeReidError

CONVENTION = ("Counting convention: multiply-adds (MACs) = torch.utils.flop_counter.FlopCounterMode FLOPs / 2, "
              "one eval-mode forward pass at batch 1; only convolutions, linear layers and matmuls are counted "
              "(batch norm, activations, pooling, element-wise ops are not). 'ours, paper convention' counts the same "
              "pass the way the paper beside it does: DCS-Attention paper FLOPs = 2 x MACs; VisNet paper = thop "
              "(MACs + 2 ops per BatchNorm element, x2 for affine BN); 'vs paper' compares those two.")
#: Training identities of Market-1501: the classifier size the papers count.
PAPER_NUM_CLASSES = 751

@dataclass(frozen=True)
class PaperEntry:
    """A published params/FLOPs figure and where it comes from."""

    label: str
    model: Optional[str]  # registry name measured beside it; None for reference-only rows
    params_m: str
    gflops: str  # the published figure, in the paper's own convention
    source: str
    convention: str = "2x-macs"  # a key of edge_reid.bench.complexity.CONVENTIONS
    options: Tuple[Tuple[str, Any], ...] = ()  # model options of the measured variant

    @staticmethod
    def low(text: str) -> float:
        return float(text.split("-")[0])


PAPERS: Tuple[PaperEntry, ...] = (
    PaperEntry("VisNet (paper)", "visnet", "32.41", "4.601", "VisNet paper, Tables II-III", "thop"),
    PaperEntry("DCS-FB MobileNetV2 (paper)", "dcs_mobilenetv2", "2.31", "0.406", "DCS-Attention paper"),
    PaperEntry("MobileNetV2 + self-attention (paper)", "dcs_mobilenetv2", "", "0.395", "DCS-Attention paper, Table V",
               options=(("vanilla", True),)),
    PaperEntry("MobileNetV2 (paper)", "mobilenetv2", "2.22", "0.380", "DCS-Attention paper"),
    PaperEntry("DCS-FB ResNet50 (paper)", "dcs_resnet50", "23.9", "6.24", "DCS-Attention paper"),
    PaperEntry("FusionReID (release)", "fusionreid", "173.40", "29.07",
               "spec: the released modules, 751 ids, 6 cameras (incl. an unused 0.769 M ImageNet head)"),
    PaperEntry("TransReID (paper)", None, "86-100", "17.8-19.3", "as quoted in the VisNet paper; reference only"),
    PaperEntry("CLIP-ReID (paper)", None, "63", "12", "as quoted in the VisNet paper; reference only"),
)

COMPLEXITY_COLUMNS = ["kind", "model", "variant", "input", "params_M", "params_no_classifier_M", "gmacs",
                      "paper_convention_g", "paper_gflops", "vs_paper_pct", "paper_params_M", "parts"]

def inference_params(model: Any, input_size: Sequence[int]) -> int:
    """Parameters read by an eval-mode forward pass (training-only heads excluded).

    Every tensor reaching an ATen op is recorded by storage, so parameters used functionally
    (fused kernels, custom ops) count as well as those of called submodules.
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from edge_reid.models.base import example_extra_inputs

    seen: set = set()

    class _Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
            for a in list(args) + list((kwargs or {}).values()):
                for t in (a if isinstance(a, (list, tuple)) else [a]):
                    if isinstance(t, torch.Tensor):
                        seen.add(t.untyped_storage().data_ptr())
            return func(*args, **(kwargs or {}))

    was_training = model.training
    try:
        model.eval()
        extra = example_extra_inputs(model, 1)  # camera ids / modality of models that take them
        with torch.no_grad(), _Record():
            model(torch.rand(1, 3, int(input_size[0]), int(input_size[1])), **extra)
    finally:
        model.train(was_training)
    return sum(p.numel() for p in model.parameters() if p.untyped_storage().data_ptr() in seen)


def fast_fusion_available() -> bool:
    """Whether the ``visnet`` factory takes ``fusion_impl`` (the kernels engineer's fast fusion)."""
    from edge_reid.models import MODELS

    return "fusion_impl" in inspect.signature(MODELS.get("visnet")).parameters


def complexity_rows(models: Optional[Sequence[str]] = None, input_size: Sequence[int] = (256, 128),
                    num_classes: int = PAPER_NUM_CLASSES, say: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """One measured row per registry model (plus VisNet's fast fusion when it exists), then the paper rows."""
    from edge_reid.bench.complexity import complexity
    from edge_reid.models import MODELS, build_model

    names = list(models) if models is not None else sorted(MODELS.names())
    size = (int(input_size[0]), int(input_size[1]))
    variants: List[Tuple[str, str, Dict[str, Any]]] = []
    for name in names:
        if name == "visnet" and fast_fusion_available():
            variants += [(name, "fusion_impl=reference", {"fusion_impl": "reference"}),
                         (name, "fusion_impl=fast", {"fusion_impl": "fast"})]
        else:
            variants.append((name, "", {}))
        variants += [(name, ", ".join(f"{k}={v}" for k, v in p.options), dict(p.options))
                     for p in PAPERS if p.model == name and p.options]
    if "visnet" in names and not fast_fusion_available():
        say("VisNet fusion_impl='fast' is not available in this checkout (the visnet factory has no "
            "'fusion_impl' option yet): only the reference fusion is measured.")
    rows: List[Dict[str, Any]] = []
    for name, variant, options in variants:
        try:
            model = build_model(name, num_classes=num_classes, input_size=size, **options)
        except EdgeReidError as exc:  # a model that needs options of its own (e.g. a searched architecture)
            say(f"  {name}: not measured ({exc})")
            continue
        rep = complexity(model, input_size=size)
        parts = model.parameter_breakdown() if hasattr(model, "parameter_breakdown") else \
            {k: v for k, v in rep.parts.items() if "." not in k}
        paper = paper_entry(name, options)
        ours = rep.gflops(paper.convention) if paper else None
        rows.append({
            "kind": "measured", "model": name, "variant": variant, "input": f"{size[0]}x{size[1]}",
            "params": rep.params, "params_M": rep.params / 1e6,
            "params_inference_M": inference_params(model, size) / 1e6, "macs": rep.macs, "gmacs": rep.gmacs,
            "params_no_classifier_M": (rep.params - classifier_params(model)) / 1e6,
            "paper_convention_g": ours, "paper_gflops": paper.gflops if paper else None,
            "vs_paper_pct": 100.0 * (ours / PaperEntry.low(paper.gflops) - 1.0) if paper and ours else None,
            "paper_params_M": paper.params_m if paper else None,
            "parts": ", ".join(f"{k} {v / 1e6:.3f}M" for k, v in parts.items()),
        })
        say(f"  {name} {variant}: {rep.params / 1e6:.2f}M params, {rep.gmacs:.3f} GMACs")
    for p in PAPERS:
        rows.append({"kind": "paper", "model": p.label, "variant": p.source, "input": "256x128",
                     "params_M": None, "params_no_classifier_M": None, "params_inference_M": None, "gmacs": None, "paper_convention_g": None,
                     "paper_gflops": p.gflops, "vs_paper_pct": None, "paper_params_M": p.params_m, "parts": ""})
    return rows


def classifier_params(model: Any) -> int:
    """Parameters of the identity classifier (modules named ``classifier``), which papers often leave out."""
    return sum(p.numel() for n, p in model.named_parameters() if "classifier" in n.split("."))


def paper_entry(model: str, options: Dict[str, Any]) -> Optional[PaperEntry]:
    """The published figure of registry ``model`` built with exactly the paper entry's ``options``."""
    wanted = {k: v for k, v in options.items() if k != "fusion_impl"}
    for p in PAPERS:
        if p.model == model and dict(p.options) == wanted:
            return p
    return None


def run_complexity(out: Path, models: Optional[Sequence[str]], input_size: Sequence[int], num_classes: int,
                   say: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """The complexity stage: rows, printed table, ``complexity.csv/json``."""
    say(f"\n== Complexity at {input_size[0]}x{input_size[1]} ({num_classes} training ids) ==")
    rows = complexity_rows(models, input_size, num_classes, say)
    headers = {"params_M": "params (M)", "params_no_classifier_M": "without classifier (M)", "gmacs": "GMACs",
               "paper_convention_g": "ours, paper convention (G)", "paper_gflops": "paper (G)",
               "vs_paper_pct": "vs paper (%)", "paper_params_M": "paper params (M)"}
    cols = [c for c in COMPLEXITY_COLUMNS if c != "parts"]
    say(R.markdown_table(rows, cols, headers))
    say("\nParameters per part:\n" + "\n".join(f"  {r['model']} {r['variant']}: {r['parts']}" for r in rows if r["parts"]))
    say(CONVENTION)
    R.dump_rows(rows, out, "complexity", COMPLEXITY_COLUMNS, {"convention": CONVENTION, "num_classes": num_classes})
    return rows
