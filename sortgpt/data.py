"""The sorting task (minGPT's sort demo, the seed's dataset) and its LightningDataModule.

A sequence of ``length`` digits from ``num_digits`` symbols is fed followed by its sorted version:
``x = input + sorted[:-1]``, ``y = [-1] * (length - 1) + sorted``. Only the sorted half is learned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import lightning.pytorch as L
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from sortgpt.ddp import score_loader

SCORE_SPLITS = ("train", "test")  # the order of test_dataloader()'s loaders
MAX_ENUMERABLE = 10_000_000  # largest input space ``enumerate`` will list
_HASH_SEED = 0x2545F491  # fixed: the split must be the same in every process and on every machine
_M32 = 0xFFFFFFFF


def _mix32(h: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser (int64 tensors holding values < 2**32; no overflow)."""
    h = ((h ^ (h >> 16)) * 0x045D9F3B) & _M32
    h = ((h ^ (h >> 16)) * 0x045D9F3B) & _M32
    return h ^ (h >> 16)


def stable_hash(inputs: torch.Tensor) -> torch.Tensor:
    """A deterministic 32-bit hash (int64 tensor of shape (B,)) of each row of ``inputs`` (B, L).

    Unlike Python's ``hash()`` it is unsalted: the same in every process, on every machine.
    """
    h = torch.full((inputs.size(0),), _HASH_SEED, dtype=torch.long, device=inputs.device)
    for i in range(inputs.size(1)):
        h = _mix32(h ^ (inputs[:, i].long() + 1))
    return h


