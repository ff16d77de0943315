"""varec against a PyTorch twin of the same network, step by step, on the same
CPU.

    pip install -r requirements-bench.txt   # PyTorch (CPU), for this benchmark
    only
    python benchmarks/compare_pytorch.py [--rounds=15 --paper_rounds=5
    --threads=2]

The twin is Fig. 3's CNN as varec builds it (input BatchNorm, 5x5
convolutions SAME/VALID/VALID without bias, 2x2 max pooling, quadrant average
pooling, Dense 300, dropout 0.5, Dense 2), trained with the CCC loss and Adam
in channels-last memory format, and the CNN+GRU(10) window model. Work per
step is the same on both sides: cnn training (128 frames), feature extraction
(512 frames, inference) and CNN+GRU training (16 windows of 10 frames), at the
demo size (48x48, filters 16/32/64) and the paper's (96x96, 64/128/256).

Each round times one varec step and one PyTorch step back to back, the order
alternating between rounds, in one process, so that both see the same load:
a busy machine slows both. Reported per measurement: the median rate of each,
and the ratio varec/PyTorch of each round (median and interquartile range).
Writes benchmarks/results/compare_pytorch.{json,md}.
"""

import os
import platform
import time

from absl import app
from absl import flags
import jax
import numpy as np

import report  # benchmarks/report.py

from configs import demo
from varec import model_lib
from varec import steps

_ROUNDS = flags.DEFINE_integer(
  "rounds", 15, "Timed rounds (one step of each) per measurement."
)
_PAPER_ROUNDS = flags.DEFINE_integer(
  "paper_rounds", 5, "Rounds at 96x96, where one step takes seconds."
)
_THREADS = flags.DEFINE_integer("threads", 2, "PyTorch intra-op threads.")
SIZES = ((48, (16, 32, 64)), (96, (64, 128, 256)))
WINDOW = 10
BATCH = {"cnn": 128, "extract": 512, "joint": 16}
UNITS = {"cnn": "frames/s", "extract": "frames/s", "joint": "windows/s"}


def _config(size: int, filters):
  config = demo.get_config()
  config.data.image_size, config.model.filters = size, tuple(filters)
  config.cnn.batch_size, config.joint.batch_size = BATCH["cnn"], BATCH["joint"]
  config.loss.prototype_weight = 0.0  # Eq. 9 alone, as the twin.
  config.lr_schedule, config.warmup_epochs = "constant", 0.0
  return config


def _varec_steps(config, rng):
  """{measurement: a function that runs one step and waits for it}."""
  size = config.data.image_size
  variables = model_lib.init_variables(config, jax.random.PRNGKey(0), WINDOW)
  timed = {}
  for stage_name in ("cnn", "joint"):
    _, state = steps.stage_state(
      stage_name, config, variables, num_steps=1000, rng=jax.random.PRNGKey(1)
    )
    state = [state]
    shape = (
      (BATCH[stage_name],)
      + (() if stage_name == "cnn" else (WINDOW,))
      + (size, size, 1)
    )
    batch = {
      "inputs": rng.integers(0, 256, shape, np.uint8),
      "labels": rng.uniform(-1, 1, shape[:-3] + (2,)).astype(np.float32),
    }

    def step(state=state, batch=batch):
      state[0], metrics = steps.jitted_train_step()(state[0], batch)
      jax.block_until_ready(metrics)

    timed[stage_name] = step
  cnn_vars = model_lib.cnn_variables(variables)
  extract = model_lib.feature_fn(model_lib.build_cnn(config))
  frames = rng.integers(0, 256, (BATCH["extract"], size, size, 1), np.uint8)
  timed["extract"] = lambda: jax.block_until_ready(extract(cnn_vars, frames))
  return timed


