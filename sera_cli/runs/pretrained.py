"""SERA with the Hugging Face conventions: ``SeraModel.from_pretrained(path_or_repo_id)``,
``save_pretrained(folder)`` and ``push_to_hub(repo_id)``, on sera's own run format
(``config.json`` + ``model.safetensors``, runs/checkpoints.py).

It is huggingface_hub's ``ModelHubMixin``, not ``PyTorchModelHubMixin``: the latter saves every
tensor and rebuilds a model by calling ``__init__(**config)``, while a run saves only what
trained and is rebuilt from its config.json, with the frozen backbones reloaded from their own
source and the plugins it needs checked (``load_run``). So ``_save_pretrained`` is ``save_run``
and ``from_pretrained`` is overridden (as the mixin's own docs show) to fetch the run's two
files through huggingface_hub and hand them to ``load_run``: the mixin's version would read
config.json without sera's checks, and let an offline miss or a mistyped folder out as a raw
traceback. What the mixin still gives: the hub's arguments, the model card and push_to_hub.

The class lives here, above the model layer, because a run folder is this layer's format; the
model layer builds it through ``build_model(model_cls=...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import ModelHubMixin

from sera_cli.errors import SeraError
from sera_cli.model.sera import SeraModel as _SeraModel
from sera_cli.model.weights import hub_file
from sera_cli.runs.checkpoints import CONFIG_FILE, WEIGHTS_FILE, load_run, save_run

RUN_INSTEAD = "pass the path of a run folder"


class SeraModel(_SeraModel, ModelHubMixin, library_name="sera",
                tags=["referring-image-segmentation", "sera"]):
    """The SERA model of a trained run, loadable from a run folder or a hub repository.

    ``run_config`` is the run's config.json (its ``train`` section holds the threshold the run
    validated with) and ``run_folder`` the folder it was read from; ``save_pretrained`` writes
    both files back, keeping ``run_config``'s other sections.
    """

    run_config: dict[str, Any]
    run_folder: Path

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *,  # type: ignore[override]
                        vision_weights: str | None = None, text_weights: str | None = None,
                        registry: Any = None, revision: str | None = None,
                        cache_dir: str | Path | None = None, token: str | bool | None = None,
                        local_files_only: bool = False, force_download: bool = False,
                        ) -> SeraModel:
        """A run folder's path, or a hub repository id ("user/sera-b-refcoco") whose
        config.json and model.safetensors are fetched into the Hugging Face cache.

        ``vision_weights``/``text_weights`` are the frozen backbones' local paths (the options
        of the same names); the rest are huggingface_hub's arguments."""
        folder = run_folder(pretrained_model_name_or_path, revision=revision,
                            cache_dir=str(cache_dir) if cache_dir else None, token=token,
                            local_files_only=local_files_only, force_download=force_download)
        model, config = load_run(folder, registry, vision_weights, text_weights, model_cls=cls)
        model.run_config, model.run_folder = config, folder
        return model

    def _save_pretrained(self, save_directory: Path) -> None:
        save_run(save_directory, self, extra=getattr(self, "run_config", None))


def run_folder(path_or_repo_id: str | Path, **hub_kwargs: Any) -> Path:
    """The local folder of a run: ``path_or_repo_id`` itself when it is a folder, else the hub
    snapshot holding the repository's config.json and model.safetensors."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    local = Path(path_or_repo_id).expanduser()
    if local.is_dir():
        return local
    repo_id = str(path_or_repo_id)
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise SeraError(f"checkpoint folder {repo_id} does not exist (or is not a folder), nor "
                        "is it a hub repository id (user/name)") from None
    config = hub_file(repo_id, [CONFIG_FILE], "sera run", RUN_INSTEAD, **hub_kwargs)
    hub_file(repo_id, [WEIGHTS_FILE], "sera run", RUN_INSTEAD, **hub_kwargs)
    return config.parent
