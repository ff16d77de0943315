"""Tests for varec.losses against textbook numpy formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from varec import losses


def oracle_ccc(x, y):
  """Lin's CCC with population moments, from numpy's covariance matrix."""
  x, y = np.ravel(x).astype(np.float64), np.ravel(y).astype(np.float64)
  cov = np.cov(x, y, bias=True)
  return 2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (x.mean() - y.mean()) ** 2)


def _va(shape, seed):
  rng = np.random.default_rng(seed)
  return rng.uniform(-1, 1, shape).astype(np.float32)


def test_ccc_matches_oracle():
  pred, target = _va(50, 0), 0.5 * _va(50, 0) + 0.3 * _va(50, 1) + 0.1
  np.testing.assert_allclose(
    losses.ccc(pred, target), oracle_ccc(pred, target), rtol=1e-5
  )


def test_ccc_reduces_over_axis():
  pred, target = _va((4, 6, 2), 0), _va((4, 6, 2), 1)
  got = losses.ccc(pred, target, axis=(0, 1))
  expected = [oracle_ccc(pred[..., d], target[..., d]) for d in range(2)]
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_ccc_loss_is_eq9_over_all_frames():
  pred, target = _va((4, 10, 2), 0), _va((4, 10, 2), 1)
  expected = (
    1
    - (
      oracle_ccc(pred[..., 0], target[..., 0])
      + oracle_ccc(pred[..., 1], target[..., 1])
    )
    / 2
  )
  np.testing.assert_allclose(losses.ccc_loss(pred, target), expected, rtol=1e-5)
  np.testing.assert_allclose(
    jax.jit(losses.ccc_loss)(pred, target), expected, rtol=1e-5
  )


def test_ccc_perfect_and_negated_agreement():
  x = _va((30, 2), 0)
  x = x - x.mean(0)  # CCC(x, -x) = -1 needs mean 0.
  np.testing.assert_allclose(losses.ccc(x, x, axis=0), [1, 1], rtol=1e-6)
  np.testing.assert_allclose(losses.ccc(-x, x, axis=0), [-1, -1], rtol=1e-6)
  np.testing.assert_allclose(losses.ccc_loss(x, x), 0, atol=1e-6)
  np.testing.assert_allclose(losses.ccc_loss(-x, x), 2, atol=1e-6)


@pytest.mark.parametrize(
  "pred, target",
  [
    (np.full((8, 2), 0.3), _va((8, 2), 0)),  # constant prediction
    (_va((8, 2), 0), np.full((8, 2), 0.3)),  # constant target
    (np.full((8, 2), 0.3), np.full((8, 2), 0.3)),  # both, equal
    (np.full((8, 2), 0.3), np.full((8, 2), -0.5)),  # both, different
  ],
)
def test_ccc_loss_constant_inputs_are_finite(pred, target):
  pred = jnp.asarray(pred, jnp.float32)
  loss, grad = jax.value_and_grad(losses.ccc_loss)(pred, target)
  np.testing.assert_allclose(loss, 1.0, atol=1e-6)  # CCC = 0: no covariance.
  assert np.all(np.isfinite(grad))


def test_ccc_loss_mask_excludes_frames():
  pred, target = _va((3, 10, 2), 0), _va((3, 10, 2), 1)
  mask = np.ones((3, 10), np.float32)
  mask[1, 4:] = 0  # e.g. padding at the end of a window
  mask[2, 0] = 0  # e.g. an unlabelled frame
  keep = mask.astype(bool)
  expected = losses.ccc_loss(pred[keep], target[keep])
  # Garbage in excluded frames changes neither the loss nor the gradient.
  pred_bad = np.where(keep[..., None], pred, 1e3)
  target_bad = np.where(keep[..., None], target, np.nan)
  loss, grad = jax.value_and_grad(losses.ccc_loss)(
    jnp.asarray(pred_bad), target_bad, mask
  )
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  assert np.all(grad[~keep] == 0)
  np.testing.assert_allclose(
    grad[keep],
    jax.grad(losses.ccc_loss)(jnp.asarray(pred[keep]), target[keep]),
    rtol=1e-4,
    atol=1e-7,
  )


def test_ccc_integer_weights_count_frames():
  pred, target = _va((6, 2), 0), _va((6, 2), 1)
  weights = np.array([1, 2, 0, 1, 3, 1], np.float32)
  repeat = weights.astype(int)
  np.testing.assert_allclose(
    losses.ccc_loss(pred, target, weights),
    losses.ccc_loss(np.repeat(pred, repeat, 0), np.repeat(target, repeat, 0)),
    rtol=1e-5,
  )


def test_ccc_loss_all_masked_is_finite():
  pred, target = _va((4, 2), 0), _va((4, 2), 1)
  loss, grad = jax.value_and_grad(losses.ccc_loss)(
    jnp.asarray(pred), target, np.zeros(4)
  )
  assert np.isfinite(loss)
  assert np.all(np.isfinite(grad))


def test_rmse_per_dimension_with_mask():
  pred, target = _va((5, 4, 2), 0), _va((5, 4, 2), 1)
  expected = np.sqrt(((pred - target) ** 2).reshape(-1, 2).mean(0))
  np.testing.assert_allclose(losses.rmse(pred, target), expected, rtol=1e-5)
  mask = np.zeros((5, 4))
  mask[:2] = 1
  target = np.where(mask[..., None] > 0, target, np.nan)
  expected = np.sqrt(((pred[:2] - target[:2]) ** 2).reshape(-1, 2).mean(0))
  np.testing.assert_allclose(
    jax.jit(losses.rmse)(pred, target, mask), expected, rtol=1e-5
  )


PROTOTYPES = np.array(
  [[-0.4, 0.8], [-0.57, 0.66], [0.95, 0.12], [0.0, 0.0]], np.float32
)


def test_prototype_cross_entropy_matches_numpy():
  rng = np.random.default_rng(0)
  targets = PROTOTYPES[rng.integers(0, 4, (3, 5))]
  pred = rng.uniform(-1, 1, (3, 5, 2)).astype(np.float32)
  logits = (
    -((pred[..., None, :] - PROTOTYPES) ** 2).sum(-1).astype(np.float64) / 0.05
  )
  log_p = (
    logits
    - np.log(
      np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)
    )
    - logits.max(-1, keepdims=True)
  )
  classes = ((targets[..., None, :] - PROTOTYPES) ** 2).sum(-1).argmin(-1)
  expected = -np.take_along_axis(log_p, classes[..., None], -1).mean()
  got = losses.prototype_cross_entropy(pred, targets, PROTOTYPES, 0.05)
  np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_prototype_cross_entropy_pulls_an_output_into_its_prototype_cell():
  target = PROTOTYPES[:1]  # anger
  on_target = losses.prototype_cross_entropy(target, target, PROTOTYPES, 0.02)
  assert float(on_target) < 0.2
  # Halfway between anger and contempt: the gradient step moves the output
  # toward anger.
  midway = jnp.asarray((PROTOTYPES[:1] + PROTOTYPES[1:2]) / 2)
  grad = jax.grad(losses.prototype_cross_entropy)(
    midway, target, PROTOTYPES, 0.02
  )
  step = -np.asarray(grad)[0]
  towards_anger = PROTOTYPES[0] - PROTOTYPES[1]
  assert step @ towards_anger > 0.9 * np.linalg.norm(step) * np.linalg.norm(
    towards_anger
  )
  assert float(
    losses.prototype_cross_entropy(midway, target, PROTOTYPES, 0.02)
  ) == pytest.approx(np.log(2), rel=1e-3)


def test_distillation_loss_is_the_tempered_kl_from_the_teacher():
  rng = np.random.default_rng(0)
  teacher = rng.normal(size=(6, 7)).astype(np.float32)
  student = rng.normal(size=(6, 7)).astype(np.float32)
  assert float(
    losses.distillation_loss(teacher, teacher, 2.0)
  ) == pytest.approx(0.0, abs=1e-6)
  p = np.exp(teacher / 2) / np.exp(teacher / 2).sum(-1, keepdims=True)
  q = np.exp(student / 2) / np.exp(student / 2).sum(-1, keepdims=True)
  expected = np.mean(np.sum(p * np.log(p / q), -1))
  np.testing.assert_allclose(
    losses.distillation_loss(student, teacher, 2.0), expected, rtol=1e-5
  )
