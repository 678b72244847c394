"""Data-parallel training: 2 CPU processes (gloo, through torchrun) train exactly as one process does."""

import json
import os
import subprocess
import sys

import pytest
import torch

from gcnn import load_model
from gcnn.distributed import Context, from_environment, shard
from gcnn.train import TrainSettings, train

# No batch norm (layer norm treats images independently), so splitting a batch changes nothing but rounding.
TINY = {"type": "GroupEquivariantCNN", "group": {"name": "cyclic", "order": 4}, "kernel_size": 3, "num_hidden": 1,
        "hidden_channels": 4, "padding": 1, "pool_after": [0]}


def test_shards_of_a_batch_are_disjoint_and_cover_it():
    batch = torch.arange(11)
    shares = [shard(batch, Context(rank, 3)) for rank in range(3)]
    assert [len(s) for s in shares] == [4, 4, 3]
    assert torch.equal(torch.cat(shares), batch)
    assert torch.equal(shard(batch, Context()), batch)


def test_context_comes_from_torchrun_variables(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert from_environment() == Context(2, 4, 0) and from_environment().active
    assert not from_environment().is_main
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="outside WORLD_SIZE"):
        from_environment()


def test_two_processes_train_like_one(fake_mnist, tmp_path):
    """Global batch 50 split 25 + 25, gradients averaged: the same losses, accuracies and weights as one
    process with batch 50; rank 0 alone writes the checkpoint and records 2 processes."""
    single = train(TrainSettings(model=TINY, epochs=2, batch_size=50), "one", tmp_path / "one",
                   data_dir=fake_mnist, show_progress=False)
    env = {key: value for key, value in os.environ.items() if key not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "gcnn.train", "--config", json.dumps(TINY), "--name", "two", "--epochs", "2",
               "--batch-size", "50", "--out-dir", str(tmp_path / "two"), "--data-dir", str(fake_mnist),
               "--no-progress", "--device", "cpu"]
    for _ in range(2):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        # Seen once in ~10 CI runs (torch 2.14.1): both ranks finished and rank 0 wrote the checkpoint, then rank 1
        # aborted while gloo tore down ("terminate called without an active exception", exit -6) although
        # destroy_process_group had been called (pytorch/pytorch#179291 describes such teardown races).  That run
        # is repeated once; any other failure, or the same one twice, fails the test.
        if result.returncode == 0 or "terminate called without an active exception" not in result.stderr:
            break
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("two:") == 1  # rank 0 alone reports
    written = json.loads((tmp_path / "two" / "two.json").read_text())
    assert written["run"]["processes"] == 2 and not (tmp_path / "two" / "two.resume.pt").exists()
    for ours, theirs in zip(written["history"], single["history"], strict=True):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)
        for key in ("train_accuracy", "val_upright", "val_rotated"):
            assert ours[key] == pytest.approx(theirs[key], abs=1e-9), key
    one, two = load_model(tmp_path / "one" / "one.pt"), load_model(tmp_path / "two" / "two.pt")
    for a, b in zip(one.parameters(), two.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
