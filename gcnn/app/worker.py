"""The inference threads that serve every session of the app: one for first answers, one for sweeps.

Why so few: on the 2-core machine the browser, other sessions and any busy
program share the CPU with torch, and torch's intra-op threads collapse as
soon as they do (a gcnn_best pass over 18 images: 0.19 s on one thread,
0.6-1.1 s on two next to one busy process; ``benchmarks/bench_app.py``
measures it).  So all inference runs on these two threads, each with one
intra-op thread.

Why two: a first answer (every model's prediction at the slider's angle, one
image each) must never wait behind a sweep (every model at 72 angles).  The
sweep thread runs at a lower OS priority (niceness +10 on Linux), so it takes
only CPU time that nothing interactive wants: the first answers, the
Streamlit scripts and the browsers go first.  Measured with eight browser
sessions on the 2-core machine (``benchmarks/bench_app_load.py``), the p95 of
mouse-up -> every answer shown went from 3.3 s (2.1-4.0 s over three runs) with
one thread to 2.0 s (1.7-2.3 s); the full turn arrives later instead.

Sessions hand in jobs (a batch of images for one model) and wait on a
:class:`~concurrent.futures.Future`.  Each thread runs all waiting jobs of
the same model and kind as one forward pass, so eight sessions drawing at once
cost one batched pass per model rather than eight.  The models are put in eval
mode for good: both threads may run the same model at once, which its
eval-mode kernel-bank cache allows (``tests/test_cache.py``).
"""

from __future__ import annotations

import itertools
import os
import sys
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

FIRST_ANSWER, SWEEP = 0, 1  # job kinds, each served by its own thread
SWEEP_NICENESS = 10  # the sweep thread's OS priority, relative to the process (Linux; higher is lower priority)


@dataclass(order=True)
class _Job:
    kind: int  # FIRST_ANSWER or SWEEP
    sequence: int  # first come, first served within a kind
    model: str = field(compare=False)
    images: Tensor = field(compare=False)
    future: Future = field(compare=False)


