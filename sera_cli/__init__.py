"""sera: referring image segmentation with spatio-semantic expert routing (SERA, CVPR 2025).

The package root stays import-light on purpose: `sera --help` must not pay for torch. The Python
API (docs/python.md) is imported on first use of its names:

    from sera_cli import Predictor, SeraModel

The root sits above every layer (docs/architecture.md) and imports them only then, by module
name: lower layers import the root for ``__version__``, so a static import here would read to
import-linter as, say, ``runs`` importing ``engine``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it, imported when the name is first used.
_LAZY = {"SeraModel": "sera_cli.runs.pretrained", "Predictor": "sera_cli.engine.inference",
         "Prediction": "sera_cli.engine.inference"}
__all__ = ["Prediction", "Predictor", "SeraModel", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'sera_cli' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
