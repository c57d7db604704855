"""sera-dilated: registers the "dilated" SERA-Fusion expert with sera.

Only names and a ``"module:Class"`` string are registered here, so that `sera experts list` and
`sera --help` do not import torch; sera imports `sera_dilated.expert` when a model needs it.
"""

from __future__ import annotations

from collections.abc import Callable

from sera_cli.hookspecs import ExpertSpec, hookimpl


@hookimpl
def sera_register_experts(register: Callable[[ExpertSpec], None]) -> None:
    register(ExpertSpec(
        name="dilated",
        stage="fusion",
        factory="sera_dilated.expert:DilatedExpert",
        description="depthwise 3x3 convs at dilations 1, 2, 4: mid-range context, conv cost",
    ))
