"""Models: backbones, heads (BNNeck) and the registry.

``build_model(name, num_classes, **options)`` is the entry point; ``MODELS.names()`` lists
what is registered. Importing this package registers every model.
"""

from edge_reid.models.registry import MODELS, build_model
from edge_reid.models import baselines  # noqa: F401  (registers resnet50, bot_resnet50)
from edge_reid.models import mobilenet  # noqa: F401  (registers mobilenetv2)
from edge_reid.models import visnet  # noqa: F401  (registers visnet)
from edge_reid.models import dcs_models, dnas  # noqa: F401  (registers dcs_mobilenetv2, dcs_resnet50, dcs_searched)
from edge_reid.models import agw  # noqa: F401  (registers agw, the two-stream visible-infrared baseline)
from edge_reid.models import fusionreid  # noqa: F401  (registers fusionreid)
from edge_reid.models import tmpa  # noqa: F401  (registers tmpa: AGW + Modality Feature Transfer)

__all__ = ["MODELS", "build_model"]
