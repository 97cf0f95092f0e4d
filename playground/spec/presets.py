"""Presets: the architecture, preprocessing and training of well-known networks (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from playground.spec.experiment import ArchSpec, DataSpec, ExperimentSpec, PreprocessSpec, SpecError, TrainSpec


@dataclass(frozen=True)
class Preset:
    """A named starting point; `apply_preset` keeps the user's data and seed."""

    name: str
    title: str
    description: str
    preprocess: PreprocessSpec
    arch: ArchSpec
    train: TrainSpec


_CIFAR_FAST = Preset(
    "cifar_fast", "CIFAR fast (VGG-style, 8 minutes)",
    "Four blocks of two 3x3 convs (16, 32, 64, 128 filters) with batch norm, flips, light dropout and a one-cycle "
    "schedule: about 80% on CIFAR-10 in 9 epochs, under 10 minutes on a 2-core CPU.",
    PreprocessSpec(flip=True),
    ArchSpec(filters=(16, 32, 64, 128), convs_per_block=2, dense_units=(128,), dropout=0.1, weight_decay=0.0),
    TrainSpec(optimizer="adam", learning_rate=0.003, schedule="one_cycle", batch_size=128, epochs=9),
)

# Airbench's ingredients (Keller Jordan's CIFAR-10 speed records) that the settings can say, sized for a 2-core CPU.
_CIFAR_WHITENED = Preset(
    "cifar_whitened", "CIFAR whitened (airbench-style, 10 minutes)",
    "A patch-whitening first layer, three blocks of two 3x3 convs (64, 128, 256 filters) that pool after their first "
    "conv, batch norm, GELU, global max pooling, logits scaled by 1/8, label smoothing, flips and 2-pixel crops, "
    "Nesterov SGD at a learning rate of 1 with a one-cycle schedule, 6-view test-time augmentation: about 85% on "
    "CIFAR-10 in 4 epochs, about 9 minutes on a 2-core CPU.",
    PreprocessSpec(normalization="dataset", flip=True, crop_padding=2, test_time_augmentation="flip_shift"),
    ArchSpec(filters=(64, 128, 256), convs_per_block=2, pool_first=True, patch_whitening=True, global_pool=True,
             global_pool_kind="max", activation="gelu", dense_units=(), dropout=0.0, logit_scale=0.125,
             init="glorot", weight_decay=5e-4),
    TrainSpec(optimizer="nesterov", learning_rate=1.0, schedule="one_cycle", batch_size=512, epochs=4,
              label_smoothing=0.2),
)

