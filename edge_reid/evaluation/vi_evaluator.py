"""One call from a model to visible-infrared metrics: embed query and gallery, run the protocol.

Query and gallery (for SYSU-MM01: the whole visible pool) are embedded once; the protocol
(:mod:`edge_reid.evaluation.vi_protocol`) samples the trials' galleries from the pool.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Sequence

from edge_reid.errors import InvalidInputError
from edge_reid.evaluation.features import extract_features
from edge_reid.evaluation.vi_protocol import run_regdb, run_sysu

PROTOCOLS = ("sysu", "regdb")


class CrossModalEvaluator:
    """Scores a model on fixed query / gallery loaders with the SYSU-MM01 or RegDB protocol."""

    def __init__(self, query_loader: Iterable[Any], gallery_loader: Iterable[Any], gallery_records: Sequence[Any],
                 protocol: str = "sysu", mode: str = "all", shots: int = 1, trials: int = 10,
                 flip: bool = False, device: Optional[Any] = None) -> None:
        if protocol not in PROTOCOLS:
            raise InvalidInputError(f"Unknown visible-infrared protocol '{protocol}'; choose sysu or regdb.")
        self.query_loader, self.gallery_loader = query_loader, gallery_loader
        self.gallery_records = list(gallery_records)
        self.protocol, self.mode, self.shots, self.trials = protocol, mode, int(shots), int(trials)
        self.flip, self.device = flip, device

    def run(self, model: Any) -> Dict[str, Any]:
        """``{"metrics": {...percent}, "trials": [...]}`` (SYSU: per trial; RegDB: one entry)."""
        qf, q_pids, q_camids, _ = extract_features(model, self.query_loader, self.flip, self.device)
        gf, g_pids, g_camids, g_idx = extract_features(model, self.gallery_loader, self.flip, self.device)
        if self.protocol == "sysu":
            records = [self.gallery_records[int(i)] for i in g_idx]
            return run_sysu(qf, q_pids, q_camids, gf, records, self.mode, self.shots, self.trials)
        metrics = run_regdb(qf, q_pids, q_camids, gf, g_pids, g_camids)
        return {"protocol": "regdb", "num_query": int(len(q_pids)), "num_gallery": int(len(g_pids)),
                "metrics": metrics, "trials": [metrics]}
