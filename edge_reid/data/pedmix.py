"""PedMix (TMPA): region-based mixing of a training batch across modalities.

Each image (``[B, 3, H, W]``) is cut into non-overlapping ``patch_size`` patches (the last row
or column may be smaller when the size does not divide the image). Every patch falls into one
of three regions by the normalised elliptical distance ``d`` of its centre from the
pedestrian's centre, ``d = sqrt(((x - cx) / ax)^2 + ((y - cy) / ay)^2)`` with ``(cx, cy)`` the
centre and ``(ax, ay)`` the half extents of the pedestrian's box:
``center`` (d < bounds[0]), ``sub_center`` (bounds[0] <= d < bounds[1]) and ``outer`` (the rest).
The box comes from ``position``: ``fixed`` (the ``box`` fractions of the crop, the same for every
image: ReID crops are centred on the person) or ``mask`` (the person mask the data provides: a patch
holding a person pixel is ``center`` when d < bounds[0] for the mask's bounding box, else
``sub_center``; a patch without one is ``outer``; an empty mask falls back to ``box``).

Which images are mixed (the paper leaves it open; the natural reading): image ``i`` is mixed,
with probability ``p``, with a partner drawn uniformly among the batch's images of the same
identity and the other modality (a modality-balanced batch always has one; an image without one
is left as it is). In every region named in ``regions`` a fraction ``ratios[region]`` of the
region's patches (rounded to whole patches, drawn without replacement; a mask of its own for each
image, so the visible and the infrared image of a pair get different masks) is replaced by the
partner's pixels at the same place (``mode: swap``) or by ``(1 - blend) x_i + blend x_partner``
(``mode: blend``). Regions not named are never touched.

Labels: a mixed image keeps its identity (the partner has the same one) and its modality (it
still goes through its own modality's stem; the other modality's patches are the augmentation).

Randomness: one ``torch.Generator`` per call; the trainer seeds it from (run seed, global step),
so a run is deterministic for a seed and a resumed run mixes exactly as the original did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch

from edge_reid.errors import InvalidInputError

REGIONS: Tuple[str, ...] = ("center", "sub_center", "outer")
MODES: Tuple[str, ...] = ("swap", "blend")
POSITIONS: Tuple[str, ...] = ("fixed", "mask")
KEYS = ("enabled", "p", "patch_size", "regions", "ratios", "bounds", "mode", "blend", "position", "box")


@dataclass(frozen=True)
class PedMixConfig:
    """The ``data.pedmix`` section, checked. Defaults chosen on the synthetic VI set (README)."""

    enabled: bool = False
    #: Fraction of a batch's images that are mixed: half, so every batch still shows unmixed images of both
    #: modalities (the test-time input); not swept.
    p: float = 0.5
    #: Patch (height, width) in pixels: 4 x 4 at 64 x 32 is a 16 x 8 grid, close to the 18 x 9 grid of
    #: 16-pixel patches at the paper's 288 x 144.
    patch_size: Tuple[int, int] = (4, 4)
    #: The regions that are mixed (each with its own ratio).
    regions: Tuple[str, ...] = REGIONS
    #: Masking ratio of each region: the fraction of its patches replaced. Swept on the synthetic VI set
    #: (README ablation, 240 steps, AGW + PedMix): 0.3 and 0.5 tie on mAP (12.74 / 12.68), 0.3 has the better
    #: mINP (8.96 / 8.24); one ratio for all regions, since no region subset could be swept in the CPU time.
    ratios: Dict[str, float] = field(default_factory=lambda: {"center": 0.3, "sub_center": 0.3, "outer": 0.3})
    #: Region boundaries in the normalised distance d (center < bounds[0] <= sub_center < bounds[1] <= outer):
    #: with the whole crop as the box, 0.5 and 1.0 give 22 % / 56 % / 22 % of the 16 x 8 patches
    #: (center: the torso; sub_center: head, arms, legs; outer: the corners, mostly background).
    bounds: Tuple[float, float] = (0.5, 1.0)
    #: swap (replace the patch) or blend (weighted sum with ``blend`` on the partner). Swap: whole patches of
    #: the other modality, the reading of "mixing regions"; blend not swept.
    mode: str = "swap"
    blend: float = 0.5
    #: Where the pedestrian is: fixed geometry (``box``) or the person mask of each image. Fixed: needs no
    #: masks (real SYSU-MM01 / RegDB have none) and the synthetic crops are centred; mask not swept.
    position: str = "fixed"
    #: The pedestrian's box as fractions of the crop (x0, y0, x1, y1). The whole crop: on the synthetic VI
    #: set the person masks' bounding box averages x 0.11-0.89, y 0.08-0.95 (48 masks, every 60th file).
    box: Tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)


def _bad(key: str, text: str) -> InvalidInputError:
    return InvalidInputError(f"Config key 'data.pedmix.{key}' {text}.")


def _unit(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise _bad(key, f"must be a number in [0, 1], got {value!r}")
    return float(value)


def _region(key: str, name: Any) -> str:
    if name not in REGIONS:
        raise _bad(key, f"names an unknown region {name!r}; known regions: {', '.join(REGIONS)}")
    return str(name)


def parse_pedmix(spec: Optional[Mapping[str, Any]]) -> Optional[PedMixConfig]:
    """The checked config of a ``data.pedmix`` section; ``None`` when absent or not enabled.

    Every problem is one :class:`InvalidInputError` sentence naming the key.
    """
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise InvalidInputError(f"Config key 'data.pedmix' must be a mapping, got {spec!r}.")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise InvalidInputError(f"Config key 'data.pedmix' has unknown key(s) {unknown}; known: {', '.join(KEYS)}.")
    base = PedMixConfig()
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _bad("enabled", f"must be true or false, got {enabled!r}")
    size = spec.get("patch_size", list(base.patch_size))
    size = [size, size] if isinstance(size, int) and not isinstance(size, bool) else size
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size)):
        raise _bad("patch_size", f"must be a positive integer or [height, width], got {spec.get('patch_size')!r}")
    regions = spec.get("regions", list(base.regions))
    if not isinstance(regions, (list, tuple)):
        raise _bad("regions", f"must be a list of region names ({', '.join(REGIONS)}), got {regions!r}")
    regions = tuple(_region("regions", r) for r in regions)
    if len(set(regions)) != len(regions):
        raise _bad("regions", f"lists a region twice: {list(regions)}")
    ratios_spec = spec.get("ratios", {})
    if isinstance(ratios_spec, (int, float)) and not isinstance(ratios_spec, bool):
        ratios_spec = {r: ratios_spec for r in REGIONS}
    if not isinstance(ratios_spec, Mapping):
        raise _bad("ratios", f"must map region names to masking ratios in [0, 1] (or be one number), got {ratios_spec!r}")
    ratios = dict(base.ratios)
    for name, value in ratios_spec.items():
        ratios[_region("ratios", name)] = _unit(f"ratios.{name}", value)
    bounds = spec.get("bounds", list(base.bounds))
    if (not isinstance(bounds, (list, tuple)) or len(bounds) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in bounds)
            or not 0.0 <= bounds[0] <= bounds[1]):
        raise _bad("bounds", f"must be two numbers 0 <= inner <= outer, got {bounds!r}")
    mode = spec.get("mode", base.mode)
    if mode not in MODES:
        raise _bad("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    position = spec.get("position", base.position)
    if position not in POSITIONS:
        raise _bad("position", f"must be one of {', '.join(POSITIONS)}, got {position!r}")
    box = spec.get("box", list(base.box))
    if (not isinstance(box, (list, tuple)) or len(box) != 4
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in box)
            or not (0.0 <= box[0] < box[2] <= 1.0 and 0.0 <= box[1] < box[3] <= 1.0)):
        raise _bad("box", f"must be [x0, y0, x1, y1] fractions with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {box!r}")
    cfg = PedMixConfig(enabled=enabled, p=_unit("p", spec.get("p", base.p)), patch_size=(int(size[0]), int(size[1])),
                       regions=regions, ratios=ratios, bounds=(float(bounds[0]), float(bounds[1])), mode=str(mode),
                       blend=_unit("blend", spec.get("blend", base.blend)), position=str(position),
                       box=tuple(float(v) for v in box))  # type: ignore[arg-type]
    return cfg if cfg.enabled else None


def _distance(ys: torch.Tensor, xs: torch.Tensor, box: Sequence[float]) -> torch.Tensor:
    """Normalised elliptical distance of each (y, x) patch centre from the box centre: [R, C]."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    ax, ay = max((x1 - x0) / 2.0, 1e-6), max((y1 - y0) / 2.0, 1e-6)
    return torch.sqrt(((xs[None, :] - cx) / ax) ** 2 + ((ys[:, None] - cy) / ay) ** 2)


