"""One inference thread per process that serves every session of the app.

Why one thread: on the 2-core machine the browser, other sessions and any busy
program share the CPU with torch, and torch's intra-op threads collapse as
soon as they do (a gcnn_best pass over 18 images: 0.19 s on one thread,
0.6-1.1 s on two next to one busy process; ``benchmarks/bench_app.py``
measures it).  So all inference runs on this thread, with one intra-op
thread, and the other core stays free for the browser and Streamlit.  It also
means the models' eval-mode caches are only ever touched by one thread.

Sessions hand in jobs (a batch of images for one model) and wait on a
:class:`~concurrent.futures.Future`.  The thread takes the most urgent jobs
first (a prediction at the slider's angle before any sweep), and runs all
waiting jobs of the same model and urgency as one forward pass, so eight
sessions drawing at once cost one batched pass per model rather than eight.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..data import rotate
from .inference import RotationSweep, SweepPlan, model_answers, quarter_turn_symmetric

__all__ = ["InferenceWorker", "FIRST_ANSWER", "SWEEP"]

FIRST_ANSWER, SWEEP = 0, 1  # job priorities: lower runs first


@dataclass(order=True)
class _Job:
    priority: int
    sequence: int  # first come, first served within a priority
    model: str = field(compare=False)
    images: Tensor = field(compare=False)
    future: Future = field(compare=False)


class InferenceWorker:
    """Runs ``models`` (name -> model, eval mode, shared read-only) on one daemon thread for every caller.

    Args:
        models: the models; after this call only the worker's thread runs them.
        threads: torch intra-op threads of the worker's thread (1: see the module's docstring).
        max_batch: at most this many images in one forward pass (a first answer
            never waits behind a larger pass than this; larger requests are split).
        cache_size: how many sweeps (per image and angles) are kept, least recently used first out.
    """

    def __init__(self, models: Mapping[str, nn.Module], threads: int = 1, max_batch: int = 32,
                 cache_size: int = 64) -> None:
        if threads < 1 or max_batch < 1 or cache_size < 0:
            raise ValueError(f"threads and max_batch must be at least 1 and cache_size at least 0, "
                             f"got {threads}, {max_batch}, {cache_size}")
        self.models = dict(models)
        self.threads, self.max_batch, self.cache_size = threads, max_batch, cache_size
        self._jobs: list[_Job] = []
        self._wakeup = threading.Condition()
        self._sequence = itertools.count()
        self._sweeps: OrderedDict[tuple[bytes, tuple[float, ...]], dict[str, RotationSweep]] = OrderedDict()
        self._sweeps_lock = threading.Lock()
        self.passes = 0  # forward passes run so far (the tests check that sessions share them)
        # Measured once: which models answer the same a quarter turn on (their sweeps need a quarter of the angles).
        # (Before the thread starts, so no other thread runs the models yet.)
        self._quarter_symmetric = {name: quarter_turn_symmetric(model) for name, model in self.models.items()}
        threading.Thread(target=self._serve, name="gcnn-inference", daemon=True).start()

    def quarter_symmetric(self, name: str) -> bool:
        return self._quarter_symmetric[name]

    @property
    def queued(self) -> int:
        """Jobs waiting for the thread (not counting the pass it is running)."""
        with self._wakeup:
            return len(self._jobs)

    def answers(self, image: Tensor, angle: float) -> dict[str, Tensor]:
        """Every model's probabilities ``[classes]`` for ``image [1, 28, 28]`` turned by ``angle`` degrees.

        The first answer: one image per model, run before any waiting sweep.
        """
        sweeps = self.cached_sweep(image, [angle])
        if sweeps is not None:
            return {name: sweep.probabilities[0] for name, sweep in sweeps.items()}
        turned = rotate(image[None], float(angle)) if angle % 360 else image[None]
        futures = self._submit_all({name: turned for name in self.models}, FIRST_ANSWER)
        return {name: _gather(parts)[0][0] for name, parts in futures.items()}

    def sweep(self, image: Tensor, angles: Sequence[float]) -> dict[str, RotationSweep]:
        """Every model's :class:`RotationSweep` of ``image [1, 28, 28]`` over ``angles``; cached (LRU)."""
        cached = self.cached_sweep(image, angles)
        if cached is not None:
            return cached
        plans = {name: SweepPlan.for_angles(angles, self._quarter_symmetric[name]) for name in self.models}
        futures = self._submit_all({name: plan.images(image) for name, plan in plans.items()}, SWEEP)
        sweeps = {name: plans[name].assemble(*_gather(futures[name])) for name in self.models}
        with self._sweeps_lock:
            self._sweeps[self._key(image, angles)] = sweeps
            while len(self._sweeps) > self.cache_size:
                self._sweeps.popitem(last=False)
        return sweeps

    def cached_sweep(self, image: Tensor, angles: Sequence[float]) -> dict[str, RotationSweep] | None:
        """The sweep over ``angles`` if it is cached, or the one cached over all 72 slider angles, cut to ``angles``.

        Without computing anything: ``None`` when no cached sweep covers ``angles``.
        """
        digit = self._key(image, angles)[0]
        with self._sweeps_lock:
            for (key, swept), sweeps in reversed(self._sweeps.items()):
                wrapped = [a % 360 for a in swept]
                if key == digit and all(a % 360 in wrapped for a in angles):
                    self._sweeps.move_to_end((key, swept))
                    return {name: _subset(sweep, angles) for name, sweep in sweeps.items()}
        return None

    @staticmethod
    def _key(image: Tensor, angles: Sequence[float]) -> tuple[bytes, tuple[float, ...]]:
        return image.to(torch.float32).contiguous().numpy().tobytes(), tuple(float(a) for a in angles)

    def _submit_all(self, images: Mapping[str, Tensor], priority: int) -> dict[str, list[Future]]:
        """Jobs of at most ``max_batch`` images for each model's ``images[name] [B, 1, 28, 28]`` (so a first
        answer never waits behind a larger pass); each future gives ``model_answers`` of its part."""
        futures: dict[str, list[Future]] = {}
        with self._wakeup:
            for name, batch in images.items():
                futures[name] = []
                for part in batch.split(self.max_batch):
                    futures[name].append(Future())
                    self._jobs.append(_Job(priority, next(self._sequence), name, part, futures[name][-1]))
            self._wakeup.notify()
        return futures

    def _next_batch(self) -> list[_Job]:
        """The most urgent job and every other waiting job of the same model and priority, up to ``max_batch``."""
        with self._wakeup:
            while not self._jobs:
                self._wakeup.wait()
            first = min(self._jobs)
            batch, size = [], 0
            for job in sorted(self._jobs):
                if job.model == first.model and job.priority == first.priority and \
                        (not batch or size + len(job.images) <= self.max_batch):
                    batch.append(job)
                    size += len(job.images)
            self._jobs = [job for job in self._jobs if job not in batch]
            return batch

    def _serve(self) -> None:
        torch.set_num_threads(self.threads)  # this thread's intra-op pool (OpenMP settings are per thread)
        while True:
            batch = self._next_batch()
            try:
                probabilities, profiles = model_answers(self.models[batch[0].model],
                                                        torch.cat([job.images for job in batch]))
                self.passes += 1
            except Exception as error:  # noqa: BLE001 - handed to every waiting session, which shows it
                for job in batch:
                    job.future.set_exception(error)
                continue
            start = 0
            for job in batch:
                end = start + len(job.images)
                job.future.set_result((probabilities[start:end], None if profiles is None else profiles[start:end]))
                start = end


def _gather(parts: list[Future]) -> tuple[Tensor, Tensor | None]:
    """The answers of one model's jobs, in order, as if from one pass."""
    results = [part.result() for part in parts]
    profiles = [profile for _, profile in results]
    return (torch.cat([probabilities for probabilities, _ in results]),
            None if profiles[0] is None else torch.cat(profiles))


def _subset(sweep: RotationSweep, angles: Sequence[float]) -> RotationSweep:
    rows = [sweep.index(a) for a in angles]
    return RotationSweep(list(angles), sweep.probabilities[rows], [sweep.read_rotation[r] for r in rows])
