"""The machine description recorded with checkpoints and benchmarks."""

import torch

from gcnn.machine import RELEVANT_CPU_FLAGS, cpu_flags, cpu_model, describe_device


def test_cpu_description_names_the_model_threads_and_known_flags():
    flags = cpu_flags()
    assert set(flags) <= set(RELEVANT_CPU_FLAGS)
    text = describe_device(torch.device("cpu"))
    assert text.startswith(cpu_model()) and f"{torch.get_num_threads()} threads" in text
    assert all(flag in text for flag in flags)


def test_flags_come_from_proc_cpuinfo(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse avx2 avx512_bf16 amx_tile\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(info if path == "/proc/cpuinfo" else path,
                                                                            *a, **k))
    assert cpu_model() == "Test CPU 9000"
    assert cpu_flags() == ["avx2", "avx512_bf16", "amx_tile"]
    assert describe_device(torch.device("cpu")).endswith("(avx2 avx512_bf16 amx_tile)")
