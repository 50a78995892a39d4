"""dlib's CNN face detector (``mmod_human_face_detector.dat``) read byte by byte and built as ONNX.

The network is the one of dlib's ``cnn_face_detector.cpp`` (``net_type``)::

    loss_mmod<con<1,9,9,1,1, rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>
    downsampler = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16, ...>>>>>>>>>
    rcon5 = relu<affine<con5<45, ...>>>     con5d: 5x5, stride 2, no padding; con5: 5x5, stride 1, padding 2

The file is read in the order dlib wrote it (the encodings are :mod:`anfe.faces.dlibnet`'s): the loss
(``loss_mmod_`` and its options: the detection window, the non-max-suppression thresholds), the
wrappers' versions, the input layer (channel means; pyramid paddings), then each layer innermost
first. The trained file stores batch normalisation (``bn_con2``); dlib turns each into an
``affine`` layer when it loads it (gamma / sqrt(running variance + eps), and beta - mean * that),
and so does this reader. Every version string, shape and hyper-parameter is checked, and the
whole file must be consumed; anything else raises :class:`~anfe.faces.dlibnet.DlibFormatError`.

The graph maps the tiled pyramid tensor (``float32``, 1 x 3 x H x W, already (pixel - mean) / 256)
to the detection scores (1 x 1 x h x w); :mod:`anfe.faces.cnndetector` builds the pyramid and turns
scores into boxes as dlib does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dlibnet import DlibFormatError, Layer, _layer_contents, _Reader, _wrapper_tail, model_bytes

GRAPH_VERSION = 1
INPUT, OUTPUT = "pyramid", "scores"
PARAMETER_COUNT = 181_141  # weights, biases and affine scales/shifts of the known network


@dataclass(frozen=True)
class MmodNetwork:
    """The detector read from a file: its layers (innermost first) and what surrounds them."""

    layers: list[Layer]
    means: tuple[float, float, float]  # red, green, blue
    window: tuple[int, int]  # the detection window's width and height (input-tensor pixels)
    nms_iou: float  # two boxes overlap (one is suppressed) above this "IoU" (dlib's) ...
    nms_covered: float  # ... or when one covers more than this share of the other
    padding: int = 10  # between the pyramid's tiles
    outer_padding: int = 11  # around the tiled image

    @property
    def parameter_count(self) -> int:
        return sum(int(w.size) for layer in self.layers for w in layer.weights.values())

    @property
    def stride_and_offset(self) -> tuple[int, int]:
        """Score (r, c) sits at input-tensor point stride * (r, c) + offset (dlib's
        ``output_tensor_to_input_tensor``: each layer maps p to p * stride - padding + kernel // 2)."""
        stride, offset = 1, 0
        for layer in self.layers:  # innermost first: p_in = s * p_out + o composes outward
            if layer.kind == "con":
                o = -layer.padding + layer.kernel // 2
                stride, offset = stride * layer.stride, offset + stride * o
        return stride, offset


def known_layers() -> list[Layer]:
    """The detector's layers, outermost first (as the wrappers are written)."""
    layers = [Layer("con", 1, 9, 1)]
    for _ in range(3):
        layers += [Layer("relu"), Layer("affine"), Layer("con", 45, 5, 1)]
    for filters in (32, 32, 16):
        layers += [Layer("relu"), Layer("affine"), Layer("con", filters, 5, 2)]
    return layers


def read_mmod(path: str | Path) -> MmodNetwork:
    """The known detector read from ``path``; :class:`DlibFormatError` on any mismatch."""
    return parse_mmod(*model_bytes(path))


def parse_mmod(data: bytes, name: str = "model") -> MmodNetwork:
    """As :func:`read_mmod`, from the file's bytes."""
    r = _Reader(data, name)
    r.expect(r.integer(), 1, "the loss layer version")
    r.version(("loss_mmod_",), "the loss layer")
    window, nms = _options(r)
    layers = known_layers()
    versions = []
    for index, layer in enumerate(layers):
        version = r.integer(f"the {layer.kind} wrapper version")
        allowed = (2, 3) if index == len(layers) - 1 else (2,)
        if version not in allowed:
            raise r.fail(f"the {layer.kind} wrapper has version {version}, expected {allowed}")
        versions.append(version)
    input_version = r.version(("input_rgb_image_pyramid", "input_rgb_image_pyramid2"), "the input layer")
    means = (r.real("the red mean"), r.real("the green mean"), r.real("the blue mean"))
    padding, outer = (r.integer(), r.integer()) if input_version.endswith("2") else (10, 11)
    channels = 3
    done: list[Layer] = []
    for index in range(len(layers) - 1, -1, -1):  # contents are written innermost first
        layer = layers[index]
        if layer.kind == "affine":
            weights = _bn_as_affine(r, channels)
        else:
            weights, channels = _layer_contents(r, layer, channels)
        _wrapper_tail(r, layer, versions[index], last=index == len(layers) - 1)
        done.append(Layer(layer.kind, layer.filters, layer.kernel, layer.stride, layer.tag, weights))
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} bytes left over after the network")
    network = MmodNetwork(done, means, window, nms[0], nms[1], padding, outer)
    if network.parameter_count != PARAMETER_COUNT:
        raise DlibFormatError(f"{name}: {network.parameter_count} parameters, expected {PARAMETER_COUNT}")
    return network


