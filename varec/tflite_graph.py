"""A TFLite model as a pure JAX function: read once, then jit-compiled and
batched.

MediaPipe ships its face networks as TFLite flatbuffers (`varec.face_mesh`).
Rather than re-typing each architecture as Flax modules by hand, `read` turns a
flatbuffer's single subgraph into a `Graph` (its operators with their static
options, in execution order) and its constant tensors (float16 weights
dequantized to float32, as TFLite's DEQUANTIZE does on load); `apply`
evaluates the graph with `jax.lax`, so the same network runs under `jit`, on
a batch (`batched`), and on a GPU, with results checked against MediaPipe's
own runtime (tests/test_face_mesh.py). Only the builtin operators these
networks use are supported; any other is refused by name when the file is
read, never at run time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import tflite

# TFLite's fused activations (ActivationFunctionType), by number.
_ACTIVATIONS = {
  0: lambda x: x,
  1: jax.nn.relu,
  2: lambda x: jnp.clip(x, -1.0, 1.0),
  3: lambda x: jnp.clip(x, 0.0, 6.0),
  4: jnp.tanh,
}
# Fp32 everywhere: a GPU would otherwise use TF32 in convolutions and move the
# landmarks by more than the oracle's tolerance.
_PRECISION = lax.Precision.HIGHEST


class GraphError(ValueError):
  """A TFLite file this reader cannot turn into a JAX function."""


@dataclasses.dataclass(frozen=True)
class Op:
  """One operator: builtin name, tensor indices (-1: absent), static options."""

  kind: str
  inputs: tuple[int, ...]
  outputs: tuple[int, ...]
  options: tuple[tuple[str, Any], ...] = ()

  def option(self, name: str, default=None):
    return dict(self.options).get(name, default)


@dataclasses.dataclass(frozen=True)
class Graph:
  """A subgraph's operators in execution order, and its inputs and outputs."""

  ops: tuple[Op, ...]
  inputs: tuple[int, ...]
  outputs: tuple[int, ...]
  input_shapes: tuple[tuple[int, ...], ...]


def _options(kind: str, op, ints) -> tuple[tuple[str, Any], ...]:
  """The static options of `op` that `apply` reads, as sorted pairs."""
  table = op.BuiltinOptions()
  if kind == "CONV_2D":
    o = tflite.Conv2DOptions()
  elif kind == "DEPTHWISE_CONV_2D":
    o = tflite.DepthwiseConv2DOptions()
  elif kind == "MAX_POOL_2D":
    o = tflite.Pool2DOptions()
  elif kind in ("ADD", "SUB", "MUL", "DIV", "CONCATENATION"):
    o = {
      "ADD": tflite.AddOptions,
      "SUB": tflite.SubOptions,
      "MUL": tflite.MulOptions,
      "DIV": tflite.DivOptions,
      "CONCATENATION": tflite.ConcatenationOptions,
    }[kind]()
  elif kind in ("MEAN", "SUM"):
    o = tflite.ReducerOptions()
  elif kind == "STRIDED_SLICE":
    o = tflite.StridedSliceOptions()
  elif kind == "RESHAPE":
    o = tflite.ReshapeOptions()
  else:
    return ()
  if table is None:
    return ()
  o.Init(table.Bytes, table.Pos)
  if kind == "RESHAPE":
    shape = o.NewShapeAsNumpy() if o.NewShapeLength() else ()
    return (("new_shape", tuple(int(v) for v in shape)),)
  fields = {
    "Padding": "padding",
    "StrideW": "stride_w",
    "StrideH": "stride_h",
    "DilationWFactor": "dilation_w",
    "DilationHFactor": "dilation_h",
    "FilterWidth": "filter_w",
    "FilterHeight": "filter_h",
    "DepthMultiplier": "depth_multiplier",
    "FusedActivationFunction": "activation",
    "Axis": "axis",
    "KeepDims": "keep_dims",
    "BeginMask": "begin_mask",
    "EndMask": "end_mask",
    "EllipsisMask": "ellipsis_mask",
    "NewAxisMask": "new_axis_mask",
    "ShrinkAxisMask": "shrink_axis_mask",
    "Offset": "offset",
  }
  return tuple(
    sorted(
      (name, ints(getattr(o, method)()))
      for method, name in fields.items()
      if hasattr(o, method)
    )
  )


_SUPPORTED = frozenset(
  {
    "ADD",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DIV",
    "LOGISTIC",
    "MAX_POOL_2D",
    "MEAN",
    "MUL",
    "NEG",
    "PAD",
    "PRELU",
    "RELU",
    "RESHAPE",
    "RSQRT",
    "SQRT",
    "SQUARED_DIFFERENCE",
    "STRIDED_SLICE",
    "SUB",
    "SUM",
    "TRANSPOSE",
  }
)
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}


