"""Data-parallel training across processes: ``torchrun --nproc_per_node N -m gcnn.train ...``.

:func:`gcnn.train.train` reads the process group from the environment that ``torchrun`` sets (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``); without it, it is one process and nothing here changes anything.  With it:

* **Every setting keeps its one-process meaning.**  ``batch_size`` is the *global* batch: each of the N
  processes takes ``batch_size / N`` images of it (:func:`shard`, sizes differing by at most one), and
  DistributedDataParallel averages their gradients, so a step sees the same images and, for models whose layers
  treat images independently, makes the same update as one process would; the learning rate, the schedule and
  the number of steps per epoch stay as they are.  To use N GPUs for a larger batch instead, raise
  ``--batch-size`` (and, as usual, the learning rate with it, e.g. linearly for Adam at these sizes).
* **Data** (DistributedSampler's semantics for device-resident data): every process draws the same seeded
  permutation on its device each epoch and takes its own disjoint share of every batch; augmentation draws from
  a generator seeded per rank.
* **Batch norm** normalises with each process's own share of the batch (statistics are not synchronised, as in
  plain DDP); running statistics are taken from rank 0 before every validation.
* **Metrics** (training loss and accuracy, validation accuracy) are summed over processes with one
  ``all_reduce`` per epoch; validation is sharded too.
* **Rank 0** alone logs, writes ``NAME.resume.pt`` each epoch and the final checkpoint, and computes the test
  metrics; ``--resume`` makes every process read that file (one machine, or a shared file system).

Backend: NCCL on CUDA (process ``LOCAL_RANK`` uses ``cuda:LOCAL_RANK``), gloo on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["Context", "from_environment", "start", "stop", "shard", "all_sum", "gather_objects",
           "broadcast_buffers", "barrier"]


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank among ``world_size`` processes, and its rank on this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes files."""
        return self.rank == 0


def from_environment() -> Context:
    """The context ``torchrun`` describes in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (one process without)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK {rank} is outside WORLD_SIZE {world_size}")
    return Context(rank, world_size, int(os.environ.get("LOCAL_RANK", str(rank))))


def start(context: Context, device: torch.device) -> bool:
    """Join the process group (NCCL for CUDA, gloo otherwise); returns whether this call started it."""
    if not context.active or dist.is_initialized():
        return False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=context.rank,
                            world_size=context.world_size)
    return True


def stop() -> None:
    """Leave the process group."""
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(batch: Tensor, context: Context) -> Tensor:
    """This process's contiguous share of a global batch of indices (sizes differ by at most one)."""
    if not context.active:
        return batch
    return torch.tensor_split(batch, context.world_size)[context.rank]


def all_sum(values: Tensor, context: Context) -> Tensor:
    """``values`` summed over all processes (in place, returned for chaining)."""
    if context.active:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def gather_objects(value: object, context: Context) -> list[object]:
    """Every process's ``value``, in rank order (``[value]`` in one process)."""
    if not context.active:
        return [value]
    gathered: list[object] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_buffers(model: nn.Module, context: Context) -> None:
    """Give every process rank 0's buffers (batch norm's running statistics)."""
    if context.active:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def barrier(context: Context) -> None:
    """Wait for every process (e.g. until rank 0 has written a file)."""
    if context.active:
        dist.barrier()