def _options(r: _Reader) -> tuple[tuple[int, int], tuple[float, float]]:
    """``mmod_options``: the one detection window, and the NMS overlap test (version 1-4)."""
    version = r.integer("the mmod options version")
    if version == 1:
        window = (r.integer("the window width"), r.integer("the window height"))
    elif 2 <= version <= 4:
        r.expect(r.integer("the number of windows"), 1, "the number of detection windows")
        r.integer("the window details version")
        window = (r.integer("the window width"), r.integer("the window height"))
        r.string("the window label")
    else:
        raise r.fail(f"mmod options version {version}, expected 1 to 4")
    if not all(8 <= side <= 1000 for side in window):
        raise r.fail(f"implausible detection window {window}")
    for what in ("loss per false alarm", "loss per miss", "truth match IoU"):
        r.real(f"the {what}")
    nms = (r.real("the NMS IoU threshold"), r.real("the NMS covered threshold"))
    for what in ("ignore IoU", "ignore covered"):
        r.real(f"the {what} threshold")
    if version >= 3:
        r.take(1, "the image pyramid flag")
    if version >= 4:
        if r.boolean("the bounding box regression flag"):
            raise r.fail("bounding box regression is not supported")
        r.real("the bounding box regression lambda")
    if not all(0.0 < t <= 1.0 for t in nms):
        raise r.fail(f"implausible NMS thresholds {nms}")
    return window, nms


def _bn_as_affine(r: _Reader, channels: int) -> dict[str, np.ndarray]:
    """A ``bn_con2`` layer turned into dlib's affine layer (as ``affine_(const bn_&)`` does)."""
    if r.version(("bn_con2", "affine_", "affine_2"), "a batch-norm or affine layer") != "bn_con2":
        raise r.fail("expected the trained file's bn_con2 layers")
    params = r.tensor("batch-norm parameters").ravel()
    r.expect(r.alias("gamma"), (1, channels, 1, 1), "the gamma shape")
    r.expect(r.alias("beta"), (1, channels, 1, 1), "the beta shape")
    for what in ("batch means", "batch inverse deviations"):
        r.tensor(what)
    running_means = r.tensor("running means").ravel()
    running_variances = r.tensor("running variances").ravel()
    for what in ("number of updates", "running statistics window"):
        r.integer(f"the {what}")
    for what in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        r.real(f"the {what} multiplier")
    eps = r.real("the batch-norm epsilon")
    r.expect(params.size, 2 * channels, "the batch-norm parameter count")
    r.expect((running_means.size, running_variances.size), (channels, channels), "the running statistics sizes")
    # dlib computes this in float (its tensors): gamma / sqrt(var + eps), then beta - gamma' * mean
    gamma = (params[:channels] / np.sqrt(running_variances + np.float32(eps))).astype(np.float32)
    beta = (params[channels:] - gamma * running_means).astype(np.float32)
    return {"gamma": gamma, "beta": beta}


def build_graph(network: MmodNetwork):
    """An ``onnx.ModelProto`` from the pyramid tensor (1 x 3 x H x W) to the scores (1 x 1 x h x w)."""
    from .ortutil import INSTALL_ONNX, EncoderUnavailableError

    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise EncoderUnavailableError(f"the onnx package is not installed: run `{INSTALL_ONNX}`") from exc
    nodes, inits = [], []
    x = INPUT
    for index, layer in enumerate(network.layers):
        out = f"{layer.kind}_{index}"
        if layer.kind == "con":
            w, b = f"W_{index}", f"B_{index}"
            inits += [numpy_helper.from_array(np.ascontiguousarray(layer.weights["W"]), w),
                      numpy_helper.from_array(np.ascontiguousarray(layer.weights["B"]), b)]
            p = layer.padding
            nodes.append(helper.make_node("Conv", [x, w, b], [out], kernel_shape=[layer.kernel] * 2,
                                          strides=[layer.stride] * 2, pads=[p, p, p, p]))
        elif layer.kind == "affine":
            k = layer.weights["gamma"].size
            g, b, scaled = f"gamma_{index}", f"beta_{index}", f"scaled_{index}"
            inits += [numpy_helper.from_array(layer.weights["gamma"].reshape(1, k, 1, 1), g),
                      numpy_helper.from_array(layer.weights["beta"].reshape(1, k, 1, 1), b)]
            nodes += [helper.make_node("Mul", [x, g], [scaled]), helper.make_node("Add", [scaled, b], [out])]
        elif layer.kind == "relu":
            nodes.append(helper.make_node("Relu", [x], [out]))
        else:  # pragma: no cover - known_layers has only these
            raise DlibFormatError(f"no ONNX translation for a {layer.kind} layer")
        x = out
    nodes[-1].output[0] = OUTPUT
    graph = helper.make_graph(
        nodes, "mmod_human_face_detector",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [1, 1, "rows", "cols"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="anfe-faces", producer_version=str(GRAPH_VERSION))
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def window_rect(network: MmodNetwork, row: int, col: int) -> tuple[float, float, float, float]:
    """The detection window of score (row, col) in input-tensor pixels (dlib's ``centered_drect``:
    a width x height box, corners inclusive, around the mapped point)."""
    stride, offset = network.stride_and_offset
    x, y = stride * col + offset, stride * row + offset
    half_w, half_h = (network.window[0] - 1) / 2, (network.window[1] - 1) / 2
    return x - half_w, y - half_h, x + half_w, y + half_h

