"""IBB: the variational upper bound of the information bottleneck loss (DCS-Attention paper).

With F_i the L2-normalised BNNeck embedding, X_i the L2-normalised stem features (the network
input summarised as a fixed vector, detached) and per-class centroids C^F_a, C^X_b:

    phi_F(i, a) = softmax_a(-beta ||F_i - C^F_a||^2),   phi_X(i, b) likewise,
    IBB_i = sum_a sum_b phi_F(i,a) phi_X(i,b) log phi_X(i,b) - sum_a phi_F(i,a) log Q(y_i | a),

and the loss is the batch mean of IBB_i. At each epoch end Q(y | a) becomes that epoch's
sum_i phi_F(i,a) 1[y_i = y], normalised over y (plus a tiny additive ``q_smoothing`` so that
log Q stays finite), and the centroids are refreshed from running sums collected during the
epoch (no extra pass over the data).

Before training, :meth:`IBBLoss.initialise` (the trainer calls it with one pass of the initial
network over the training set) sets the centroids and Q the same way, so the bound has a
gradient from the first step. With Q uniform the second term is the constant log K (sum_a
phi_F = 1) and the whole bound has no gradient; that is the fallback when no initial pass was
made: Q uniform and, as centroids, the running class means of the epoch so far.

Which term trains what: the first term equals -H(phi_X(i)) (sum_a phi_F(i,a) = 1 and X is
detached), a constant: it is logged but carries no gradient. The second term,
-sum_a phi_F(i,a) log Q(y_i | a), carries the whole gradient: through phi_F into the
embedding F, i.e. the BNNeck and everything before it (backbone, DCS-Attention blocks and, by the
straight-through mask, their samplers). The classifier gets none; centroids, Q and beta are
statistics, not parameters.

``beta="auto"`` (default): at :meth:`initialise` one beta for F and one for X are chosen by
bisection so that the mean normalised entropy of the soft assignments, H(phi) / log K, equals
``target_entropy`` (default 0.5; beta = 1 on L2-normalised features gives nearly flat
assignments, ~0.99). The epoch stats report both entropies. The number of classes is the term
option ``num_classes``; left out, the tables grow to the largest training label seen (the PK
sampler visits every identity in the first epoch).

:meth:`IBBLoss.epoch_stats` gives the epoch's mean IBB and the IB-loss estimate
I(F; X) - I(F; Y) computed from the same soft assignments (the paper's Table V columns).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Union

import torch
import torch.nn.functional as F

from edge_reid.errors import EdgeReidError
from edge_reid.losses.ib_assign import calibrate_beta, mutual_information, normalised_entropy, soft_assign
from edge_reid.losses.registry import LOSSES, ReIDLoss

_SUM_KEYS = ("sum_f", "sum_x", "count", "sum_fy", "sum_fx")


@LOSSES.register("ibb")
class IBBLoss(ReIDLoss):
    """The IBB term; call ``on_epoch_end(epoch)`` after every epoch (the composer forwards it)."""

    name = "ibb"
    requires = ("embeddings", "stem_features")

    def __init__(self, num_classes: Optional[int] = None, beta: Union[float, str] = "auto", q_smoothing: float = 1e-6,
                 target_entropy: float = 0.5) -> None:
        super().__init__()
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
            raise EdgeReidError(f"Loss 'ibb' option 'num_classes' must be a positive integer or null, got {num_classes!r}.")
        checks = [("q_smoothing", q_smoothing)] + ([] if beta == "auto" else [("beta", beta)])
        for key, value in checks:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise EdgeReidError(f"Loss 'ibb' option '{key}' must be a positive number{' or auto' if key == 'beta' else ''}, got {value!r}.")
        if isinstance(target_entropy, bool) or not isinstance(target_entropy, (int, float)) or not 0 < target_entropy < 1:
            raise EdgeReidError(f"Loss 'ibb' option 'target_entropy' must be a number in (0, 1), got {target_entropy!r}.")
        self.fixed_classes = num_classes
        self.auto_beta = beta == "auto"
        self.target_entropy = float(target_entropy)
        # beta of the F and X assignments; 1.0 until initialise() calibrates them (beta="auto")
        self.beta_f = self.beta_x = 1.0 if self.auto_beta else float(beta)
        self.q_smoothing = float(q_smoothing)
        self.num_classes_ = int(num_classes or 0)
        self.epochs_done = 0
        self.centroid_f: Optional[torch.Tensor] = None  # K x D, set at the first epoch end
        self.centroid_x: Optional[torch.Tensor] = None
        self.has_centroid: Optional[torch.Tensor] = None  # K bool
        self.q_table: Optional[torch.Tensor] = None  # K (a) x K (y); None means uniform
        self.sums: Dict[str, torch.Tensor] = {}
        self.ibb_sum = 0.0
        self.entropy_sums = [0.0, 0.0]  # summed normalised entropies of phi_F, phi_X this epoch
        self.seen = 0
        self.last_stats: Dict[str, float] = {}
        self.init_stats: Dict[str, float] = {}

    # ----------------------------------------------------------------- the loss
    def compute(self, outputs: Dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        f = F.normalize(outputs["embeddings"].float(), dim=1)
        x = F.normalize(outputs["stem_features"].detach().float(), dim=1)
        y = self._check_targets(targets, f.shape[0])
        self._ensure_size(int(y.max()) + 1, f.shape[1], x.shape[1], f.device)
        batch = self._class_sums(f.detach(), x, y)
        cf, cx, valid = self._centroids(batch)
        phi_f = soft_assign(f, cf, valid, self.beta_f)
        with torch.no_grad():
            phi_x = soft_assign(x, cx, valid, self.beta_x)
            plogp = torch.where(phi_x > 0, phi_x * phi_x.clamp_min(1e-30).log(), torch.zeros_like(phi_x))
        log_q = self._log_q(f.device)[:, y].t()  # B x K: log Q(y_i | a)
        per_sample = phi_f.sum(1) * plogp.sum(1) - (phi_f * log_q.masked_fill(~valid[None, :], 0.0)).sum(1)
        loss = per_sample.mean()
        if self.training:
            self._accumulate(batch, phi_f.detach(), phi_x, y, float(per_sample.detach().sum()))
            self.entropy_sums[0] += float(normalised_entropy(phi_f.detach(), valid).sum())
            self.entropy_sums[1] += float(normalised_entropy(phi_x, valid).sum())
        return loss

    # ------------------------------------------------------ the initial pass
    @torch.no_grad()
    def initialise(self, outputs: Dict[str, torch.Tensor], targets: torch.Tensor) -> Dict[str, float]:
        """Centroids, beta (when ``auto``) and Q(y | a) from the initial network's outputs on the
        training set (``embeddings``, ``stem_features`` and labels of every sample of one pass).

        Returns (and keeps in ``init_stats``) the betas and the assignments' normalised entropies.
        """
        f = F.normalize(outputs["embeddings"].float(), dim=1)
        x = F.normalize(outputs["stem_features"].float(), dim=1)
        y = self._check_targets(targets, f.shape[0])
        self._ensure_size(int(y.max()) + 1, f.shape[1], x.shape[1], f.device)
        sums = self._class_sums(f, x, y)
        valid = sums["count"] > 0
        denom = sums["count"].clamp_min(1.0)[:, None]
        cf, cx = (sums["sum_f"] / denom).float(), (sums["sum_x"] / denom).float()
        if self.auto_beta:
            self.beta_f = calibrate_beta(f, cf, valid, self.target_entropy)
            self.beta_x = calibrate_beta(x, cx, valid, self.target_entropy)
        phi_f = soft_assign(f, cf, valid, self.beta_f)
        phi_x = soft_assign(x, cx, valid, self.beta_x)
        q = phi_f.double().t() @ F.one_hot(y, self.num_classes_).double() + self.q_smoothing
        self.centroid_f, self.centroid_x, self.has_centroid = cf.double(), cx.double(), valid.clone()
        self.q_table = q / q.sum(1, keepdim=True)
        true = phi_f.gather(1, y[:, None]).mean()
        self.init_stats = {"beta_f": self.beta_f, "beta_x": self.beta_x, "samples": float(len(y)),
                           "entropy_f": float(normalised_entropy(phi_f, valid).mean()),
                           "entropy_x": float(normalised_entropy(phi_x, valid).mean()),
                           "true_class_phi_f": float(true)}
        return dict(self.init_stats)

    def _check_targets(self, targets: torch.Tensor, batch: int) -> torch.Tensor:
        if not isinstance(targets, torch.Tensor) or targets.dim() != 1 or targets.shape[0] != batch:
            raise EdgeReidError(f"Loss 'ibb' needs one integer label per sample ({batch}), got {getattr(targets, 'shape', targets)}.")
        y = targets.long()
        if batch == 0 or int(y.min()) < 0:
            raise EdgeReidError("Loss 'ibb' needs a non-empty batch with training labels >= 0.")
        if self.fixed_classes is not None and int(y.max()) >= self.fixed_classes:
            raise EdgeReidError(
                f"Loss 'ibb' got label {int(y.max())} but was configured with num_classes={self.fixed_classes}."
            )
        return y

    # ---------------------------------------------------------------- the state
    def _ensure_size(self, k_needed: int, dim_f: int, dim_x: int, device: torch.device) -> None:
        """Allocate (or grow) the per-class tables to ``max(num_classes, k_needed)`` classes."""
        k = max(self.num_classes_, k_needed)
        if self.sums and (self.sums["sum_f"].shape[1] != dim_f or self.sums["sum_x"].shape[1] != dim_x):
            raise EdgeReidError(
                f"Loss 'ibb' saw features of size {dim_f}/{dim_x} after {self.sums['sum_f'].shape[1]}/"
                f"{self.sums['sum_x'].shape[1]}; one IBB term serves one model."
            )
        shapes = {"sum_f": (k, dim_f), "sum_x": (k, dim_x), "count": (k,), "sum_fy": (k, k), "sum_fx": (k, k)}
        for key, shape in shapes.items():
            old = self.sums.get(key)
            new = torch.zeros(shape, dtype=torch.float64, device=device)
            if old is not None:
                new[tuple(slice(0, s) for s in old.shape)] = old.to(device)
            self.sums[key] = new
        if self.centroid_f is not None and self.centroid_f.shape[0] < k:
            grow = k - self.centroid_f.shape[0]
            self.centroid_f = torch.cat([self.centroid_f, self.centroid_f.new_zeros(grow, dim_f)])
            self.centroid_x = torch.cat([self.centroid_x, self.centroid_x.new_zeros(grow, dim_x)])  # type: ignore[list-item]
            self.has_centroid = torch.cat([self.has_centroid, self.has_centroid.new_zeros(grow)])  # type: ignore[list-item]
        if self.q_table is not None and self.q_table.shape[0] < k:
            q = torch.full((k, k), self.q_smoothing, dtype=self.q_table.dtype, device=self.q_table.device)
            q[: self.q_table.shape[0], : self.q_table.shape[1]] += self.q_table
            self.q_table = q / q.sum(1, keepdim=True)
        self.num_classes_ = k

    def _class_sums(self, f: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
        k = self.num_classes_
        onehot = F.one_hot(y, k).double()
        return {"sum_f": onehot.t() @ f.double(), "sum_x": onehot.t() @ x.double(), "count": onehot.sum(0)}

    def _centroids(self, batch: Dict[str, torch.Tensor]):
        """Centroids in use: the last refreshed ones, or (first epoch) the running means so far."""
        if self.centroid_f is not None:
            dev = batch["sum_f"].device
            return self.centroid_f.to(dev).float(), self.centroid_x.to(dev).float(), self.has_centroid.to(dev)  # type: ignore[union-attr]
        count = self.sums["count"] + batch["count"]
        denom = count.clamp_min(1.0)[:, None]
        cf = (self.sums["sum_f"] + batch["sum_f"]) / denom
        cx = (self.sums["sum_x"] + batch["sum_x"]) / denom
        return cf.float(), cx.float(), count > 0

    def _log_q(self, device: torch.device) -> torch.Tensor:
        k = self.num_classes_
        if self.q_table is None:
            return torch.full((k, k), -math.log(k), device=device)
        return self.q_table.to(device).float().log()

    def _accumulate(self, batch: Dict[str, torch.Tensor], phi_f: torch.Tensor, phi_x: torch.Tensor,
                    y: torch.Tensor, ibb_sum: float) -> None:
        onehot = F.one_hot(y, self.num_classes_).double()
        for key in ("sum_f", "sum_x", "count"):
            self.sums[key] += batch[key]
        self.sums["sum_fy"] += phi_f.double().t() @ onehot  # a x y
        self.sums["sum_fx"] += phi_f.double().t() @ phi_x.double()  # a x b
        self.ibb_sum += ibb_sum
        self.seen += int(y.shape[0])

    # -------------------------------------------------------------- epoch ends
    def running_stats(self) -> Dict[str, float]:
        """Mean IBB and IB-loss estimate I(F;X) - I(F;Y) of the epoch in progress (empty if none)."""
        if self.seen == 0:
            return {}
        i_fx = mutual_information(self.sums["sum_fx"])
        i_fy = mutual_information(self.sums["sum_fy"])
        return {"ibb": self.ibb_sum / self.seen, "ib_loss": i_fx - i_fy, "i_fx": i_fx, "i_fy": i_fy,
                "entropy_f": self.entropy_sums[0] / self.seen, "entropy_x": self.entropy_sums[1] / self.seen,
                "beta_f": self.beta_f, "beta_x": self.beta_x, "samples": float(self.seen)}

    def epoch_stats(self) -> Dict[str, float]:
        """Stats of the last finished epoch (``ibb``, ``ib_loss``, ``i_fx``, ``i_fy``), else of the running one."""
        return dict(self.last_stats) if self.last_stats else self.running_stats()

    def on_epoch_end(self, epoch: int) -> None:
        """Refresh centroids and Q(y|a) from this epoch's running sums, then start new sums."""
        if self.seen == 0:
            return
        self.last_stats = {**self.running_stats(), "epoch": float(epoch)}
        count = self.sums["count"]
        seen = count > 0
        denom = count.clamp_min(1.0)[:, None]
        new_f, new_x = self.sums["sum_f"] / denom, self.sums["sum_x"] / denom
        if self.centroid_f is None:
            self.centroid_f, self.centroid_x, self.has_centroid = new_f, new_x, seen.clone()
        else:
            self.centroid_f = torch.where(seen[:, None], new_f, self.centroid_f.to(new_f))
            self.centroid_x = torch.where(seen[:, None], new_x, self.centroid_x.to(new_x))  # type: ignore[union-attr]
            self.has_centroid = self.has_centroid.to(seen.device) | seen  # type: ignore[union-attr]
        q = self.sums["sum_fy"] + self.q_smoothing
        self.q_table = q / q.sum(1, keepdim=True)
        for key in _SUM_KEYS:
            self.sums[key].zero_()
        self.ibb_sum, self.seen = 0.0, 0
        self.entropy_sums = [0.0, 0.0]
        self.epochs_done += 1

    # -------------------------------------------------------- (de)serialisation
    def state_dict(self, *args: Any, **kwargs: Any) -> Dict[str, Any]:  # type: ignore[override]
        """Centroids, Q, running sums and counters as plain tensors/numbers (``weights_only`` safe)."""
        def cpu(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if t is None else t.detach().cpu().clone()

        return {
            "num_classes": self.num_classes_,
            "epochs_done": self.epochs_done,
            "centroid_f": cpu(self.centroid_f),
            "centroid_x": cpu(self.centroid_x),
            "has_centroid": cpu(self.has_centroid),
            "q_table": cpu(self.q_table),
            "sums": {k: cpu(v) for k, v in self.sums.items()},
            "ibb_sum": self.ibb_sum,
            "seen": self.seen,
            "last_stats": dict(self.last_stats),
            "beta": [self.beta_f, self.beta_x],
            "entropy_sums": list(self.entropy_sums),
            "init_stats": dict(self.init_stats),
        }

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:  # type: ignore[override]
        """Restore :meth:`state_dict`."""
        try:
            self.num_classes_ = int(state["num_classes"])
            self.epochs_done = int(state["epochs_done"])
            self.centroid_f, self.centroid_x = state["centroid_f"], state["centroid_x"]
            self.has_centroid, self.q_table = state["has_centroid"], state["q_table"]
            self.sums = dict(state["sums"])
            self.ibb_sum, self.seen = float(state["ibb_sum"]), int(state["seen"])
            self.last_stats = {k: float(v) for k, v in dict(state.get("last_stats", {})).items()}
            self.beta_f, self.beta_x = (float(v) for v in state.get("beta", [self.beta_f, self.beta_x]))
            self.entropy_sums = [float(v) for v in state.get("entropy_sums", [0.0, 0.0])]
            self.init_stats = {k: float(v) for k, v in dict(state.get("init_stats", {})).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise EdgeReidError(f"The saved 'ibb' loss state is incomplete or malformed ({type(exc).__name__}: {exc}).") from None
