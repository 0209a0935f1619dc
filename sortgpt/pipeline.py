"""What ``train.py`` and ``eval.py`` do: build everything from the config, fit, score, report."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import hydra
import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from sortgpt import analysis
from sortgpt.checkpoint import check_compatible, load_checkpoint, resolve_ckpt_path
from sortgpt.data import SCORE_SPLITS, SortDataModule
from sortgpt.ddp import check_launch, quiet_other_ranks
from sortgpt.metrics import format_score
from sortgpt.module import SortGPTModule
from sortgpt.utils import instantiate_all, print_config_tree
from sortgpt.validation import ConfigError, validate_config

log = logging.getLogger("sortgpt")

# the endless training stream is generated in the main process on purpose: workers would not be faster
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*on_epoch=True.*")
warnings.filterwarnings("ignore", ".*isinstance.treespec, LeafSpec.*")
# resuming mid-"epoch" is exact here: the data stream restarts at the restored global step (data.py)
warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before the epoch ended.*")
warnings.filterwarnings("ignore", ".*The dirpath has changed from.*")  # a resumed run writes a new folder


def _single_console_log() -> None:
    """The ``lightning`` package adds its own console handler; under Hydra's logging it doubles lines."""
    if logging.getLogger().hasHandlers():
        lightning_log = logging.getLogger("lightning")
        for handler in list(lightning_log.handlers):
            if type(handler) is logging.StreamHandler:
                lightning_log.removeHandler(handler)


def build_trainer(cfg: DictConfig, callbacks: list | None = None) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the config's callbacks and loggers."""
    if callbacks is None:
        callbacks = instantiate_all(cfg.get("callbacks"))
    if not cfg.trainer.get("enable_progress_bar", True):  # trainer.enable_progress_bar=false wins
        callbacks = [cb for cb in callbacks if not isinstance(cb, ProgressBar)]
    loggers = instantiate_all(cfg.get("logger"))
    return hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def score(trainer: L.Trainer, model: SortGPTModule, datamodule: SortDataModule,
          ckpt_path: str | None = None) -> dict[str, tuple[int, int]]:
    """Exact match on the train and test splits, logged as the seed logs it; returns split -> (a, b)."""
    trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    for split in SCORE_SPLITS:
        log.info("Evaluating on %s set...", split)
        log.info(format_score(*model.scores[split]))
    return dict(model.scores)


def demo(model: SortGPTModule, datamodule: SortDataModule) -> bool:
    """Sort one held-out sequence and log it as the seed's demo block."""
    inputs = datamodule.eval_inputs("test")[:1]
    model.eval()
    pred = model.sort(inputs).cpu()
    truth = datamodule.task.solve(inputs)[0]
    matches = bool(torch.equal(pred[0], truth))
    log.info("input sequence   :%s", inputs.tolist())
    log.info("predicted sorted :%s", pred.tolist())
    log.info("gt sort          :%s", truth.tolist())
    log.info("matches          :%s", matches)
    return matches


