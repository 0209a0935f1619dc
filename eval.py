"""Re-score a checkpoint: ``python eval.py ckpt_path=PATH`` (Hydra main on configs/eval.yaml)."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("SORTGPT_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="configs", config_name="eval.yaml")
def main(cfg: DictConfig) -> float | None:
    from sortgpt.pipeline import evaluate

    metrics, _ = evaluate(cfg)
    return metrics.get("test/exact_match")


if __name__ == "__main__":
    main()
