"""Kernels to Kaggle: one SaveKernel that is never sent twice for one change (a second one starts a second GPU
run), and the settings Kaggle applied read back."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .client import PushError, _status_code, call
from .config import PushOptions

log = logging.getLogger(__name__)


# -- kernels ------------------------------------------------------------------

def kernel_version(api: Any, ref: str, opts: PushOptions) -> int | None:
    """The kernel's current version number on Kaggle; None when it does not exist (403/404)."""
    from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest

    owner, slug = ref.split("/")

    def get() -> Any:
        with api.build_kaggle_client() as kaggle:
            request = ApiGetKernelRequest()
            request.user_name, request.kernel_slug = owner, slug
            return kaggle.kernels.kernels_api_client.get_kernel(request)

    try:
        resp = call(get, f"versions of kernel {ref}", opts)
    except Exception as e:
        if _status_code(e) in (403, 404):
            return None
        raise
    return int(getattr(resp.metadata, "current_version_number", 0) or 0)


def push_kernel(api: Any, folder: Path, opts: PushOptions) -> tuple[str, int | None, list[str]]:
    """Push one kernel folder; returns its url, the version number Kaggle gave it (submit needs it) and warnings.

    An answer with `error` is a refusal. `invalid_*_sources` are not: the client prints them after a version
    that was pushed and is running, without the sources it names (kaggle 2.2.4 `kernels_push_cli`); the
    version is recorded, so a rerun does not start a second run, and each is a warning that names the source.

    Each push queues a GPU run. A SaveKernel that timed out or got a 5xx may still have landed, so the
    kernel's version number is read before any retry: if it went up, that version is the push.
    """
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    ref = meta["id"]
    before = kernel_version(api, ref, opts) or 0

    def landed(unknown: bool = False) -> tuple[Any, int] | None:
        now = kernel_version(api, ref, opts) or 0
        return (None, now) if now > before else None

    def once() -> tuple[Any, int | None]:
        resp = api.kernels_push(str(folder))
        version = getattr(resp, "version_number", None)
        return resp, int(version) if version else None

    resp, version = call(once, f"push of kernel {folder.name}", opts, landed=landed)
    if resp is None:  # an abandoned attempt landed
        return f"https://www.kaggle.com/code/{ref}", version, []
    if getattr(resp, "error", None):
        raise PushError(f"Kaggle refused kernel {folder.name}: {resp.error}")
    warnings = [f"kernel {ref} version {version} was pushed and runs without its {name[len('invalid_'):]} "
                f"{', '.join(bad)}: Kaggle could not attach them (check each slug, and that these credentials can "
                "read it), then push again"
                for name in ("invalid_dataset_sources", "invalid_competition_sources", "invalid_kernel_sources",
                             "invalid_model_sources", "invalid_tags")
                if (bad := getattr(resp, name, None))]
    for w in warnings:
        log.warning("%s", w)
    return str(getattr(resp, "url", "") or getattr(resp, "ref", "")), version, warnings


def kernel_settings(api: Any, ref: str, opts: PushOptions) -> dict[str, Any]:
    """A kernel's settings as Kaggle holds them (kernels_pull's kernel-metadata.json): machine shape, internet,
    and the Docker image its last run used."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        call(lambda: api.kernels_pull(ref, tmp, metadata=True, quiet=True), f"settings of {ref}", opts)
        return json.loads((Path(tmp) / "kernel-metadata.json").read_text())


def check_kernel_settings(api: Any, folder: Path, opts: PushOptions) -> list[str]:
    """Read the pushed kernel's settings back from Kaggle (kernels_pull) and name what differs from the request.

    Kaggle can run a kernel on another accelerator than asked (a shape not offered to the account), or
    with internet on; either breaks a submission. Returns warnings, also logged.
    """
    asked = json.loads((folder / "kernel-metadata.json").read_text())
    got = kernel_settings(api, asked["id"], opts)
    warnings = []
    if bool(got.get("enable_internet")) != bool(asked.get("enable_internet")):
        warnings.append(f"kernel {asked['id']}: Kaggle has internet {'on' if got.get('enable_internet') else 'off'}, "
                        f"asked {'on' if asked.get('enable_internet') else 'off'}; a code-competition submission "
                        "needs it off: check the kernel's settings on kaggle.com")
    if got.get("machine_shape") and asked.get("machine_shape") and got["machine_shape"] != asked["machine_shape"]:
        warnings.append(f"kernel {asked['id']}: Kaggle reports machine {got['machine_shape']}, asked "
                        f"{asked['machine_shape']}; is that accelerator offered to this account and competition?")
    for w in warnings:
        log.warning("%s", w)
    return warnings
