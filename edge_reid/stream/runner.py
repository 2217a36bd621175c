"""One stream run: the pipeline over the sources into the events, videos and summary sinks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence


def run_stream(sources: Sequence[Any], embedder: Any, detector: Any, gallery: Any, out: Path,
               gallery_dir: Optional[Path], config: Any = None, show: bool = False,
               max_frames: Optional[int] = None, say: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the pipeline over ``sources``; write events, videos and summary; always save the gallery."""
    from edge_reid.stream.events import AnnotatedVideo, EventLog, Window, display_available, format_summary, \
        save_summary
    from edge_reid.stream.pipeline import StreamConfig, StreamPipeline
    from edge_reid.stream.sources import MultiSource
    from edge_reid.utils.atomic import write_image

    config = config or StreamConfig()
    fps = next((s.fps for s in sources if getattr(s, "fps", 0)), 10.0)
    config.tracker.setdefault("fps", fps)
    pipeline = StreamPipeline(embedder, detector, gallery, config)
    out = Path(out)
    video = AnnotatedVideo(out, fps=fps)
    sinks: List[Any] = [EventLog(out / "events.jsonl"), video]
    if show:
        why_not = display_available()
        if why_not:
            say(why_not)
        else:
            sinks.append(Window())
    summary: Dict[str, Any] = {}
    try:
        summary = pipeline.run(MultiSource(sources), sinks, max_frames=max_frames)
    finally:
        if gallery_dir is not None:
            gallery.save(gallery_dir)
    for camera, image in video.last.items():
        write_image(out / f"last_{camera}.png", image)
    summary["identity_names"] = {str(i): ident.name for i, ident in gallery.identities.items()}
    summary["out"] = str(out)
    save_summary(out / "summary.json", summary)
    say(format_summary(summary))
    say(f"Events: {out / 'events.jsonl'}; videos and summary in {out}"
        + (f"; gallery saved to {gallery_dir}." if gallery_dir is not None else "."))
    return summary
