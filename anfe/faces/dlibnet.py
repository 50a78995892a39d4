"""Read dlib's face-recognition network file into plain numpy weights, checking every byte.

``dlib_face_recognition_resnet_model_v1.dat`` is dlib's own serialisation of the ResNet that
``face_recognition_model_v1`` runs (defined in dlib's ``tools/python/src/face_recognition.cpp``).
This module knows that one network: it walks the file in the order dlib wrote it, compares
every version string, layer kind, hyper-parameter and tensor shape against the known network,
and requires the whole file to be consumed. Anything else raises :class:`DlibFormatError`, so
a different or damaged file is refused instead of being silently misread (the caller then
falls back to dlib's own encoder).

dlib's encodings (``dlib/serialize.h``, ``float_details.h``, ``cuda/tensor.h``):
  integer  a control byte (low 4 bits: byte count, 0x80: negative), then the absolute value,
           little-endian, without trailing zero bytes;
  float    two integers, a 64-bit mantissa and a 16-bit exponent (mantissa * 2**exponent);
  string   a length, then the bytes;  bool  the ASCII byte '1' or '0';
  tensor   version 2, N, K, rows, cols, then raw little-endian float32 (NCHW);
  alias    (a view into a layer's parameters) version 1 and four dimensions, no data.
A network is nested wrappers, outermost first: each wrapper writes its version, then the
network it wraps, then its own layer. So the file holds the loss, a run of version numbers
(the wrappers), the input layer, then each layer's contents, innermost first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anfe.core.errors import AnfeError

#: The known network's parameter count (weights and biases of every layer).
PARAMETER_COUNT = 5_614_592
CHIP_SIZE = 150


class DlibFormatError(AnfeError):
    """The file is not the known dlib face network (damaged, truncated or another network)."""


# -- the known network ------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One layer of the network, with its weights once read (``kind`` names dlib's layer)."""

    kind: str  # con, affine, relu, max_pool, avg_pool, avg_all, add_prev, fc, tag, skip
    filters: int = 0
    kernel: int = 0
    stride: int = 1
    tag: int = 0  # tag/skip/add_prev: which tag
    weights: dict[str, np.ndarray] = field(default_factory=dict, compare=False)

    @property
    def padding(self) -> int:
        """dlib's default: half the kernel for stride 1, else 0."""
        return self.kernel // 2 if self.stride == 1 else 0

    @property
    def is_wrapper_only(self) -> bool:
        """Tag and skip layers write only a version number: no contents."""
        return self.kind in ("tag", "skip")


def _block(filters: int, stride: int) -> list[Layer]:
    """dlib's ``block``: con(stride) -> affine -> relu -> con(1) -> affine, listed outermost first."""
    return [
        Layer("affine"), Layer("con", filters, 3, 1), Layer("relu"),
        Layer("affine"), Layer("con", filters, 3, stride),
    ]


def _residual(filters: int) -> list[Layer]:
    return [Layer("relu"), Layer("add_prev", tag=1), *_block(filters, 1), Layer("tag", tag=1)]


def _residual_down(filters: int) -> list[Layer]:
    return [
        Layer("relu"), Layer("add_prev", tag=2), Layer("avg_pool", kernel=2, stride=2),
        Layer("skip", tag=1), Layer("tag", tag=2), *_block(filters, 2), Layer("tag", tag=1),
    ]


def known_layers() -> list[Layer]:
    """The network of ``face_recognition.cpp`` (``anet_type``), outermost layer first."""
    layers = [Layer("fc", 128), Layer("avg_all")]
    layers += _residual_down(256)
    layers += _residual(256) + _residual(256) + _residual_down(256)
    layers += _residual(128) + _residual(128) + _residual_down(128)
    layers += _residual(64) + _residual(64) + _residual(64) + _residual_down(64)
    layers += _residual(32) + _residual(32) + _residual(32)
    layers += [Layer("max_pool", kernel=3, stride=2), Layer("relu"), Layer("affine"), Layer("con", 32, 7, 2)]
    return layers


@dataclass(frozen=True)
class Network:
    """The network read from a file: its layers (outermost first, weights filled in) and input."""

    layers: list[Layer]
    means: tuple[float, float, float]  # the input layer's red, green, blue averages
    margin: float
    threshold: float

    @property
    def parameter_count(self) -> int:
        return sum(int(w.size) for layer in self.layers for w in layer.weights.values())


