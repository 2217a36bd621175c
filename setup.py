"""Packaging: the ``edge_reid`` and ``kernels`` packages and the ``edge-reid`` console script."""

from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path("edge_reid/version.py").read_text(), version)

setup(
    name="edge-reid",
    version=version["__version__"],
    description="Person re-identification from paper to camera: train, fuse, export, benchmark, stream.",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["edge_reid", "edge_reid.*", "kernels", "kernels.*"]),
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "triton>=3.0; platform_system == 'Linux' and platform_machine == 'x86_64'",
        "numpy>=1.24",
        "scipy>=1.10",  # CUHK03 split .mat files
        # 4.x: OpenCV 5 dropped the HOG people detector. The full build (not -headless), because
        # the tracker package requires it and both wheels install the same cv2 module.
        "opencv-python>=4.8,<5",
        "onnx>=1.16",
        "onnxscript>=0.2",  # torch.onnx's dynamo exporter needs it
        "onnxruntime>=1.18",
        "onnxsim>=0.4",
        "pyyaml>=6",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "supervision>=0.26",
        "trackers>=2.6",  # Roboflow's maintained ByteTrack (moved out of supervision in 0.27)
        "trackeval>=1.3",  # HOTA / CLEAR / Identity tracking metrics (the HOTA authors' TrackEval, packaged)
    ],
    extras_require={
        "dev": ["pytest>=7", "pytest-timeout>=2", "faiss-cpu>=1.7"],  # faiss: so the gallery's faiss path is tested
        # TensorRT side (a GPU machine or a Jetson); never needed for a CPU install.
        "trt": ["tensorrt>=10", "cuda-python>=12"],
        "faiss": ["faiss-cpu>=1.7"],
    },
    entry_points={"console_scripts": ["edge-reid=edge_reid.cli:main"]},
)
