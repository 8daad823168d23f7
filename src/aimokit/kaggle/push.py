"""`build.py push / status / output`: built folders to Kaggle through the official client.

Every request goes through `kaggle.api.KaggleApi`; this module only decides
what to send (new dataset, new version, or nothing when the content hash is
unchanged), retries what the client does not, and says exactly what landed when
something fails, so a rerun picks up where the last one stopped.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import logging
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..errors import AimokitError
from ..io import Abandoned, atomic_write, run_with_timeout
from .build import content_hash
from .config import PushOptions

log = logging.getLogger(__name__)
T = TypeVar("T")

STATE_FILE = "push-state.json"  # under the build folder: content hash of each dataset as last pushed
DIR_MODE = "zip"  # folders are zipped before (stage_for_upload); Kaggle unpacks the archives it gets


class PushError(AimokitError, RuntimeError):
    """A push that cannot start or could not finish; the message says what was sent."""


class UploadFailed(PushError):
    """The client gave up on one file's upload; worth another try of the whole dataset."""


@dataclass
class PushReport:
    pushed: list[str] = field(default_factory=list)  # dataset refs sent in this run
    skipped: list[str] = field(default_factory=list)  # unchanged since the last push (datasets, kernel:<ref>)
    kernels: list[str] = field(default_factory=list)  # kernel urls
    uploaded_files: dict[str, list[str]] = field(default_factory=dict)  # ref -> files whose upload finished
    warnings: list[str] = field(default_factory=list)  # settings Kaggle applied other than asked

    def summary(self) -> str:
        parts = [f"datasets pushed: {', '.join(self.pushed) or 'none'}",
                 f"unchanged, not pushed: {', '.join(self.skipped) or 'none'}",
                 f"kernels pushed: {', '.join(self.kernels) or 'none'}"]
        for ref, files in self.uploaded_files.items():
            if ref not in self.pushed:
                parts.append(f"files uploaded for {ref} before it failed: {', '.join(files) or 'none'}")
        return "; ".join(parts + [f"WARNING {w}" for w in self.warnings])


# -- the client ---------------------------------------------------------------

def authenticated_api() -> Any:
    """The kaggle client, authenticated, or a PushError naming where credentials go.

    Checked before anything is built or uploaded; the client's own search order
    applies (KAGGLE_API_TOKEN, ~/.kaggle/access_token, KAGGLE_USERNAME/KAGGLE_KEY,
    $KAGGLE_CONFIG_DIR or ~/.kaggle/kaggle.json).
    """
    quiet = io.StringIO()
    try:
        # `import kaggle` itself authenticates and prints the client's own help when it finds nothing: one
        # story about credentials is told, the one below, so the import is silenced with the check
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
    except SystemExit:
        raise PushError(
            "no Kaggle credentials found, so nothing was uploaded. The kaggle client 2.x accepts, in its order: "
            "an access token (run `kaggle auth login`, or create one at kaggle.com > Settings > API and save it "
            "to ~/.kaggle/access_token or set KAGGLE_API_TOKEN), or a legacy API key (kaggle.json in ~/.kaggle/ or "
            "$KAGGLE_CONFIG_DIR with mode 600, or KAGGLE_USERNAME and KAGGLE_KEY)"
        ) from None
    return api


def check_user(api: Any, user: str) -> None:
    """A ship config for one account pushed with another's key fails at Kaggle with a 403; say so first."""
    who = (api.config_values or {}).get("username")
    if who and who != user:
        raise PushError(f"the ship config's user is {user!r} but the Kaggle credentials are {who!r}; "
                        f"set user = {who!r} in the ship config (or use that account's credentials)")


def _status_code(exc: BaseException) -> int | None:
    resp = getattr(exc, "response", None)
    return getattr(resp, "status_code", None)


def retriable(exc: BaseException) -> bool:
    """5xx, 408, 429, timeouts and dropped connections are worth another try; other 4xx are not."""
    code = _status_code(exc)
    if code is not None:
        return code >= 500 or code in (408, 429)
    return isinstance(exc, (TimeoutError, ConnectionError, UploadFailed)) or type(exc).__name__ in (
        "ConnectionError", "ConnectTimeout", "ReadTimeout", "ChunkedEncodingError", "ProtocolError")