class SortTask:
    """Sort ``length`` digits drawn from ``num_digits`` symbols; about ``test_fraction`` held out."""

    SPLITS = ("train", "test")

    def __init__(self, length: int = 6, num_digits: int = 3, test_fraction: float = 0.25) -> None:
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be an integer >= 1, got {length!r}")
        if isinstance(num_digits, bool) or not isinstance(num_digits, int) or num_digits < 2:
            raise ValueError(f"num_digits must be an integer >= 2, got {num_digits!r}")
        if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
        self.length = length
        self.num_digits = num_digits
        self.test_fraction = float(test_fraction)
        self._threshold = int(round(self.test_fraction * 2**32))
        if self.enumerable:
            n_test = int(self.is_test(self._all()).sum())
            if n_test == 0 or n_test == self.num_sequences:
                empty = "test" if n_test == 0 else "train"
                raise ValueError(
                    f"the {empty} split is empty for length={length}, num_digits={num_digits}, "
                    f"test_fraction={test_fraction}: choose a larger task or another test_fraction"
                )

    def __repr__(self) -> str:
        return (f"SortTask(length={self.length}, num_digits={self.num_digits}, "
                f"test_fraction={self.test_fraction})")

    @property
    def block_size(self) -> int:
        """Tokens the model sees: the input and all but the last sorted token."""
        return 2 * self.length - 1

    @property
    def vocab_size(self) -> int:
        return self.num_digits

    @property
    def num_sequences(self) -> int:
        return self.num_digits ** self.length

    @property
    def enumerable(self) -> bool:
        return self.num_sequences <= MAX_ENUMERABLE

    def encode(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, length) -> model input x and targets y, each (B, block_size)."""
        inputs = inputs.long()
        solution = inputs.sort(dim=1).values  # (B, L)
        x = torch.cat([inputs, solution[:, :-1]], dim=1)  # (B, 2L-1)
        ignore = torch.full((inputs.size(0), self.length - 1), -1, dtype=torch.long,
                            device=inputs.device)
        y = torch.cat([ignore, solution], dim=1)  # (B, 2L-1)
        return x, y

    def is_test(self, inputs: torch.Tensor) -> torch.Tensor:
        """Bool (B,): which input sequences belong to the held-out split (a stable hash)."""
        return stable_hash(inputs) < self._threshold

    def _split_mask(self, inputs: torch.Tensor, split: str) -> torch.Tensor:
        if split not in self.SPLITS:
            raise ValueError(f"split must be one of {self.SPLITS}, got {split!r}")
        test = self.is_test(inputs)
        return test if split == "test" else ~test

    def _all(self) -> torch.Tensor:
        idx = torch.arange(self.num_sequences, dtype=torch.long)  # (N,)
        powers = self.num_digits ** torch.arange(self.length - 1, -1, -1, dtype=torch.long)  # (L,)
        return (idx[:, None] // powers[None, :]) % self.num_digits  # (N, L), lexicographic order

    def enumerate(self, split: str) -> torch.Tensor:
        """Every input sequence (N, length) of ``split``, in lexicographic order."""
        if not self.enumerable:
            raise ValueError(
                f"cannot list the {self.num_digits}**{self.length} = {self.num_sequences} input "
                f"sequences (more than {MAX_ENUMERABLE}); use sample() instead"
            )
        everything = self._all()
        return everything[self._split_mask(everything, split)]

    def sample(self, n: int, split: str, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` inputs (n, length) of ``split`` with minGPT's bias towards repeats.

        Half the draws are redrawn when they hold more than ``length // 2`` distinct digits. Drawn a whole
        batch at a time by rejection, on the generator's device.
        """
        if split not in self.SPLITS:
            raise ValueError(f"split must be one of {self.SPLITS}, got {split!r}")
        device = generator.device if generator is not None else torch.device("cpu")
        kept: list[torch.Tensor] = []
        have = 0
        for _ in range(1000):
            m = max(2 * (n - have), 64)
            cand = torch.randint(self.num_digits, (m, self.length), generator=generator, device=device)
            biased = torch.rand(m, generator=generator, device=device) < 0.5
            distinct = (F.one_hot(cand, self.num_digits).sum(dim=1) > 0).sum(dim=1)  # (m,)
            ok = self._split_mask(cand, split) & ~(biased & (distinct > self.length // 2))
            good = cand[ok]
            kept.append(good)
            have += good.size(0)
            if have >= n:
                return torch.cat(kept)[:n]
        raise RuntimeError(f"could not draw {n} sequences from the {split} split of {self}")

    def solve(self, inputs: torch.Tensor) -> torch.Tensor:
        """The right answer (B, length): the inputs sorted."""
        return inputs.long().sort(dim=1).values


class _TrainBatches(IterableDataset):
    """Endless training batches, each drawn whole from the train split.

    Batch ``i`` is drawn from a generator seeded with ``(seed, i)``, so resuming at step ``i`` continues
    exactly where a run stopped, in any process.
    """

    def __init__(self, task: SortTask, batch_size: int, seed: int, start: Callable[[], int],
                 device: torch.device | str = "cpu") -> None:
        self.task, self.batch_size, self.seed, self.start = task, batch_size, seed, start
        self.device = torch.device(device)  # batches are drawn where they are trained on

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        step = self.start()
        gen = torch.Generator(device=self.device)
        while True:
            gen.manual_seed(self.seed * 1_000_003 + step)
            yield self.task.encode(self.task.sample(self.batch_size, "train", gen))
            step += 1


class SortDataModule(L.LightningDataModule):
    """Batches for training (fresh, endless) and fixed, deterministic sets for validation and scoring.

    Validation scores held-out sequences; ``test_dataloader`` returns one loader per split in
    ``SCORE_SPLITS`` order (train, then test), as the seed scores both. With ``full_eval`` every
    sequence of a split is scored exactly once instead of ``val_size``/``score_size`` draws.
    """

    def __init__(
        self,
        length: int = 6,
        num_digits: int = 3,
        test_fraction: float = 0.25,
        batch_size: int = 64,
        val_size: int = 5000,
        score_size: int = 5000,
        eval_batch_size: int = 1000,
        full_eval: bool = False,
        seed: int = 42,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        for name in ("batch_size", "val_size", "score_size", "eval_batch_size"):
            value = getattr(self.hparams, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"data.{name} must be a positive integer, got {value!r}")
        self.task = SortTask(length, num_digits, test_fraction)

    def _eval_inputs(self, split: str, size: int, offset: int) -> torch.Tensor:
        if self.hparams.full_eval:
            return self.task.enumerate(split)
        gen = torch.Generator().manual_seed(self.hparams.seed * 1_000_003 + 999_000_000 + offset)
        return self.task.sample(size, split, gen)

    def eval_inputs(self, split: str) -> torch.Tensor:
        """The fixed inputs (N, length) on which ``split`` is scored."""
        return self._eval_inputs(split, self.hparams.score_size, SCORE_SPLITS.index(split) + 1)

    def _loader(self, inputs: torch.Tensor) -> DataLoader:
        return DataLoader(TensorDataset(inputs), batch_size=self.hparams.eval_batch_size, shuffle=False)

    def train_dataloader(self) -> DataLoader:
        def start() -> int:
            trainer = self.trainer
            return trainer.global_step * trainer.accumulate_grad_batches if trainer is not None else 0

        # on a GPU the batches are drawn there (no host-to-device copy per step); the stream of a CUDA
        # generator differs from the CPU one, so a run resumes exactly on the same kind of device
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        device = device if device.type == "cuda" else torch.device("cpu")
        # under DDP each rank draws its own batches (rank 0 keeps the single-process stream)
        rank = self.trainer.global_rank if self.trainer is not None else 0
        seed = self.hparams.seed + 1_000_033 * rank
        data = _TrainBatches(self.task, self.hparams.batch_size, seed, start, device)
        return DataLoader(data, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._eval_inputs("test", self.hparams.val_size, 0))

    def test_dataloader(self) -> list[DataLoader]:
        # each sequence scored on exactly one rank under DDP, so the "a/b" lines stay exact
        return [score_loader(self.eval_inputs(split), self.hparams.eval_batch_size) for split in SCORE_SPLITS]
