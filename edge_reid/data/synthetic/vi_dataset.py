"""The synthetic visible-infrared set, written in the SYSU-MM01 or the RegDB layout.

The same rendered identities are seen by visible cameras (the visible renderer) and infrared
ones (:mod:`edge_reid.data.synthetic.infrared`). SYSU-MM01 layout: cameras 1, 2, 4, 5 visible,
3 and 6 infrared; ``cam<c>/<pid:04d>/<k:04d>.jpg``, ``exp/{train,val,test,available}_id.txt``;
every id is seen by 2-4 visible and 1-2 infrared cameras. RegDB layout: one visible and one
thermal camera, ``Visible/<pid>/*.bmp``, ``Thermal/<pid>/*.bmp`` and ten seeded half/half
splits in ``idx/``. Person masks go under ``masks/`` with the image's relative path (``.png``).
Every image has its own generator from (seed, pid, camera, index): bytes depend on the
parameters only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import cv2
import numpy as np

from edge_reid.data.synthetic.cameras import make_camera
from edge_reid.data.synthetic.identity import sample_identity
from edge_reid.data.synthetic.infrared import render_infrared_crop, thermal_scene
from edge_reid.data.synthetic.render import CROP_SIZE, render_crop, scene_for
from edge_reid.data.synthetic.writer import MANIFEST, staged_folder
from edge_reid.errors import InvalidInputError
from edge_reid.utils.atomic import atomic_write_json

VI_GENERATOR_VERSION = "1"
LAYOUTS = ("sysu", "regdb")
SYSU_VISIBLE, SYSU_INFRARED = (1, 2, 4, 5), (3, 6)


def default_vi_params(layout: str = "sysu") -> Dict[str, Any]:
    """The embedded default of a layout (SYSU: 160 ids, about 2,700 images; RegDB: 80 ids x 6 + 6)."""
    if layout == "regdb":
        return {"layout": "regdb", "num_ids": 80, "seed": 0, "images_per_id_per_cam": 6}
    return {"layout": "sysu", "num_ids": 160, "seed": 0, "images_per_id_per_cam": 4}


def vi_params_key(params: Dict[str, Any]) -> str:
    """A short key of the parameters and generator version (the cache folder name)."""
    text = json.dumps({"vi_version": VI_GENERATOR_VERSION, **params}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), 11, *[int(k) for k in keys]]))


class _Renderer:
    """Cameras and scenes of one set; ``crop(pid, cam, k)`` in the camera's modality."""

    def __init__(self, seed: int, visible: Tuple[int, ...], infrared: Tuple[int, ...]) -> None:
        self.seed, self.infrared = seed, set(infrared)
        self.cams = {c: make_camera(seed, c) for c in (*visible, *infrared)}
        self.scenes = {c: thermal_scene(cam) if c in self.infrared else scene_for(cam) for c, cam in self.cams.items()}

    def crop(self, pid: int, cam: int, k: int) -> Tuple[np.ndarray, np.ndarray]:
        ident = sample_identity(self.seed, pid)
        render = render_infrared_crop if cam in self.infrared else render_crop
        return render(ident, self.cams[cam], self.scenes[cam], _rng(self.seed, pid, cam, k))


def _save(root: Path, rel: str, image: np.ndarray, mask: np.ndarray) -> None:
    path, mask_path = root / rel, (root / "masks" / rel).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(mask_path), mask)


