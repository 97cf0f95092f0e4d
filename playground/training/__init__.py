"""Training: the loop, devices, progress, and the jobs that run it in worker processes."""
