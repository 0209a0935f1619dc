"""sortgpt: a hand-written GPT trained to sort digits, with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
