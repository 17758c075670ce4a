"""tinygmm: Gaussian mixture models from data to a microcontroller, verified on the device."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module holding it.  Imported on first use (PEP 562), so `import tinygmm`
# (and the CLI's --help) stays fast and one module failing to import breaks only its names.
_EXPORTS = {
    "GaussianMixture": "fit.mixture",
    "select_n_components": "fit.selection",
    "Model": "model",
    "Scaler": "model",
    "load": "model",
    "save": "model",
    "from_sklearn": "model",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from .fit.mixture import GaussianMixture
    from .model import Model, Scaler, from_sklearn, load, save
    from .fit.selection import select_n_components


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tinygmm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
