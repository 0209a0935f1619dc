"""Re-score a checkpoint: ``python eval.py ckpt_path=PATH`` (Hydra main on configs/eval.yaml).

``python eval.py ckpt_path=PATH sort="2 0 1 1 0 2"`` sorts one given sequence instead.
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("SORTGPT_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="configs", config_name="eval.yaml")
def main(cfg: DictConfig) -> float | None:
    from sortgpt.validation import exit_on_user_error, validate_config

    with exit_on_user_error():  # a bad value or file: a short message and exit status 1, no traceback
        validate_config(cfg)  # before the slow imports: a typo fails in seconds
        if cfg.get("sort") is not None:  # sort one user-given sequence instead of scoring the splits
            from sortgpt.sorting import sort_command

            sort_command(cfg)
            return None
        from sortgpt.pipeline import evaluate  # imported here so that --help and --cfg stay fast

        metrics, _ = evaluate(cfg)
    return metrics.get("test/exact_match")


if __name__ == "__main__":
    main()
