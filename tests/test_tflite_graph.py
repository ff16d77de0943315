"""varec.tflite_graph: TFLite files as JAX functions, checked op by op against
TFLite's own interpreter on small models TensorFlow converts here."""

import numpy as np
import pytest
import tensorflow as tf  # The test requirements' (TFDS's command line).

from varec import tflite_graph


def _convert(function, shape, float16: bool = True) -> bytes:
  """A TFLite flatbuffer of `function` on a (1, *shape) float32 input, its
  weights stored as float16 (DEQUANTIZE on load) as MediaPipe's are."""
  if isinstance(function, tf.keras.Model):
    converter = tf.lite.TFLiteConverter.from_keras_model(function)
  else:
    concrete = tf.function(function).get_concrete_function(
      tf.TensorSpec((1, *shape), tf.float32)
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [concrete], function
    )
  if float16:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
  return converter.convert()


def _tflite_outputs(data: bytes, x: np.ndarray) -> list[np.ndarray]:
  interpreter = tf.lite.Interpreter(
    model_content=data,
    experimental_op_resolver_type=(
      tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    ),
  )
  interpreter.allocate_tensors()
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
  interpreter.invoke()
  return [
    interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()
  ]


def _convolutional_model():
  """Convolutions (strided, SAME and VALID, depthwise), PReLU, pooling, PAD,
  ADD, MUL, CONCATENATION, MEAN, LOGISTIC, RESHAPE: the image networks' ops."""
  keras = tf.keras
  inputs = keras.Input((13, 10, 3), batch_size=1)
  x = keras.layers.ZeroPadding2D(((1, 0), (0, 1)))(inputs)
  x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
  y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
  y = keras.layers.PReLU(shared_axes=[1, 2])(y)
  x = keras.layers.Add()([x, y])
  y = keras.layers.DepthwiseConv2D(3, strides=2, padding="valid")(x)
  x = keras.layers.MaxPool2D(2, padding="same")(x)
  x = keras.layers.Concatenate()(
    [keras.layers.Cropping2D(((0, 1), (0, 1)))(x), y]
  )
  z = keras.layers.Conv2D(4, 1, padding="valid", activation="sigmoid")(x)
  x = keras.layers.Concatenate()([x, z])
  mean = keras.layers.Lambda(
    lambda t: tf.reduce_mean(t, axis=[1, 2], keepdims=True)
  )(x)
  x = keras.layers.Multiply()([x, mean])
  outputs = keras.layers.Reshape((-1,))(x)
  model = keras.Model(inputs, outputs)
  rng = np.random.default_rng(0)
  model.set_weights(
    [
      rng.normal(0, 0.5, w.shape).astype(np.float32)
      for w in model.get_weights()
    ]
  )
  return model


def _normalising(x):
  """SUB, DIV, SQRT, RSQRT, NEG, SQUARED_DIFFERENCE, SUM, TRANSPOSE and
  STRIDED_SLICE: the blendshape network's landmark normalisation and mixer."""
  centred = x - tf.reduce_mean(x, axis=1, keepdims=True)
  norm = tf.sqrt(tf.reduce_sum(centred * centred, axis=2, keepdims=True))
  x = centred / tf.reduce_mean(norm, axis=1, keepdims=True)
  spread = tf.math.squared_difference(x, tf.reduce_mean(x, 2, keepdims=True))
  x = -x * tf.math.rsqrt(tf.reduce_mean(spread, 2, keepdims=True) + 1e-3)
  x = tf.transpose(x, (0, 2, 1))
  return x[:, 1:, ::2], x[:, 0, 3:9]


def test_image_operators_compute_what_tflite_computes():
  model = _convolutional_model()
  data = _convert(model, (13, 10, 3))
  x = np.random.default_rng(1).normal(size=(1, 13, 10, 3)).astype(np.float32)
  graph, constants = tflite_graph.read(data)
  kinds = {op.kind for op in graph.ops}
  assert {
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "PRELU",
    "MAX_POOL_2D",
    "PAD",
  } <= kinds
  (ours,) = tflite_graph.apply(graph, constants, x)
  (theirs,) = _tflite_outputs(data, x)
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_normalising_operators_compute_what_tflite_computes():
  data = _convert(_normalising, (12, 4), float16=False)
  x = np.random.default_rng(2).uniform(0, 300, (1, 12, 4)).astype(np.float32)
  graph, constants = tflite_graph.read(data)
  kinds = {op.kind for op in graph.ops}
  assert {"STRIDED_SLICE", "TRANSPOSE", "RSQRT", "SQUARED_DIFFERENCE"} <= kinds
  ours = tflite_graph.apply(graph, constants, x)
  theirs = _tflite_outputs(data, x)
  # Outputs may come in another order: match them by shape.
  for mine in ours:
    match = [t for t in theirs if t.shape == mine.shape]
    np.testing.assert_allclose(mine, match[0], rtol=1e-5, atol=1e-5)


def test_a_batch_gives_each_example_its_own_result():
  data = _convert(_convolutional_model(), (13, 10, 3))
  graph, constants = tflite_graph.read(data)
  run = tflite_graph.batched(graph, constants)
  x = np.random.default_rng(3).normal(size=(5, 13, 10, 3)).astype(np.float32)
  (together,) = run(x)
  assert together.shape[0] == 5
  for i in range(5):
    (alone,) = tflite_graph.apply(graph, constants, x[i : i + 1])
    np.testing.assert_allclose(together[i], alone[0], rtol=1e-5, atol=1e-5)


def test_an_unsupported_operator_is_refused_when_read():
  data = _convert(lambda x: tf.nn.softmax(x), (6,), float16=False)
  with pytest.raises(tflite_graph.GraphError, match="SOFTMAX"):
    tflite_graph.read(data, "softmax.tflite")


def test_bytes_that_are_no_tflite_model_are_refused():
  with pytest.raises(tflite_graph.GraphError, match="junk.tflite"):
    tflite_graph.read(b"\x00" * 64, "junk.tflite")
