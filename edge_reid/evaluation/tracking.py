"""Multi-camera tracking metrics through TrackEval (the HOTA authors' evaluation code, PyPI ``trackeval``).

Ground truth: a folder with one MOTChallenge sequence per camera, ``<gt>/<camera>/gt/gt.txt``
and ``<gt>/<camera>/seqinfo.ini`` (what the synthetic scenes write; see
:mod:`edge_reid.data.synthetic.mot`), the ids being global person ids. Predictions: per camera,
boxes with the system's per-camera track id and its global identity.

- Per camera: HOTA, DetA, AssA, MOTA, IDF1 ... of the per-camera track ids (TrackEval's
  ``MotChallenge2DBox`` reads both files; HOTA averaged over IoU 0.05..0.95, CLEAR and Identity at 0.5).
- Cross-camera: the cameras' sequences are concatenated in camera order (frames offset by the
  lengths before), ground truth with its global ids, predictions with the global identity,
  and the same metrics computed on that one sequence; its IDF1 is the cross-camera IDF1
  (a person must carry one identity in every camera to score). A box with no identity yet
  keeps an id of its own (per camera and track), so it counts as a separate person.
This module prepares files and reads TrackEval's results; the metrics are TrackEval's.
"""

from __future__ import annotations

import configparser
import contextlib
import io
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from edge_reid.errors import InvalidInputError, MissingDependencyError

TRACKER = "edge-reid"
CROSS_CAMERA = "all_cameras"
UNKNOWN_ID_BASE = 1_000_000  # ids of boxes without an identity: base + camera * 10_000 + track
#: (metric family, field, name in our results); HOTA-family arrays are averaged over the IoU thresholds
FIELDS = (("HOTA", "HOTA", "HOTA"), ("HOTA", "DetA", "DetA"), ("HOTA", "AssA", "AssA"),
          ("Identity", "IDF1", "IDF1"), ("Identity", "IDP", "IDP"), ("Identity", "IDR", "IDR"),
          ("CLEAR", "MOTA", "MOTA"), ("CLEAR", "MOTP", "MOTP"), ("CLEAR", "IDSW", "IDSW"),
          ("CLEAR", "CLR_FP", "FP"), ("CLEAR", "CLR_FN", "FN"), ("Count", "GT_IDs", "GT_IDs"),
          ("Count", "IDs", "pred_IDs"))

#: one prediction: (camera, frame 0-based, track id, identity or None, box x1 y1 x2 y2, confidence)
Prediction = Tuple[str, int, int, Any, Sequence[float], float]


def read_sequences(gt_folder: Any) -> Dict[str, int]:
    """Camera name -> frames of every sequence in a MOTChallenge ground-truth folder."""
    root = Path(gt_folder).expanduser()
    seqs: Dict[str, int] = {}
    for ini in sorted(root.glob("*/seqinfo.ini")):
        if not (ini.parent / "gt" / "gt.txt").is_file():
            continue
        parser = configparser.ConfigParser()
        try:
            parser.read(ini)
            seqs[ini.parent.name] = int(parser["Sequence"]["seqLength"])
        except (KeyError, ValueError, configparser.Error):
            raise InvalidInputError(f"{ini} has no valid [Sequence] seqLength.") from None
    if not seqs:
        raise InvalidInputError(f"{root} holds no MOTChallenge sequence (<camera>/gt/gt.txt and <camera>/seqinfo.ini).")
    return seqs


def check_match(sequences: Mapping[str, int], frames: Mapping[str, Optional[int]]) -> None:
    """Raise one sentence when the videos' camera names or frame counts differ from the ground truth.

    A frame count of None (a live source, a container that does not say) is not checked.
    """
    missing = sorted(set(frames) - set(sequences))
    if missing:
        raise InvalidInputError(f"The ground truth has no sequence for camera(s) {', '.join(missing)} "
                                f"(it has {', '.join(sorted(sequences))}).")
    wrong = [f"{c}: {frames[c]} frames, ground truth {sequences[c]}" for c in sorted(frames)
             if frames[c] is not None and frames[c] != sequences[c]]
    if wrong:
        raise InvalidInputError(f"The videos do not match the ground truth's frame counts ({'; '.join(wrong)}).")


def _trackeval() -> Any:
    try:
        import trackeval
    except ImportError:
        raise MissingDependencyError("Tracking metrics need TrackEval; install it with 'pip install trackeval'.") from None
    return trackeval


def _line(frame: int, ident: int, box: Sequence[float], conf: float) -> str:
    x1, y1, x2, y2 = (float(v) for v in box)
    return f"{frame},{ident},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{conf:.4f},-1,-1,-1\n"


def write_predictions(folder: Path, cameras: Sequence[str], predictions: Iterable[Prediction]) -> Dict[str, List]:
    """Per-camera MOTChallenge tracker files (track ids) under ``folder/<TRACKER>/data``; returns rows per camera."""
    rows: Dict[str, List] = {c: [] for c in cameras}
    for camera, frame, track, identity, box, conf in predictions:
        if camera in rows:
            rows[camera].append((int(frame), int(track), identity, box, float(conf)))
    data = Path(folder) / TRACKER / "data"
    data.mkdir(parents=True, exist_ok=True)
    for camera in cameras:
        ordered = sorted(rows[camera], key=lambda r: r[:2])
        (data / f"{camera}.txt").write_text("".join(_line(f + 1, t + 1, b, c) for f, t, _, b, c in ordered))
    return rows