class InferenceWorker:
    """Runs ``models`` (name -> model, shared read-only) on two daemon threads for every caller.

    Args:
        models: the models, put in eval mode; after this call only the worker's threads run them.
        threads: torch intra-op threads of each of the worker's threads (1: see the module's docstring).
        max_batch: at most this many images in one forward pass (larger requests are split, which bounds a
            pass's memory and time). 9 takes eight sessions' first answers in one pass and costs gcnn_best
            under 3% of its per-image speed (10.9 vs 10.6 ms an image at 9 vs 18 images, one thread).
        cache_size: how many sweeps (per image and angles) are kept, least recently used first out.
    """

    def __init__(self, models: Mapping[str, nn.Module], threads: int = 1, max_batch: int = 9,
                 cache_size: int = 64) -> None:
        if threads < 1 or max_batch < 1 or cache_size < 0:
            raise ValueError(f"threads and max_batch must be at least 1 and cache_size at least 0, "
                             f"got {threads}, {max_batch}, {cache_size}")
        self.models = {name: model.eval() for name, model in models.items()}
        self.threads, self.max_batch, self.cache_size = threads, max_batch, cache_size
        self._jobs: list[_Job] = []
        self._wakeup = threading.Condition()
        self._sequence = itertools.count()
        self._sweeps: OrderedDict[tuple[bytes, tuple[float, ...]], dict[str, RotationSweep]] = OrderedDict()
        self._sweeps_lock = threading.Lock()
        self.passes = 0  # forward passes run so far, both threads (the tests check that sessions share them)
        # Measured once: which models answer the same a quarter turn on (their sweeps need a quarter of the angles).
        # (Before the threads start, so no other thread runs the models yet.)
        self._quarter_symmetric = {name: quarter_turn_symmetric(model) for name, model in self.models.items()}
        self._threads = {kind: threading.Thread(target=self._serve, args=(kind,), name=name, daemon=True)
                         for kind, name in [(FIRST_ANSWER, "gcnn-answers"), (SWEEP, "gcnn-sweeps")]}
        for thread in self._threads.values():
            thread.start()

    def quarter_symmetric(self, name: str) -> bool:
        return self._quarter_symmetric[name]

    @property
    def queued(self) -> int:
        """Jobs waiting for the threads (not counting the passes they are running)."""
        with self._wakeup:
            return len(self._jobs)

    def answers(self, image: Tensor, angle: float) -> dict[str, Tensor]:
        """Every model's probabilities ``[classes]`` for ``image [1, 28, 28]`` turned by ``angle`` degrees.

        The first answer: one image per model, on the thread that never runs a sweep.
        """
        sweeps = self.cached_sweep(image, [angle])
        if sweeps is not None:
            return {name: sweep.probabilities[0] for name, sweep in sweeps.items()}
        turned = rotate(image[None], float(angle)) if angle % 360 else image[None]
        futures = self._submit_all({name: turned for name in self.models}, FIRST_ANSWER)
        return {name: _gather(parts)[0] for name, parts in futures.items()}

    def sweep(self, image: Tensor, angles: Sequence[float]) -> dict[str, RotationSweep]:
        """Every model's :class:`RotationSweep` of ``image [1, 28, 28]`` over ``angles``; cached (LRU)."""
        cached = self.cached_sweep(image, angles)
        if cached is not None:
            return cached
        plans = {name: SweepPlan.for_angles(angles, self._quarter_symmetric[name]) for name in self.models}
        futures = self._submit_all({name: plan.images(image) for name, plan in plans.items()}, SWEEP)
        sweeps = {name: plans[name].assemble(_gather(futures[name])) for name in self.models}
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

    def _submit_all(self, images: Mapping[str, Tensor], kind: int) -> dict[str, list[Future]]:
        """Jobs of at most ``max_batch`` images for each model's ``images[name] [B, 1, 28, 28]``; each future
        gives ``model_answers`` of its part."""
        futures: dict[str, list[Future]] = {}
        with self._wakeup:
            for name, batch in images.items():
                futures[name] = []
                for part in batch.split(self.max_batch):
                    futures[name].append(Future())
                    self._jobs.append(_Job(kind, next(self._sequence), name, part, futures[name][-1]))
            self._wakeup.notify_all()
        return futures

    def _next_batch(self, kind: int) -> list[_Job]:
        """The oldest job of ``kind`` and every other waiting job of its model and kind, up to ``max_batch`` images."""
        with self._wakeup:
            while not any(job.kind == kind for job in self._jobs):
                self._wakeup.wait()
            first = min(job for job in self._jobs if job.kind == kind)
            batch, size = [], 0
            for job in sorted(self._jobs):
                if job.model == first.model and job.kind == kind and \
                        (not batch or size + len(job.images) <= self.max_batch):
                    batch.append(job)
                    size += len(job.images)
            self._jobs = [job for job in self._jobs if job not in batch]
            return batch

    def _serve(self, kind: int) -> None:
        if kind == SWEEP and sys.platform == "linux":  # per thread on Linux only (elsewhere it is the process's)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           min(19, os.getpriority(os.PRIO_PROCESS, 0) + SWEEP_NICENESS))
        torch.set_num_threads(self.threads)  # this thread's intra-op pool (OpenMP settings are per thread)
        while True:
            batch = self._next_batch(kind)
            try:
                probabilities = model_answers(self.models[batch[0].model], torch.cat([job.images for job in batch]))
                with self._wakeup:
                    self.passes += 1
            except Exception as error:  # noqa: BLE001 - handed to every waiting session, which shows it
                for job in batch:
                    job.future.set_exception(error)
                continue
            start = 0
            for job in batch:
                end = start + len(job.images)
                job.future.set_result(probabilities[start:end])
                start = end


def _gather(parts: list[Future]) -> Tensor:
    """The probabilities of one model's jobs, in order, as if from one pass."""
    return torch.cat([part.result() for part in parts])


def _subset(sweep: RotationSweep, angles: Sequence[float]) -> RotationSweep:
    rows = [sweep.index(a) for a in angles]
    return RotationSweep(list(angles), sweep.probabilities[rows])
