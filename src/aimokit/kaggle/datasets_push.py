"""Datasets to Kaggle: a new one, a new version, or nothing when the content hash is unchanged; uploads that
resume; readiness by version number. The push state (build/push-state.json) says what landed, so a rerun picks
up where the last one stopped."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from ..io import atomic_write
from .build import content_hash
from .client import PushError, PushReport, UploadFailed, _status_code, call
from .config import PushOptions

log = logging.getLogger(__name__)


STATE_FILE = "push-state.json"  # under the build folder: content hash of each dataset as last pushed
DIR_MODE = "zip"  # folders are zipped before (stage_for_upload); Kaggle unpacks the archives it gets


# -- datasets -----------------------------------------------------------------

def load_state(out: Path) -> dict[str, str]:
    p = out / STATE_FILE
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        return {}  # a damaged state file only costs a re-push


def save_state(out: Path, state: dict[str, str]) -> None:
    atomic_write(out / STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")


def dataset_version(api: Any, ref: str, opts: PushOptions) -> tuple[str, int] | None:
    """(status, current version number) of a dataset, or None while Kaggle answers 403/404.

    Right after a create, the status call can answer 404 or 403 for a few seconds; and a bare status says
    nothing about *which* version is ready, so the version number is asked for too.
    """
    try:
        raw = call(lambda: api.dataset_status(ref, format="json(status,current_version_number)"),
                   f"status of {ref}", opts)
    except Exception as e:
        if _status_code(e) in (403, 404):
            return None
        raise
    got = json.loads(raw)
    return str(got.get("status") or "").lower(), int(got.get("current_version_number") or 0)


def _upload_info_file(path: str) -> Path:
    """Where the client keeps a file's resumable-upload session between calls (and runs)."""
    from kaggle.api.kaggle_api_extended import ResumableUploadContext

    return Path(ResumableUploadContext().get_upload_info_file_path(path))


# The client's ResumableUploadResult codes, as words for an error message.
_UPLOAD_RESULTS = {1: "complete", 2: "refused (not resumable)", 3: "interrupted"}


def _track_uploads(api: Any, files: list[str]) -> Callable[[], None]:
    """Record each finished upload, and stop before the dataset is created if one failed.

    The client drops a failed file from the version silently (it prints
    "Upload unsuccessful" and goes on); a version missing a file must never be
    created, so a failed upload raises here, before the create request. The
    failed session's resume file is deleted: the client would otherwise resume
    the dead session on every retry (a session the server refused answers 404
    to each resume) until it expires after six days.
    """
    original = getattr(api, "_upload_file", None)
    complete = getattr(api, "upload_complete", None)
    if original is None or complete is None:  # a client without the hooks: no per-file tracking
        return lambda: None
    outcomes: list[str] = []

    def tracked_complete(path: str, url: str, quiet: bool, resume: bool = False) -> Any:
        result = complete(path, url, quiet, resume=resume)
        outcomes.append(f"{'resume' if resume else 'send'}: {_UPLOAD_RESULTS.get(result, result)}")
        return result

    def tracked(file_name: str, full_path: str, *args: Any, **kwargs: Any) -> Any:
        outcomes.clear()
        result = original(file_name, full_path, *args, **kwargs)
        if result is None:
            _upload_info_file(full_path).unlink(missing_ok=True)
            raise UploadFailed(f"upload of {file_name} failed (storage answers: {', '.join(outcomes) or 'none'})")
        files.append(file_name)
        return result

    api._upload_file, api.upload_complete = tracked, tracked_complete
    return lambda: (setattr(api, "_upload_file", original), setattr(api, "upload_complete", complete))


def stage_for_upload(folder: Path, stage: Path) -> Path:
    """The dataset as the client will upload it, with every folder already zipped, at a stable path.

    The client zips a folder into a fresh temp directory on every call, so an interrupted upload of it
    can never resume: its path (the resume key) is new each time. Zipped here once, deterministically
    (sorted entries, fixed timestamps, the client's own ignore patterns) and with a stable mtime, the
    same archive is offered again on a retry or a rerun, and the client resumes it. Plain files are hard
    links, so a gigabyte wheelhouse is not copied.
    """
    import os
    import zipfile

    from kaggle.api.kaggle_api_extended import DEFAULT_IGNORE_PATTERNS, should_ignore

    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for entry in sorted(folder.iterdir()):
        if entry.is_file():
            try:
                os.link(entry, stage / entry.name)
            except OSError:  # another file system
                shutil.copy2(entry, stage / entry.name)
        elif entry.is_dir() and not should_ignore(entry.name, True, DEFAULT_IGNORE_PATTERNS):
            archive = stage / f"{entry.name}.zip"
            newest = 315532800  # 1980-01-01, zip's epoch
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
                for root, dirs, names in os.walk(entry):
                    dirs[:] = sorted(d for d in dirs if not should_ignore(
                        os.path.relpath(os.path.join(root, d), entry), True, DEFAULT_IGNORE_PATTERNS))
                    for name in sorted(names):
                        f = Path(root) / name
                        rel = f.relative_to(entry).as_posix()
                        if should_ignore(rel, False, DEFAULT_IGNORE_PATTERNS):
                            continue
                        info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
                        info.external_attr = (f.stat().st_mode & 0o777) << 16
                        info.compress_type = zipfile.ZIP_DEFLATED
                        with open(f, "rb") as src, z.open(info, "w") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        newest = max(newest, int(f.stat().st_mtime))
            os.utime(archive, (newest, newest))  # the resume key includes the mtime
    return stage