def call(fn: Callable[[], T], what: str, opts: PushOptions, timeout_s: float | None = None,
         sleep: Callable[[float], None] = time.sleep, attempts: int | None = None,
         landed: Callable[[bool], T | None] | None = None) -> T:
    """fn with bounded retries and exponential backoff; the last error propagates.

    `attempts=1` for calls that must not be repeated blindly (a submission: a repeat costs a daily slot).
    `landed(unknown)`, asked before each retry, returns the result of an earlier attempt that reached Kaggle
    after all (a timed-out request is abandoned, not cancelled, and may still finish): then nothing is resent.
    `unknown` is True when no answer came, so the attempt may have landed and not be visible yet.
    """
    delay = opts.backoff_s
    attempts = attempts or opts.attempts
    for attempt in range(1, attempts + 1):
        try:
            return run_with_timeout(fn, timeout_s or opts.call_timeout_s, what)
        except Exception as e:
            if attempt == attempts or not retriable(e):
                raise
            log.warning("%s failed (%s); retry %d/%d in %.1f s", what, _describe(e), attempt,
                        attempts - 1, delay)
            sleep(delay * (1 + 0.25 * random.random()))
            delay *= 2
            if landed is not None and isinstance(e, Abandoned):
                # the timed-out request is still in flight and may yet land: let it finish (or give up on it)
                # before asking whether it did, so a slow first request is never followed by a second one
                e.thread.join(opts.landed_grace_s)
                if e.thread.is_alive():
                    log.warning("%s: the abandoned request is still running after %.0f s; sending again",
                                what, opts.landed_grace_s)
            # an answer that never came (a timeout, a dropped connection) leaves the outcome unknown
            unknown = isinstance(e, Abandoned) or _status_code(e) is None
            if landed is not None and (done := landed(unknown)) is not None:
                log.warning("%s: the earlier attempt reached Kaggle after all; not sending it again", what)
                return done
    raise AssertionError("unreachable")


def _describe(e: BaseException) -> str:
    code = _status_code(e)
    return f"HTTP {code}: {e}" if code else f"{type(e).__name__}: {e}"


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


def push_all(api: Any, datasets: dict[str, Path], refs: dict[str, str], kernels: list[Path], out: Path,
             opts: PushOptions, force_kernels: bool = False) -> PushReport:
    """Datasets first (each ready before the next step), then the kernels that mount them.

    A kernel is pushed again (which starts a run on Kaggle) only when it changed,
    a dataset it mounts got a new version, or force_kernels is set.
    """
    report = PushReport()
    state = load_state(out)
    current = ""
    try:
        for name, folder in datasets.items():
            current = f"dataset {refs[name]}"
            push_dataset(api, folder, refs[name], opts, report, state, out)
        for folder in kernels:
            current = f"kernel {folder.name}"
            key = f"kernel:{json.loads((folder / 'kernel-metadata.json').read_text())['id']}"
            digest = content_hash(folder)
            if state.get(key) == digest and not report.pushed and not force_kernels:
                report.skipped.append(key)
                continue
            url, version, warnings = push_kernel(api, folder, opts)
            report.kernels.append(url)
            report.warnings += warnings
            state[key] = digest
            if version:
                state[f"version:{key[len('kernel:'):]}"] = str(version)
            save_state(out, state)
            try:
                report.warnings += check_kernel_settings(api, folder, opts)
            except Exception as e:  # the push landed; a failed read-back is only reported
                report.warnings.append(f"could not read {key[len('kernel:'):]}'s settings back: {_describe(e)}")
    except Exception as e:
        raise PushError(f"push of {current} failed: {_describe(e)}\nalready done: {report.summary()}\n"
                        "run the push again: unchanged datasets are skipped") from e
    return report


def _access(fn: Callable[[], T], ref: str) -> T:
    """The client turns a 401/403 on a kernel into a ValueError with a long story; say it in one line."""
    try:
        return fn()
    except ValueError as e:
        if "Cannot access kernel" in str(e):
            raise PushError(f"Kaggle denies access to kernel {ref}: check the slug and that these credentials "
                            "own it (kaggle.com/code/<owner>/<slug>)") from None
        raise


def kernel_status(api: Any, ref: str, opts: PushOptions) -> dict[str, str]:
    resp = _access(lambda: call(lambda: api.kernels_status(ref), f"status of kernel {ref}", opts), ref)
    status = getattr(resp, "status", "")
    return {"kernel": ref, "status": getattr(status, "name", str(status)).lower(),
            "failure_message": getattr(resp, "failure_message", None) or ""}


# What a file the kernel wrote must start with; the client saves whatever the signed URL returns, an
# expired link's error page included.
_MAGIC = {".parquet": b"PAR1", ".zip": b"PK", ".gz": b"\x1f\x8b", ".png": b"\x89PNG", ".pdf": b"%PDF"}
_TEXT = {".json", ".jsonl", ".csv", ".txt", ".md", ".toml", ".ipynb", ".html"}
_ERROR_PAGE = re.compile(rb"^\s*(?:<\?xml[^>]*>\s*<Error>|<!DOCTYPE html|<html)", re.IGNORECASE)


