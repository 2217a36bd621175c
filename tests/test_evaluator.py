"""Feature extraction, distances, the Evaluator and the ranked-list picture."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edge_reid.errors import InvalidInputError
from edge_reid.evaluation import Evaluator, compute_distance_matrix, extract_features, save_ranked_lists
from edge_reid.evaluation.visualize import CORRECT_COLOUR, QUERY_COLOUR, WRONG_COLOUR, GridLayout


class ColumnProfile(nn.Module):
    """Eval-mode embedding = L2-normalised mean over rows (a left-right asymmetric profile)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.seen_training: List[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen_training.append(self.training)
        return F.normalize(x.mean(dim=2).flatten(1) * self.scale, dim=1)


def _batches(images: torch.Tensor, pids: List[int], cams: List[int], batch: int = 3):
    """A list of (image, pid, camid, index) batches like a test loader yields."""
    out = []
    for s in range(0, len(images), batch):
        idx = list(range(s, min(s + batch, len(images))))
        out.append((images[idx], torch.tensor([pids[i] for i in idx]), torch.tensor([cams[i] for i in idx]),
                    torch.tensor(idx)))
    return out


def test_extract_features_shapes_order_and_mode_restored() -> None:
    torch.manual_seed(0)
    images = torch.rand(7, 3, 8, 4)
    model = ColumnProfile().train()
    feats, pids, cams, idx = extract_features(model, _batches(images, [1, 1, 2, 2, 3, 3, 0], [0, 1] * 3 + [1]))
    assert feats.dtype == np.float32 and feats.shape == (7, 12)
    np.testing.assert_array_equal(idx, np.arange(7))
    np.testing.assert_array_equal(pids, [1, 1, 2, 2, 3, 3, 0])
    np.testing.assert_allclose(feats, model.eval()(images).detach().numpy(), rtol=1e-6)
    assert model.seen_training[0] is False  # extraction ran in eval mode
    model.train()
    extract_features(model, _batches(images, [0] * 7, [0] * 7))
    assert model.training  # and the caller's mode is restored


def test_flip_averages_the_mirrored_embedding() -> None:
    torch.manual_seed(1)
    images = torch.rand(4, 3, 6, 5)
    model = ColumnProfile()
    plain, *_ = extract_features(model, _batches(images, [0] * 4, [0] * 4))
    flipped, *_ = extract_features(model, _batches(images, [0] * 4, [0] * 4), flip=True)
    mirror, *_ = extract_features(model, _batches(torch.flip(images, dims=[3]), [0] * 4, [0] * 4))
    expected = (plain + mirror) / 2
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(flipped, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(flipped, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(flipped, plain)


def test_distance_matrices_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    qf, gf = rng.normal(size=(5, 8)), rng.normal(size=(7, 8))
    eu = compute_distance_matrix(qf, gf, "euclidean")
    brute = ((qf[:, None] - gf[None]) ** 2).sum(-1)
    np.testing.assert_allclose(eu, brute, rtol=1e-4, atol=1e-4)
    cos = compute_distance_matrix(qf, gf, "cosine")
    qn, gn = qf / np.linalg.norm(qf, axis=1, keepdims=True), gf / np.linalg.norm(gf, axis=1, keepdims=True)
    np.testing.assert_allclose(cos, 1 - qn @ gn.T, rtol=1e-4, atol=1e-5)
    assert eu.dtype == np.float32 and cos.dtype == np.float32
    with pytest.raises(InvalidInputError, match="Unknown distance metric"):
        compute_distance_matrix(qf, gf, "manhattan")
    with pytest.raises(InvalidInputError, match="same width"):
        compute_distance_matrix(qf, gf[:, :3])


def _colour_images(pids: List[int], seed: int) -> torch.Tensor:
    """Images whose left-right colour profile depends on the id, plus a little noise."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(10, 3, 1, 4, generator=gen)
    return torch.stack([base[p].expand(3, 8, 4) for p in pids]) + 0.02 * torch.rand(len(pids), 3, 8, 4, generator=gen)


@pytest.mark.parametrize("rerank", [False, True])
def test_evaluator_scores_a_separable_problem_perfectly(rerank: bool) -> None:
    q_pids, q_cams = [1, 2, 3], [0, 0, 0]
    g_pids, g_cams = [1, 1, 2, 2, 3, 3, 0, 1], [1, 2, 1, 2, 1, 2, 1, 0]  # last: junk for query 0
    q_records = [(f"q{i}.jpg", p, c) for i, (p, c) in enumerate(zip(q_pids, q_cams))]
    g_records = [(f"g{i}.jpg", p, c) for i, (p, c) in enumerate(zip(g_pids, g_cams))]
    evaluator = Evaluator(
        _batches(_colour_images(q_pids, 0), q_pids, q_cams),
        _batches(_colour_images(g_pids, 0), g_pids, g_cams),
        q_records, g_records, flip=True, rerank=rerank,
    )
    result = evaluator.run(ColumnProfile())
    assert result.distmat.shape == (3, 8)
    assert set(result.metrics) == {"rank1", "rank5", "rank10", "rank20", "mAP", "mINP"}
    assert result.metrics["rank1"] == pytest.approx(100.0)
    assert result.metrics["mAP"] == pytest.approx(100.0)
    assert result.gallery_records[3] == g_records[3]
    lines = result.table().splitlines()
    assert lines[0].split()[0] == "Rank-1" and lines[2].split()[0] == "100.00"


def test_evaluator_detects_a_useless_model() -> None:
    # a model that ignores the image: every distance ties, so gallery order decides
    class Constant(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.normalize(torch.ones(x.shape[0], 4), dim=1)

    q_pids, g_pids = [2], [1, 1, 1, 2]
    ev = Evaluator(_batches(torch.rand(1, 3, 4, 4), q_pids, [0]), _batches(torch.rand(4, 3, 4, 4), g_pids, [1] * 4),
                   [("q", 2, 0)], [("g", p, 1) for p in g_pids])
    result = ev.run(Constant())
    assert result.metrics["rank1"] == 0.0 and result.metrics["rank5"] == 100.0
    assert result.metrics["mAP"] == pytest.approx(25.0)


# ----------------------------------------------------------------- ranked-list picture

def _write_solid(folder: Path, name: str, bgr: Tuple[int, int, int]) -> str:
    path = folder / name
    cv2.imwrite(str(path), np.full((32, 16, 3), bgr, dtype=np.uint8))
    return str(path)


def test_ranked_list_png_layout_colours_and_junk(tmp_path: Path) -> None:
    colours = {"a": (200, 10, 10), "b": (10, 200, 200), "c": (90, 90, 10), "d": (10, 10, 90), "j": (250, 250, 250)}
    paths = {k: _write_solid(tmp_path, f"{k}.png", v) for k, v in colours.items()}
    # query 0 (pid 1, cam 0): gallery ranked j (junk: pid 1 cam 0), b (pid 2), a (pid 1 cam 1), c (pid 3)
    # query 1 (pid 3, cam 0): ranked c (pid 3 cam 1), then the rest
    query = [(paths["d"], 1, 0), (paths["d"], 3, 0)]
    gallery = [(paths["j"], 1, 0), (paths["b"], 2, 1), (paths["a"], 1, 1), (paths["c"], 3, 1)]
    dist = np.array([[0.0, 0.1, 0.2, 0.3], [0.5, 0.4, 0.3, 0.1]])
    out = save_ranked_lists(dist, query, gallery, tmp_path / "viz", topk=3, num_queries=8)
    assert out == tmp_path / "viz" / "ranked_lists.png"
    image = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert image is not None
    layout = GridLayout(rows=2, topk=3)
    assert image.shape[:2] == layout.size

    def border(row: int, col: int) -> Tuple[int, ...]:
        y, x = layout.cell_origin(row, col)
        return tuple(int(v) for v in image[y + 1, x + 1])

    def inner(row: int, col: int) -> Tuple[int, ...]:
        y, x = layout.cell_origin(row, col)
        return tuple(int(v) for v in image[y + layout.tile[0] // 2, x + layout.tile[1] // 2])

    assert border(0, 0) == QUERY_COLOUR and border(1, 0) == QUERY_COLOUR
    # row 0: b (wrong), a (right), c (wrong): the nearer junk image is not shown
    assert [border(0, c) for c in (1, 2, 3)] == [WRONG_COLOUR, CORRECT_COLOUR, WRONG_COLOUR]
    assert [inner(0, c) for c in (1, 2, 3)] == [colours["b"], colours["a"], colours["c"]]
    # row 1: c (right), a, b (wrong); j (pid 1 cam 0) is not junk for this query -> shown 4th, cut by topk
    assert [border(1, c) for c in (1, 2, 3)] == [CORRECT_COLOUR, WRONG_COLOUR, WRONG_COLOUR]
    assert [inner(1, c) for c in (1, 2, 3)] == [colours["c"], colours["a"], colours["b"]]
    assert not list(tmp_path.joinpath("viz").glob("*.tmp"))


def test_ranked_list_rejects_mismatched_records(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="2 x 3"):
        save_ranked_lists(np.zeros((2, 3)), [("q", 1, 0)], [("g", 1, 1)] * 3, tmp_path / "x.png")


def test_package_imports_without_torch_or_opencv() -> None:
    import subprocess
    import sys

    code = "import sys, edge_reid.evaluation; print(sorted(m for m in ('torch', 'cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