def _send_dataset(api: Any, folder: Path, ref: str, exists: bool, opts: PushOptions, files: list[str]) -> None:
    restore = _track_uploads(api, files)
    try:  # quiet=True: the client prints nothing, so no stdout is redirected from this worker thread
        if exists:
            resp = api.dataset_create_version(str(folder), opts.version_note, quiet=True,
                                              dir_mode=DIR_MODE, convert_to_csv=False)
        else:
            resp = api.dataset_create_new(str(folder), public=opts.public, quiet=True,
                                          dir_mode=DIR_MODE, convert_to_csv=False)
    finally:
        restore()
    error = getattr(resp, "error", None)
    if error:  # Kaggle answers some refusals (a license name, a taken slug) with 200 and an error field
        raise PushError(f"Kaggle refused {ref}: {error}")


def wait_ready(api: Any, ref: str, after: int, opts: PushOptions, sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> int:
    """Wait until a version newer than `after` is ready; returns its number.

    Kernels that mount a dataset still being processed see the old version, or
    nothing. 403/404 count as "not visible yet" until the deadline.
    """
    deadline = clock() + opts.ready_timeout_s
    while True:
        got = dataset_version(api, ref, opts)
        status, version = got if got else ("not visible yet", 0)
        if version > after and status == "ready":
            return version
        if status in ("failed", "deleted"):
            raise PushError(f"Kaggle reports dataset {ref} as {status}; open it on kaggle.com for the reason")
        if clock() > deadline:
            raise PushError(f"dataset {ref}: version {after + 1} still not ready after {opts.ready_timeout_s:.0f} s "
                            f"({status}, current version {version}); run the push again: it only waits for it")
        log.info("dataset %s: %s, version %d; waiting for version %d", ref, status, version, after + 1)
        sleep(opts.poll_s)


def push_dataset(api: Any, folder: Path, ref: str, opts: PushOptions, report: PushReport,
                 state: dict[str, str], out: Path) -> None:
    digest = content_hash(folder)
    if state.get(ref) == digest:
        report.skipped.append(ref)
        return
    pending = state.get(f"pending:{ref}", "")
    if pending.startswith(digest + "@"):  # sent by an earlier run that stopped before it was ready
        after = int(pending.split("@")[1])
        log.info("dataset %s was sent before and is not yet ready; waiting for it", ref)
        report.pushed.append(ref)  # new to the kernels that mount it
    else:
        files: list[str] = report.uploaded_files.setdefault(ref, [])
        before = dataset_version(api, ref, opts)
        after = before[1] if before else 0
        staged = stage_for_upload(folder, out / "upload" / folder.name)

        def once() -> None:
            files.clear()
            try:
                _send_dataset(api, staged, ref, before is not None, opts, files)
            except PushError as e:
                # the client retries a dropped create itself, and the first one may have landed: Kaggle then
                # calls the title taken. If the dataset shows up (through its 404 window), that create was ours.
                if before is None and "already in use" in str(e) and landed(True):
                    log.warning("dataset %s: an earlier create reached Kaggle after all; not creating it again", ref)
                    return
                raise

        def landed(unknown: bool = False) -> bool | None:  # an abandoned create that finished: no second one
            deadline = time.monotonic() + (opts.landed_grace_s if before is None and unknown else 0.0)
            while True:
                now = dataset_version(api, ref, opts)
                if now is not None or time.monotonic() >= deadline:
                    return True if now and now[1] > after else None
                time.sleep(opts.poll_s)  # a dataset just created can answer 404 for a while: not "not there"

        call(once, f"push of dataset {ref}", opts, timeout_s=opts.upload_timeout_s, landed=landed)
        report.pushed.append(ref)
        state[f"pending:{ref}"] = f"{digest}@{after}"
        save_state(out, state)
    wait_ready(api, ref, after, opts)
    state[ref] = digest
    state.pop(f"pending:{ref}", None)
    save_state(out, state)
    shutil.rmtree(out / "upload" / folder.name, ignore_errors=True)
