"""Where pretrained weights come from: the user's own path (an option, else an environment
variable), else a Hugging Face hub repository. Kept apart from model construction (as open_clip
does).

Hub files go through huggingface_hub, so sera behaves as every other HF library does: HF_ENDPOINT
(a mirror), HF_HUB_OFFLINE, HF_HOME / HF_HUB_CACHE and the standard cache are honoured, and a
filled cache works offline. A file the cache lacks is first asked for once (one HEAD request,
no retries): a dead endpoint then fails at once, where huggingface_hub would retry for half a
minute before failing the same way. Every failure is one SeraError that names the repository,
the cache folder searched and the option that takes a local path instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sera_cli.errors import SeraError

ENV_VISION = "SERA_VISION_WEIGHTS"
ENV_TEXT = "SERA_TEXT_WEIGHTS"


def explicit_source(path: str | None, env: str, option: str) -> Path | None:
    """The user's own weights path (option first, then environment); it must exist."""
    value = path or os.environ.get(env)
    if not value:
        return None
    source = Path(value).expanduser()
    if not source.exists():
        raise SeraError(f"{source_label(path, env, option)} points at {source}, which does not "
                        "exist")
    return source


def source_label(path: str | None, env: str, option: str) -> str:
    """How messages name a user's path: by the option, or by the variable it came from."""
    return option if path else f"${env}"


def hub_file(repo_id: str, filenames: Sequence[str], what: str, instead: str,
             **hub_kwargs: Any) -> Path:
    """The first of ``filenames`` that hub repository ``repo_id`` holds, from the cache or
    downloaded into it. ``what`` names the weights in messages ("DINOv2 weights");
    ``instead`` says how to give a local path instead ("pass --vision-weights PATH");
    ``hub_kwargs`` are huggingface_hub's own (revision, cache_dir, token, local_files_only,
    force_download)."""
    # huggingface_hub.utils exports its errors in every version sera supports (0.24 on);
    # huggingface_hub.errors holds them only in later ones.
    from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError

    kwargs = {k: v for k, v in hub_kwargs.items() if v is not None}
    not_cached = False
    for filename in filenames:
        try:
            return Path(_download(repo_id, filename, kwargs))
        except LocalEntryNotFoundError:
            not_cached = True  # offline and not cached: an alternative may be
        except EntryNotFoundError:
            continue  # the repository has no such file: try the next name
        except Exception as exc:  # noqa: BLE001 - each hub failure becomes one line below
            raise hub_error(exc, what, repo_id, instead, kwargs) from None
    if not_cached:
        raise _not_cached(what, repo_id, instead, kwargs, "")
    raise SeraError(f"{what} '{repo_id}': the repository holds none of {', '.join(filenames)}; "
                    f"or {instead}")


def hub_file_if_any(repo_id: str, filename: str, what: str, instead: str,
                    **hub_kwargs: Any) -> Path | None:
    """``hub_file`` for a file the repository may lack: None when it has none (offline: when
    the cache has none)."""
    from huggingface_hub.utils import EntryNotFoundError

    kwargs = {k: v for k, v in hub_kwargs.items() if v is not None}
    try:
        return Path(_download(repo_id, filename, kwargs))
    except EntryNotFoundError:  # its Local subclass too: offline, the cache has no such file
        return None
    except Exception as exc:  # noqa: BLE001 - each hub failure becomes one line
        raise hub_error(exc, what, repo_id, instead, kwargs) from None


def _download(repo_id: str, filename: str, kwargs: dict[str, Any]) -> str:
    from huggingface_hub import (
        constants,
        get_hf_file_metadata,
        hf_hub_download,
        hf_hub_url,
        try_to_load_from_cache,
    )
    from huggingface_hub.utils import HfHubHTTPError

    offline = constants.HF_HUB_OFFLINE or kwargs.get("local_files_only", False)
    cached = try_to_load_from_cache(repo_id, filename, cache_dir=kwargs.get("cache_dir"),
                                    revision=kwargs.get("revision"))
    if not offline and not isinstance(cached, str):
        try:  # one request, no retries: a dead endpoint fails now
            get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=kwargs.get("revision")),
                                 token=kwargs.get("token"))
        except HfHubHTTPError:
            raise
        except Exception as exc:  # noqa: BLE001 - the HTTP client's own errors differ by version
            raise _Unreachable(f"{type(exc).__name__}: {exc}") from None
    return hf_hub_download(repo_id, filename, **kwargs)


class _Unreachable(Exception):
    """The endpoint did not answer the first request (connection refused, DNS, timeout)."""


def hub_error(exc: Exception, what: str, repo_id: str, instead: str,
              kwargs: dict[str, Any]) -> SeraError:
    """One line for a failed hub download, by cause."""
    from huggingface_hub import constants
    from huggingface_hub.utils import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = constants.ENDPOINT
    if isinstance(exc, _Unreachable):
        return _not_cached(what, repo_id, instead, kwargs, str(exc))
    if isinstance(exc, LocalEntryNotFoundError):
        return _not_cached(what, repo_id, instead, kwargs, "")
    if isinstance(exc, GatedRepoError):
        return SeraError(f"{what} '{repo_id}': the repository is gated: accept its terms at "
                         f"{endpoint}/{repo_id} and log in (hf auth login), or {instead}")
    if isinstance(exc, RepositoryNotFoundError):
        return SeraError(f"{what} '{repo_id}': no such repository on the hub at {endpoint} (or "
                         f"it is private: log in with hf auth login); or {instead}")
    if isinstance(exc, RevisionNotFoundError):
        return SeraError(f"{what} '{repo_id}': no revision '{kwargs.get('revision')}' on "
                         f"the hub at {endpoint}")
    if isinstance(exc, HfHubHTTPError):
        return SeraError(f"{what} '{repo_id}': the hub at {endpoint} answered "
                         f"{' '.join(str(exc).split())[:200]}")
    return SeraError(f"{what} '{repo_id}': cannot be fetched ({type(exc).__name__}: "
                     f"{' '.join(str(exc).split())[:200]}); or {instead}")


def _not_cached(what: str, repo_id: str, instead: str, kwargs: dict[str, Any],
                detail: str) -> SeraError:
    from huggingface_hub import constants

    cache = kwargs.get("cache_dir") or constants.HF_HUB_CACHE
    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE is set"
    elif kwargs.get("local_files_only"):
        why = "local_files_only is set"
    else:
        why = f"the hub at {constants.ENDPOINT} cannot be reached ({detail.splitlines()[0]})" \
            if detail else f"the hub at {constants.ENDPOINT} cannot be reached"
    return SeraError(f"{what} '{repo_id}': not in the Hugging Face cache ({cache}), and {why}: "
                     f"fill the cache where the hub can be reached (hf download {repo_id}), or "
                     f"{instead}")
