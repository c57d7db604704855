"""Where pretrained backbone weights come from: an explicit path, an environment variable, the
local hub cache, or the hub itself. Kept apart from model construction (as open_clip does).

Offline, the hub libraries retry for half a minute before failing; sera checks reachability
first and fails at once with a message that says how to provide the weights.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sera_cli.errors import SeraError

ENV_VISION = "SERA_VISION_WEIGHTS"
ENV_TEXT = "SERA_TEXT_WEIGHTS"
HUB_HOST = "huggingface.co"


def hub_reachable(host: str = HUB_HOST, timeout: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def explicit_source(path: str | None, env: str, option: str) -> Path | None:
    """The user's own weights path (option first, then environment); it must exist."""
    value = path or os.environ.get(env)
    if not value:
        return None
    source = Path(value).expanduser()
    if not source.exists():
        origin = option if path else f"${env}"
        raise SeraError(f"{origin} points at {source}, which does not exist")
    return source


def missing_weights(what: str, name: str, option: str, env: str, detail: str) -> SeraError:
    return SeraError(
        f"{what} weights '{name}' are not available ({detail}); download them on a machine with "
        f"internet and pass {option} PATH or set {env}=PATH, or fill the Hugging Face cache "
        f"(HF_HOME) with '{name}'"
    )
