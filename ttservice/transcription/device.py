"""Where a job runs: the CPU or a CUDA device, and the compute type that fits it.

`auto` takes CUDA when CTranslate2 finds a usable device (its CUDA libraries
load and a GPU answers), else the CPU. The compute type `auto` is float16 on
CUDA and int8 on the CPU: on real speech int8 gave float32's words, as fast or
faster (1.0 to 1.5 times) and in less memory (bench item 18, docs/performance.md), and
float16 is what CUDA runs fastest at the same accuracy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..exceptions import ModelError

DEVICES = ("auto", "cpu", "cuda")
CPU_COMPUTE_TYPE = "int8"
CUDA_COMPUTE_TYPE = "float16"
# On the CPU, a batch of more clips than this many per thread of the job was slower on one 2-core
# machine (8 clips against 4 on 2 threads, 12 % slower; against 2 on 1 thread, 24 %); another
# was fastest with four a thread, where two cost it 1 to 4 % (docs/decisions.md).
CPU_CLIPS_PER_THREAD = 2
# Batches a batched job decodes side by side on the CPU: CTranslate2 spreads one batch's small
# decoding steps poorly over threads (docs/decisions.md).
CPU_SIDE_BY_SIDE = 2


# What CTranslate2 4.x loads by name on CUDA, beside the driver: cuBLAS 12 and cuDNN 9 (the
# encoder's convolutions). Missing, a model loads and its first decode fails.
CUDA_LIBRARIES = ("libcublas.so.12", "libcudnn_ops.so.9", "libcudnn_cnn.so.9")


def cpu_threads(running: int) -> int:
    """CPU threads for one of `running` jobs on this machine: the cores shared, never below one.

    CTranslate2 fixes a model's threads when it loads, so a job keeps the share it started with.
    """
    return max(1, (os.cpu_count() or 1) // max(1, running))


def cpu_batch(batch_size: int, threads: int) -> int:
    """The clips a batched job decodes at once on the CPU: its batch size, at most
    CPU_CLIPS_PER_THREAD for each of its threads (0: a job alone here, with every core)."""
    if batch_size <= 0:
        return batch_size
    return min(batch_size, CPU_CLIPS_PER_THREAD * (threads or cpu_threads(1)))


def side_by_side(threads: int, batched: bool) -> int:
    """The batches a job with `threads` CPU threads decodes at once: CPU_SIDE_BY_SIDE where it is
    batched and has a thread for each, each with all the job's threads (a batch alone, a first
    clip or a short file's only one, has them all; two share them); else one."""
    return CPU_SIDE_BY_SIDE if batched and threads >= CPU_SIDE_BY_SIDE else 1


def cuda_devices() -> int:
    """How many CUDA devices CTranslate2 can use here (0 without a GPU or its libraries)."""
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count()
    except Exception:  # a broken CUDA install raises from inside CTranslate2
        return 0


def missing_cuda_libraries() -> list[str]:
    """The CUDA libraries CTranslate2 needs that the dynamic loader cannot find (Linux names)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return []
    missing = []
    for name in CUDA_LIBRARIES:
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    return missing


@dataclass(frozen=True)
class Device:
    kind: str  # "cpu" or "cuda"
    index: int
    compute_type: str

    def describe(self) -> str:
        where = "the CPU" if self.kind == "cpu" else f"CUDA device {self.index}"
        return f"{where} ({self.compute_type})"


def resolve(device: str, index: int = 0, compute_type: str = "auto") -> Device:
    """The device and compute type a job runs with, or one sentence saying why there is none."""
    device = (device or "auto").strip().lower()
    if device not in DEVICES:
        raise ModelError("device.unknown", device=device)
    count = cuda_devices() if device != "cpu" else 0
    if device == "cuda" and count == 0:
        raise ModelError("device.no_cuda")
    missing = missing_cuda_libraries() if count else []
    if device == "cuda" and missing:
        raise ModelError("device.cuda_libraries", libraries=", ".join(missing))
    if missing:
        count = 0  # auto: a GPU without these libraries would fail every job; the CPU runs them
    if device == "cuda" and index >= count:
        raise ModelError("device.no_such_cuda", index=index, count=count)
    kind = "cuda" if device == "cuda" or (device == "auto" and count > 0) else "cpu"
    if compute_type in ("", "auto", "default"):
        compute_type = CUDA_COMPUTE_TYPE if kind == "cuda" else CPU_COMPUTE_TYPE
    return Device(kind, index if kind == "cuda" else 0, compute_type)
