"""Tests for varec.models: shapes, pooling semantics, scan vs unrolled GRU."""

import pathlib

from flax import linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from varec import blendshape_emotions
from varec import mesh_geometry
from varec import mesh_reader
from varec import models

DEMO = dict(filters=(16, 32, 64))  # 48x48 demo configuration.


def _frames(shape, seed=0):
  return jnp.asarray(
    np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
  )


def _is_conv(module, method_name):
  return isinstance(module, nn.Conv) and method_name == "__call__"


def test_frame_cnn_paper_size_and_quadrant_pool_on_its_map():
  model = models.FrameCNN()
  x = _frames((1, 96, 96, 1))
  variables = model.init(jax.random.key(0), x, train=False)
  (features, va), state = model.apply(
    variables, x, train=False, capture_intermediates=_is_conv
  )
  assert features.shape == (1, 300)
  assert va.shape == (1, 2)
  # 96 -> conv SAME 96 -> pool 48 -> conv VALID 44 -> pool 22 -> conv VALID 18.
  fmap = state["intermediates"]["Conv_2"]["__call__"][0]
  assert fmap.shape == (1, 18, 18, 256)
  # Keras' AvgPool2D(9, strides=9) on that map.
  np.testing.assert_allclose(
    models.quadrant_pool(fmap),
    nn.avg_pool(fmap, (9, 9), strides=(9, 9)),
    rtol=1e-6,
    atol=1e-7,
  )


