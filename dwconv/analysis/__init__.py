"""Why depthwise convolution is slow: machine roofline, cost model, per-layer profiles, plots."""

import logging


class _DropNoCudaRuntimeWarning(logging.Filter):
    """torch.utils.benchmark (used by the profiles and the roofline) imports
    torch.utils.cpp_extension, which warns "No CUDA runtime is found, using CUDA_HOME=..." on every
    machine with a CUDA toolkit and no GPU; it says nothing about a measurement, so exactly that
    message is dropped (every other one still shows). Installed here, before any submodule
    imports torch.utils.benchmark."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No CUDA runtime is found")


logging.getLogger("torch.utils.cpp_extension").addFilter(_DropNoCudaRuntimeWarning())
