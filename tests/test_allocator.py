"""retain_freed_memory: a freed buffer is reused without page faults (measured in a fresh process)."""

import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
import torch
from gcnn.allocator import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
torch.ones(10_000_000)  # 40 MB: allocated, touched, freed
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(10_000_000)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_freed_buffers_are_reused_without_page_faults():
    assert page_faults("default") > 5_000  # 40 MB in 4 KiB pages, faulted in again
    assert page_faults("retain") < 500
