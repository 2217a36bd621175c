"""The embedded default: a deterministic synthetic ReID dataset and multi-camera video.

No real dataset or weight can be downloaded, so every command can run on people rendered
here (numpy + OpenCV): identities with clothing, body shape and carried items, seen by
cameras with their own lighting, background, viewpoint, blur and occlusion.
"""

from edge_reid.data.synthetic.dataset import GENERATOR_VERSION, default_params, generate_dataset
from edge_reid.data.synthetic.identity import Identity, sample_identity
from edge_reid.data.synthetic.scene import SCENES, Scene, load_scene
from edge_reid.data.synthetic.video import (
    SCENE_GENERATOR_VERSION,
    enrolment_images,
    scene_identities,
    write_multicam_video,
    write_scene_video,
)

__all__ = [
    "GENERATOR_VERSION",
    "SCENE_GENERATOR_VERSION",
    "Identity",
    "SCENES",
    "Scene",
    "default_params",
    "enrolment_images",
    "generate_dataset",
    "load_scene",
    "sample_identity",
    "scene_identities",
    "write_multicam_video",
    "write_scene_video",
]
