"""A shuffling sampler that resumes mid-epoch, so a killed-and-resumed run sees the batches an unbroken one sees."""

from __future__ import annotations

from collections.abc import Iterator, Sized

from torch.utils.data import DistributedSampler


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (order = f(seed, epoch), one shard per rank) that can start a pass part-way.

    Lightning calls ``set_epoch`` at each epoch and leaves ``DistributedSampler`` subclasses in place under DDP.
    ``resume(epoch, batches, batch_size)`` makes the next pass over ``epoch`` skip the batches already trained;
    the skip lasts until that pass is exhausted (a loader cycled within the epoch starts its next pass whole).
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self._resume_epoch: int | None = None
        self._skip = 0

    def resume(self, epoch: int, batches: int, batch_size: int) -> None:
        """Continue ``epoch`` after ``batches`` batches (modulo this shard's batches per pass)."""
        per_pass = max(1, self.num_samples // batch_size)
        self.set_epoch(epoch)
        self._resume_epoch, self._skip = epoch, (batches % per_pass) * batch_size

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip = self._skip if self.epoch == self._resume_epoch else 0
        yield from indices[skip:]
        if self.epoch == self._resume_epoch:
            self._resume_epoch, self._skip = None, 0
