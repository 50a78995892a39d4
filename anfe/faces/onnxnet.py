"""dlib's face network as an ONNX graph, converted once, cached, and run with ONNX Runtime.

The dlib wheel we install is built without BLAS, so its face network runs on dlib's own
matrix code (80-210 ms per face). The same network with the same weights on ONNX Runtime
gives the same descriptors (max |difference| below 1e-5 per component, tested) many times
faster, and in batches. The graph is built with ``onnx.helper`` from the weights that
:mod:`anfe.faces.dlibnet` reads; the ``.onnx`` file is kept in the cache folder under the ``.dat``
file's sha256, so conversion happens once per model file and nothing is downloaded.

The graph takes face chips as dlib cuts them (``uint8``, ``N x 150 x 150 x 3`` RGB) and
returns dlib's 128-D descriptors (``float32``, not normalised). What it reproduces:
  - the input is (pixel - mean) / 256, per channel;
  - convolutions carry biases; padding is half the kernel at stride 1 and 0 otherwise;
  - ``affine`` is a per-channel scale and shift;
  - a residual add whose inputs differ in shape zero-pads the smaller one at the end of the
    channel, row and column axes (4x4 + 3x3, then 2x2 + 1x1);
  - a global average, then a 256 -> 128 fully connected layer without bias.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dlibnet import CHIP_SIZE, DlibFormatError, Network, read_network
from .ortutil import (INSTALL_ONNX, EncoderUnavailableError, OnnxSession, cached_conversion,
                      providers_for, sha256_of)

__all__ = ["EncoderUnavailableError", "FaceNet", "INSTALL_ONNX", "build_graph", "cached_conversion",
           "converted_model", "load_facenet", "providers_for", "sha256_of"]

log = logging.getLogger(__name__)

#: Bumped when the graph built from the same ``.dat`` changes (a new cached file name).
GRAPH_VERSION = 1
INPUT, OUTPUT = "chips", "descriptors"


# -- the graph ------------------------------------------------------------------------------------


def build_graph(network: Network):
    """An ``onnx.ModelProto`` computing the network's descriptors from uint8 NHWC chips."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise EncoderUnavailableError(f"the onnx package is not installed: run `{INSTALL_ONNX}`") from exc

    nodes: list = []
    inits: list = []
    counter = iter(range(10**6))

    def name(prefix: str) -> str:
        return f"{prefix}_{next(counter)}"

    def const(array: np.ndarray, prefix: str) -> str:
        key = name(prefix)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), key))
        return key

    def node(op: str, inputs: list[str], **attrs) -> str:
        out = name(op.lower())
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    # (pixel - mean) / 256 in float32, exactly as dlib's input layer computes it; NHWC -> NCHW.
    x = node("Cast", [INPUT], to=TensorProto.FLOAT)
    x = node("Sub", [x, const(np.array(network.means, dtype=np.float32), "mean")])
    x = node("Mul", [x, const(np.array(1 / 256, dtype=np.float32), "scale")])
    x = node("Transpose", [x], perm=[0, 3, 1, 2])
    shape = (3, CHIP_SIZE, CHIP_SIZE)  # channels, rows, cols
    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    for layer in reversed(network.layers):  # innermost first
        kind = layer.kind
        if kind == "con":
            w, b = layer.weights["W"], layer.weights["B"]
            p = layer.padding
            x = node("Conv", [x, const(w, "W"), const(b, "B")], kernel_shape=[layer.kernel] * 2,
                     strides=[layer.stride] * 2, pads=[p, p, p, p])
            shape = (layer.filters, *(_out(s, layer.kernel, layer.stride, p) for s in shape[1:]))
        elif kind == "affine":
            k = shape[0]
            x = node("Mul", [x, const(layer.weights["gamma"].reshape(1, k, 1, 1), "gamma")])
            x = node("Add", [x, const(layer.weights["beta"].reshape(1, k, 1, 1), "beta")])
        elif kind == "relu":
            x = node("Relu", [x])
        elif kind in ("max_pool", "avg_pool"):
            op = "MaxPool" if kind == "max_pool" else "AveragePool"
            x = node(op, [x], kernel_shape=[layer.kernel] * 2, strides=[layer.stride] * 2)
            shape = (shape[0], *(_out(s, layer.kernel, layer.stride, 0) for s in shape[1:]))
        elif kind == "avg_all":
            x = node("GlobalAveragePool", [x])
            shape = (shape[0], 1, 1)
        elif kind == "tag":
            tags[layer.tag] = (x, shape)
        elif kind == "skip":
            x, shape = tags[layer.tag]
        elif kind == "add_prev":
            other, other_shape = tags[layer.tag]
            target = tuple(max(a, b) for a, b in zip(shape, other_shape))
            x = node("Add", [_pad_to(x, shape, target, node, const), _pad_to(other, other_shape, target, node, const)])
            shape = target
        elif kind == "fc":
            x = node("Flatten", [x], axis=1)
            x = node("MatMul", [x, const(layer.weights["W"], "fcW")])
            shape = (layer.filters,)
        else:  # pragma: no cover - dlibnet only yields the kinds above
            raise DlibFormatError(f"no ONNX translation for a {kind} layer")
    nodes[-1].output[0] = OUTPUT
    graph = helper.make_graph(
        nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(INPUT, TensorProto.UINT8, ["n", CHIP_SIZE, CHIP_SIZE, 3])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["n", 128])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="anfe-faces", producer_version=str(GRAPH_VERSION))
    model.ir_version = 8  # readable by any onnxruntime >= 1.10
    onnx.checker.check_model(model)
    return model


