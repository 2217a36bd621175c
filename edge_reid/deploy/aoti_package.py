"""What an AOTInductor package (``.pt2``) carries, read without loading it (no torch import).

``edge-reid build --format aoti`` stores the project's metadata in the package through
AOTInductor's own metadata (the ``aot_inductor.metadata`` inductor config): the strings land in
the compiled library and in a ``*_metadata.json`` file inside the zip archive. This module reads
that file with :mod:`zipfile`, so the runtime can tell a package from a checkpoint by content,
and refuse a package from another toolkit version or for another device in one sentence before
handing it to the loader (which would crash or fail with a C++ message).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Union

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta

#: The ``edge_reid.format`` value of every package the toolkit writes, and its layout version.
PACKAGE_FORMAT = "edge-reid-aoti"
FORMAT_VERSION = "1"
#: Keys of the package metadata (AOTInductor's own keys start with ``AOTI_``).
META_KEY = "edge_reid.meta"
KEYS = ("edge_reid.format", "edge_reid.format_version", META_KEY, "edge_reid.precision", "edge_reid.device",
        "edge_reid.torch_version", "edge_reid.toolkit_version", "edge_reid.fusion", "edge_reid.max_batch",
        "edge_reid.gpu_name", "edge_reid.compute_capability")
#: The model name inside the archive (``aoti_compile_and_package`` writes one model, "model").
MODEL_NAME = "model"


@dataclass
class PackageInfo:
    """The metadata of one package: the ``edge_reid.*`` strings and AOTInductor's ``AOTI_*`` ones."""

    path: Path
    values: Dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return str(self.values.get(key, default))

    @property
    def device(self) -> str:
        """``cpu`` or ``cuda``: the device the package was compiled for (AOTInductor's key first)."""
        return self.get("AOTI_DEVICE_KEY") or self.get("edge_reid.device", "cpu")

    @property
    def precision(self) -> str:
        return self.get("edge_reid.precision", "fp32")

    @property
    def toolkit_version(self) -> str:
        return self.get("edge_reid.toolkit_version")

    @property
    def torch_version(self) -> str:
        return self.get("edge_reid.torch_version")

    @property
    def fusion(self) -> str:
        return self.get("edge_reid.fusion")

    def model_meta(self) -> ModelMeta:
        return ModelMeta.from_json(self.get(META_KEY), source=f"metadata of package {self.path}")


def _open(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidInputError(
            f"{path} is corrupt or truncated (not a readable zip archive: {exc}); rebuild it with "
            "'python export/build_engine.py --format aoti'.") from None


def _metadata_member(archive: zipfile.ZipFile) -> Optional[str]:
    names = [n for n in archive.namelist() if f"/data/aotinductor/{MODEL_NAME}/" in n and n.endswith("_metadata.json")]
    wrapper = [n for n in names if n.endswith("wrapper_metadata.json")]
    return (wrapper or names or [None])[0]


def looks_like_aoti_package(path: Union[str, Path], scan_bytes: int = 1 << 16) -> bool:
    """True when ``path`` is a zip archive holding an AOTInductor model (any producer).

    A truncated archive has no readable directory: then the first local file headers (whose
    names are stored in the clear) are scanned for AOTInductor's folder, so a damaged package is
    still recognised as one (and refused as corrupt) rather than taken for a checkpoint.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/data/aotinductor/" in n for n in archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError):
        pass
    try:
        with open(path, "rb") as handle:
            return b"/data/aotinductor/" in handle.read(scan_bytes)
    except OSError:
        return False


def read_package_info(path: Union[str, Path]) -> PackageInfo:
    """Read and check the metadata of a package; corrupt, foreign or other-version packages are one sentence."""
    from edge_reid.version import __version__

    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"Package {path} does not exist.")
    with _open(path) as archive:
        bad = None
        try:
            bad = archive.testzip()
            member = _metadata_member(archive)
            values = json.loads(archive.read(member)) if member else None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, RuntimeError) as exc:
            bad = bad or f"{type(exc).__name__}"
            values = None
        if bad is not None:
            raise InvalidInputError(f"{path} is corrupt or truncated (damaged member {bad}); rebuild it with "
                                    "'python export/build_engine.py --format aoti'.")
    if not isinstance(values, dict):
        raise InvalidInputError(f"{path} is not an AOTInductor package (no model metadata inside); build one with "
                                "'python export/build_engine.py --format aoti'.")
    info = PackageInfo(path, {str(k): str(v) for k, v in values.items()})
    if info.get("edge_reid.format") != PACKAGE_FORMAT:
        raise InvalidInputError(f"{path} is an AOTInductor package without edge-reid metadata; build it with "
                                "'python export/build_engine.py --format aoti'.")
    version = info.get("edge_reid.format_version")
    if version != FORMAT_VERSION or info.toolkit_version != __version__:
        raise InvalidInputError(
            f"Package {path} was built by edge-reid {info.toolkit_version or 'unknown'} (package format {version or '?'}), "
            f"but this is edge-reid {__version__} (format {FORMAT_VERSION}); rebuild it with this version.")
    info.model_meta()  # validates the embedded ModelMeta
    return info


def check_torch_version(info: PackageInfo, installed: str) -> None:
    """Refuse a package compiled against another PyTorch release (its library links that libtorch)."""
    built = info.torch_version
    if built.split("+")[0].split(".")[:2] != installed.split("+")[0].split(".")[:2]:
        raise InvalidInputError(
            f"Package {info.path} was compiled with PyTorch {built or 'unknown'}, but PyTorch {installed} is "
            "installed; AOTInductor packages run only with the release that built them, so rebuild it here.")


def check_device(info: PackageInfo, requested: str, cuda_available: bool) -> str:
    """The device to run ``info``'s package on; one sentence if it was built for another one."""
    built = info.device
    wanted = (requested or built).split(":")[0]
    if wanted != built:
        raise InvalidInputError(
            f"Package {info.path} was compiled for {built.upper() if built == 'cpu' else 'CUDA'} and cannot run on "
            f"{wanted.upper() if wanted == 'cpu' else 'CUDA'}; build a package for that device with "
            "'python export/build_engine.py --format aoti' on a machine that has it.")
    if built == "cuda" and not cuda_available:
        raise InvalidInputError(
            f"Package {info.path} was compiled for a CUDA GPU ({info.get('edge_reid.gpu_name') or 'unknown GPU'}), "
            "but no CUDA GPU is visible here; run it on that GPU or build a CPU package here.")
    return requested or built


def check_gpu(info: PackageInfo, gpu_name: str, compute_capability: str) -> None:
    """Refuse a CUDA package compiled for a GPU of another compute capability (its kernels target that one)."""
    built = info.get("edge_reid.compute_capability")
    if built and built != compute_capability:
        raise InvalidInputError(
            f"Package {info.path} was compiled for {info.get('edge_reid.gpu_name') or 'a GPU'} (compute capability "
            f"{built}), but this GPU is {gpu_name} ({compute_capability}); build the package on this GPU.")