def check_output_file(path: Path) -> None:
    """A fetched output file that is empty, an error page, or not what its name says is an error, never a
    result: every file, not only the binary formats (JSON must parse, text must be text)."""
    data = path.read_bytes() if path.is_file() else b""
    why = ""
    magic = _MAGIC.get(path.suffix)
    if not data:
        why = "is empty or missing"
    elif magic and not data.startswith(magic):
        why = f"is not a {path.suffix[1:]} file (it starts {data[:24]!r})"
    elif path.suffix != ".html" and _ERROR_PAGE.match(data[:256]):
        why = f"is an error page, not the kernel's file (it starts {data[:40]!r})"
    elif path.suffix in _TEXT:
        try:
            text = data.decode("utf-8")
            if path.suffix in (".json", ".ipynb"):
                json.loads(text)
            elif path.suffix == ".jsonl":
                for line in text.splitlines():
                    if line.strip():
                        json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            why = f"is not valid {path.suffix[1:]} ({str(e)[:80]})"
    if why:
        path.unlink(missing_ok=True)  # never left where a result is expected
        raise PushError(f"fetched {path.name} {why}: an expired download link's answer? run `build.py output` again")


def kernel_output(api: Any, ref: str, path: Path, opts: PushOptions) -> list[str]:
    path.mkdir(parents=True, exist_ok=True)
    files, _ = _access(lambda: call(lambda: api.kernels_output(ref, str(path), force=True, quiet=True),
                                    f"output of {ref}", opts), ref)
    for f in files:
        if not f.endswith(".log"):  # the log is the run's text, written by the client itself
            check_output_file(Path(f))
    return files


def describe_plan(datasets: dict[str, Path], refs: dict[str, str], kernels: list[Path], out: Path) -> str:
    """What `push` would send, with sizes, sending nothing."""
    state = load_state(out)
    lines = []
    for name, folder in datasets.items():
        ref = refs[name]
        unchanged = state.get(ref) == content_hash(folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "dataset-metadata.json")
        total = sum(p.stat().st_size for p in files)
        lines.append(f"dataset {ref}: {'unchanged, would be skipped' if unchanged else 'would be pushed'} "
                     f"({len(files)} files, {_size(total)})")
        lines += [f"    {p.relative_to(folder)}  {_size(p.stat().st_size)}" for p in files]
    for folder in kernels:
        meta = json.loads((folder / "kernel-metadata.json").read_text())
        lines.append(f"kernel {meta['id']}: {meta['code_file']} on {meta.get('machine_shape') or 'default'}, "
                     f"internet {'on' if meta['enable_internet'] else 'off'}, "
                     f"inputs {', '.join(meta['dataset_sources'] + meta['competition_sources'] + meta['model_sources'])}")
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# -- submit and score ----------------------------------------------------------

def pushed_version(out: Path, ref: str) -> int | None:
    """The version number the last push of kernel `ref` got, from the push state."""
    v = load_state(out).get(f"version:{ref}")
    return int(v) if v else None


def wait_complete(api: Any, ref: str, opts: PushOptions, timeout_s: float,
                  sleep: Callable[[float], None] = time.sleep) -> dict[str, str]:
    """Poll the kernel's run until it completes; a failed run, or one past `timeout_s`, is an error."""
    t0 = time.monotonic()
    while True:
        st = kernel_status(api, ref, opts)
        if st["status"] == "complete":
            return st
        if st["status"] in ("error", "cancel_acknowledged", "cancelled"):
            raise PushError(f"kernel {ref} ended with status {st['status']}: {st['failure_message'] or 'no message'};"
                            f" fix it and push again (`build.py output` fetches its log)")
        if time.monotonic() - t0 > timeout_s:
            raise PushError(f"kernel {ref} is still {st['status']} after {timeout_s:.0f}s; "
                            "submit it later with `build.py submit`")
        sleep(opts.poll_s)


def submit(api: Any, competition: str, ref: str, version: int, message: str, opts: PushOptions) -> str:
    """Submit version `version` of kernel `ref` to a code competition (the client's competition_submit_code)."""
    try:
        resp = call(lambda: api.competition_submit_code(file_name="submission.parquet", message=message,
                                                        competition=competition, kernel=ref, kernel_version=version,
                                                        quiet=True),
                    f"submission of {ref} version {version} to {competition}", opts, attempts=1)
    except Exception as e:
        raise PushError(f"Kaggle refused the submission of {ref} version {version} to {competition}: "
                        f"{_describe(e)}. `build.py submissions` shows what was submitted") from e
    return str(getattr(resp, "message", "") or "submitted")


def submissions(api: Any, competition: str, opts: PushOptions, limit: int = 20) -> list[dict[str, Any]]:
    """The latest submissions to a competition: status, scores and description."""
    try:
        subs = call(lambda: api.competition_submissions(competition, page_size=limit),
                    f"submissions to {competition}", opts) or []
    except Exception as e:
        raise PushError(f"could not list the submissions to {competition}: {_describe(e)}") from e
    rows = []
    for sub in subs:
        status = getattr(sub, "status", "")
        rows.append({"ref": getattr(sub, "ref", ""), "date": str(getattr(sub, "date", "") or ""),
                     "description": getattr(sub, "description", "") or "",
                     "status": getattr(status, "name", str(status)).lower(),
                     "public_score": getattr(sub, "public_score", None),
                     "private_score": getattr(sub, "private_score", None),
                     "error": getattr(sub, "error_description", None) or ""})
    return rows
