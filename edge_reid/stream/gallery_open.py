"""The gallery a stream run starts with: a saved one, one enrolled from an image folder, or empty."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from edge_reid.errors import InvalidInputError


def open_gallery(folder: Optional[Path], embedder: Any, threshold: Optional[float],
                 say: Callable[[str], None] = print, camera_id: Optional[int] = None) -> Any:
    """Load a saved gallery, enrol an image folder, or start an empty one."""
    from edge_reid.stream.calibration import open_set_threshold
    from edge_reid.stream.gallery import DEFAULT_THRESHOLD, Gallery, is_saved_gallery

    if folder is not None and is_saved_gallery(folder):
        gallery = Gallery.load(folder, embedder.meta, threshold)
        say(f"Loaded a gallery of {len(gallery)} identities from {folder}.")
        enrolled = {i.name for i in gallery.identities.values() if i.source == "enrolled"}
        added = gallery.enrol_folder(folder, embedder, skip=enrolled, require=False, camera_id=camera_id)
        if added:
            say(f"Enrolled {len(added)} identities from sub-folders added since the gallery was saved: "
                f"{', '.join(i.name for i in added)}.")
        return gallery
    gallery = Gallery(embedder.meta, DEFAULT_THRESHOLD if threshold is None else threshold)
    if folder is not None and folder.is_dir() and any(p.is_dir() for p in folder.iterdir()):
        if camera_id is None and "camera_ids" in tuple(embedder.meta.inputs):
            raise InvalidInputError(f"Model '{embedder.meta.model}' embeds the camera: give --enrol-camera-index INT "
                                    f"for the enrolment images in {folder}.")
        added = gallery.enrol_folder(folder, embedder, camera_id=camera_id)
        say(f"Enrolled {len(added)} identities from {folder}.")
        calibrated = open_set_threshold(gallery.vectors, gallery.owners) if threshold is None else None
        if calibrated is not None:
            gallery.threshold = calibrated
            say(f"Open-set threshold {calibrated:.3f}: the 5 % quantile of the enrolment images' leave-one-out "
                "scores against their own identity (--threshold sets one).")
    else:
        say("Starting with an empty gallery: identities are created from confident tracks.")
    return gallery