def _log_hparams_with_metrics(trainer: L.Trainer, model: SortGPTModule, datamodule: SortDataModule,
                              metrics: dict[str, float]) -> None:
    """Fill TensorBoard's HPARAMS tab with this run's hyperparameters and real final metrics."""
    params: dict[str, Any] = dict(model.hparams)
    params.update({f"data/{k}": v for k, v in datamodule.hparams.items()})
    params.update({"trainer/max_steps": trainer.max_steps, "trainer/precision": str(trainer.precision)})
    hp_metrics = {f"hp/{k.replace('/', '_')}": v for k, v in metrics.items()}
    for lg in trainer.loggers:
        if isinstance(lg, TensorBoardLogger):
            lg.log_hyperparams(params, metrics=hp_metrics)
            lg.finalize("success")


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit the model of ``cfg``, score the best checkpoint on both splits, and return the metrics.

    The returned dict holds ``val/exact_match`` (best during training), ``train/exact_match`` and
    ``test/exact_match`` (final scores); the sweepers optimise ``cfg.optimized_metric`` of it.
    """
    check_launch(cfg)
    validate_config(cfg)  # before anything is built or printed: a typo costs no time
    ckpt_path = _resume_checkpoint(cfg)
    _single_console_log()
    quiet_other_ranks()
    print_config_tree(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    datamodule: SortDataModule = hydra.utils.instantiate(cfg.data)
    model: SortGPTModule = hydra.utils.instantiate(cfg.model)
    trainer = build_trainer(cfg)

    x, y = datamodule.task.encode(datamodule.eval_inputs("train")[:1])
    log.info("Peaking at a training example:")
    log.info("x = %s", x[0].tolist())
    log.info("y = %s", y[0].tolist())
    log.info("running on device %s", trainer.strategy.root_device)

    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)

    # the callback that keeps the best checkpoint (the other one keeps last.ckpt)
    ckpt_cb = next((cb for cb in trainer.checkpoint_callbacks if getattr(cb, "monitor", None)),
                   trainer.checkpoint_callback)
    best_path = getattr(ckpt_cb, "best_model_path", "") or None
    val_best = getattr(ckpt_cb, "best_model_score", None)
    if val_best is None:
        val_best = trainer.callback_metrics.get("val/exact_match")
    if best_path:
        log.info("Scoring the best checkpoint: %s", best_path)
    scores = score(trainer, model, datamodule, ckpt_path=best_path)
    demo(model, datamodule)

    metrics = {f"{split}/exact_match": a / b for split, (a, b) in scores.items() if b}
    if val_best is not None:
        metrics["val/exact_match"] = float(val_best)
    _log_hparams_with_metrics(trainer, model, datamodule, metrics)
    return metrics, {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer,
                     "best_model_path": best_path}


def _runs_dir(cfg: DictConfig, task_name: str) -> str:
    return f"{cfg.paths.log_dir}/{task_name}/runs"


def _resume_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint ``train`` resumes from (``ckpt_path``; ``latest`` = this task's newest last.ckpt).

    The file is loaded and checked against the config here, before anything is built, so a bad file or a
    config of another task or model shape fails at once with a short message.
    """
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), _runs_dir(cfg, cfg.get("task_name", "train")))
    if ckpt_path is None:
        return None
    checkpoint = load_checkpoint(ckpt_path)
    check_compatible(checkpoint, ckpt_path, cfg)
    step, max_steps = int(checkpoint.get("global_step", 0)), cfg.trainer.get("max_steps")
    log.info("Resuming %s at step %d, to trainer.max_steps=%s", ckpt_path, step, max_steps)
    if isinstance(max_steps, int) and step >= max_steps:
        log.warning("the checkpoint is already at step %d >= trainer.max_steps=%d: nothing left to train "
                    "(raise trainer.max_steps to train further)", step, max_steps)
    return ckpt_path


def evaluate(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Re-score the checkpoint ``cfg.ckpt_path`` on both splits; task and model come from the checkpoint."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.get("ckpt_path"):
        raise ConfigError("ckpt_path is required: python eval.py ckpt_path=outputs/.../checkpoints/last.ckpt")
    validate_config(cfg)
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, _runs_dir(cfg, "train"))
    checkpoint = load_checkpoint(ckpt_path)
    check_compatible(checkpoint, ckpt_path, cfg)
    _single_console_log()
    quiet_other_ranks()
    print_config_tree(cfg)
    model = SortGPTModule.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)

    data_kwargs = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    task_keys = ("length", "num_digits", "test_fraction")
    for key in task_keys:
        data_kwargs[key] = model.hparams[key]
    for key, value in (cfg.get("data") or {}).items():
        if value is not None and key != "_target_":
            data_kwargs[key] = value
    datamodule = SortDataModule(**data_kwargs)
    trainer = build_trainer(cfg, callbacks=[])
    scores = score(trainer, model, datamodule)
    demo(model, datamodule)
    if trainer.is_global_zero:  # per position, by distinct digits, by family; PNG + TensorBoard
        analysis.report(model, datamodule.task, trainer.default_root_dir, trainer.loggers,
                        batch_size=datamodule.hparams.eval_batch_size)
    metrics = {f"{split}/exact_match": a / b for split, (a, b) in scores.items() if b}
    log.info("scores: %s", OmegaConf.to_yaml(OmegaConf.create(metrics)).strip().replace("\n", ", "))
    return metrics, {"model": model, "datamodule": datamodule, "trainer": trainer}
