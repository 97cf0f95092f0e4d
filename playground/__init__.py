"""CNN Playground: a library that turns an experiment spec into a trained Keras CNN."""
