"""The model factory: the CNN registry, variables, compiled inference
functions and batching."""

import jax
import numpy as np
import pytest

from tests import helpers
from varec import model_lib


def test_an_unknown_cnn_is_refused_naming_the_choices():
  config = helpers.tiny_config()
  config.model.cnn = "resnet"
  with pytest.raises(ValueError, match="model.cnn must be one of fig3"):
    model_lib.cnn_kind(config)


def test_variables_hold_the_cnn_and_the_gru():
  config = helpers.tiny_config()
  variables = model_lib.init_variables(config, jax.random.PRNGKey(0), 10)
  assert set(variables["params"]) == {"cnn", "rnn"}
  assert set(variables["batch_stats"]) == {"cnn"}
  cnn = model_lib.cnn_variables(variables)
  assert cnn["params"] is variables["params"]["cnn"]
  frozen = model_lib.build_cnn(config, all_frozen=True)
  assert frozen.frozen_blocks == model_lib.cnn_kind(config).num_blocks


def test_one_pass_gives_the_head_and_the_features_of_two():
  config = helpers.tiny_config()
  variables = model_lib.init_variables(config, jax.random.PRNGKey(0), 10)
  cnn = model_lib.build_cnn(config)
  weights = model_lib.cnn_variables(variables)
  size = config.data.image_size
  frames = np.random.default_rng(0).random((3, size, size, 1), np.float32)
  both = np.asarray(model_lib.outputs_and_features_fn(cnn)(weights, frames))
  head = np.asarray(model_lib.frame_va_fn(cnn)(weights, frames))
  features = np.asarray(model_lib.feature_fn(cnn)(weights, frames))
  assert head.shape == (3, 2)
  assert features.shape == (3, config.model.num_features)
  np.testing.assert_allclose(both, np.concatenate([head, features], -1), 1e-6)


def test_batches_are_padded_to_one_shape_and_cut_back():
  shapes = []

  def double(_, batch):
    shapes.append(batch.shape)
    return batch * 2

  inputs = np.arange(10, dtype=np.float32)[:, None]
  out = model_lib.apply_in_batches(double, None, inputs, 4)
  np.testing.assert_array_equal(out, inputs * 2)
  assert shapes == [(4, 1)] * 3  # The last batch of 2 padded to 4.
  shapes.clear()
  model_lib.apply_in_batches(double, None, inputs[:3], 4)
  assert shapes == [(3, 1)]  # Smaller than one batch: as it is...
  shapes.clear()
  model_lib.apply_in_batches(double, None, inputs[:3], 4, fixed_shape=True)
  assert shapes == [(4, 1)]  # ...unless every call must share one shape.
