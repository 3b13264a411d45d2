"""Training: data preparation and the loop in plain PyTorch; the Ray Train worker and driver. The only Ray user in encoders."""
