"""The named datasets: one record of facts per dataset (standard library only).

Everything the app knows about a named dataset before loading it lives here:
its title, input shape, training-set size, classes, and whether it is built
in (drawn here, no file or download). The spec checks shapes with it, pages
size networks with it, and the loaders in `playground.data` read the images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DatasetFacts:
    """What is known of a named dataset without loading it."""

    name: str  # the name a spec stores, e.g. "fashion_mnist"
    title: str  # what people read, e.g. "Fashion-MNIST"
    input_shape: tuple[int, int, int]  # (height, width, channels) of one image
    train_size: int  # training images (the built-ins' do not depend on their seed or noise)
    num_classes: int  # classes
    built_in: bool = False  # drawn by this program (no file, no download)


CATALOG: dict[str, DatasetFacts] = {
    facts.name: facts
    for facts in (
        DatasetFacts("mnist", "MNIST digits", (28, 28, 1), 60_000, 10),
        DatasetFacts("fashion_mnist", "Fashion-MNIST", (28, 28, 1), 60_000, 10),
        DatasetFacts("cifar10", "CIFAR-10", (32, 32, 3), 50_000, 10),
        DatasetFacts("shapes", "Shapes (built in)", (28, 28, 1), 6_000, 5, built_in=True),
        DatasetFacts("digits", "8x8 digits (built in)", (8, 8, 1), 1_438, 10, built_in=True),
    )
}
NAMED_DATASETS = tuple(CATALOG)  # every named dataset, in the order pages list them
BUILT_IN = tuple(name for name, facts in CATALOG.items() if facts.built_in)  # ("shapes", "digits")


def is_named_dataset(dataset: str) -> bool:
    """True when `dataset` is one of the named datasets rather than a path."""
    return dataset in CATALOG


def dataset_title(dataset: str) -> str:
    """The title of a named dataset, or `dataset` itself (a path) when it is not one."""
    facts = CATALOG.get(dataset)
    return facts.title if facts else dataset


def data_key(spec: Any) -> tuple[Any, ...]:
    """What decides the images an ExperimentSpec loads (`datasets.load_for_spec`): equal keys, equal images.

    Only the built-in shapes depend on the noise and the seed; every other
    dataset is decided by its name or path alone.
    """
    if spec.data.dataset == "shapes":
        return "shapes", round(float(spec.data.shapes_noise), 6), int(spec.seed)
    return (spec.data.dataset,)
