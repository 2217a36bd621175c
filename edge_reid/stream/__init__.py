"""Stream: cameras -> person detections -> tracks -> embeddings -> identities across cameras.

The deployment path of the toolkit, meant for a Jetson with TensorRT, numpy and OpenCV and no
PyTorch: nothing in this package imports torch (the runtime's torch backend does, lazily, only
when given a checkpoint).

Modules, one job each: ``sources`` (camera index, video file, RTSP/HTTP URL, GStreamer
pipeline), ``detectors`` (registry: ``background``, ``onnx_yolo``), ``tracker`` (ByteTrack per
camera), ``gallery`` (identities, persisted atomically), ``pipeline`` (the loop and per-track
aggregation), ``drawing``, ``events`` (JSONL log, summary) and ``command`` (``edge-reid stream``).

A Jetson CSI camera is opened through GStreamer, e.g.::

    edge-reid stream --source "csi=nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1"
"""
