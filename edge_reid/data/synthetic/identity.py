"""Identity sampling: what one synthetic person looks like, independent of any camera.

Colours come from a small shared palette (weighted towards dark clothes, as in real data),
so many identities share their dominant colours and differ only in texture, carried items
and body proportions: a raw colour histogram cannot solve the task, a trained CNN can.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Dict, Optional, Tuple

import numpy as np

RGB = Tuple[int, int, int]

#: clothing palette (RGB) and how often each colour is drawn
PALETTE: Dict[str, RGB] = {
    "black": (30, 30, 34),
    "charcoal": (70, 70, 74),
    "grey": (135, 135, 135),
    "white": (225, 225, 220),
    "navy": (35, 45, 95),
    "blue": (60, 105, 175),
    "red": (175, 40, 40),
    "khaki": (185, 165, 115),
    "green": (60, 105, 60),
    "brown": (105, 72, 45),
}
PALETTE_WEIGHTS: Dict[str, float] = {
    "black": 3.0, "charcoal": 2.0, "grey": 1.5, "white": 1.5, "navy": 2.0,
    "blue": 1.2, "red": 0.8, "khaki": 1.0, "green": 0.6, "brown": 0.8,
}
SKIN_TONES: Tuple[RGB, ...] = ((236, 200, 170), (205, 160, 125), (160, 115, 80), (105, 72, 50))
HAIR_COLOURS: Tuple[RGB, ...] = ((25, 20, 18), (70, 45, 30), (190, 160, 100), (150, 150, 150))

TOP_TEXTURES = ("plain", "stripes", "checks", "logo", "print", "two_tone")
BOTTOM_KINDS = ("trousers", "shorts", "skirt")
HAIR_STYLES = ("short", "long", "bald")


@dataclass(frozen=True)
class Identity:
    """Everything that stays the same for one person across cameras."""

    pid: int
    skin: RGB
    hair_colour: RGB
    hair_style: str
    height: float  # fraction of the crop height the person fills
    width: float  # shoulder width multiplier
    leg_frac: float  # legs as a fraction of the body height
    top_colour: RGB
    top_colour2: RGB  # secondary colour of the texture
    top_texture: str
    texture_scale: float  # stripe / check period as a fraction of body height
    long_sleeves: bool
    bottom_colour: RGB
    bottom_kind: str
    shoe_colour: RGB
    backpack: Optional[RGB]
    bag: Optional[RGB]
    bag_side: int  # -1 left, +1 right
    hat: Optional[RGB]
    print_seed: int  # positions of the print dots

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def _colour(rng: np.random.Generator, exclude: Optional[RGB] = None) -> RGB:
    names = [n for n in PALETTE if PALETTE[n] != exclude]
    weights = np.array([PALETTE_WEIGHTS[n] for n in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    return PALETTE[name]


#: The two populations of people (seed-sequence tags): the ReID datasets' (training and test ids)
#: and the stream scenes'. Scene person ``p`` is never dataset person ``p``, so a stream is
#: measured on people no synthetic training set holds.
DATASET_PEOPLE, SCENE_PEOPLE = 1, 9


def identity_rng(seed: int, pid: int, population: int = DATASET_PEOPLE) -> np.random.Generator:
    """The generator of identity ``pid`` of ``population`` under ``seed`` (independent of sampling order)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(population), int(pid)]))


def sample_identity(seed: int, pid: int, population: int = DATASET_PEOPLE) -> Identity:
    """Sample identity ``pid`` of ``population`` (:data:`DATASET_PEOPLE` or :data:`SCENE_PEOPLE`) from ``seed``."""
    rng = identity_rng(seed, pid, population)
    top = _colour(rng)
    carried = rng.random(3)
    return Identity(
        pid=int(pid),
        skin=SKIN_TONES[int(rng.integers(len(SKIN_TONES)))],
        hair_colour=HAIR_COLOURS[int(rng.choice(4, p=[0.5, 0.25, 0.15, 0.1]))],
        hair_style=HAIR_STYLES[int(rng.choice(3, p=[0.55, 0.35, 0.1]))],
        height=float(rng.uniform(0.86, 0.97)),
        width=float(rng.uniform(0.80, 1.25)),
        leg_frac=float(rng.uniform(0.42, 0.53)),
        top_colour=top,
        top_colour2=_colour(rng, exclude=top),
        top_texture=TOP_TEXTURES[int(rng.integers(len(TOP_TEXTURES)))],
        texture_scale=float(rng.uniform(0.035, 0.07)),
        long_sleeves=bool(rng.random() < 0.6),
        bottom_colour=_colour(rng),
        bottom_kind=BOTTOM_KINDS[int(rng.choice(3, p=[0.65, 0.2, 0.15]))],
        shoe_colour=(_colour(rng) if rng.random() < 0.7 else PALETTE["white"]),
        backpack=_colour(rng) if carried[0] < 0.35 else None,
        bag=_colour(rng) if carried[1] < 0.25 else None,
        bag_side=int(rng.choice([-1, 1])),
        hat=_colour(rng) if carried[2] < 0.2 else None,
        print_seed=int(rng.integers(2**31 - 1)),
    )


#: Details that tell the two people of a look-alike pair apart (one is changed per pair).
LOOKALIKE_DETAILS = ("backpack", "hat", "bag", "top_texture", "shoe_colour")


def lookalike(base: Identity, other: Identity, detail: str) -> Identity:
    """``base`` with ``other``'s pid and one ``detail`` (a LOOKALIKE_DETAILS name) changed: a person
    told apart from ``base`` only by that detail. A carried item or hat is taken away when ``base``
    has one, else given (``other``'s if it has one, else a red one)."""
    if detail == "top_texture":
        change = {"top_texture": "stripes" if base.top_texture != "stripes" else "checks"}
    elif detail == "shoe_colour":
        change = {"shoe_colour": PALETTE["white"] if base.shoe_colour != PALETTE["white"] else PALETTE["red"]}
    elif detail in LOOKALIKE_DETAILS:
        mine = getattr(base, detail)
        change = {detail: None if mine is not None else (getattr(other, detail) or PALETTE["red"])}
    else:
        raise ValueError(f"unknown look-alike detail {detail!r}")
    return replace(base, pid=other.pid, **change)
