"""Scene descriptions for the synthetic multi-camera video, and the named scenes.

A :class:`Scene` says who walks where and what makes the scene hard: how many people and
cameras, how long, how often a person comes back (leaves a camera and re-enters one later),
look-alike pairs (two people identical but for one detail), static scenery in front of the
walkers (pillars, bins, planters), crowds (people entering together from both sides), how
strong each camera's colour cast is, and which cameras are thermal (infrared). Named scenes:
``easy`` (the original 4-walker video), ``default`` and ``hard``; any other scene comes from a
YAML file with the same fields.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from edge_reid.errors import InvalidInputError
from edge_reid.registry import Registry

#: Named scenes: ``easy``, ``default``, ``hard``.
SCENES: Registry = Registry("scene")


@dataclass(frozen=True)
class Scene:
    """One synthetic multi-camera scene (``size`` is width x height)."""

    name: str = "custom"
    people: int = 4
    cameras: int = 2
    frames: int = 200
    size: Tuple[int, int] = (640, 360)
    fps: int = 10
    seed: int = 0
    schedule: str = "crossings"   # "crossings": the original two crossings; "visits": the general planner
    visits: int = 2               # camera visits per person (2: one in each of two cameras)
    reentry: float = 0.0          # fraction of people with one more visit, re-entering an earlier camera
    lookalike_pairs: int = 0      # pairs (p, p + 1) that differ only in one detail
    occluders: int = 0            # static scenery objects in front of the walkers, per camera
    crowd: float = 0.0            # fraction of visits that start together with another, from the other side
    colour_cast: float = 1.0      # scale of each camera's white-balance deviation (1 = the dataset's)
    cross_min: float = 0.30       # a crossing lasts between these fractions of the video
    cross_max: float = 0.38
    infrared: Tuple[int, ...] = ()  # cameras (1-based) that are thermal cameras (grey, people by heat: infrared.py)

    def __post_init__(self) -> None:
        if not _int_items(self.infrared):
            raise InvalidInputError(f"Scene '{self.name}' needs infrared cameras as a list of integers, "
                                    f"got {self.infrared!r}.")
        object.__setattr__(self, "infrared", tuple(sorted(self.infrared)))  # one order, one cache key
        checks = [(self.people >= 1, f"at least 1 person, got {self.people}"),
                  (self.cameras >= 2, f"at least 2 cameras, got {self.cameras}"),
                  (self.frames >= 20, f"at least 20 frames per camera, got {self.frames}"),
                  (self.size[0] >= 160 and self.size[1] >= 120, f"a frame of at least 160 x 120, got {self.size}"),
                  (self.schedule in ("crossings", "visits"), f"schedule 'crossings' or 'visits', got '{self.schedule}'"),
                  (self.visits >= 1, f"at least 1 visit per person, got {self.visits}"),
                  (0 <= self.reentry <= 1 and 0 <= self.crowd <= 1, "reentry and crowd fractions in [0, 1]"),
                  (0 <= 2 * self.lookalike_pairs <= self.people, f"at most people / 2 look-alike pairs, got "
                                                                  f"{self.lookalike_pairs} for {self.people} people"),
                  (0.05 <= self.cross_min <= self.cross_max <= 1, "0.05 <= cross_min <= cross_max <= 1"),
                  (len(set(self.infrared)) == len(self.infrared) and all(1 <= c <= self.cameras for c in self.infrared),
                   f"infrared cameras among 1-{self.cameras}, each once, got {list(self.infrared)}")]
        for ok, what in checks:
            if not ok:
                raise InvalidInputError(f"Scene '{self.name}' needs {what}.")

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["size"] = list(self.size)
        data["infrared"] = list(self.infrared)
        if not self.infrared:  # left out, so the cache keys of scenes without one stay as they were
            del data["infrared"]
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Scene":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"Unknown scene field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        data = dict(data)
        if "size" in data:
            if not _int_items(data["size"]) or len(data["size"]) != 2:
                raise InvalidInputError(f"Scene field 'size' must be [width, height] in pixels, got {data['size']!r}.")
            data["size"] = tuple(data["size"])
        return cls(**data)

    def key(self) -> str:
        """A short hash of the description (cache folder names)."""
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:10]


def _int_items(value: Any) -> bool:
    """Whether ``value`` is a list or tuple of integers (not booleans, strings or floats)."""
    return isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


SCENES.register("easy")(lambda: Scene(name="easy"))
SCENES.register("default")(lambda: Scene(
    name="default", people=12, cameras=4, frames=300, schedule="visits", visits=2, reentry=0.5,
    lookalike_pairs=2, occluders=2, crowd=0.15, colour_cast=1.5, cross_min=0.22, cross_max=0.34))
SCENES.register("hard")(lambda: Scene(
    name="hard", people=24, cameras=4, frames=300, schedule="visits", visits=2, reentry=0.5,
    lookalike_pairs=4, occluders=3, crowd=0.5, colour_cast=2.0, cross_min=0.2, cross_max=0.32))


def load_scene(name_or_path: Any) -> Scene:
    """A named scene (``easy``, ``default``, ``hard``) or a YAML file of :class:`Scene` fields."""
    if isinstance(name_or_path, Scene):
        return name_or_path
    text = str(name_or_path)
    if text in SCENES:
        return SCENES.get(text)()
    path = Path(text).expanduser()
    if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise InvalidInputError(f"Scene file {path} must hold a mapping of scene fields.")
        data.setdefault("name", path.stem)
        return Scene.from_dict(data)
    raise InvalidInputError(f"'{text}' is neither a scene ({', '.join(SCENES.names())}) nor a scene YAML file.")


def plan_visits(scene: Scene) -> List[Dict[str, Any]]:
    """When and where each person walks: a list of visits (pid, cam, start, duration, direction, depth)."""
    if scene.schedule == "crossings":
        return _crossings(scene.seed, scene.people, scene.cameras, scene.frames)
    rng = np.random.default_rng(np.random.SeedSequence([int(scene.seed), 7]))
    frames, visits = scene.frames, []
    for pid in range(1, scene.people + 1):
        n = scene.visits + int(rng.random() < scene.reentry)
        durations = [int(frames * rng.uniform(scene.cross_min, scene.cross_max)) for _ in range(n)]
        gaps = [int(rng.integers(max(1, frames // 40), max(2, frames // 12))) for _ in range(n - 1)]
        total = sum(durations) + sum(gaps)
        if total > frames:  # squeeze the crossings to fit the video
            ratio = (frames - sum(gaps)) / max(1, sum(durations))
            durations = [max(10, int(d * ratio)) for d in durations]
            total = sum(durations) + sum(gaps)
        t = int(rng.integers(0, max(0, frames - total) + 1))
        base = min(scene.visits, scene.cameras)
        cams = [int(c) + 1 for c in rng.choice(scene.cameras, size=base, replace=False)]
        while len(cams) < n:  # re-entry: come back into one of the cameras already visited (not the last)
            cams.append(int(rng.choice(cams[:-1] if len(cams) > 1 else cams)))
        for j in range(n):
            visits.append({"pid": pid, "cam": cams[j], "start": t, "duration": durations[j],
                           "rightwards": bool(rng.random() < 0.5), "ground": float(rng.uniform(0.78, 0.97))})
            t += durations[j] + (gaps[j] if j < n - 1 else 0)
    _group(visits, scene, rng)
    return visits


def _group(visits: List[Dict[str, Any]], scene: Scene, rng: np.random.Generator) -> None:
    """Crowds: move a fraction of visits to start with another visit of the same camera, opposite way."""
    for v in visits:
        if rng.random() >= scene.crowd:
            continue
        mine = [(k, u) for k, u in enumerate(visits) if u is not v and u["cam"] == v["cam"] and u["pid"] != v["pid"]]
        same = [u for u in visits if u["pid"] == v["pid"] and u is not v]
        for _, other in sorted(mine, key=lambda ku: abs(ku[1]["start"] - v["start"])):
            start = min(max(0, other["start"] + int(rng.integers(-3, 4))), scene.frames - v["duration"])
            end = start + v["duration"]
            if all(end + 2 <= u["start"] or u["start"] + u["duration"] + 2 <= start for u in same):
                v["start"], v["rightwards"] = start, not other["rightwards"]
                break


def _crossings(seed: int, num_people: int, num_cams: int, frames: int) -> List[Dict[str, Any]]:
    """The original schedule (scene ``easy``): two crossings in two different cameras."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 5]))
    duration = max(10, int(frames * 0.38))
    gap = max(1, frames // 20)
    visits = []
    for i in range(num_people):
        first, second = (int(c) + 1 for c in rng.choice(num_cams, size=2, replace=False))
        start = int(rng.integers(0, max(1, frames - 2 * duration - gap) + 1))
        for j, cam in enumerate((first, second)):
            visits.append({
                "pid": i + 1, "cam": cam, "start": start + j * (duration + gap), "duration": duration,
                "rightwards": bool((i + j) % 2 == 0), "ground": float(rng.uniform(0.78, 0.97)),
            })
    return visits
