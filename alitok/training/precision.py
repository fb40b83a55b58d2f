"""Mixed precision as params ask for it (`training.precision`), for both trainers.

Autocast runs on the device types in AMP_DEVICES only. CPU training stays fp32: bf16 autocast there is slower
than fp32 on the CPUs we ran, and the smoke numbers are fp32 numbers. Tests add "cpu" to run the bf16 code
path without a GPU (tests/test_precision.py).
"""

from __future__ import annotations

import contextlib

import torch

AMP_DEVICES = ("cuda",)
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class Precision:
    """`autocast()` for the forward passes and `scaler` for the backward: a GradScaler only under fp16, as
    released (bf16 keeps fp32's exponent range and needs none)."""

    def __init__(self, device: torch.device, precision: str):
        self.device_type = device.type
        self.dtype = DTYPES.get(precision) if device.type in AMP_DEVICES else None
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)
