"""Synthetic ADFES-like face videos: the embedded default dataset.

Procedural colour faces drawn with OpenCV stand in for the licensed ADFES videos
so that the pipeline can be trained and evaluated without them: 22 actors
(F01..F10, M01..M12) of different appearance pose the 10 emotions of
`varec.emotions`. Each video starts neutral, rises smoothly to its apex well
before the last 50 (labelled) frames and holds it, with small head motion,
blinks and sensor noise.

Faces are built from 3-D landmarks (units of the cheekbone half-width, origin
between the eyes, v pointing down, z towards the camera) that expressions move
like facial action units; head rotation projects them orthographically. Soft
shading (a lit head ellipsoid, eye sockets, nose and lip shadows) gives the
gradients that dlib's HOG face detector, trained on real faces, responds to.

Modules, by what they draw:
  appearance:  the actors (`Speaker`, `make_speakers`): palettes and
  proportions.
  geometry:    curves, the head surface, the head pose and its projection to
  pixels.
  shapes:      a speaker's static outline, beard area and hair in face units.
  face_parts:  per frame, each part of the face (skin, shading, wrinkles, lip
               corners, eyes, brows, nose, mouth, hair) for the action units.
  backdrop:    the static backdrop and clothed shoulders.
  compositing: the canvas, the head's light map and the composite of one frame.
  dynamics:    the expressions and their time course, head motion, blinks,
  noise.
  video:       `render_video`, `write_video`, `generate_dataset`.

The output is part of the dataset's definition: at the same seed it must stay
byte-identical (tests/test_synthetic.py checks digests), so a change here must
not reorder arithmetic or random draws unless it means to change the data.
"""

from varec.synthetic.appearance import make_speakers
from varec.synthetic.appearance import Speaker
from varec.synthetic.video import generate_dataset
from varec.synthetic.video import render_video
from varec.synthetic.video import video_file_name
from varec.synthetic.video import write_video

__all__ = [
  "Speaker",
  "generate_dataset",
  "make_speakers",
  "render_video",
  "video_file_name",
  "write_video",
]