def _torch_models(size: int, filters):
  """The PyTorch twins: (the Fig. 3 CNN, the CNN+GRU(10) window model)
  classes."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  class CNN(nn.Module):
    """Fig. 3 as models.FrameCNN computes it."""

    def __init__(self):
      super().__init__()
      # Keras' momentum 0.99.
      self.bn = nn.BatchNorm2d(1, eps=1e-3, momentum=0.01)
      widths = (1,) + tuple(filters)
      self.convs = nn.ModuleList(
        nn.Conv2d(
          widths[i], widths[i + 1], 5, padding=2 if i == 0 else 0, bias=False
        )
        for i in range(3)
      )
      side = (size // 2 - 4) // 2 - 4
      # Quadrants of an even map are the adaptive average pool's.
      assert side % 2 == 0
      self.features = nn.Linear(4 * filters[2], 300)
      self.dropout = nn.Dropout(0.5)
      self.va = nn.Linear(300, 2)

    def forward(self, x):
      x = self.bn(x)
      for i, conv in enumerate(self.convs):
        if i:
          x = nn.functional.max_pool2d(x, 2)
        x = torch.relu(conv(x))
      x = nn.functional.adaptive_avg_pool2d(x, 2).permute(0, 2, 3, 1).flatten(1)
      features = self.features(x)
      return features, self.va(self.dropout(features))

  class CNNGRU(nn.Module):
    def __init__(self):
      super().__init__()
      self.cnn = CNN()
      self.gru = nn.GRU(300, 10, batch_first=True)
      self.va = nn.Linear(10, 2)

    def forward(self, x):  # (B, T, 1, H, W)
      b, t = x.shape[:2]
      features, _ = self.cnn(x.reshape((b * t,) + x.shape[2:]))
      out, _ = self.gru(features.reshape(b, t, -1))
      return self.va(out)

  return CNN, CNNGRU


def _torch_ccc_loss(pred, labels):
  """Eq. 9 on PyTorch tensors: 1 - CCC, averaged over valence and arousal."""
  pred, labels = pred.reshape(-1, 2), labels.reshape(-1, 2)
  mp, ml = pred.mean(0), labels.mean(0)
  cov = ((pred - mp) * (labels - ml)).mean(0)
  ccc = (
    2
    * cov
    / (
      pred.var(0, unbiased=False)
      + labels.var(0, unbiased=False)
      + (mp - ml) ** 2
    )
  )
  return (1 - ccc).mean()


def _torch_frames(rng, shape):
  """Random frames in [0, 1], channels-last when 4-D."""
  import torch  # pylint: disable=g-import-not-at-top

  x = torch.from_numpy(rng.integers(0, 256, shape, np.uint8)).float() / 255
  return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def _torch_steps(size: int, filters, rng):
  """{measurement: a function that runs one PyTorch step}, as `_varec_steps`."""
  import torch  # pylint: disable=g-import-not-at-top

  CNN, CNNGRU = _torch_models(size, filters)  # pylint: disable=invalid-name
  steps = {}
  for name, model, shape in (
    ("cnn", CNN(), (BATCH["cnn"], 1, size, size)),
    ("joint", CNNGRU(), (BATCH["joint"], WINDOW, 1, size, size)),
  ):
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs = _torch_frames(rng, shape)
    labels = torch.from_numpy(
      rng.uniform(-1, 1, shape[:-3] + (2,)).astype(np.float32)
    )

    def step(
      model=model, optimizer=optimizer, inputs=inputs, labels=labels, name=name
    ):
      model.train()
      optimizer.zero_grad()
      out = model(inputs)
      _torch_ccc_loss(out[1] if name == "cnn" else out, labels).backward()
      optimizer.step()

    steps[name] = step
  cnn = CNN().to(memory_format=torch.channels_last).eval()
  batch = _torch_frames(rng, (BATCH["extract"], 1, size, size))

  def extract():
    with torch.inference_mode():
      cnn(batch)

  steps["extract"] = extract
  return steps


def _measure(varec_step, torch_step, rounds: int) -> dict:
  for _ in range(2):  # Compilation, warm caches.
    varec_step()
    torch_step()
  times = {"varec": [], "pytorch": []}
  for r in range(rounds):
    order = (("varec", varec_step), ("pytorch", torch_step))
    for name, step in order if r % 2 == 0 else order[::-1]:
      start = time.perf_counter()
      step()
      times[name].append(time.perf_counter() - start)
  # Rate ratio varec/PyTorch.
  ratio = np.asarray(times["pytorch"]) / np.asarray(times["varec"])
  q1, q3 = np.percentile(ratio, [25, 75])
  return {
    "varec_s": times["varec"],
    "pytorch_s": times["pytorch"],
    "ratio_median": float(np.median(ratio)),
    "ratio_q1": float(q1),
    "ratio_q3": float(q3),
  }


def main(argv):
  del argv
  import torch  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(_THREADS.value)
  rng = np.random.default_rng(0)
  results = {
    "jax": jax.__version__,
    "torch": torch.__version__,
    "threads": _THREADS.value,
    "cpus": os.cpu_count(),
    "machine": platform.machine(),
    "rounds": _ROUNDS.value,
    "paper_rounds": _PAPER_ROUNDS.value,
    "load_average_start": os.getloadavg(),
    "runs": [],
  }
  for size, filters in SIZES:
    config = _config(size, filters)
    varec_steps = _varec_steps(config, rng)
    torch_steps = _torch_steps(size, filters, rng)
    for name in ("cnn", "extract", "joint"):
      rounds = _PAPER_ROUNDS.value if size >= 96 else _ROUNDS.value
      m = _measure(varec_steps[name], torch_steps[name], rounds)
      per_step = BATCH[name]
      run = {
        "size": size,
        "filters": list(filters),
        "measurement": name,
        "batch": per_step,
        "unit": UNITS[name],
        "rounds": rounds,
        "varec_per_s": per_step / float(np.median(m["varec_s"])),
        "pytorch_per_s": per_step / float(np.median(m["pytorch_s"])),
        **m,
      }
      results["runs"].append(run)
      print(
        f"{size}x{size} {name}: varec {run['varec_per_s']:.1f}, PyTorch "
        f"{run['pytorch_per_s']:.1f} {UNITS[name]}, ratio "
        f"{m['ratio_median']:.2f} (IQR {m['ratio_q1']:.2f}-{m['ratio_q3']:.2f})"
      )
  results["load_average_end"] = os.getloadavg()
  report.write("compare_pytorch", results, _markdown(results))


def _markdown(results: dict) -> str:
  """The results as benchmarks/results/compare_pytorch.md."""
  lines = [
    "# varec against PyTorch, interleaved",
    "",
    f"JAX {results['jax']} against PyTorch {results['torch']} "
    f"({results['threads']} threads, channels-last), {results['cpus']} CPUs "
    f"({results['machine']}), {results['rounds']} rounds of one step each "
    f"({results['paper_rounds']} at 96x96), "
    "alternating which goes first; load "
    f"average {results['load_average_start'][0]:.2f} at the start, "
    f"{results['load_average_end'][0]:.2f} at the end. Ratio: varec's rate "
    "over PyTorch's in each round (> 1: varec faster).",
    "",
    "| input, filters | measurement | batch | varec | PyTorch | unit | ratio, "
    "median | ratio, IQR |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for run in results["runs"]:
    lines.append(
      f"| {run['size']}x{run['size']}, {'/'.join(map(str, run['filters']))} "
      f"| {run['measurement']} | {run['batch']} | {run['varec_per_s']:.1f} | "
      f"{run['pytorch_per_s']:.1f} | {run['unit']} | "
      f"{run['ratio_median']:.2f} | {run['ratio_q1']:.2f}-"
      f"{run['ratio_q3']:.2f} |"
    )
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  app.run(main)
