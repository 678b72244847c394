"""The shared inference worker: the same answers as the models themselves, one batched pass for many sessions,
first answers never behind sweeps, bounded caches, errors handed back."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest
import torch
from torch import nn

from gcnn import BaselineCNN, CyclicGroup, GroupEquivariantCNN
from gcnn.app.inference import SweepPlan, model_answers, rotation_sweep
from gcnn.app.samples import sample_digit
from gcnn.app.worker import FIRST_ANSWER, SWEEP, SWEEP_NICENESS, InferenceWorker
from gcnn.data import rotate

ANGLES = list(range(0, 360, 15))


class Gated(BaselineCNN):
    """A CNN whose forward pass, on the threads named in ``gated_threads``, waits for ``gate`` (so a test can hold
    one of the worker's threads inside a pass); it records the size of every pass."""

    def __init__(self) -> None:
        super().__init__(kernel_size=3, num_hidden=1, hidden_channels=4)
        self.gate, self.gated_threads, self.batches = threading.Event(), set(), []

    def forward(self, x):
        self.batches.append(len(x))
        if threading.current_thread().name in self.gated_threads:
            assert self.gate.wait(timeout=30), "the test never opened the gate"
        return super().forward(x)


class Broken(nn.Module):
    def forward(self, x):
        raise RuntimeError("broken on purpose")


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {
        "cnn": BaselineCNN(kernel_size=3, num_hidden=1, hidden_channels=4).eval(),
        "c4": GroupEquivariantCNN(CyclicGroup(4), kernel_size=3, num_hidden=1, hidden_channels=3, padding=1).eval(),
        "c8_twice": GroupEquivariantCNN(CyclicGroup(8), kernel_size=5, num_hidden=1, hidden_channels=3, padding=2,
                                        input_rotations=2).eval(),
    }


def digits(count: int) -> list[torch.Tensor]:
    """Different digits: the sample turned by a few odd angles."""
    return [rotate(sample_digit()[None], 7.0 * i)[0] for i in range(count)]


def test_quarter_turn_symmetry_is_measured_and_its_shortcut_is_exact(models):
    worker = InferenceWorker(models)
    assert {n: worker.quarter_symmetric(n) for n in models} == {"cnn": False, "c4": True, "c8_twice": True}
    image = digits(2)[1]
    sweeps = worker.sweep(image, ANGLES)
    for name, model in models.items():
        full = SweepPlan.for_angles(ANGLES, quarter_symmetric=False)
        expected = full.assemble(model_answers(model, full.images(image)))
        assert torch.allclose(sweeps[name].probabilities, expected.probabilities, atol=1e-5)
    # Only the angles in [0, 90) were run for the symmetric models.
    assert SweepPlan.for_angles(ANGLES, True).computed == [0.0, 15.0, 30.0, 45.0, 60.0, 75.0]


def test_first_answers_are_the_models_answers(models):
    worker = InferenceWorker(models)
    image = digits(1)[0]
    answers = worker.answers(image, 35)
    for name, model in models.items():
        with torch.no_grad():
            expected = torch.softmax(model(rotate(image[None], 35.0)), dim=1)[0]
        assert torch.allclose(answers[name], expected, atol=1e-6)
    # Once the turn is cached, answers come from it, identical.
    worker.sweep(image, list(range(0, 360, 5)))
    assert worker.cached_sweep(image, [35]) is not None
    for name, p in worker.answers(image, 35).items():
        assert torch.allclose(p, answers[name], atol=1e-6)


def test_concurrent_sessions_get_the_sequential_answers_from_shared_passes(models):
    worker = InferenceWorker(models)
    images = digits(8)
    expected = [rotation_sweep(models, image, ANGLES) for image in images]
    results: list = [None] * len(images)

    def session(index: int) -> None:
        first = worker.answers(images[index], ANGLES[index])
        results[index] = first, worker.sweep(images[index], ANGLES)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for index, (first, sweeps) in enumerate(results):
        for name in models:
            assert torch.allclose(sweeps[name].probabilities, expected[index][name].probabilities, atol=1e-5)
            assert torch.allclose(first[name], expected[index][name].probabilities[index], atol=1e-5)


def test_a_first_answer_never_waits_behind_a_sweep():
    gated = Gated()
    worker = InferenceWorker({"gated": gated})
    gated.gated_threads = {"gcnn-sweeps"}  # every sweep is held inside its pass
    image = digits(1)[0]
    sweep = threading.Thread(target=worker.sweep, args=(image, ANGLES))
    sweep.start()
    answers = worker.answers(digits(2)[1], 30)  # comes back while the sweep is still held
    assert sweep.is_alive() and worker.cached_sweep(image, ANGLES) is None
    with torch.no_grad():
        expected = torch.softmax(gated(rotate(digits(2)[1][None], 30.0)), dim=1)[0]
    assert torch.allclose(answers["gated"], expected, atol=1e-6)
    gated.gate.set()
    sweep.join(timeout=60)
    assert worker.cached_sweep(image, ANGLES) is not None


def test_waiting_first_answers_of_many_sessions_share_one_pass():
    gated = Gated()
    worker = InferenceWorker({"gated": gated})
    gated.gated_threads = {"gcnn-answers"}
    gated.batches = []
    images = digits(8)
    blocker = threading.Thread(target=worker.answers, args=(images[0], 0))
    blocker.start()
    while not gated.batches:  # the answers thread is now inside the blocker's pass
        time.sleep(0.01)
    sessions = [threading.Thread(target=worker.answers, args=(image, 0)) for image in images[1:]]
    for thread in sessions:
        thread.start()
    while worker.queued < len(sessions):
        time.sleep(0.01)
    passes = worker.passes
    gated.gate.set()
    for thread in [blocker, *sessions]:
        thread.join(timeout=60)
    assert worker.passes - passes == 2  # the blocker's pass, then the seven waiting sessions' in one
    assert gated.batches == [1, 7]


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread OS priorities are Linux's")
def test_the_sweep_thread_yields_the_cpu_to_everything_interactive(models):
    worker = InferenceWorker(models)
    own = os.getpriority(os.PRIO_PROCESS, 0)
    niceness = {kind: os.getpriority(os.PRIO_PROCESS, thread.native_id) for kind, thread in worker._threads.items()}
    assert niceness == {FIRST_ANSWER: own, SWEEP: min(19, own + SWEEP_NICENESS)}


def test_a_failing_model_reports_its_error_and_the_worker_goes_on(models):
    worker = InferenceWorker(models)
    worker.models["c4"] = Broken()  # fails inside the worker's thread
    with pytest.raises(RuntimeError, match="broken on purpose"):
        worker.answers(digits(1)[0], 0)
    worker.models["c4"] = models["c4"]
    assert set(worker.answers(digits(1)[0], 0)) == set(models)


def test_the_sweep_cache_is_bounded(models):
    worker = InferenceWorker({"cnn": models["cnn"]}, cache_size=2)
    first, *others = digits(3)
    worker.sweep(first, ANGLES)
    assert worker.cached_sweep(first, ANGLES) is not None
    for image in others:
        worker.sweep(image, ANGLES)
    assert worker.cached_sweep(first, ANGLES) is None  # least recently used, evicted
    assert all(worker.cached_sweep(image, ANGLES) is not None for image in others)
    # A cached turn also serves any subset of its angles.
    assert worker.cached_sweep(others[0], [30, 375])["cnn"].angles == [30, 375]


def test_bad_settings_are_refused(models):
    with pytest.raises(ValueError, match="threads"):
        InferenceWorker(models, threads=0)


def test_large_requests_are_split_into_passes_of_at_most_max_batch():
    gated = Gated()
    worker = InferenceWorker({"gated": gated}, max_batch=10)
    gated.batches = []
    image = digits(1)[0]
    sweep = worker.sweep(image, ANGLES)["gated"]
    assert gated.batches == [10, 10, 4]  # 24 angles
    assert torch.allclose(sweep.probabilities, rotation_sweep({"gated": gated}, image, ANGLES)["gated"].probabilities,
                          atol=1e-6)
