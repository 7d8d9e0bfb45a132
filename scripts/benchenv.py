"""The one-line machine description every benchmark prints beside its figures.

The machines are shared and noisy, so a figure means little without the CPU model, the cores, the
load average at the start and the library versions; every script in ``scripts/`` prints this line.
"""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine(device: str | None = None) -> str:
    """CPU, cores, memory, load average, and the Python / torch / RDKit versions (torch's threads and GPU)."""
    import rdkit
    import torch

    parts = [f"{cpu_model()}, {os.cpu_count()} cores"]
    try:
        with open("/proc/meminfo") as fh:
            parts.append(f"{int(fh.readline().split()[1]) / 2**20:.0f} GiB RAM")
    except (OSError, ValueError, IndexError):
        pass
    if hasattr(os, "getloadavg"):
        parts.append("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    gpu = ""
    if (device or "").startswith("cuda") and torch.cuda.is_available():
        gpu = f", GPU {torch.cuda.get_device_name()}"
    threads = torch.get_num_threads()
    parts.append(f"Python {platform.python_version()}, torch {torch.__version__} "
                 f"({threads} thread{'s' if threads != 1 else ''}{gpu}), RDKit {rdkit.__version__}")
    return "; ".join(parts)


if __name__ == "__main__":
    print(machine())
