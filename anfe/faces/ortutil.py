"""ONNX Runtime plumbing shared by the converted dlib networks: providers, a conversion cache.

A leaf module (only :mod:`anfe.core.config` and :mod:`anfe.core.errors` below it), so the encoder
(:mod:`anfe.faces.onnxnet`) and the CNN detector (:mod:`anfe.faces.cnndetector`) share it without importing
each other.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from anfe.core.config import DEVICES
from anfe.core.errors import AnfeError

log = logging.getLogger(__name__)

INSTALL_ONNX = "pip install onnx onnxruntime"


class EncoderUnavailableError(AnfeError):
    """The ONNX encoder cannot run here (package missing, device absent, model not convertible)."""


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_conversion(dat_path: str | Path, cache_dir: str | Path, stem: str, version: int, convert) -> Path:
    """``cache_dir/<stem>-<sha256 of the .dat>-g<version>.onnx``, made by ``convert()`` (a ModelProto) when
    absent. Written to a temporary file and renamed, so a killed conversion never leaves a half
    file behind."""
    cache_dir = Path(cache_dir)
    target = cache_dir / f"{stem}-{sha256_of(dat_path)[:32]}-g{version}.onnx"
    if target.is_file():
        return target
    model = convert()
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=cache_dir, suffix=".onnx.part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(model.SerializeToString())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    log.info("converted %s to %s", dat_path, target)
    return target


def providers_for(device: str) -> list[str]:
    """ONNX Runtime execution providers for ``--device`` (cuda: required; auto: if present)."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {device!r}")
    try:
        import onnxruntime
    except ImportError as exc:
        raise EncoderUnavailableError(f"onnxruntime is not installed: run `{INSTALL_ONNX}`") from exc
    available = onnxruntime.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise EncoderUnavailableError(
            "no CUDA execution provider in onnxruntime (providers: "
            f"{', '.join(available)}): install onnxruntime-gpu on a machine with a CUDA device"
        )
    if device != "cpu" and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def open_session(model_path: str | Path, device: str, threads: int):
    """An ONNX Runtime session on ``device``'s providers with ``threads`` intra-op threads (0: all
    cores), one inter-op thread and only errors logged."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(model_path), options, providers=providers_for(device))


@dataclass
class OnnxSession:
    """A converted model in an ONNX Runtime session (one per process: a session does not survive
    a fork)."""

    model_path: Path
    device: str = "auto"
    threads: int = 0  # intra-op threads; 0: ONNX Runtime's default (all cores)

    def __post_init__(self) -> None:
        self.session = open_session(self.model_path, self.device, self.threads)
        self.providers = self.session.get_providers()

    @property
    def running_on(self) -> str:
        return self.session.get_providers()[0]
