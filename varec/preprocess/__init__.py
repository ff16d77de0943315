"""The paper's §4.5 preprocessing, one module per stage of the data's way.

video -> frames -> faces -> model input:

- `config`: `PreprocessConfig` (the parameters of every stage, from a run's
  or a checkpoint's `config.data`) and `InputConfig` (what turns stored crops
  into model input);
- `decode`: video -> frames: decoding, frame rate, images and folders of
  frames, `VideoError` and the `DecodePolicy` of each entry point;
- `grayscale`: step 2, gray and histogram equalisation of frames and crops;
- `faces`: frames -> faces: dlib or Haar detection on a schedule, a box for
  every frame;
- `crop`: faces -> model input: square or aligned crops, the flip, and
  `model_input`, shared by training, evaluation and prediction;
- `labels`: mirror speakers, labelled frames and the RNN's windows;
- `clip`: the whole way for one file (`stream_frames`, `preprocess_video`).

Imports go one way, down the stages: `decode` <- `grayscale` <- `config` <-
`faces` <- `crop` <- `clip` (`labels` stands apart). Everything but the
detectors' per-thread state is a pure function on numpy arrays.
"""
