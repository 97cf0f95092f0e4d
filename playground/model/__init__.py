"""The network of a spec: its plan, Keras layers and preprocessing, layer table, code export and cost."""
