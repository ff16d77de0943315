"""Concordance correlation coefficient loss (paper §4.3, eqs. 7-9) and RMSE.

Moments are population moments (ddof=0), as in Rangulov & Fahim's Keras
metrics (`K.std`) and in the `audmetric` package. Every function takes an
optional `mask` of per-frame weights (0 drops a frame, e.g. an unlabelled or
padded one, whose values may then be anything, NaN included) and is jit-able.
"""

import jax
import jax.numpy as jnp

# With constant, equal predictions and targets every moment is 0: EPS makes CCC
# 0 / EPS = 0 instead of 0 / 0 = NaN, with finite gradients (e.g. a freshly
# initialised head on a batch of one emotion). Far below the variance of any
# real valence-arousal batch, so it does not bias CCC measurably.
EPS = 1e-8


def _weighted_mean(x, w, axis):
  # Keeps the reduced axes; an all-zero mask gives 0 rather than 0 / 0.
  n = jnp.sum(w, axis=axis, keepdims=True)
  return jnp.sum(w * x, axis=axis, keepdims=True) / jnp.where(n > 0, n, 1.0)


def ccc(pred, target, mask=None, *, axis=None, eps=EPS):
  """Concordance correlation coefficient, reduced over `axis` (None: all).

  CCC = 2 cov(p, t) / (var p + var t + (mean p - mean t)^2 + eps), which is
  eqs. 7-8 with rho * sigma_p * sigma_t written as the covariance, so no
  square root (whose gradient is infinite at 0) is taken.

  Args:
    pred: predictions.
    target: targets, same shape as `pred`.
    mask: weights broadcastable to `pred`; None weighs every element 1.
    axis: axes to reduce over; None reduces over all of them.
    eps: added to the denominator; see `EPS`.

  Returns:
    CCC with the `axis` axes removed.
  """
  dtype = jnp.result_type(pred, target, jnp.float32)
  pred = jnp.asarray(pred, dtype)
  target = jnp.asarray(target, dtype)
  if mask is not None:
    w = jnp.broadcast_to(jnp.asarray(mask, dtype), pred.shape)
    # Zeroed so that NaN labels of excluded frames cannot leak in as 0 * NaN.
    pred = jnp.where(w > 0, pred, 0)
    target = jnp.where(w > 0, target, 0)
  else:
    w = jnp.ones_like(pred)
  mean_p = _weighted_mean(pred, w, axis)
  mean_t = _weighted_mean(target, w, axis)
  dp, dt = pred - mean_p, target - mean_t
  cov = _weighted_mean(dp * dt, w, axis)
  var_p = _weighted_mean(dp * dp, w, axis)
  var_t = _weighted_mean(dt * dt, w, axis)
  concordance = 2.0 * cov / (var_p + var_t + (mean_p - mean_t) ** 2 + eps)
  return jnp.squeeze(concordance, axis)


def ccc_loss(pred, target, mask=None):
  """Eq. 9: 1 - (CCC_valence + CCC_arousal) / 2 over all frames.

  Args:
    pred: (..., 2) predictions, last axis (valence, arousal).
    target: (..., 2) targets.
    mask: (...) frame weights; None weighs every frame 1.

  Returns:
    Scalar loss in [0, 2].
  """
  w = None if mask is None else jnp.asarray(mask)[..., None]
  return 1.0 - jnp.mean(ccc(pred, target, w, axis=tuple(range(pred.ndim - 1))))


def prototype_cross_entropy(pred, target, prototypes, temperature: float):
  """Cross-entropy of a soft nearest-prototype decision on the outputs (beyond
  the paper).

  A frame's class is the prototype nearest its target; the logits are the
  outputs' negative squared distances to the prototypes over `temperature`.
  Videos are judged by the nearest prototype of each output frame (§3.2);
  this term trains for that decision, pushing each output into its
  prototype's cell, where eq. 9 alone lets outputs of unseen faces drift into
  a neighbouring cell.

  Args:
    pred: (..., 2) predictions.
    target: (..., 2) targets, each a prototype.
    prototypes: (K, 2) prototypes.
    temperature: squared distance that changes a logit by 1.

  Returns:
    Scalar mean over frames.
  """
  prototypes = jnp.asarray(prototypes, jnp.float32)
  classes = jnp.argmin(
    jnp.sum((target[..., None, :] - prototypes) ** 2, -1), -1
  )
  logits = -jnp.sum((pred[..., None, :] - prototypes) ** 2, -1) / temperature
  log_p = jax.nn.log_softmax(logits)
  return -jnp.mean(jnp.take_along_axis(log_p, classes[..., None], -1))


def distillation_loss(logits, teacher_logits, temperature: float):
  """Learning without forgetting (Li & Hoiem, 2016, eq. 2; beyond the paper).

  The KL divergence from the pretrained classifier's recorded class
  distribution to the fine-tuned one's, both softened by `temperature`
  (Li & Hoiem: 2), per frame: the cross-entropy of their eq. 2 less the
  teacher's own entropy, which has the same gradient and is 0 when nothing
  was forgotten.

  Args:
    logits: (..., C) the network's class logits now.
    teacher_logits: (..., C) its logits before fine-tuning, on the same frames.
    temperature: divides both before the softmax.

  Returns:
    Scalar mean over frames.
  """
  log_teacher = jax.nn.log_softmax(teacher_logits / temperature)
  log_student = jax.nn.log_softmax(logits / temperature)
  kl = jnp.sum(jnp.exp(log_teacher) * (log_teacher - log_student), -1)
  return jnp.mean(kl)


def rmse(pred, target, mask=None):
  """Root mean squared error per dimension: (..., D) -> (D,).

  A metric: its gradient is infinite at a perfect fit.
  """
  dtype = jnp.result_type(pred, target, jnp.float32)
  sq = (jnp.asarray(pred, dtype) - jnp.asarray(target, dtype)) ** 2
  if mask is not None:
    w = jnp.broadcast_to(jnp.asarray(mask, dtype)[..., None], sq.shape)
    sq = jnp.where(w > 0, sq, 0)
  else:
    w = jnp.ones_like(sq)
  axis = tuple(range(sq.ndim - 1))
  return jnp.sqrt(jnp.squeeze(_weighted_mean(sq, w, axis), axis))
