"""CNN Playground: a library that turns an experiment spec into a trained Keras CNN."""

import os

# oneDNN's CPU kernels train these CNNs about twice as fast; TensorFlow turns them on by
# itself only on CPUs with AVX-512 VNNI/BF16 or AMX. The switch is read when TensorFlow is
# first imported, so it is set here, before any module of the library imports it; a value
# the user set ("0" to compare) is kept.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
