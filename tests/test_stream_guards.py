"""Issue 18, stream side: two writers of one --gallery (item 1, two real processes), unwritable
--gallery/--out found before any work (item 6), flag ranges (item 14), enrolment sub-folders added
after a gallery was saved (item 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_reid.cli import main
from test_stream_gallery import _person, tiny_embedder

REPO = Path(__file__).resolve().parents[1]


def _video(path: Path, n: int, colour) -> Path:
    """A person-shaped block crossing a textured background again and again (40-frame cycle)."""
    rng = np.random.default_rng(1)
    background = rng.integers(50, 100, size=(240, 320, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for t in range(n):
        frame, k = background.copy(), t % 40
        if 4 <= k < 36:
            x = 20 + 8 * (k - 4)
            frame[60:180, x:x + 40] = colour
            frame[60:120, x:x + 40] = colour[::-1]
        writer.write(frame)
    writer.release()
    return path


def _stream(model: Path, source: str, gallery: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "edge_reid.cli", "stream", "--model", str(model), "--source", source,
           "--gallery", str(gallery), "--out", str(out), "--threshold", "0.95"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _identity_sources(gallery: Path):
    return sorted(i["source"].split("/")[0] for i in json.loads((gallery / "gallery.json").read_text())["identities"])


def test_a_second_writer_of_the_same_gallery_is_refused_and_nothing_is_lost(tmp_path):
    """Two real stream processes on one --gallery: the second is refused naming the first's pid while
    the first runs; run again afterwards it loads the saved gallery and adds to it."""
    model = tmp_path / "tiny.onnx"
    tiny_embedder(model)
    long_video = _video(tmp_path / "a.mp4", 500, (40, 160, 230))
    short_video = _video(tmp_path / "b.mp4", 80, (230, 60, 40))
    gallery = tmp_path / "gallery"
    first = _stream(model, f"a={long_video}", gallery, tmp_path / "out_a")
    line = first.stdout.readline()  # printed once the first run holds the gallery and has loaded its model
    assert line.startswith("Embedder:"), line + first.stderr.read()
    second = _stream(model, f"b={short_video}", gallery, tmp_path / "out_b")
    _, err = second.communicate(timeout=300)
    assert first.poll() is None, "the first run ended before the second started: the test did not overlap them"
    assert second.returncode == 2, err
    assert f"is in use by another edge-reid process (pid {first.pid}" in err and "Traceback" not in err
    first.communicate(timeout=300)
    assert first.returncode == 0
    assert _identity_sources(gallery) == ["track:a"]
    again = _stream(model, f"b={short_video}", gallery, tmp_path / "out_b2")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "Loaded a gallery of 1 identities" in out
    assert _identity_sources(gallery) == ["track:a", "track:b"]  # both writers' identities kept
    assert not (gallery / ".edge-reid.lock").exists()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    from edge_reid.utils.lock import folder_lock

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from edge_reid.utils.lock import folder_lock\n"
                               f"with folder_lock({str(tmp_path)!r}, 'x'):\n print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(Exception, match=f"pid {holder.pid}"):
        with folder_lock(tmp_path, "The folder"):
            pass
    holder.kill()
    holder.wait()
    with folder_lock(tmp_path, "The folder"):  # the kernel released the dead holder's lock
        pass


def _refused(capsys, argv, message):
    started = time.perf_counter()
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err, captured.err
    assert "Embedder:" not in captured.out  # refused before the model was even loaded
    return time.perf_counter() - started


def test_unwritable_out_or_gallery_is_refused_before_starting(tmp_path, capsys):
    model = tmp_path / "tiny.onnx"
    tiny_embedder(model)
    video = _video(tmp_path / "a.mp4", 40, (40, 160, 230))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    base = ["stream", "--model", str(model), "--source", f"a={video}"]
    _refused(capsys, base + ["--out", str(blocker / "out"), "--gallery", str(tmp_path / "g")], "--out")
    _refused(capsys, base + ["--out", str(tmp_path / "o"), "--gallery", str(blocker / "g")], "--gallery")
    assert not (tmp_path / "g").exists() or not any((tmp_path / "g").iterdir())


def test_read_only_gallery_folder_is_refused_before_starting(tmp_path):
    """A read-only file system (a real one: tmpfs mounted read-only in a user namespace)."""
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unprivileged user/mount namespaces are not available here to mount a read-only tmpfs")
    model = tmp_path / "tiny.onnx"
    tiny_embedder(model)
    video = _video(tmp_path / "a.mp4", 40, (40, 160, 230))
    ro = tmp_path / "ro"
    ro.mkdir()
    script = (f"mount -t tmpfs -o ro,size=1m none {ro} && exec {sys.executable} -m edge_reid.cli stream "
              f"--model {model} --source a={video} --out {tmp_path / 'o'} --gallery {ro / 'g'}")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "--gallery" in done.stderr and "Read-only file system" in done.stderr and "Traceback" not in done.stderr
    assert "Embedder:" not in done.stdout


@pytest.mark.parametrize("flags,message", [
    (["--threshold", "nan"], "--threshold must be a cosine similarity from 0 to 1; got nan"),
    (["--threshold", "-1"], "got -1.0"), (["--threshold", "2"], "got 2.0"),
    (["--embed-interval", "0"], "--embed-interval must be at least 1; got 0"),
    (["--embed-interval", "-3"], "--embed-interval must be at least 1; got -3"),
    (["--max-frames", "0"], "--max-frames must be at least 1"),
    (["--tracker", "sort"], "Unknown tracker 'sort'; known trackers: appearance, bytetrack"),
])
def test_stream_flags_out_of_range_are_one_sentence(tmp_path, capsys, flags, message):
    model = tmp_path / "tiny.onnx"
    tiny_embedder(model)
    video = _video(tmp_path / "a.mp4", 40, (40, 160, 230))
    _refused(capsys, ["stream", "--model", str(model), "--source", f"a={video}", "--out", str(tmp_path / "o"),
                      "--gallery", str(tmp_path / "g")] + flags, message)
    assert not (tmp_path / "g" / "gallery.json").exists()


def test_enrolment_folders_added_after_saving_are_picked_up(tmp_path):
    from edge_reid.stream.command import open_gallery

    emb = tiny_embedder(tmp_path / "tiny.onnx")
    folder = tmp_path / "people"
    people = {"alice": ((200, 40, 40), (30, 30, 30)), "bob": ((40, 200, 40), (220, 220, 220))}
    (folder / "alice").mkdir(parents=True)
    cv2.imwrite(str(folder / "alice" / "0.png"), _person(*people["alice"]))
    said = []
    open_gallery(folder, emb, None, say=said.append).save(folder)
    (folder / "bob").mkdir()
    cv2.imwrite(str(folder / "bob" / "0.png"), _person(*people["bob"]))
    gallery = open_gallery(folder, emb, None, say=said.append)
    assert sorted(i.name for i in gallery.identities.values()) == ["alice", "bob"]
    assert "sub-folders added since the gallery was saved: bob" in said[-1]
    ident, _ = gallery.match(emb.embed([_person(*people["bob"])]))
    assert gallery.identities[ident].name == "bob"
    gallery.save(folder)
    assert len(open_gallery(folder, emb, None, say=said.append)) == 2  # enrolled once, not again
