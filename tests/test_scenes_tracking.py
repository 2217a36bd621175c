"""Synthetic scenes, their MOTChallenge ground truth read by TrackEval, the HOG detector and ``stream --eval``."""

from __future__ import annotations

import collections
import dataclasses
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_reid.cli import main
from edge_reid.data.synthetic import Scene, load_scene, sample_identity, scene_identities, write_scene_video
from edge_reid.data.synthetic.identity import SCENE_PEOPLE
from edge_reid.data.synthetic.scene import plan_visits
from edge_reid.errors import InvalidInputError

pytest.importorskip("trackeval", reason="tracking metrics need TrackEval ('pip install trackeval')")

TINY = Scene(name="tiny", people=4, cameras=2, frames=30, size=(320, 180), schedule="visits", reentry=1.0,
             lookalike_pairs=1, occluders=2, crowd=0.5, colour_cast=1.5, cross_min=0.3, cross_max=0.4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_scene_video(tmp_path_factory.mktemp("scene") / "tiny", TINY)


def _gt_predictions(folder: Path):
    """The ground truth itself as predictions (boxes the evaluation considers), track id = identity = pid."""
    preds = []
    for camera in ("cam1", "cam2"):
        for line in (folder / "mot" / camera / "gt" / "gt.txt").read_text().splitlines():
            f, pid, x, y, w, h, consider = line.split(",")[:7]
            if consider == "1":
                box = [float(x), float(y), float(x) + float(w), float(y) + float(h)]
                preds.append((camera, int(f) - 1, int(pid), int(pid), box, 1.0))
    return preds


def test_named_scenes_meet_their_description() -> None:
    default, hard = load_scene("default"), load_scene("hard")
    assert default.people >= 10 and default.cameras == 4 and default.lookalike_pairs == 2 and default.occluders > 0
    assert hard.people >= 20
    visits = plan_visits(default)
    by_pid = collections.defaultdict(list)
    for v in visits:
        by_pid[v["pid"]].append(v)
    for vs in by_pid.values():  # a person is never in two places at once
        vs.sort(key=lambda v: v["start"])
        assert all(a["start"] + a["duration"] <= b["start"] for a, b in zip(vs, vs[1:]))
        assert all(0 <= v["start"] and v["start"] + v["duration"] <= default.frames for v in vs)
    reentries = [p for p, vs in by_pid.items() if len({v["cam"] for v in vs}) < len(vs)]
    assert reentries, "some people must leave a camera and come back into it"
    hard_visits = plan_visits(hard)
    together = sum(1 for a in hard_visits for b in hard_visits if a is not b and a["cam"] == b["cam"]
                   and abs(a["start"] - b["start"]) <= 3 and a["rightwards"] != b["rightwards"])
    assert together >= 10, "the hard scene has crowds crossing each other"
    easy = load_scene("easy")
    assert (easy.people, easy.cameras, easy.frames, easy.schedule) == (4, 2, 200, "crossings")


def test_lookalikes_differ_in_one_detail_and_scenes_load_from_yaml(tmp_path: Path) -> None:
    idents = scene_identities(TINY)
    a, b = idents[1].to_dict(), idents[2].to_dict()
    assert sorted(k for k in a if a[k] != b[k] and k != "pid") == ["backpack"]
    assert idents[3] == sample_identity(TINY.seed, 3, SCENE_PEOPLE)
    # a scene's people are not the synthetic dataset's (whose first half trains the embedders)
    dataset_people = {dataclasses.replace(sample_identity(TINY.seed, pid), pid=0) for pid in range(1, 401)}
    assert not any(dataclasses.replace(i, pid=0) in dataset_people for i in idents.values())
    path = tmp_path / "mine.yaml"
    path.write_text("people: 6\ncameras: 3\nframes: 40\nschedule: visits\nsize: [320, 180]\n")
    scene = load_scene(path)
    assert (scene.name, scene.people, scene.cameras, scene.size) == ("mine", 6, 3, (320, 180))
    path.write_text("people: 6\nwalkers: 3\n")
    with pytest.raises(InvalidInputError, match="walkers"):
        load_scene(path)
    with pytest.raises(InvalidInputError):
        dataclasses.replace(TINY, lookalike_pairs=3)


def test_ground_truth_parses_in_trackeval_and_scores_itself_perfectly(tiny: Path, tmp_path: Path) -> None:
    import trackeval

    from edge_reid.evaluation.tracking import evaluate_tracking, read_sequences

    dataset = trackeval.datasets.MotChallenge2DBox({
        "GT_FOLDER": str(tiny / "mot"), "TRACKERS_FOLDER": str(tmp_path), "TRACKERS_TO_EVAL": [],
        "SKIP_SPLIT_FOL": True, "SEQ_INFO": {"cam1": None, "cam2": None}, "PRINT_CONFIG": False})
    raw = dataset._load_raw_file(None, "cam1", is_gt=True)  # the library's own reader, unchanged files
    assert raw["num_timesteps"] == TINY.frames and sum(len(i) for i in raw["gt_ids"]) > 0
    assert set(np.concatenate(raw["gt_ids"])) <= set(range(1, TINY.people + 1))
    assert read_sequences(tiny / "mot") == {"cam1": 30, "cam2": 30}

    preds = _gt_predictions(tiny)
    perfect = evaluate_tracking(tiny / "mot", preds, {"cam1": 30, "cam2": 30}, tmp_path / "a")
    for row in list(perfect["per_camera"].values()) + [perfect["cross_camera"]]:
        assert row["HOTA"] == pytest.approx(1.0) and row["IDF1"] == pytest.approx(1.0) and row["MOTA"] == 1.0
    # same tracks per camera, but camera 2 gives everyone another person's identity: only cross-camera drops
    swapped = [(c, f, t, (i % TINY.people) + 1 if c == "cam2" else i, b, s) for c, f, t, i, b, s in preds]
    result = evaluate_tracking(tiny / "mot", swapped, {"cam1": 30, "cam2": 30}, tmp_path / "b")
    assert result["per_camera"]["cam2"]["IDF1"] == pytest.approx(1.0)
    cross = result["cross_camera"]
    assert cross["IDF1"] < 0.8 and cross["FP"] == 0 and cross["FN"] == 0 and cross["IDSW"] > 0
    dropped = [p for p in preds if p[0] == "cam1" or p[1] % 2 == 0]  # half of camera 2's boxes missing
    result = evaluate_tracking(tiny / "mot", dropped, {"cam1": 30, "cam2": 30}, tmp_path / "c")
    assert result["per_camera"]["cam1"]["MOTA"] == 1.0 and result["per_camera"]["cam2"]["FN"] > 0


def test_scene_video_matches_its_ground_truth(tiny: Path) -> None:
    cap = cv2.VideoCapture(str(tiny / "cam1.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == TINY.frames
    cap.release()
    lines = (tiny / "mot" / "cam1" / "gt" / "gt.txt").read_text().splitlines()
    rows = np.array([[float(v) for v in line.split(",")] for line in lines])
    assert rows[:, 0].min() >= 1 and rows[:, 0].max() <= TINY.frames and set(rows[:, 7]) == {1.0}
    assert (rows[:, 2] >= 0).all() and (rows[:, 2] + rows[:, 4] <= 320).all() and (rows[:, 5] > 0).all()
    assert ((rows[:, 8] < 0.2) == (rows[:, 6] == 0)).all(), "hidden people are marked as not considered"


def test_stream_eval_refuses_ground_truth_that_does_not_match(tiny: Path, tmp_path: Path, capsys) -> None:
    gt = tmp_path / "gt"
    shutil.copytree(tiny / "mot", gt)
    ini = gt / "cam2" / "seqinfo.ini"
    ini.write_text(ini.read_text().replace("seqLength=30", "seqLength=25"))
    sources = ["--source", f"cam1={tiny / 'cam1.mp4'}", "--source", f"cam2={tiny / 'cam2.mp4'}"]
    model = ["--model", str(tiny / "cam1.mp4"), "--out", str(tmp_path / "out")]  # refused before the model loads
    assert main(["stream", "--eval", str(gt), *sources, *model]) == 2
    err = capsys.readouterr().err
    assert "frame counts (cam2: 30 frames, ground truth 25)" in err and "Traceback" not in err
    named = ["--source", f"lobby={tiny / 'cam1.mp4'}", "--source", f"cam2={tiny / 'cam2.mp4'}"]
    assert main(["stream", "--eval", str(tiny), *named, *model]) == 2
    assert "no sequence for camera(s) lobby" in capsys.readouterr().err
    assert main(["stream", "--eval", str(tiny), "--max-frames", "5", *model]) == 2
    assert main(["stream", "--eval", "crowded", *model]) == 2
    assert "neither a scene" in capsys.readouterr().err


def test_hog_detector_finds_a_standing_person_and_nothing_on_an_empty_scene() -> None:
    from edge_reid.data.synthetic.render import draw_scaled
    from edge_reid.stream.detectors import DETECTORS, build_detector

    assert "hog" in DETECTORS
    frame = np.full((240, 320, 3), 0.55, np.float32)
    person, alpha = draw_scaled(sample_identity(0, 2), "front", 150, phase=0.0)
    ph, pw = alpha.shape
    x, y = 160 - pw // 2, 200 - ph
    a = alpha.astype(np.float32)[..., None] / 255.0
    empty = cv2.cvtColor((frame * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    frame[y:y + ph, x:x + pw] = frame[y:y + ph, x:x + pw] * (1 - a) + person * a
    image = cv2.cvtColor((frame * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    detector = build_detector("hog")
    found = detector.detect(image)
    ys, xs = np.nonzero(alpha > 127)
    truth = np.array([x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1], np.float32)
    assert len(found) == 1 and 0.3 <= found.scores[0] <= 1.0
    b = found.boxes[0]
    inter = max(0, min(b[2], truth[2]) - max(b[0], truth[0])) * max(0, min(b[3], truth[3]) - max(b[1], truth[1]))
    union = (b[2] - b[0]) * (b[3] - b[1]) + (truth[2] - truth[0]) * (truth[3] - truth[1]) - inter
    assert inter / union >= 0.5
    assert len(detector.detect(empty)) == 0


def test_a_thermal_scene_camera_is_grey_and_streamed_as_infrared(tmp_path: Path, capsys) -> None:
    from test_stream_infrared import two_stream_embedder

    from edge_reid.stream.evaluate import EvalPlan, write_enrolment

    scene = dataclasses.replace(TINY, name="night", lookalike_pairs=0, infrared=(2,))
    assert "infrared" not in TINY.to_dict() and scene.key() != TINY.key()  # old scenes keep their cache keys
    folder = write_scene_video(tmp_path / "night", scene)
    spread = {}
    for camera in ("cam1", "cam2"):
        cap = cv2.VideoCapture(str(folder / f"{camera}.mp4"))
        frames = [cap.read()[1] for _ in range(TINY.frames)]
        cap.release()
        spread[camera] = float(np.mean([np.ptp(f.astype(np.int16), axis=2).mean() for f in frames]))
    assert spread["cam2"] < 3 < spread["cam1"], spread  # the thermal camera is grey; the visible one in colour
    assert EvalPlan("night", folder / "mot", folder).infrared == ["cam2"]
    write_enrolment(folder, scene)
    model = two_stream_embedder(tmp_path / "two.onnx").path
    out = tmp_path / "out"
    assert main(["stream", "--eval", str(folder), "--model", str(model), "--out", str(out), "--threads", "1"]) == 0
    assert "Infrared camera(s) cam2: their crops take the model's infrared path." in capsys.readouterr().out
    assert (out / "metrics.json").is_file()
    visible_only = ["--source", f"cam1={folder / 'cam1.mp4'}", "--model", str(model), "--threads", "1"]
    assert main(["stream", "--eval", str(folder), *visible_only, "--out", str(tmp_path / "o1")]) == 0
    assert "Infrared camera(s)" not in capsys.readouterr().out  # the thermal camera is not played
    with_cam1 = [*visible_only, "--infrared", "cam1", "--out", str(tmp_path / "o2")]
    assert main(["stream", "--eval", str(folder), *with_cam1]) == 0
    assert "Infrared camera(s) cam1: their" in capsys.readouterr().out  # --infrared adds to the scene's own
    with pytest.raises(InvalidInputError, match="infrared cameras among 1-2"):
        dataclasses.replace(TINY, infrared=(3,))
    path = tmp_path / "ir.yaml"
    path.write_text("people: 4\ncameras: 3\ninfrared: [3, 2]\n")
    assert load_scene(path).infrared == (2, 3)
    for bad in ("night", "[2.5]", "[true]", "'23'"):
        path.write_text(f"people: 4\ncameras: 3\ninfrared: {bad}\n")
        with pytest.raises(InvalidInputError, match="infrared cameras as a list of integers"):
            load_scene(path)
