"""Videos and files: `render_video`, `write_video` and the whole
`generate_dataset`."""

from __future__ import annotations

import pathlib
from collections.abc import Iterable

import cv2
import numpy as np

from varec import emotions as emotions_lib  # `emotions` is an argument below.
from varec import workers as workers_lib
from varec.synthetic import appearance
from varec.synthetic import compositing
from varec.synthetic import dynamics
from varec.synthetic import geometry


def render_video(
  speaker: appearance.Speaker,
  emotion: str,
  seed: int = 0,
  *,
  fps: float = 25.0,
  size: tuple[int, int] = (360, 288),
  num_frames: int | None = None,
) -> np.ndarray:
  """Renders one posed-emotion video of `speaker`.

  Args:
    speaker: the actor, from `make_speakers`.
    emotion: an emotion name (aliases allowed).
    seed: with the speaker id and emotion, seeds all randomness of the video.
    fps: frame rate; the drawn duration is 5.6-6.5 s.
    size: (width, height) in pixels.
    num_frames: overrides the drawn duration; the onset and rise are compressed
      in proportion, so short clips still reach the apex.

  Returns:
    (T, height, width, 3) uint8 BGR frames.
  """
  e_idx = emotions_lib.TABLE2.index(emotion)
  emotion = emotions_lib.EMOTIONS[e_idx]
  width, height = size
  if width < 32 or height < 32:
    raise ValueError(f"frame size {size} is too small")
  sex, number = appearance.speaker_key(speaker.speaker_id)
  # One generator for the whole video; the draws below come in a fixed order.
  rng = np.random.default_rng([seed, sex, number, e_idx])
  drawn = int(rng.integers(int(5.6 * fps), int(6.5 * fps) + 1))
  n = drawn if num_frames is None else int(num_frames)
  if n < 1:
    raise ValueError(f"num_frames must be >= 1, got {num_frames}")
  ramp = dynamics.expression_ramp(rng, n, drawn, fps)
  apex = dynamics.apex(rng, speaker, e_idx, emotion)
  blink = dynamics.blinks(rng, n, fps)
  jitter = dynamics.head_jitter(rng, n, fps)
  renderer = compositing.Renderer(speaker, (width, height))
  noise = dynamics.SensorNoise(rng, (width, height), n)

  video = np.empty((n, height, width, 3), np.uint8)
  for i in range(n):
    r = ramp[i]
    au = {k: v * r for k, v in apex.items() if k not in dynamics.POSE_KEYS}
    pose = geometry.Pose(
      tx=jitter["tx"][i],
      ty=jitter["ty"][i],
      **{k: jitter[k][i] + apex.get(k, 0.0) * r for k in dynamics.POSE_KEYS},
    )
    frame = renderer.draw(au, pose, float(blink[i]))
    noise.add(frame, i)
    video[i] = frame
  return video


def video_file_name(speaker_id: str, emotion: str, ext: str = ".mp4") -> str:
  """ADFES-style name, e.g. "F01-Anger-Face Forward.mp4"."""
  return (
    f"{speaker_id}-{emotions_lib.TABLE2.canonical(emotion).capitalize()}"
    f"-Face Forward{ext}"
  )


_FOURCC = {".mp4": "mp4v", ".avi": "MJPG"}


def write_video(path, frames: np.ndarray, fps: float = 25.0) -> None:
  """Writes (T, H, W, 3) uint8 BGR frames to .mp4 (mp4v) or .avi (MJPG).

  Raises:
    ValueError: on a bad frame array or an unsupported extension.
    OSError: if OpenCV cannot write the file or read it back.
  """
  path = pathlib.Path(path)
  frames = np.asarray(frames)
  if (
    frames.ndim != 4
    or frames.shape[-1] != 3
    or frames.dtype != np.uint8
    or not len(frames)
  ):
    raise ValueError(
      f"frames must be non-empty (T, H, W, 3) uint8, got "
      f"{frames.shape} {frames.dtype}"
    )
  fourcc = _FOURCC.get(path.suffix.lower())
  if fourcc is None:
    raise ValueError(
      f"{path}: unsupported extension; use one of {', '.join(_FOURCC)}"
    )
  path.parent.mkdir(parents=True, exist_ok=True)
  height, width = frames.shape[1:3]
  writer = cv2.VideoWriter(
    str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height)
  )
  if not writer.isOpened():
    raise OSError(f"cannot open a {fourcc} video writer for {path}")
  try:
    for frame in frames:
      writer.write(np.ascontiguousarray(frame))
  finally:
    writer.release()
  cap = cv2.VideoCapture(str(path))
  readable = cap.isOpened()
  count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if readable else 0
  cap.release()
  if count != len(frames):
    raise OSError(
      f"{path} reads back with {count} frames, expected {len(frames)}"
    )


def _render_and_write(job) -> pathlib.Path:
  speaker, emotion, path, seed, size, fps, num_frames = job
  write_video(
    path,
    render_video(
      speaker, emotion, seed, fps=fps, size=size, num_frames=num_frames
    ),
    fps,
  )
  return path


def generate_dataset(
  out_dir,
  *,
  num_speakers: int = 22,
  emotions: Iterable[str] = emotions_lib.EMOTIONS,
  seed: int = 0,
  size: tuple[int, int] = (360, 288),
  fps: float = 25.0,
  workers: int = 2,
  num_frames: int | None = None,
) -> list[pathlib.Path]:
  """Renders and writes every (speaker, emotion) video into `out_dir`.

  Uses `workers` spawned processes (1 = in this process), so a calling script
  needs the usual `if __name__ == "__main__":` guard. `num_frames` makes short
  clips for tests. Existing files are overwritten.

  Returns:
    The sorted paths of the written videos.
  """
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  names = [emotions_lib.TABLE2.canonical(e) for e in emotions]
  if len(set(names)) != len(names):
    raise ValueError(f"duplicate emotions in {names}")
  jobs = [
    (
      spk,
      e,
      out / video_file_name(spk.speaker_id, e),
      seed,
      tuple(size),
      fps,
      num_frames,
    )
    for spk in appearance.make_speakers(num_speakers, seed)
    for e in names
  ]
  if workers <= 1:
    paths = [_render_and_write(job) for job in jobs]
  else:
    # One OpenCV thread per worker, as the workers already fill the cores.
    with workers_lib.executor(workers, cv2.setNumThreads, (1,)) as pool:
      paths = list(pool.map(_render_and_write, jobs))
  return sorted(paths)
