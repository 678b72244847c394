"""retain_freed_memory: freed buffers are reused without page faults once the heap has grown to hold them
(measured in fresh processes, the fewest faults of several rounds)."""

import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
import torch
from gcnn.allocator import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
for _ in range(3):  # 40 MB, allocated, touched and freed: the heap grows to hold it (and what lands beside it)
    torch.ones(10_000_000)
# The heap can need a round or two more to reach its working set (seen: 29,297 then 9,766 then 0 faults), so the
# fewest faults of four rounds of three allocations is what a long-running loop pays.
rounds = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        torch.ones(10_000_000)
    rounds.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(rounds))
"""


def page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_freed_buffers_are_reused_without_page_faults():
    assert page_faults("default") > 3 * 9_000  # 40 MB in 4 KiB pages, faulted in again every time
    assert page_faults("retain") < 500
