"""DCS-DNAS: an FBNetV2-style supernet with DCS-Attention, its search and the searched model.

Importing this package registers the model ``dcs_searched`` (built from an exported
architecture config). The search runs with ``python -m edge_reid.models.dnas.search``.
"""

from edge_reid.models.dnas.arch import SearchedReID, export_arch, load_arch
from edge_reid.models.dnas.latency import measure_latency_table
from edge_reid.models.dnas.space import SPACES, get_space
from edge_reid.models.dnas.supernet import DCSSupernet

__all__ = ["DCSSupernet", "SearchedReID", "SPACES", "export_arch", "get_space", "load_arch", "measure_latency_table"]
