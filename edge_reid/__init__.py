"""edge-reid: person re-identification from paper to camera.

The library API a researcher needs in a few lines::

    from edge_reid.data import build_dataset
    from edge_reid.models import build_model

    dataset = build_dataset("synthetic")          # the embedded default
    model = build_model("resnet50", num_classes=dataset.num_train_pids)

Sub-packages are imported on demand so that the deployment path (``runtime``, ``stream``)
works on a device that has no PyTorch.
"""

from edge_reid.version import __version__

__all__ = ["__version__"]