def test_frame_cnn_demo_size_keeps_leading_dims_and_scales_uint8():
  model = models.FrameCNN(**DEMO)
  x = _frames((2, 3, 48, 48, 1))
  variables = model.init(jax.random.key(0), x, train=False)
  features, va = model.apply(variables, x, train=False)
  assert features.shape == (2, 3, 300)
  assert va.shape == (2, 3, 2)
  # uint8 frames are the float frames times 255.
  features_f, va_f = model.apply(variables, x / 255.0, train=False)
  np.testing.assert_allclose(features, features_f, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(va, va_f, rtol=1e-5, atol=1e-6)


def test_frame_cnn_in_bfloat16_keeps_float32_parameters_and_outputs():
  x = _frames((4, 48, 48, 1))
  full = models.FrameCNN(**DEMO)
  variables = full.init(jax.random.key(0), x, train=False)
  half = models.FrameCNN(**DEMO, dtype=jnp.bfloat16)
  leaves = jax.tree_util.tree_leaves(
    half.init(jax.random.key(0), x, train=False)
  )
  assert {leaf.dtype for leaf in leaves} == {
    jnp.dtype(jnp.float32)
  }  # Parameters and statistics.
  expected, got = (
    full.apply(variables, x, train=False),
    half.apply(variables, x, train=False),
  )
  for want, have in zip(expected, got):
    assert have.dtype == jnp.float32
    # bfloat16 keeps 8 significant bits: about 2 decimal digits.
    np.testing.assert_allclose(
      have, want, atol=0.05 * float(jnp.abs(want).max())
    )
    assert not np.array_equal(have, want)


def test_frame_cnn_train_mode_drops_out_after_the_features():
  model = models.FrameCNN(**DEMO)
  x = _frames((4, 48, 48, 1))
  variables = model.init(jax.random.key(0), x, train=False)

  def train_apply(seed):
    return model.apply(
      variables,
      x,
      train=True,
      rngs={"dropout": jax.random.key(seed)},
      mutable=["batch_stats"],
    )

  (features1, va1), updates = train_apply(1)
  (features2, va2), _ = train_apply(2)
  np.testing.assert_array_equal(features1, features2)
  assert not np.allclose(va1, va2)
  assert not np.allclose(
    updates["batch_stats"]["BatchNorm_0"]["mean"],
    variables["batch_stats"]["BatchNorm_0"]["mean"],
  )


def test_quadrant_pool_odd_side_shares_middle_row_and_column():
  x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype(np.float32)
  # Rows 0-2 and 2-4, columns 0-3 and 3-6: the middle one is in both halves.
  rows = (slice(0, 3), slice(2, 5))
  cols = (slice(0, 4), slice(3, 7))
  expected = np.zeros((2, 2, 2, 3), np.float32)
  for i, r in enumerate(rows):
    for j, c in enumerate(cols):
      expected[:, i, j] = x[:, r, c].mean((1, 2))
  got = models.quadrant_pool(jnp.asarray(x))
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
  # Flipping the map flips the quadrants.
  np.testing.assert_allclose(
    models.quadrant_pool(jnp.asarray(x[:, :, ::-1])),
    got[:, :, ::-1],
    rtol=1e-6,
    atol=1e-6,
  )


@pytest.mark.parametrize("shape", [(3, 8, 8, 2), (3, 9, 7, 2), (2, 3, 5, 6, 4)])
def test_max_pool_matches_flax_value_and_gradient_with_ties(shape):
  rng = np.random.default_rng(0)
  # Few distinct values, so most windows hold ties.
  x = jnp.asarray(rng.integers(0, 3, shape).astype(np.float32))
  ref = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  y, vjp = jax.vjp(models.max_pool, x)
  y_ref, vjp_ref = jax.vjp(ref, x)
  np.testing.assert_array_equal(y, y_ref)
  g = jnp.asarray(rng.normal(size=y.shape).astype(np.float32))
  np.testing.assert_array_equal(vjp(g)[0], vjp_ref(g)[0])


@pytest.mark.parametrize("hidden_sizes", [(10,), (10, 10, 5)])
def test_gru_stack_scan_matches_unrolled_cells(hidden_sizes):
  b, t, f = 3, 4, 300
  x = jnp.asarray(np.random.default_rng(0).normal(size=(b, t, f)), jnp.float32)
  model = models.GRUStack(hidden_sizes)
  params = model.init(jax.random.key(0), x)["params"]
  y = model.apply({"params": params}, x)
  assert y.shape == (b, t, 2)

  h_seq = x
  for i, size in enumerate(hidden_sizes):
    cell = nn.GRUCell(features=size)
    h = jnp.zeros((b, size))
    outputs = []
    for step in range(t):
      h, _ = cell.apply({"params": params[f"gru{i}"]}, h, h_seq[:, step])
      outputs.append(h)
    h_seq = jnp.stack(outputs, 1)
  expected = h_seq @ params["va"]["kernel"] + params["va"]["bias"]
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hidden_sizes", [(10,), (10, 10, 5)])
def test_cnn_rnn_is_frame_cnn_then_gru_stack(hidden_sizes):
  b, t = 2, 3
  x = _frames((b, t, 48, 48, 1))
  model = models.CNNRNN(cnn=models.FrameCNN(**DEMO), hidden_sizes=hidden_sizes)
  variables = model.init(jax.random.key(0), x, train=False)
  y = model.apply(variables, x, train=False)
  assert y.shape == (b, t, 2)

  cnn = models.FrameCNN(**DEMO)
  # A single-frame CNN's variables load into the CNN-RNN unchanged.
  cnn_variables = {k: v["cnn"] for k, v in variables.items()}
  assert jax.tree.structure(cnn_variables) == jax.tree.structure(
    cnn.init(jax.random.key(1), x[0], train=False)
  )
  features = jnp.stack(
    [cnn.apply(cnn_variables, x[i], train=False)[0] for i in range(b)]
  )
  expected = models.GRUStack(hidden_sizes).apply(
    {"params": variables["params"]["rnn"]}, features
  )
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)

  y_train, _ = model.apply(
    variables,
    x,
    train=True,
    rngs={"dropout": jax.random.key(2)},
    mutable=["batch_stats"],
  )
  assert y_train.shape == (b, t, 2)


class _ConvOfNorm(nn.Module):
  """The straightforward form of `NormalizedConv`: BatchNorm, then a SAME
  convolution."""

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.BatchNorm(
      use_running_average=not train,
      momentum=0.99,
      epsilon=1e-3,
      name="BatchNorm_0",
    )(x)
    return nn.Conv(16, (5, 5), padding="SAME", use_bias=False, name="Conv_0")(x)


