"""The data layer: from a folder of labelled face videos to a run's windows.

- `discovery`: finding the video files and their labels (file names, CSVs);
- `pool`: preprocessing many videos in parallel, with an on-disk cache;
- `summary`: the build statistics (good and skipped files) and their check;
- `builder`: the TFDS builder every dataset in `data_builder/` shares, with
  its two ways to build (a process pool, or Apache Beam);
- `input_pipeline`: a built dataset's windows and videos for one run.
"""