# -- dlib's encodings ---------------------------------------------------------------------------


class _Reader:
    """A cursor over the file's bytes; every read checks that enough bytes are left."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.pos = 0
        self.name = name

    def fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.name}: {what} at byte {self.pos} of {len(self.data)}")

    def take(self, count: int, what: str) -> bytes:
        if self.pos + count > len(self.data):
            raise self.fail(f"file ends inside {what} (truncated?)")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self, what: str = "an integer") -> int:
        control = self.take(1, what)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x} for {what}")
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def real(self, what: str = "a float") -> float:
        mantissa = self.integer(what)
        exponent = self.integer(what)
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def string(self, what: str = "a string") -> str:
        length = self.integer(what)
        if length < 0 or length > 256:
            raise self.fail(f"implausible string length {length} for {what}")
        try:
            return self.take(length, what).decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not text") from None

    def boolean(self, what: str = "a bool") -> bool:
        byte = self.take(1, what)
        if byte not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {byte!r} for {what}")
        return byte == b"1"

    def version(self, expected: tuple[str, ...], what: str) -> str:
        found = self.string(f"the version of {what}")
        if found not in expected:
            raise self.fail(f"{what}: version {found!r}, expected {' or '.join(map(repr, expected))}")
        return found

    def expect(self, found: object, expected: object, what: str) -> None:
        if found != expected:
            raise self.fail(f"{what} is {found!r}, expected {expected!r}")

    def tensor(self, what: str) -> np.ndarray:
        """A tensor with data: version 2, four dimensions, float32 values."""
        self.expect(self.integer(what), 2, f"the tensor version of {what}")
        dims = tuple(self.integer(what) for _ in range(4))
        if any(d < 0 for d in dims) or math.prod(dims) > 50_000_000:
            raise self.fail(f"implausible tensor shape {dims} for {what}")
        raw = self.take(4 * math.prod(dims), f"the values of {what}")
        return np.frombuffer(raw, dtype="<f4").reshape(dims).astype(np.float32)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        """A shape-only tensor (a view into the parameters): version 1, four dimensions."""
        self.expect(self.integer(what), 1, f"the alias version of {what}")
        return tuple(self.integer(what) for _ in range(4))  # type: ignore[return-value]


# -- the file -------------------------------------------------------------------------------------


def read_network(path: str | Path) -> Network:
    """The known face network read from ``path``; :class:`DlibFormatError` on any mismatch."""
    return parse_network(*model_bytes(path))


def model_bytes(path: str | Path) -> tuple[bytes, str]:
    """A model file's bytes and name; an unreadable file is a :class:`DlibFormatError` too."""
    path = Path(path)
    try:
        return path.read_bytes(), path.name
    except OSError as exc:
        raise DlibFormatError(f"cannot read the dlib model {path}: {exc}") from exc


def parse_network(data: bytes, name: str = "model") -> Network:
    """As :func:`read_network`, from the file's bytes."""
    r = _Reader(data, name)
    r.expect(r.integer(), 1, "the loss layer version")
    r.version(("loss_metric_2",), "the loss layer")
    margin, threshold = r.real("the loss margin"), r.real("the loss threshold")
    layers = known_layers()
    wrapper_versions = []
    for index, layer in enumerate(layers):
        version = r.integer(f"the {layer.kind} wrapper version")
        # Tags and skips: 1. Layers: 2. The innermost one also holds the input layer: 2 or 3.
        allowed = (1,) if layer.is_wrapper_only else (2, 3) if index == len(layers) - 1 else (2,)
        if version not in allowed:
            raise r.fail(f"the {layer.kind} wrapper has version {version}, expected {allowed}")
        wrapper_versions.append(version)
    r.version(("input_rgb_image_sized",), "the input layer")
    means = (r.real("the red mean"), r.real("the green mean"), r.real("the blue mean"))
    r.expect((r.integer(), r.integer()), (CHIP_SIZE, CHIP_SIZE), "the input size")
    channels = 3
    done: list[Layer] = []
    for index in range(len(layers) - 1, -1, -1):  # contents are written innermost first
        layer = layers[index]
        if layer.is_wrapper_only:
            done.append(layer)
            continue
        weights, channels = _layer_contents(r, layer, channels)
        _wrapper_tail(r, layer, wrapper_versions[index], last=index == len(layers) - 1)
        done.append(Layer(layer.kind, layer.filters, layer.kernel, layer.stride, layer.tag, weights))
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} bytes left over after the network")
    network = Network(done[::-1], means, margin, threshold)
    if network.parameter_count != PARAMETER_COUNT:
        raise DlibFormatError(
            f"{name}: {network.parameter_count} parameters, expected {PARAMETER_COUNT}"
        )
    return network