class _FoldedNorm(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool):
    norm = nn.BatchNorm(
      use_running_average=not train,
      momentum=0.99,
      epsilon=1e-3,
      name="BatchNorm_0",
    )
    return models.NormalizedConv(16, (5, 5), name="Conv_0")(x, norm)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize(
  "shape", [(6, 20, 20, 1), (2, 3, 17, 17, 1), (4, 12, 12, 3)]
)
def test_normalized_conv_is_batch_norm_then_conv(train, shape):
  x = jax.random.uniform(jax.random.PRNGKey(0), shape)
  reference, folded = _ConvOfNorm(), _FoldedNorm()
  variables = reference.init(jax.random.PRNGKey(1), x, train=False)
  assert jax.tree_util.tree_structure(
    folded.init(jax.random.PRNGKey(1), x, train=False)
  ) == (jax.tree_util.tree_structure(variables))
  channels = shape[-1]
  # Statistics and affine parameters away from their initial 0 and 1.
  variables = {
    "params": {
      **variables["params"],
      "BatchNorm_0": {
        "scale": jnp.linspace(0.7, 1.4, channels),
        "bias": jnp.linspace(-0.3, 0.2, channels),
      },
    },
    "batch_stats": {
      "BatchNorm_0": {
        "mean": jnp.full((channels,), 0.4),
        "var": jnp.full((channels,), 0.05),
      }
    },
  }

  def run(module):
    def loss(params):
      y, updates = module.apply(
        {"params": params, "batch_stats": variables["batch_stats"]},
        x,
        train=train,
        mutable=["batch_stats"],
      )
      return jnp.sum(jnp.sin(y)), (y, updates)

    (_, (y, updates)), grads = jax.value_and_grad(loss, has_aux=True)(
      variables["params"]
    )
    return y, updates, grads

  expected, got = run(reference), run(folded)
  assert got[0].shape == expected[0].shape == shape[:-1] + (16,)
  np.testing.assert_allclose(got[0], expected[0], rtol=1e-4, atol=1e-4)
  for want, have in zip(
    jax.tree_util.tree_leaves(expected[1:]), jax.tree_util.tree_leaves(got[1:])
  ):
    np.testing.assert_allclose(
      have, want, rtol=1e-4, atol=1e-4 * float(jnp.abs(want).max())
    )


def test_the_face_mesh_model_reads_mediapipes_blendshapes(face_landmarker_task):
  """The model's features of a face's normalised landmarks are MediaPipe's
  own blendshape scores (tests/data/face_mesh_reference.npz)."""
  reference = np.load(
    pathlib.Path(__file__).parent / "data" / "face_mesh_reference.npz"
  )
  points = reference["WolfgangLanger_Pexels.mp4/landmarks"][:24]
  expected = reference["WolfgangLanger_Pexels.mp4/blendshapes"][:24]
  inputs = np.stack([mesh_reader.model_input(p) for p in points])
  zero_shot = models.FaceMesh(
    task=str(face_landmarker_task),
    class_prototypes=tuple(map(tuple, blendshape_emotions.PROTOTYPES)),
  )
  variables = zero_shot.init(jax.random.PRNGKey(0), inputs[:1], train=False)
  (features, va), state = zero_shot.apply(
    variables, inputs, train=False, mutable=["intermediates"]
  )
  np.testing.assert_allclose(features, expected, atol=1e-4)
  reading = blendshape_emotions.read_blendshapes(expected)
  np.testing.assert_allclose(va, reading.valence_arousal, atol=1e-3)
  probabilities = jax.nn.softmax(
    state["intermediates"]["emotion_logits"][0], axis=-1
  )
  np.testing.assert_allclose(probabilities, reading.probabilities, atol=1e-3)
  # The same face elsewhere and larger: the same reading.
  moved = np.stack([mesh_reader.model_input(p * 2.5 + 40) for p in points])
  again, _ = zero_shot.apply(variables, moved, train=False)
  np.testing.assert_allclose(again, features, atol=1e-5)


