"""TFDS builder for ADFES, read from a manual directory.

    tfds build data_builder/adfes --manual_dir=/path/to/ADFES

See `MANUAL_DOWNLOAD_INSTRUCTIONS` for the layout.
"""

from varec.data import builder
from varec.data import discovery


class Builder(builder.VideoEmotionBuilder):
  """ADFES videos after the paper's §4.5 preprocessing, as windows and whole
  videos."""

  READS_MANUAL_DIR = True

  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  ADFES (van der Schalk et al., 2011) is licensed by the Amsterdam
  Interdisciplinary Centre for Emotion (AICE, University of Amsterdam);
  request it from them (search "ADFES Amsterdam Dynamic Facial Expression
  Set"). It cannot be downloaded automatically.

  Put the video files in one folder, in any sub-folders, and pass it as
  --manual_dir. File names are parsed with the pattern

      <actor>-<Emotion>-<orientation>.<ext>  e.g. "F01-Anger-Face Forward.mpeg"

  (regular expression `varec.data.discovery.ADFES_FILENAME_PATTERN`; actor
  F01-F10, M01-M12; emotion one of Anger Contempt Disgust Embarrass Fear Joy
  Neutral Pride Sadness Surprise; orientation "Face Forward", "Turning Toward"
  or "Turning Away"). When the orientation is not in the name, the enclosing
  folder names are searched for it ("Face Forward/F01-Anger.mpeg").

  Any other layout: put an `index.csv` in the folder with the columns
  path,speaker,emotion,orientation (path relative to the folder; orientation
  forward/toward/away, optional). A different file-name pattern can be given
  from Python:
  `Builder(config=VideoBuilderConfig(name=..., filename_pattern=...))`.

  All orientations found are built; training uses forward-facing videos unless
  the config's data.orientations says otherwise.
  """

  def _video_records(self, dl_manager):
    config = self.builder_config
    return discovery.find_videos(
      dl_manager.manual_dir,
      config.filename_pattern,
      config.orientations,
      config.label_space,
    )