def _wrapper_tail(r: _Reader, layer: Layer, version: int, last: bool) -> None:
    """What each wrapper writes after its layer: three bools and three (empty) tensors."""
    for what in ("setup-called", "gradient-stale", "gradient-disabled"):
        r.boolean(f"the {layer.kind} layer's {what} flag")
    for what in ("input gradient", "cached output", "parameter gradient"):
        if r.tensor(f"the {layer.kind} layer's {what}").size:
            raise r.fail(f"the {layer.kind} layer's {what} is not empty")
    if last and version == 3:
        r.integer("the sample expansion factor")


def _layer_contents(r: _Reader, layer: Layer, channels: int) -> tuple[dict[str, np.ndarray], int]:
    """Read one layer's own contents; returns its weights and the channels it outputs."""
    kind = layer.kind
    if kind == "con":
        r.version(("con_4",), "a convolution")
        params = r.tensor("convolution parameters").ravel()
        r.expect(r.integer(), layer.filters, "the number of filters")
        r.expect((r.integer(), r.integer()), (layer.kernel, layer.kernel), "the kernel size")
        r.expect((r.integer(), r.integer()), (layer.stride, layer.stride), "the stride")
        r.expect((r.integer(), r.integer()), (layer.padding, layer.padding), "the padding")
        shape = (layer.filters, channels, layer.kernel, layer.kernel)
        r.expect(r.alias("filters"), shape, "the filter shape")
        r.expect(r.alias("biases"), (1, layer.filters, 1, 1), "the bias shape")
        for what in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
            r.real(f"the {what} multiplier")
        size = math.prod(shape)
        r.expect(params.size, size + layer.filters, "the convolution parameter count")
        return {"W": params[:size].reshape(shape), "B": params[size:].copy()}, layer.filters
    if kind == "affine":
        version = r.version(("affine_", "affine_2"), "an affine layer")
        params = r.tensor("affine parameters").ravel()
        r.expect(r.alias("gamma"), (1, channels, 1, 1), "the gamma shape")
        r.expect(r.alias("beta"), (1, channels, 1, 1), "the beta shape")
        r.expect(r.integer(), 0, "the affine mode (0: per channel)")
        if version == "affine_2":
            r.expect(r.boolean(), False, "the affine layer's disabled flag")
        r.expect(params.size, 2 * channels, "the affine parameter count")
        return {"gamma": params[:channels].copy(), "beta": params[channels:].copy()}, channels
    if kind == "relu":
        if r.version(("relu_", "relu_2"), "a relu layer") == "relu_2":
            r.expect(r.boolean(), False, "the relu layer's disabled flag")
        return {}, channels
    if kind in ("max_pool", "avg_pool", "avg_all"):
        r.version(("max_pool_2",) if kind == "max_pool" else ("avg_pool_2",), f"a {kind} layer")
        kernel, stride = (0, 1) if kind == "avg_all" else (layer.kernel, layer.stride)
        r.expect((r.integer(), r.integer()), (kernel, kernel), "the pool size")
        r.expect((r.integer(), r.integer()), (stride, stride), "the pool stride")
        r.expect((r.integer(), r.integer()), (0, 0), "the pool padding")
        return {}, channels
    if kind == "add_prev":
        r.version(("add_prev_",), "an add_prev layer")
        return {}, channels  # the channels of the wider input: set by the caller's walk
    if kind == "fc":
        r.version(("fc_2", "fc_3"), "the fully connected layer")
        r.expect(r.integer(), layer.filters, "the fc outputs")
        r.expect(r.integer(), channels, "the fc inputs")
        params = r.tensor("fc parameters")
        r.expect(r.alias("weights"), (channels, layer.filters, 1, 1), "the fc weight shape")
        r.alias("biases")
        r.expect(r.integer(), 1, "the fc bias mode (1: no bias)")
        for what in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
            r.real(f"the {what} multiplier")
        r.expect(params.size, channels * layer.filters, "the fc parameter count")
        return {"W": params.reshape(channels, layer.filters)}, layer.filters
    raise r.fail(f"no contents expected for a {kind} layer")  # pragma: no cover - tag/skip
