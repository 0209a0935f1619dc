"""Re-score a checkpoint: ``python eval.py ckpt_path=PATH`` (Hydra main on configs/eval.yaml).

``python eval.py ckpt_path=PATH sort="2 0 1 1 0 2"`` sorts one given sequence instead.
"""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("SORTGPT_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="configs", config_name="eval.yaml")
def main(cfg: DictConfig) -> float | None:
    if cfg.get("sort") is not None:
        from sortgpt.sorting import SequenceError, sort_command

        try:
            sort_command(cfg)
        except SequenceError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        return None

    from sortgpt.pipeline import evaluate

    metrics, _ = evaluate(cfg)
    return metrics.get("test/exact_match")


if __name__ == "__main__":
    main()
