"""Datasets: the catalog of named datasets, their readers, and safe decoding of images.

`datasets.load_dataset` is the entry point; `dataset.Dataset` is what every
reader returns; `catalog` holds the facts of the named datasets without
loading them (standard library only, so the spec can read it).
"""
