"""Looking inside and judging a trained network: activations, metrics, predictions and figures."""