# The CIFAR whitened recipe at half the width, for 28x28 grayscale sets: each epoch of Fashion-MNIST's 60,000
# images costs about 36 s on a 2-core CPU instead of 100 s at full width, so 7 epochs fit in 5 minutes.
_FASHION_WHITENED = replace(
    _CIFAR_WHITENED, name="fashion_whitened", title="Fashion whitened (airbench-style, 5 minutes)",
    description="The CIFAR whitened recipe at half width (32, 64, 128 filters) for 28x28 images: patch whitening, "
                "pool-first blocks of two 3x3 convs, GELU, global max pooling, label smoothing, flips and 2-pixel "
                "crops, Nesterov SGD with a one-cycle schedule, 6-view test-time augmentation: about 93.8% on "
                "Fashion-MNIST in 7 epochs, about 4 minutes on a 2-core CPU.",
    arch=replace(_CIFAR_WHITENED.arch, filters=(32, 64, 128)),
    train=replace(_CIFAR_WHITENED.train, epochs=7),
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "default", "Default (fast)",
            "Three small 3x3 conv blocks (16, 32, 64 filters) with batch norm, a 128-unit head, light L2 weight decay and "
            "a one-cycle learning rate over 6 epochs: about 92% on Fashion-MNIST in under a minute on a 2-core CPU.",
            PreprocessSpec(),
            ArchSpec(),
            TrainSpec(),
        ),
        Preset(
            "lenet5", "LeNet-5",
            "LeCun et al. 1998: two 5x5 VALID convs (6 and 16 filters) with average pooling and tanh, then 120 and 84 dense units.",
            PreprocessSpec(),
            ArchSpec(filters=(6, 16), kernel_size=5, padding="valid", pooling="avg", activation="tanh",
                     batch_norm=False, dense_units=(120, 84), dropout=0.0, init="glorot", weight_decay=0.0),
            TrainSpec(optimizer="adam", learning_rate=0.001, batch_size=64, epochs=5, schedule="constant"),
        ),
        Preset(
            "mnist_5x5", "Two-layer 5x5 (32/64, 1024 dense)",
            "The classic TensorFlow MNIST tutorial network: 5x5 convs with 32 and 64 filters, max pooling, a 1024-unit dense layer and dropout 0.5.",
            PreprocessSpec(),
            ArchSpec(filters=(32, 64), kernel_size=5, batch_norm=False, dense_units=(1024,),
                     dropout=0.5, init="truncated_normal_0.1", weight_decay=0.0),
            TrainSpec(optimizer="adam", learning_rate=0.0005, batch_size=64, epochs=5, schedule="constant"),
        ),
        Preset(
            "simple_convnet", "Simple convnet (30 5x5, 100 hidden)",
            "One conv layer of 30 5x5 filters, 2x2 max pooling and 100 hidden units: the classic NumPy-from-scratch network.",
            PreprocessSpec(),
            ArchSpec(filters=(30,), kernel_size=5, padding="valid", batch_norm=False,
                     dense_units=(100,), dropout=0.0, init="he", weight_decay=0.0),
            TrainSpec(optimizer="adam", learning_rate=0.001, batch_size=100, epochs=5, schedule="constant"),
        ),
        Preset(
            "convnet_3x3", "32/64/128 3x3 (256 dense, dropout 0.4)",
            "Three 3x3 conv blocks with 32, 64 and 128 filters, a 256-unit dense layer and dropout 0.4.",
            PreprocessSpec(),
            ArchSpec(filters=(32, 64, 128), dense_units=(256,), dropout=0.4, weight_decay=0.0),
            TrainSpec(optimizer="adam", learning_rate=0.001, batch_size=128, epochs=8, schedule="constant"),
        ),
        Preset(
            "vgg_cifar", "VGG-style CIFAR (16/32/64/128)",
            "Four blocks of two 3x3 convs (16, 32, 64, 128 filters) with batch norm, flips and crops: a VGG-style network for CIFAR-10.",
            PreprocessSpec(crop_padding=2, flip=True),
            ArchSpec(filters=(16, 32, 64, 128), convs_per_block=2, dense_units=(128,), dropout=0.5, weight_decay=0.0),
            TrainSpec(optimizer="adam", learning_rate=0.002, schedule="one_cycle", batch_size=128, epochs=20),
        ),
        Preset(
            "mini_alexnet", "Mini AlexNet",
            "Krizhevsky et al. 2012, scaled down: large first kernels, three conv blocks, two wide dense layers with dropout 0.5, SGD with momentum.",
            PreprocessSpec(flip=True),
            ArchSpec(filters=(32, 64, 96), kernel_size=5, batch_norm=False, dense_units=(256, 256),
                     dropout=0.5, init="he", weight_decay=0.0),
            TrainSpec(optimizer="momentum", learning_rate=0.01, schedule="step", batch_size=128, epochs=10),
        ),
        Preset(
            "mini_vgg", "Mini VGG",
            "Simonyan & Zisserman 2014, scaled down: stacks of two 3x3 convs (32, 64, 128 filters) with batch norm, then a 256-unit head.",
            PreprocessSpec(),
            ArchSpec(filters=(32, 64, 128), convs_per_block=2, dense_units=(256,), dropout=0.5, weight_decay=0.0),
            TrainSpec(optimizer="adam", learning_rate=0.001, schedule="cosine", batch_size=128, epochs=10),
        ),
        Preset(
            "mini_resnet", "Mini ResNet",
            "He et al. 2015, scaled down: three residual blocks of two 3x3 convs (16, 32, 64 filters) with batch norm and global average pooling.",
            PreprocessSpec(),
            ArchSpec(filters=(16, 32, 64), convs_per_block=2, residual=True, global_pool=True,
                     dense_units=(), dropout=0.0, weight_decay=0.0),
            TrainSpec(optimizer="adam", learning_rate=0.002, schedule="cosine", batch_size=128, epochs=10),
        ),
        _CIFAR_FAST,
        replace(
            _CIFAR_FAST, name="cifar_long", title="CIFAR longer (VGG-style, 17 minutes)",
            description="The CIFAR fast network trained twice as long (19 epochs, one-cycle): above 80% on CIFAR-10 "
                        "in under 20 minutes on a 2-core CPU.",
            train=replace(_CIFAR_FAST.train, epochs=19),
        ),
        _CIFAR_WHITENED,
        _FASHION_WHITENED,
    ]
}


def apply_preset(spec: ExperimentSpec, name: str) -> ExperimentSpec:
    """Replace the architecture, preprocessing and training of `spec` with preset `name`.

    The data section and the seed are kept, so a preset can be tried on any dataset.

    Raises:
        SpecError: when `name` is not a preset.
    """
    if name not in PRESETS:
        raise SpecError(f"Unknown preset {name!r}: choose one of {', '.join(PRESETS)}.", "preset")
    preset = PRESETS[name]
    return replace(spec, preprocess=preset.preprocess, arch=preset.arch, train=preset.train, preset=name)


def preset_spec(name: str, dataset: str = "fashion_mnist", seed: int = 0) -> ExperimentSpec:
    """The full spec of preset `name` on `dataset`."""
    return apply_preset(ExperimentSpec(data=DataSpec(dataset=dataset), seed=seed), name)
