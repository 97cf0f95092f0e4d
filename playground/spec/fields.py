"""The settings table: the choices each spec field offers and the hard limits (standard library only).

Names are what a spec stores ("relu"); the labels are what the UI shows. The
registries in `playground.model.network` map the names to Keras objects.
"""

from __future__ import annotations

NORMALIZATIONS = {
    "scale": "Scale to 0..1",
    "per_image": "Per-image whitening (mean 0, std 1)",
    "dataset": "Dataset mean/std",
}
ACTIVATIONS = {
    "relu": "ReLU",
    "leaky_relu": "Leaky ReLU",
    "elu": "ELU",
    "gelu": "GELU",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "linear": "linear (none)",
}
POOLINGS = {"max": "Max 2x2", "avg": "Average 2x2", "none": "None"}
PADDINGS = {"same": "SAME", "valid": "VALID"}
INITS = {
    "he": "He normal",
    "glorot": "Glorot uniform",
    "normal_0.01": "Normal, std 0.01",
    "truncated_normal_0.1": "Truncated normal, std 0.1",
}
OPTIMIZERS = {
    "sgd": "SGD",
    "momentum": "Momentum (0.9)",
    "nesterov": "Nesterov (0.9)",
    "adagrad": "AdaGrad",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adamw": "AdamW",
}
SCHEDULES = {
    "constant": "Constant",
    "step": "Step (x0.1 at 50% and 75%)",
    "cosine": "Cosine decay",
    "one_cycle": "One-cycle",
}

# Hard limits that keep a shared server alive whatever arrives from a URL.
MAX_CONV_BLOCKS = 8
MAX_FILTERS = 1024
MAX_DENSE_LAYERS = 4
MAX_DENSE_UNITS = 4096
MAX_PARAMS = 50_000_000
