"""The gallery's open-set threshold, calibrated on the enrolment images instead of hand-tuned.

Each enrolment image is scored against the centroid of the *other* images of its identity
(leave one out; identities with at least two images). Those genuine scores say how low a
person's own, unseen view can score against their identity. The threshold is their
``false_reject`` quantile (default 5 %): a track is unknown (a new identity) only when it
scores lower against every free identity than 95 % of the enrolled people's held-out views
score against their own. Measured with the quick VisNet (INT8) on the scenes' enrolment
images (4 views per person): 0.20 (easy), 0.35 (default), 0.27 (hard).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

#: fraction of enrolled people's held-out views allowed to fall below the threshold
DEFAULT_FALSE_REJECT = 0.05


def open_set_threshold(vectors: np.ndarray, owners: np.ndarray, false_reject: float = DEFAULT_FALSE_REJECT,
                       min_scores: int = 4) -> Optional[float]:
    """The ``false_reject`` quantile of leave-one-out genuine cosines, in [0, 1]; None when fewer
    than ``min_scores`` images belong to identities with two or more images."""
    vectors = np.asarray(vectors, np.float64)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    owners = np.asarray(owners)
    scores = []
    for ident in np.unique(owners):
        rows = vectors[owners == ident]
        if len(rows) < 2:
            continue
        total = rows.sum(axis=0)
        for row in rows:
            rest = total - row
            scores.append(float(row @ rest) / max(float(np.linalg.norm(rest)), 1e-12))
    if len(scores) < min_scores:
        return None
    return float(np.clip(np.quantile(scores, false_reject), 0.0, 1.0))
