# Hand-written stubs for the compiled core, checked against the real module by mypy.stubtest.
# Users import the typed facades (allsuse.pricing, allsuse.risk, ...), never this module.

import numpy as np
import numpy.typing as npt

_F64 = npt.NDArray[np.float64]

__version__: str

def build_profile() -> str: ...

# --- pricing ---

# --- risk ---

# --- indicators ---

# --- cache ---