def _codes(d: torch.Tensor, bounds: Tuple[float, float]) -> torch.Tensor:
    return (d >= bounds[0]).long() + (d >= bounds[1]).long()


def region_map(cfg: PedMixConfig, height: int, width: int, masks: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Region code of every patch (0 center, 1 sub_center, 2 outer): ``[B, R, C]`` with masks, else ``[1, R, C]``."""
    ph, pw = cfg.patch_size
    rows, cols = math.ceil(height / ph), math.ceil(width / pw)
    ys = torch.tensor([(r * ph + min((r + 1) * ph, height)) / 2.0 for r in range(rows)], dtype=torch.float64)
    xs = torch.tensor([(c * pw + min((c + 1) * pw, width)) / 2.0 for c in range(cols)], dtype=torch.float64)
    fixed_box = (cfg.box[0] * width, cfg.box[1] * height, cfg.box[2] * width, cfg.box[3] * height)
    fixed = _codes(_distance(ys, xs, fixed_box), cfg.bounds)[None]
    if cfg.position != "mask" or masks is None:
        return fixed
    person = masks.reshape(masks.shape[0], height, width) > 0.5
    padded = torch.zeros(masks.shape[0], rows * ph, cols * pw, dtype=torch.bool)
    padded[:, :height, :width] = person
    has_person = padded.reshape(-1, rows, ph, cols, pw).any(dim=4).any(dim=2)  # [B, R, C]
    out = fixed.repeat(masks.shape[0], 1, 1)
    for b in range(masks.shape[0]):
        yy, xx = torch.nonzero(person[b], as_tuple=True)
        if yy.numel() == 0:
            continue
        box = (float(xx.min()), float(yy.min()), float(xx.max()) + 1.0, float(yy.max()) + 1.0)
        codes = (_distance(ys, xs, box) >= cfg.bounds[0]).long()  # on the person: center or sub_center
        out[b] = torch.where(has_person[b], codes, torch.full_like(codes, 2))
    return out


def partners(pids: torch.Tensor, modality: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each image, a uniformly drawn image of the same identity and the other modality (-1: none)."""
    pids, modality = pids.reshape(-1).cpu(), modality.reshape(-1).cpu()
    out = torch.full((pids.numel(),), -1, dtype=torch.long)
    for i in range(pids.numel()):
        cands = torch.nonzero((pids == pids[i]) & (modality != modality[i]), as_tuple=True)[0]
        if cands.numel():
            out[i] = cands[int(torch.randint(cands.numel(), (1,), generator=generator))]
    return out


class PedMix:
    """``pedmix(images, pids, modality, masks=None, generator=None) -> (mixed images, replaced fraction)``.

    ``images`` [B, C, H, W] (any dtype; blending rounds back for integer images), ``pids`` and
    ``modality`` [B]; ``masks`` [B, 1, H, W] person masks (``position: mask``). The second output
    [B] is the fraction of each image's pixels that came from (or were blended with) its partner.
    """

    def __init__(self, cfg: PedMixConfig) -> None:
        self.cfg = cfg

    def __call__(self, images: torch.Tensor, pids: torch.Tensor, modality: torch.Tensor,
                 masks: Optional[torch.Tensor] = None,
                 generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        if images.dim() != 4:
            raise InvalidInputError(f"PedMix takes a batch of images [B, C, H, W], got shape {tuple(images.shape)}.")
        if pids.numel() != images.shape[0] or modality.numel() != images.shape[0]:
            raise InvalidInputError(f"PedMix got {images.shape[0]} images but {pids.numel()} ids and "
                                    f"{modality.numel()} modality values.")
        if self.cfg.position == "mask" and masks is None:
            raise InvalidInputError("PedMix with position 'mask' needs the batch's person masks; the loader gave none.")
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        batch, _, height, width = images.shape
        ph, pw = self.cfg.patch_size
        codes = region_map(self.cfg, height, width, None if masks is None else masks.detach().cpu())
        mates = partners(pids, modality, gen)
        chosen = torch.rand(batch, generator=gen) < self.cfg.p
        out = images.clone()
        fraction = torch.zeros(batch)
        for i in range(batch):
            if not bool(chosen[i]) or int(mates[i]) < 0:
                continue
            region = codes[i if codes.shape[0] > 1 else 0].reshape(-1)
            selected = torch.zeros_like(region, dtype=torch.bool)
            for name in self.cfg.regions:
                index = torch.nonzero(region == REGIONS.index(name), as_tuple=True)[0]
                count = int(round(self.cfg.ratios[name] * index.numel()))
                if count:
                    selected[index[torch.randperm(index.numel(), generator=gen)[:count]]] = True
            grid = selected.reshape(codes.shape[1:])
            pixels = grid.repeat_interleave(ph, 0).repeat_interleave(pw, 1)[:height, :width].to(images.device)
            fraction[i] = float(pixels.float().mean())
            j = int(mates[i])
            if self.cfg.mode == "swap":
                mixed = images[j]
            else:
                mixed = (1.0 - self.cfg.blend) * images[i].double() + self.cfg.blend * images[j].double()
                mixed = mixed.round() if not images.is_floating_point() else mixed
                mixed = mixed.to(images.dtype)
            out[i] = torch.where(pixels[None], mixed, images[i])
        return out, fraction


def pedmix_seed(seed: int, step: int) -> int:
    """The generator seed of PedMix at a global training step."""
    return (int(seed) * 1_000_033 + int(step) * 104_729 + 7) % (2**63 - 1)


def mix_training_batch(pedmix: PedMix, images: torch.Tensor, batch: Sequence[Any], dataset: Any,
                       seed: int, step: int) -> torch.Tensor:
    """PedMix applied to one training batch of the train loader (modality from the dataset's records,
    masks from the batch's fifth column when the loader carries them)."""
    from edge_reid.data.loader import model_inputs

    modality = model_inputs(("modality",), batch, dataset)["modality"]
    masks = batch[4] if len(batch) > 4 else None
    generator = torch.Generator().manual_seed(pedmix_seed(seed, step))
    mixed, _ = pedmix(images, batch[1], modality, masks, generator)
    return mixed