def read(
  data: bytes, name: str = "model"
) -> tuple[Graph, dict[int, np.ndarray]]:
  """A TFLite flatbuffer -> (graph, constants by tensor index).

  Args:
    data: the .tflite file's bytes.
    name: the file's name, for errors.

  Returns:
    The graph and its constant tensors; float16 weights come dequantized to
    float32 and their DEQUANTIZE operators are dropped.

  Raises:
    GraphError: not a TFLite model, more than one subgraph, or an operator or
      tensor type `apply` does not implement.
  """
  try:
    model = tflite.Model.GetRootAsModel(data, 0)
    count = model.SubgraphsLength()
  except Exception as e:  # flatbuffers raises whatever its reads hit.
    raise GraphError(f"{name}: not a TFLite model ({e})") from None
  if count != 1:
    raise GraphError(f"{name}: {count} subgraphs; one is supported")
  graph = model.Subgraphs(0)
  constants = _constants(model, graph, name)
  ops = _ops(model, graph, constants, name)
  inputs = tuple(int(i) for i in graph.InputsAsNumpy())
  shapes = tuple(
    tuple(int(s) for s in graph.Tensors(i).ShapeAsNumpy()) for i in inputs
  )
  return (
    Graph(
      tuple(ops), inputs, tuple(int(i) for i in graph.OutputsAsNumpy()), shapes
    ),
    constants,
  )


def _constants(model, graph, name: str) -> dict[int, np.ndarray]:
  """The subgraph's tensors that hold data, by tensor index, as stored.

  Raises:
    GraphError: a tensor's type is not one of `_DTYPES`.
  """
  constants = {}
  for index in range(graph.TensorsLength()):
    tensor = graph.Tensors(index)
    buffer = model.Buffers(tensor.Buffer())
    if buffer is None or buffer.DataLength() == 0:
      continue
    if tensor.Type() not in _DTYPES:
      raise GraphError(
        f"{name}: tensor {index} has TFLite type {tensor.Type()}"
      )
    shape = (
      tuple(int(s) for s in tensor.ShapeAsNumpy())
      if tensor.ShapeLength()
      else ()
    )
    values = np.frombuffer(
      buffer.DataAsNumpy().tobytes(), _DTYPES[tensor.Type()]
    )
    constants[index] = values.reshape(shape)
  return constants


def _ops(model, graph, constants: dict, name: str) -> list[Op]:
  """The subgraph's operators in order; a DEQUANTIZE of a constant is applied
  to `constants` in place (float32 under its output's index) and dropped.

  Raises:
    GraphError: an operator is not one of `_SUPPORTED`.
  """
  ops = []
  for position in range(graph.OperatorsLength()):
    op = graph.Operators(position)
    code = model.OperatorCodes(op.OpcodeIndex())
    number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    kind = tflite.opcode2name(number) if number != 32 else "CUSTOM"
    inputs = (
      tuple(int(i) for i in op.InputsAsNumpy()) if op.InputsLength() else ()
    )
    outputs = tuple(int(i) for i in op.OutputsAsNumpy())
    if kind == "DEQUANTIZE" and inputs[0] in constants:
      constants[outputs[0]] = constants.pop(inputs[0]).astype(np.float32)
      continue
    if kind not in _SUPPORTED:
      raise GraphError(
        f"{name}: operator {position} is {kind}, which varec's TFLite reader "
        "does not implement"
      )
    ops.append(Op(kind, inputs, outputs, _options(kind, op, _plain)))
  return ops


def _plain(value):
  """A flatbuffer option value as a hashable Python value."""
  return bool(value) if isinstance(value, (bool, np.bool_)) else int(value)


def _padding(op: Op) -> str:
  return "SAME" if op.option("padding") == 0 else "VALID"