def _write_sysu(root: Path, num_ids: int, seed: int, per_cam: int) -> Dict[str, Any]:
    renderer = _Renderer(seed, SYSU_VISIBLE, SYSU_INFRARED)
    num_test = max(1, num_ids // 4)
    num_val = max(1, (num_ids - num_test) // 5)
    num_train = num_ids - num_test - num_val
    if num_train < 1:
        raise InvalidInputError(f"The SYSU-layout synthetic set needs at least 3 identities, got {num_ids}.")
    counts = {"visible": 0, "infrared": 0}
    for pid in range(1, num_ids + 1):
        prng = _rng(seed, pid)
        vis = sorted(int(c) for c in prng.choice(SYSU_VISIBLE, size=int(prng.integers(2, 5)), replace=False))
        ir = sorted(int(c) for c in prng.choice(SYSU_INFRARED, size=int(prng.integers(1, 3)), replace=False))
        for cam in vis + ir:
            for k in range(per_cam):
                image, mask = renderer.crop(pid, cam, k)
                _save(root, f"cam{cam}/{pid:04d}/{k + 1:04d}.jpg", image, mask)
                counts["infrared" if cam in SYSU_INFRARED else "visible"] += 1
    ids = list(range(1, num_ids + 1))
    exp = root / "exp"
    exp.mkdir()
    for name, part in (("train", ids[:num_train]), ("val", ids[num_train:num_train + num_val]),
                       ("test", ids[num_train + num_val:]), ("available", ids)):
        (exp / f"{name}_id.txt").write_text(",".join(str(i) for i in part) + "\n")
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir(exist_ok=True)
    return {**counts, "train_ids": num_train, "val_ids": num_val, "test_ids": num_test}


def _write_regdb(root: Path, num_ids: int, seed: int, per_cam: int) -> Dict[str, Any]:
    if num_ids < 2:
        raise InvalidInputError(f"The RegDB-layout synthetic set needs at least 2 identities, got {num_ids}.")
    renderer = _Renderer(seed, (1,), (2,))
    files: Dict[Tuple[int, str], List[str]] = {}
    for pid in range(1, num_ids + 1):
        for cam, folder, kind in ((1, "Visible", "visible"), (2, "Thermal", "thermal")):
            names = []
            for k in range(per_cam):
                rel = f"{folder}/{pid}/synthetic_{kind}_{pid * 100 + k:05d}.bmp"
                image, mask = renderer.crop(pid, cam, k)
                _save(root, rel, image, mask)
                names.append(rel)
            files[(pid, kind)] = names
    idx = root / "idx"
    idx.mkdir()
    half = num_ids // 2
    for split in range(1, 11):
        order = [int(i) + 1 for i in _rng(seed, 0, split).permutation(num_ids)]
        for part, pids in (("train", sorted(order[:half])), ("test", sorted(order[half:]))):
            for kind in ("visible", "thermal"):
                lines = [f"{rel} {label}" for label, pid in enumerate(pids) for rel in files[(pid, kind)]]
                (idx / f"{part}_{kind}_{split}.txt").write_text("\n".join(lines) + "\n")
    return {"visible": num_ids * per_cam, "thermal": num_ids * per_cam, "train_ids": half, "test_ids": num_ids - half}


def generate_vi_dataset(out: Any, layout: str = "sysu", num_ids: int = 160, seed: int = 0,
                        images_per_id_per_cam: int = 4) -> Path:
    """Write the visible-infrared set to ``out`` (new, empty or an earlier synthetic folder)."""
    if layout not in LAYOUTS:
        raise InvalidInputError(f"Unknown visible-infrared layout '{layout}'; choose sysu or regdb.")
    if images_per_id_per_cam < 1:
        raise InvalidInputError(f"Images per identity per camera must be at least 1, got {images_per_id_per_cam}.")
    if num_ids > 9999:
        raise InvalidInputError(f"The layouts hold at most 9999 identities, got {num_ids}.")
    params = {"layout": layout, "num_ids": int(num_ids), "seed": int(seed),
              "images_per_id_per_cam": int(images_per_id_per_cam)}
    out = Path(out).expanduser()
    with staged_folder(out) as root:
        writer = _write_sysu if layout == "sysu" else _write_regdb
        counts = writer(root, int(num_ids), int(seed), int(images_per_id_per_cam))
        atomic_write_json(root / MANIFEST, {
            "generator": "edge_reid.data.synthetic.vi_dataset",
            "generator_version": VI_GENERATOR_VERSION,
            "key": vi_params_key(params),
            "params": params,
            "image_size": list(CROP_SIZE),
            "counts": counts,
            "layout": "SYSU-MM01" if layout == "sysu" else "RegDB",
        })
    return out