def test_the_face_mesh_features_hold_the_parts_asked_for(face_landmarker_task):
  """blendshapes (52), then pose (3), then mesh (468 x 3), in that order;
  the head reads them all, and the zero-shot still reads the blendshapes."""
  reference = np.load(
    pathlib.Path(__file__).parent / "data" / "face_mesh_reference.npz"
  )
  points = reference["WolfgangLanger_Pexels.mp4/landmarks"][:4]
  inputs = np.stack([mesh_reader.model_input(p) for p in points])
  task = str(face_landmarker_task)
  face = mesh_geometry.canonical_face(task)
  widths = {}
  for features in (
    ("blendshapes",),
    ("blendshapes", "pose"),
    ("blendshapes", "pose", "mesh"),
  ):
    model = models.FaceMesh(task=task, features=features)
    variables = model.init(jax.random.PRNGKey(0), inputs[:1], train=False)
    out, va = model.apply(variables, inputs, train=False)
    widths[features] = out.shape[-1]
    assert va.shape == (4, 2)
    assert variables["params"]["va"]["kernel"].shape == (out.shape[-1], 2)
    np.testing.assert_allclose(
      out[:, :52],
      reference["WolfgangLanger_Pexels.mp4/blendshapes"][:4],
      atol=1e-4,
    )
    if "pose" in features:
      rotation = mesh_geometry.align(jnp.asarray(inputs), face)[0]
      np.testing.assert_allclose(
        out[:, 52:55], mesh_geometry.head_pose(rotation), atol=1e-5
      )
  assert list(widths.values()) == [52, 55, 55 + 468 * 3]


def test_the_crop_feature_puts_a_pixel_cnn_beside_the_mesh(
  face_landmarker_task,
):
  """With "crop", each face's landmarks and gray crop arrive as one vector
  (`mesh_reader.with_crop`); Fig. 3's CNN reads the crop, its features
  follow the mesh's, and training reaches its weights."""
  reference = np.load(
    pathlib.Path(__file__).parent / "data" / "face_mesh_reference.npz"
  )
  points = np.stack(
    [
      mesh_reader.model_input(p)
      for p in reference["WolfgangLanger_Pexels.mp4/landmarks"][:4]
    ]
  )
  crops = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1), np.uint8)
  inputs = mesh_reader.with_crop(points, crops)
  assert inputs.shape == (4, mesh_reader.with_crop_size(48))
  back_points, back_crops = mesh_reader.split_crop(inputs, 48)
  np.testing.assert_array_equal(back_points, points)
  np.testing.assert_array_equal(back_crops, crops)
  with pytest.raises(ValueError, match="not of the same faces"):
    mesh_reader.with_crop(points, crops[:3])
  pixels = models.FrameCNN(num_features=300)
  model = models.FaceMesh(
    task=str(face_landmarker_task),
    features=("blendshapes", "pose", "crop"),
    pixels=pixels,
    crop_size=48,
  )
  variables = model.init(jax.random.PRNGKey(0), inputs[:1], train=False)
  features, va = model.apply(variables, inputs, train=False)
  assert features.shape == (4, 52 + 3 + 300) and va.shape == (4, 2)
  np.testing.assert_allclose(
    features[:, :52],
    reference["WolfgangLanger_Pexels.mp4/blendshapes"][:4],
    atol=1e-4,
  )
  # The pixel part is Fig. 3's features of the crop, as a FrameCNN alone gives.
  alone = {
    "params": variables["params"]["pixels"],
    "batch_stats": variables["batch_stats"]["pixels"],
  }
  np.testing.assert_allclose(
    features[:, 55:],
    pixels.apply(alone, crops, train=False)[0],
    rtol=1e-5,
    atol=1e-5,
  )

  def loss(params):
    out, _ = model.apply(
      {**variables, "params": params},
      inputs,
      train=True,
      rngs={"dropout": jax.random.PRNGKey(1)},
      mutable=["batch_stats"],
    )
    return jnp.sum(out[1] ** 2)

  grads = jax.grad(loss)(variables["params"])
  assert float(jnp.abs(grads["pixels"]["Conv_0"]["kernel"]).max()) > 0
  with pytest.raises(ValueError, match="crop feature"):
    model.apply(variables, points, train=False)
