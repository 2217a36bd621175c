"""Ground truth in the MOTChallenge layout: one sequence per camera, global person ids.

``<folder>/<camera>/gt/gt.txt`` holds one line per person per frame,
``frame, id, left, top, width, height, consider, class, visibility`` (frames 1-based, class 1
= pedestrian, ``id`` the global person id shared by all cameras), and
``<folder>/<camera>/seqinfo.ini`` the sequence length, frame size and rate: what TrackEval's
``MotChallenge2DBox`` reads (``SKIP_SPLIT_FOL``, sequences named like the cameras).
A person hidden for more than ``1 - MIN_VISIBLE`` of their body is marked ``consider = 0``
(ignored by the evaluation: neither a miss when not found nor a false positive when found).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, Sequence, Tuple

MOT_FOLDER = "mot"
MIN_VISIBLE = 0.2


def seqinfo_text(name: str, frames: int, size: Tuple[int, int], fps: int) -> str:
    """The ``seqinfo.ini`` of one sequence (``size`` = width, height)."""
    return (f"[Sequence]\nname={name}\nimDir=img1\nframeRate={int(fps)}\nseqLength={int(frames)}\n"
            f"imWidth={int(size[0])}\nimHeight={int(size[1])}\nimExt=.jpg\n")


def mot_line(frame: int, ident: int, box: Sequence[float], consider: int, cls: int, visibility: float) -> str:
    """One MOTChallenge line; ``frame`` is 1-based, ``box`` is x1, y1, x2, y2."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return f"{frame},{ident},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{consider},{cls},{visibility:.3f}\n"


def write_mot_ground_truth(folder: Path, records: Iterable[Dict[str, Any]], cameras: Sequence[str], frames: int,
                           size: Tuple[int, int], fps: int) -> None:
    """Write one sequence per camera from generator records (camera 1-based, frame 0-based, pid, box, visible)."""
    lines: Dict[str, list] = {name: [] for name in cameras}
    for r in records:
        name = cameras[int(r["camera"]) - 1]
        consider = 1 if float(r["visible"]) >= MIN_VISIBLE else 0
        lines[name].append((int(r["frame"]) + 1, int(r["pid"]),
                            mot_line(int(r["frame"]) + 1, int(r["pid"]), r["box"], consider, 1, float(r["visible"]))))
    for name in cameras:
        seq = Path(folder) / name
        (seq / "gt").mkdir(parents=True, exist_ok=True)
        (seq / "gt" / "gt.txt").write_text("".join(text for _, _, text in sorted(lines[name])))
        (seq / "seqinfo.ini").write_text(seqinfo_text(name, frames, size, fps))