def _out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _pad_to(x: str, shape: tuple, target: tuple, node, const) -> str:
    """Zero-pad at the end of the channel, row and column axes (dlib's add of unequal shapes)."""
    if shape == target:
        return x
    ends = [0, *(t - s for s, t in zip(shape, target))]
    return node("Pad", [x, const(np.array([0, 0, 0, 0, *ends], dtype=np.int64), "pads")])


# -- conversion, cached by the model file's hash -------------------------------------------------


def converted_model(dat_path: str | Path, cache_dir: str | Path) -> Path:
    """The ``.onnx`` file for ``dat_path``, converting it first if the cache has none.

    The file name carries the ``.dat`` file's sha256 and the graph version, so another model
    file or a changed converter is converted anew.
    """
    return cached_conversion(dat_path, cache_dir, "face_resnet_v1", GRAPH_VERSION,
                             lambda: build_graph(read_network(dat_path)))


# -- running it -------------------------------------------------------------------------------


@dataclass
class FaceNet(OnnxSession):
    """An ONNX Runtime session over the converted network (one per process)."""

    batch_size: int = 32

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        """float64 descriptors (n x 128) for uint8 chips (n x 150 x 150 x 3), in batches."""
        chips = np.ascontiguousarray(chips, dtype=np.uint8)
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chips must be n x {CHIP_SIZE} x {CHIP_SIZE} x 3, not {chips.shape}")
        parts = [
            self.session.run([OUTPUT], {INPUT: chips[i : i + self.batch_size]})[0]
            for i in range(0, len(chips), self.batch_size)
        ]
        if not parts:
            return np.empty((0, 128))
        return np.concatenate(parts).astype(np.float64)


def load_facenet(dat_path: str | Path, cache_dir: str | Path, device: str = "auto", threads: int = 0) -> FaceNet:
    """Convert (once) and open the network; :class:`DlibFormatError` or
    :class:`EncoderUnavailableError` when it cannot be used, so the caller can fall back."""
    providers_for(device)  # a missing onnxruntime or CUDA says so before any conversion work
    path = converted_model(dat_path, cache_dir)
    try:
        return FaceNet(path, device, threads)
    except Exception as exc:  # a damaged cached file: convert again once
        if isinstance(exc, EncoderUnavailableError):
            raise
        log.warning("cached ONNX model %s could not be opened (%s); converting again", path, exc)
        path.unlink(missing_ok=True)
        return FaceNet(converted_model(dat_path, cache_dir), device, threads)
