"""Shared test set-up: CPU only, few threads, quiet logs."""

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