def _same_padding(x, window: tuple[int, int], strides: tuple[int, int]):
  """`x` (N, H, W, C) padded as TFLite's SAME does (the extra pixel after)."""
  pads = [(0, 0)]
  for size, k, s in zip(x.shape[1:3], window, strides):
    total = max((-(-size // s) - 1) * s + k - size, 0)
    pads.append((total // 2, total - total // 2))
  return jnp.pad(x, pads + [(0, 0)])


def _depthwise(x, kernel, strides: tuple[int, int], padding: str):
  """DEPTHWISE_CONV_2D (multiplier 1) as a sum of shifted, weighted copies.

  XLA:CPU's grouped convolution runs MediaPipe's landmark network 7-14x
  slower than this sum of kernel-size multiply-adds, which it fuses into one
  loop (benchmarks/results/face_mesh.md); a GPU fuses it as well.
  """
  kh, kw, _ = kernel.shape
  if padding == "SAME":
    x = _same_padding(x, (kh, kw), strides)
  sh, sw = strides
  out_h = (x.shape[1] - kh) // sh + 1
  out_w = (x.shape[2] - kw) // sw + 1
  y = 0.0
  for i in range(kh):
    for j in range(kw):
      window = x[
        :, i : i + (out_h - 1) * sh + 1 : sh, j : j + (out_w - 1) * sw + 1 : sw
      ]
      y = y + window * kernel[i, j]
  return y


def _conv(op: Op, x, kernel, bias):
  """CONV_2D (kernel OHWI) and DEPTHWISE_CONV_2D (kernel 1HWC)."""
  strides = (op.option("stride_h"), op.option("stride_w"))
  dilation = (op.option("dilation_h", 1), op.option("dilation_w", 1))
  if dilation != (1, 1):
    raise GraphError(f"{op.kind} with dilation {dilation} is not supported")
  if op.kind == "DEPTHWISE_CONV_2D":
    if kernel.shape[-1] != x.shape[-1]:
      raise GraphError(
        "DEPTHWISE_CONV_2D with a depth multiplier is not supported"
      )
    y = _depthwise(x, kernel[0], strides, _padding(op))
  else:
    y = lax.conv_general_dilated(
      x,
      kernel,
      strides,
      _padding(op),
      dimension_numbers=("NHWC", "OHWI", "NHWC"),
      precision=_PRECISION,
    )
  if bias is not None:
    y = y + bias
  return _ACTIVATIONS[op.option("activation", 0)](y)


def _max_pool(op: Op, x):
  window = (1, op.option("filter_h"), op.option("filter_w"), 1)
  strides = (1, op.option("stride_h"), op.option("stride_w"), 1)
  y = lax.reduce_window(x, -jnp.inf, lax.max, window, strides, _padding(op))
  return _ACTIVATIONS[op.option("activation", 0)](y)


def _strided_slice(op: Op, x, begin, end, strides):
  """STRIDED_SLICE with static begin, end and strides (no ellipsis or new
  axes)."""
  if op.option("ellipsis_mask") or op.option("new_axis_mask"):
    raise GraphError("STRIDED_SLICE with ellipsis or new axes is not supported")
  index = []
  for axis, (b, e, s) in enumerate(zip(begin, end, strides)):
    if op.option("shrink_axis_mask", 0) >> axis & 1:
      index.append(int(b))
      continue
    if op.option("offset"):
      e = int(b) + int(e)
    index.append(
      slice(
        None if op.option("begin_mask", 0) >> axis & 1 else int(b),
        None if op.option("end_mask", 0) >> axis & 1 else int(e),
        int(s),
      )
    )
  return x[tuple(index)]


_ELEMENTWISE = {
  "ADD": jnp.add,
  "SUB": jnp.subtract,
  "MUL": jnp.multiply,
  "DIV": jnp.divide,
  "SQUARED_DIFFERENCE": lambda a, b: jnp.square(a - b),
}
_UNARY = {
  "LOGISTIC": jax.nn.sigmoid,
  "NEG": jnp.negative,
  "RELU": jax.nn.relu,
  "RSQRT": lax.rsqrt,
  "SQRT": jnp.sqrt,
}


def _evaluate(op: Op, args: list, static: list):
  """One operator on its inputs (`static`: the NumPy constants, or None)."""
  if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
    bias = args[2] if len(args) > 2 else None
    return _conv(op, args[0], args[1], bias)
  if op.kind in _ELEMENTWISE:
    y = _ELEMENTWISE[op.kind](args[0], args[1])
    return _ACTIVATIONS[op.option("activation", 0)](y)
  if op.kind in _UNARY:
    return _UNARY[op.kind](args[0])
  if op.kind == "PRELU":
    return jnp.where(args[0] >= 0, args[0], args[0] * args[1])
  if op.kind == "MAX_POOL_2D":
    return _max_pool(op, args[0])
  if op.kind == "PAD":
    return jnp.pad(args[0], [tuple(int(v) for v in p) for p in static[1]])
  if op.kind == "RESHAPE":
    # The new shape is a second input or, in older files, an option.
    shape = static[1] if len(static) > 1 else op.option("new_shape")
    return jnp.reshape(args[0], tuple(int(v) for v in shape))
  if op.kind == "TRANSPOSE":
    return jnp.transpose(args[0], tuple(int(v) for v in static[1]))
  if op.kind == "CONCATENATION":
    y = jnp.concatenate(args, axis=op.option("axis"))
    return _ACTIVATIONS[op.option("activation", 0)](y)
  if op.kind in ("MEAN", "SUM"):
    axes = tuple(int(a) for a in np.atleast_1d(static[1]))
    reduce = jnp.mean if op.kind == "MEAN" else jnp.sum
    return reduce(args[0], axis=axes, keepdims=bool(op.option("keep_dims")))
  if op.kind == "STRIDED_SLICE":
    return _strided_slice(op, args[0], *static[1:])
  raise GraphError(f"operator {op.kind} is not implemented")  # Refused by read.


def apply(graph: Graph, constants: dict, *inputs):
  """Evaluates `graph` on `inputs` (shaped as the file's inputs, batch 1).

  Args:
    graph: from `read`.
    constants: from `read` (NumPy or JAX arrays; a pytree, so jit can take it).
    *inputs: one array per graph input.

  Returns:
    A tuple of the graph's outputs.
  """
  if len(inputs) != len(graph.inputs):
    raise ValueError(f"{len(graph.inputs)} inputs expected, got {len(inputs)}")
  values = {int(k): v for k, v in constants.items()}
  static = {k: v for k, v in values.items() if isinstance(v, np.ndarray)}
  values.update(zip(graph.inputs, inputs))
  for op in graph.ops:
    args = [values[i] for i in op.inputs if i >= 0]
    shape_args = [static.get(i) for i in op.inputs if i >= 0]
    values[op.outputs[0]] = _evaluate(op, args, shape_args)
  return tuple(values[i] for i in graph.outputs)


_SHAPE_GIVING = ("PAD", "RESHAPE", "TRANSPOSE", "MEAN", "SUM", "STRIDED_SLICE")


def split(
  graph: Graph, constants: dict
) -> tuple[dict[str, np.ndarray], dict[int, np.ndarray]]:
  """(weights, fixed): the constants that are arrays of numbers (keyed by
  str(index), a pytree for jit or a Flax param collection), and those that
  give shapes (PAD, RESHAPE, TRANSPOSE, reduction axes, slices), which must
  stay NumPy to be static under jit."""
  giving = {
    op.inputs[j]
    for op in graph.ops
    for j in range(1, len(op.inputs))
    if op.kind in _SHAPE_GIVING
  }
  weights = {str(k): v for k, v in constants.items() if k not in giving}
  return weights, {k: v for k, v in constants.items() if k in giving}


def apply_example(graph: Graph, weights: dict, fixed: dict, *examples):
  """`apply` on one example of each input (its shape without the file's
  batch of 1), with `split`'s constants; outputs without that batch of 1.
  Under `jax.vmap` this batches."""
  merged = {**{int(k): v for k, v in weights.items()}, **fixed}
  outputs = apply(graph, merged, *(e[None] for e in examples))
  return tuple(_drop_batch(o) for o in outputs)


def batched(
  graph: Graph, constants: dict, pixels: tuple[float, float] | None = None
):
  """A jit-compiled function of batches: (B, *input shape without its batch of
  1) per input -> each output with a leading B (the file's batch of 1 removed).

  The weights are compiled in as constants rather than passed at each call:
  XLA then lays out and transposes the kernels once, when compiling, instead
  of in 72 copies per call of the landmark network, and a call hands over
  one array instead of some 250 (benchmarks/results/face_mesh.md; the
  outputs are the same to the bit).

  Args:
    graph: from `read`.
    constants: from `read`.
    pixels: (scale, offset) where the inputs come as uint8 images: each is
      turned into x * scale + offset in float32 inside the compiled call, as
      MediaPipe's image converter maps pixel values into a network's range
      (a quarter of the bytes to hand over, no conversion on the host).
  """
  weights, fixed = split(graph, constants)

  def one(*examples):
    if pixels is not None:
      scale, offset = (np.float32(v) for v in pixels)
      examples = tuple(e.astype(jnp.float32) * scale + offset for e in examples)
    return apply_example(graph, weights, fixed, *examples)

  return jax.jit(jax.vmap(one), compiler_options=_compiler_options())


def _compiler_options():
  """XLA:CPU hands convolutions to YNNPACK by default, which ran the landmark
  network 0.9-2.3x the time of XLA's own kernels over several runs on a
  shared 2-core machine (benchmarks/results/face_mesh.md): never clearly
  faster, so off."""
  if jax.default_backend() == "cpu":
    return {"xla_cpu_experimental_ynn_fusion_type": ""}
  return None


def _drop_batch(x):
  """An output without the file's leading batch of 1 (if it has one)."""
  return x[0] if x.ndim and x.shape[0] == 1 else x