def write_cross_camera(gt_folder: Path, work: Path, sequences: Mapping[str, int], cameras: Sequence[str],
                       rows: Mapping[str, List]) -> None:
    """The concatenated sequence: ground truth (global ids) under ``work/gt``, identities under ``work/pred``."""
    gt_lines, pred_lines, offset = [], [], 0
    for k, camera in enumerate(cameras):
        for line in (Path(gt_folder) / camera / "gt" / "gt.txt").read_text().splitlines():
            if line.strip():
                head, rest = line.split(",", 1)
                gt_lines.append(f"{int(float(head)) + offset},{rest}\n")
        taken = set()  # an identity held by two tracks in one frame stays with the older track
        for frame, track, identity, box, conf in sorted(rows[camera], key=lambda r: r[:2]):
            if identity is not None and (frame, identity) not in taken:
                taken.add((frame, identity))
                ident = int(identity) + 1
            else:
                ident = UNKNOWN_ID_BASE + k * 10_000 + int(track)
            pred_lines.append(_line(frame + 1 + offset, ident, box, conf))
        offset += int(sequences[camera])
    seq = work / "gt" / CROSS_CAMERA
    (seq / "gt").mkdir(parents=True, exist_ok=True)
    (seq / "gt" / "gt.txt").write_text("".join(gt_lines))
    (seq / "seqinfo.ini").write_text(f"[Sequence]\nname={CROSS_CAMERA}\nseqLength={offset}\n")
    data = work / "pred" / TRACKER / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / f"{CROSS_CAMERA}.txt").write_text("".join(pred_lines))


def run_trackeval(gt_folder: Path, pred_folder: Path, seqs: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """TrackEval's HOTA, CLEAR and Identity on ``seqs`` (MOTChallenge files, its own reader).

    Returns one row per sequence and ``COMBINED`` (TrackEval's combination over the sequences).
    """
    trackeval = _trackeval()
    eval_config = {"USE_PARALLEL": False, "BREAK_ON_ERROR": True, "LOG_ON_ERROR": None, "PRINT_RESULTS": False,
                   "PRINT_CONFIG": False, "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False,
                   "PLOT_CURVES": False, "OUTPUT_EMPTY_CLASSES": False}
    data_config = {"GT_FOLDER": str(gt_folder), "TRACKERS_FOLDER": str(pred_folder), "OUTPUT_FOLDER": str(pred_folder),
                   "TRACKERS_TO_EVAL": [TRACKER], "SKIP_SPLIT_FOL": True, "PRINT_CONFIG": False,
                   "SEQ_INFO": {s: None for s in seqs}, "BENCHMARK": "MOT17"}
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            evaluator = trackeval.Evaluator(eval_config)
            dataset = trackeval.datasets.MotChallenge2DBox(data_config)
            metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()]
            results, _ = evaluator.evaluate([dataset], metrics)
    except trackeval.utils.TrackEvalException as exc:
        raise InvalidInputError(f"TrackEval cannot read the ground truth or predictions: {exc}") from None
    per_seq = results["MotChallenge2DBox"][TRACKER]
    out = {}
    for seq, by_class in per_seq.items():
        res = by_class["pedestrian"]
        row = {}
        for family, field, name in FIELDS:
            value = res[family][field]
            row[name] = float(value.mean()) if hasattr(value, "mean") else float(value)
        out["COMBINED" if seq == "COMBINED_SEQ" else seq] = row
    return out


def evaluate_tracking(gt_folder: Any, predictions: Iterable[Prediction], frames: Mapping[str, int],
                      work: Any) -> Dict[str, Any]:
    """Check the videos against the ground truth, then per-camera and cross-camera metrics (see the module doc).

    ``frames``: camera -> frames the run read; only those cameras are evaluated. ``work`` gets the files.
    """
    gt_folder, work = Path(gt_folder).expanduser(), Path(work)
    sequences = read_sequences(gt_folder)
    check_match(sequences, frames)
    cameras = sorted(frames)
    rows = write_predictions(work / "pred", cameras, predictions)
    per_camera = run_trackeval(gt_folder, work / "pred", cameras)
    write_cross_camera(gt_folder, work / "cross", sequences, cameras, rows)
    cross = run_trackeval(work / "cross" / "gt", work / "cross" / "pred", [CROSS_CAMERA])[CROSS_CAMERA]
    combined = per_camera.pop("COMBINED", None)
    return {"library": f"trackeval {getattr(_trackeval(), '__version__', '?')}", "ground_truth": str(gt_folder),
            "cameras": cameras, "per_camera": per_camera, "all_cameras_per_camera_ids": combined,
            "cross_camera": cross}


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """A plain-text table: one row per camera, the cameras combined, and the cross-camera row."""
    cols = ("HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW", "FP", "FN")
    lines = [f"{'':<22}" + "".join(f"{c:>8}" for c in cols)]

    def row(name: str, r: Mapping[str, float]) -> str:
        cells = [f"{r[c]:8.0f}" if c in ("IDSW", "FP", "FN") else f"{100 * r[c]:8.1f}" for c in cols]
        return f"{name:<22}" + "".join(cells)

    for camera, r in metrics["per_camera"].items():
        lines.append(row(camera, r))
    if metrics.get("all_cameras_per_camera_ids"):
        lines.append(row("cameras (track ids)", metrics["all_cameras_per_camera_ids"]))
    lines.append(row("cross-camera (global)", metrics["cross_camera"]))
    return "\n".join(lines)
