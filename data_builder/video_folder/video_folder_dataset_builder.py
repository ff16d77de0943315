"""TFDS builder for your own labelled face videos.

    python train.py --config=configs/demo.py --config.data.name=video_folder \\
        --config.data.manual_dir=/path/to/videos

See `MANUAL_DOWNLOAD_INSTRUCTIONS` for the layout.
"""

import pathlib

from varec.data import builder
from varec.data import discovery


class Builder(builder.VideoEmotionBuilder):
  """Videos or frame folders listed in labels.csv, preprocessed as in the
  paper's §4.5."""

  READS_MANUAL_DIR = True
  LABELS_CSV = discovery.LABELS_CSV
  ACCEPTS_PROTOTYPES_CSV = True  # Your own emotions instead of Table 2's.
  # Build names follow num_labelled_frames, faces_cropped, the emotions and the
  # folder.
  CONFIG_FROM_DATA = True
  # Stills and clips shorter than a window are common here.
  PAD_SHORT_CLIPS = True

  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Put your videos in a folder with a `{LABELS_CSV}` that has the columns

      path,speaker,emotion[,orientation]

  - path: a video file, a folder of frame images (png, jpg, ...) in file-name
    order, or a single image (a still), relative to the folder; frame folders
    are taken to be at the config's frame rate (25 fps);
  - speaker: who is filmed; the train/validation/test split never puts one
    speaker in two splits;
  - emotion: a Table 2 emotion or an alias (happy, angry, sad, surprised,
    scared, disgusted, embarrassed, proud, ...: `varec.emotions.ALIASES`),
    or one of your own vocabulary's (prototypes_csv below).

  Options (train.py's --config.data.*): faces_cropped=True when the frames are
  already face crops (each is found again and aligned with align_faces, the
  default, or used whole), num_labelled_frames (default 50, the
  paper's; the last N frames carry the label), prototypes_csv (your own
  emotions instead of Table 2's: a CSV with the columns
  emotion,valence,arousal,group, one row per emotion, the row order giving the
  class indices; group is the emotion's group for PN accuracy). Stills and
  clips shorter than one 10-frame window are padded in front with copies of
  their first frame, each labelled like it (counted in the summary).
  """

  def _video_records(self, dl_manager):
    labels = pathlib.Path(dl_manager.manual_dir) / self.LABELS_CSV
    if not labels.is_file():
      raise FileNotFoundError(
        f"{labels} not found; it lists path,speaker,emotion per video. "
        + self.MANUAL_DOWNLOAD_INSTRUCTIONS
      )
    return discovery.read_index_csv(labels, self.builder_config.label_space)
