"""`build.py push / status / output` through the real kaggle client, against a local fake Kaggle.

The client is pointed at 127.0.0.1 by its own setting (KAGGLE_API_ENVIRONMENT=LOCALHOST);
every push runs the CLI in a fresh interpreter, exactly as a user would.
"""

import json
import os
import socket
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from fake_kaggle import PORT, FakeKaggle, start
from layout import ROOT

from aimokit.config import KernelConfig, merge_dotted, to_toml
from aimokit.kaggle.config import ShipConfig


def _port_free() -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no conflict
        try:
            s.bind(("127.0.0.1", PORT))
            return True
        except OSError:
            return False


pytestmark = pytest.mark.skipif(not _port_free(), reason=f"the client's LOCALHOST endpoint needs port {PORT}")


@pytest.fixture
def kaggle():
    state = FakeKaggle()
    server = start(state)
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A real PEFT LoRA adapter, on a tiny random Llama (shapes do not matter to shipping)."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=1, num_key_value_heads=1)
    model = get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    out = tmp_path_factory.mktemp("adapters") / "dpo-adapter"
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    from wheels import tiny_wheel

    return tiny_wheel(tmp_path_factory.mktemp("wheel"))


def _ship(tmp_path, adapter, wheelhouse, user: str, attempts: int, push: dict) -> dict:
    """The checkout's ship config as an object, changed by copies, written for the CLI as TOML.

    The adapter ships because the kernel's config names it (engine.lora), as a user's would.
    """
    cfg = ShipConfig.load(ROOT / "configs" / "ship.toml", {
        "user": user, "wheels.requirements": ["tinypkg==0.1"], "wheels.find_links": [str(wheelhouse)],
        "wheels.no_index": True, "push.attempts": attempts, "push.backoff_s": 0.05, "push.poll_s": 0.05,
        "push.call_timeout_s": 3.0, "push.landed_grace_s": 4.0, **{f"push.{k}": v for k, v in push.items()}})
    kernel = tmp_path / "kernel.toml"
    kernel.write_text(to_toml(KernelConfig.load(cfg.kernels[0].config, {"engine.lora": str(adapter)})))
    return replace(cfg, kernels=[replace(cfg.kernels[0], config=str(kernel))]).to_dict()


def _write_ship(tmp_path, data: dict) -> None:
    (tmp_path / "ship.toml").write_text(to_toml(data))


def _setup(tmp_path, adapter, wheelhouse, user="alice", creds=True, attempts=3, push=None):
    _write_ship(tmp_path, _ship(tmp_path, adapter, wheelhouse, user, attempts, push or {}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE")}
    kcfg = tmp_path / "kaggle-config"
    kcfg.mkdir(exist_ok=True)
    if creds:
        (kcfg / "kaggle.json").write_text(json.dumps({"username": "alice", "key": "0" * 32}))
        (kcfg / "kaggle.json").chmod(0o600)
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env.update(KAGGLE_API_ENVIRONMENT="LOCALHOST", KAGGLE_CONFIG_DIR=str(kcfg), HOME=str(tmp_path / "home"),
               TMPDIR=str(tmp_path / "tmp"), NO_PROXY="*")
    return env


def _cli(tmp_path, env, *args):
    cmd = [sys.executable, str(ROOT / "build.py"), *args]
    if args[0] in ("push", "build", "submit", "probe-image"):
        cmd += ["--out", str(tmp_path / "build")]
    cmd += ["--ship", str(tmp_path / "ship.toml")]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _push_with(tmp_path, env, **dotted):
    """`push` with `section.key` settings changed in the test's ship config (even ones the config refuses)."""
    ship = tmp_path / "ship.toml"
    text = ship.read_text()
    _write_ship(tmp_path, merge_dotted(tomllib.loads(text), dotted))
    try:
        return _cli(tmp_path, env, "push")
    finally:
        ship.write_text(text)


def _local_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name != "dataset-metadata.json"}


def test_push_sends_every_file_and_a_second_push_sends_nothing(kaggle, tmp_path, adapter, wheelhouse):
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _cli(tmp_path, env, "push", "--message", "first")
    assert proc.returncode == 0, proc.stderr
    built = tmp_path / "build" / "datasets"
    refs = {"source": "alice/aimokit-source", "adapters": "alice/aimokit-adapters", "wheels": "alice/aimokit-wheels"}
    for name, ref in refs.items():
        assert kaggle.files_of(ref) == _local_files(built / name), name  # every file, byte for byte
        assert kaggle.datasets[ref][0]["license"] == "apache-2.0" and kaggle.datasets[ref][0]["private"] is True
    assert "dpo-adapter/adapter_config.json" in kaggle.files_of(refs["adapters"])
    assert "src/aimokit/solver.py" in kaggle.files_of(refs["source"])
    assert all(a.startswith("Basic ") for a in kaggle.auth)  # the client's own auth, from kaggle.json

    (push,) = kaggle.kernels["alice/aimokit-submission"]
    assert push["newTitle"] == "aimokit submission" and push["language"] == "python"
    assert push["kernelType"] == "notebook" and push["isPrivate"] is True
    assert push["enableGpu"] is True and push["enableInternet"] is False
    assert push["datasetDataSources"] == [*refs.values(), "alice/deepseek-math"]  # and the model, uploaded by the user
    assert push["competitionDataSources"] == ["ai-mathematical-olympiad-progress-prize-3"]
    assert push["machineShape"] == "NvidiaH100" and push["dockerImagePinningType"] == "original"
    nb = json.loads(push["text"])
    assert "--no-index" in nb["cells"][1]["source"]
    # each dataset was polled until ready before the kernel went out
    assert kaggle.calls.index("SaveKernel") > max(i for i, c in enumerate(kaggle.calls) if c == "GetDatasetStatus")

    before = list(kaggle.calls)
    proc = _cli(tmp_path, env, "push")
    assert proc.returncode == 0, proc.stderr
    assert kaggle.calls == before, "an unchanged push must send nothing"
    assert "unchanged, not pushed: alice/aimokit-source" in proc.stdout

    # a changed dataset gets a new version with the note; the kernel follows it
    proc = _cli(tmp_path, env, "push", "--no-wheels", "--message", "second")
    assert proc.returncode == 0, proc.stderr
    new_calls = kaggle.calls[len(before):]
    assert "CreateDataset" not in new_calls and "SaveKernel" in new_calls
    assert len(kaggle.kernels["alice/aimokit-submission"]) == 2
    assert kaggle.kernels["alice/aimokit-submission"][1]["datasetDataSources"] == [refs["source"], refs["adapters"],
                                                                                   "alice/deepseek-math"]

    st = _cli(tmp_path, env, "status")
    assert st.returncode == 0 and "alice/aimokit-submission: complete" in st.stdout
    out = _cli(tmp_path, env, "output", "--path", str(tmp_path / "fetched"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "fetched" / "submission.parquet").read_bytes() == b"PAR1fake"
    assert (tmp_path / "fetched" / "aimokit-submission.log").read_text() == "[kernel log]"


def test_dry_run_prints_tree_and_sizes_and_sends_nothing(kaggle, tmp_path, adapter, wheelhouse):
    env = _setup(tmp_path, adapter, wheelhouse, creds=False)  # a dry run needs no credentials
    proc = _cli(tmp_path, env, "push", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "dataset alice/aimokit-source: would be pushed" in proc.stdout
    assert "    src/aimokit/solver.py  " in proc.stdout and "KiB" in proc.stdout
    assert "    tinypkg-0.1-py3-none-any.whl" in proc.stdout
    assert "kernel alice/aimokit-submission: submission.ipynb on NvidiaH100, internet off" in proc.stdout
    assert "nothing was sent" in proc.stdout and kaggle.calls == []


def test_no_credentials_fail_before_anything_is_built_or_sent(kaggle, tmp_path, adapter, wheelhouse):
    env = _setup(tmp_path, adapter, wheelhouse, creds=False)
    proc = _cli(tmp_path, env, "push")
    assert proc.returncode == 2
    assert "no Kaggle credentials found, so nothing was uploaded" in proc.stderr and "kaggle.json" in proc.stderr
    assert kaggle.calls == [] and not (tmp_path / "build").exists()
    # one story: the kit's message names what client 2.x takes; the client's import-time help is not printed over it
    assert "kaggle auth login" in proc.stderr and "access_token" in proc.stderr and "KAGGLE_KEY" in proc.stderr
    assert proc.stderr.count("kaggle auth login") == 1 and "kaggle auth login" not in proc.stdout


def test_credentials_for_another_user_are_refused_up_front(kaggle, tmp_path, adapter, wheelhouse):
    env = _setup(tmp_path, adapter, wheelhouse, user="bob")
    proc = _cli(tmp_path, env, "push")
    assert proc.returncode == 2 and "user is 'bob' but the Kaggle credentials are 'alice'" in proc.stderr
    assert kaggle.calls == []


def test_transient_5xx_and_a_hung_call_are_retried(kaggle, tmp_path, adapter, wheelhouse):
    # three failures on the first dataset: a 503, then an upload the client gives up on, then a 500
    kaggle.faults = {"StartBlobUpload": [503], "PUT": [500], "CreateDataset": [500], "SaveKernel": ["hang"]}
    env = _setup(tmp_path, adapter, wheelhouse, attempts=4)
    proc = _cli(tmp_path, env, "push")
    assert proc.returncode == 0, proc.stderr
    assert "HTTP 503" in proc.stderr and "retry 3/3" in proc.stderr
    assert "upload of submission.toml failed (storage answers: send: refused (not resumable))" in proc.stderr
    assert set(kaggle.datasets) == {"alice/aimokit-source", "alice/aimokit-adapters", "alice/aimokit-wheels"}
    assert kaggle.files_of("alice/aimokit-source") == _local_files(tmp_path / "build" / "datasets" / "source")
    assert kaggle.calls.count("SaveKernel") == 2  # the hung one, then the retry
    assert all(len(v) == 1 for v in kaggle.datasets.values())  # a retry never made a second dataset


def test_persistent_failure_stops_with_what_was_done_and_a_rerun_finishes(kaggle, tmp_path, adapter, wheelhouse):
    kaggle.faults = {"SaveKernel": [500] * 10}
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _cli(tmp_path, env, "push")
    assert proc.returncode == 2
    assert "push of kernel submission failed: HTTP 500" in proc.stderr
    assert "datasets pushed: alice/aimokit-source, alice/aimokit-adapters, alice/aimokit-wheels" in proc.stderr
    assert kaggle.calls.count("SaveKernel") == 3  # bounded: attempts = 3
    kaggle.faults = {}
    uploads = kaggle.calls.count("PUT")
    proc = _cli(tmp_path, env, "push")
    assert proc.returncode == 0, proc.stderr
    assert kaggle.calls.count("PUT") == uploads and kaggle.calls.count("SaveKernel") == 4


def test_a_4xx_is_not_retried_and_the_message_lists_uploaded_files(kaggle, tmp_path, adapter, wheelhouse):
    kaggle.faults = {"CreateDataset": [400]}
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _cli(tmp_path, env, "push")
    assert proc.returncode == 2
    assert "push of dataset alice/aimokit-source failed: HTTP 400" in proc.stderr
    assert "files uploaded for alice/aimokit-source before it failed: " in proc.stderr
    assert "src.zip" in proc.stderr and "datasets pushed: none" in proc.stderr
    assert kaggle.calls.count("CreateDataset") == 1 and kaggle.datasets == {}


def test_invalid_slug_and_oversized_file_are_refused_before_any_upload(kaggle, tmp_path, adapter, wheelhouse):
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _push_with(tmp_path, env, source_slug="Aimokit_Source")
    assert proc.returncode == 2 and "slug 'Aimokit_Source' must be lowercase" in proc.stderr
    proc = _push_with(tmp_path, env, max_file_bytes=1000)
    assert proc.returncode == 2 and "over the 1000-byte file limit" in proc.stderr
    assert [c for c in kaggle.calls] == []


def test_submit_needs_a_pushed_version_and_push_submit_waits_then_submits(kaggle, tmp_path, adapter, wheelhouse):
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _cli(tmp_path, env, "submit", "-m", "too early")
    assert proc.returncode == 2 and "push it first, or pass --version" in proc.stderr
    assert not kaggle.submissions

    kaggle.kernel_status = "ERROR"
    proc = _cli(tmp_path, env, "push", "--submit", "--message", "r16 dpo", "--wait-s", "5")
    assert proc.returncode == 2 and "ended with status error" in proc.stderr
    assert not kaggle.submissions  # a failed run is never submitted

    kaggle.kernel_status = "COMPLETE"
    proc = _cli(tmp_path, env, "push", "--submit", "--force-kernels", "--message", "r16 dpo", "--wait-s", "5")
    assert proc.returncode == 0, proc.stderr
    (sub,) = kaggle.submissions
    assert sub["competitionName"] == "ai-mathematical-olympiad-progress-prize-3"
    assert (sub["kernelOwner"], sub["kernelSlug"]) == ("alice", "aimokit-submission")
    assert sub["kernelVersion"] == 2 and sub["submissionDescription"] == "r16 dpo"  # the version just pushed
    assert sub["fileName"] == "submission.parquet"  # what the kernel's interface (kaggle_evaluation) writes

    proc = _cli(tmp_path, env, "submit", "--version", "1", "-m", "the first one")
    assert proc.returncode == 0 and "version 1" in proc.stdout
    proc = _cli(tmp_path, env, "submit", "--version", "7", "-m", "no such version")
    assert proc.returncode == 2 and len(kaggle.submissions) == 2  # refused, and not retried
    assert kaggle.calls.count("CreateCodeSubmission") == 3

    proc = _cli(tmp_path, env, "submissions")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "the first one" in lines[1] and "complete" in lines[1] and "41.0" in lines[1]
    assert "r16 dpo" in lines[2]


# -- the real API's behaviour, which a naive fake hides (each test fails without its fix) --------------------

def test_readiness_waits_through_404s_and_a_stale_version_number(kaggle, tmp_path, adapter, wheelhouse):
    kaggle.hidden_after_create = 2  # status answers 404 for a moment after each create
    kaggle.stale_versions = 2  # and the version number lags behind the status
    kaggle.pending_ready = 0
    import shutil

    mine = tmp_path / "adapters" / "dpo-adapter"
    shutil.copytree(adapter, mine)
    env = _setup(tmp_path, mine, wheelhouse)
    proc = _cli(tmp_path, env, "push", "--no-wheels")
    assert proc.returncode == 0, proc.stderr
    refs = ["alice/aimokit-source", "alice/aimokit-adapters"]
    assert all(len(kaggle.datasets[r]) == 1 for r in refs)
    state = json.loads((tmp_path / "build" / "push-state.json").read_text())
    assert not any(k.startswith("pending:") for k in state)
    # a second version is waited for by its number, not by a READY left over from the first
    (mine / "README.md").write_text("retrained\n")
    before = len(kaggle.calls)
    proc = _cli(tmp_path, env, "push", "--no-wheels")
    assert proc.returncode == 0, proc.stderr
    calls = kaggle.calls[before:]
    assert calls.count("GetDataset") >= 4  # before the version, then polls until the number went up
    assert calls.index("SaveKernel") > max(i for i, c in enumerate(calls) if c == "GetDataset")


def test_a_push_stopped_before_ready_only_waits_on_the_rerun(kaggle, tmp_path, adapter, wheelhouse):
    kaggle.pending_ready = 10**6  # Kaggle never finishes processing within this run
    env = _setup(tmp_path, adapter, wheelhouse, push={"ready_timeout_s": 0.3})
    proc = _cli(tmp_path, env, "push", "--no-wheels")
    assert proc.returncode == 2 and "run the push again: it only waits for it" in proc.stderr
    state = json.loads((tmp_path / "build" / "push-state.json").read_text())
    assert "pending:alice/aimokit-source" in state and "alice/aimokit-source" not in state
    kaggle.pending_ready = 0
    sent = kaggle.calls.count("PUT"), kaggle.calls.count("CreateDataset")
    proc = _cli(tmp_path, env, "push", "--no-wheels")
    assert proc.returncode == 0, proc.stderr
    assert len(kaggle.datasets["alice/aimokit-source"]) == 1  # waited for, not sent again
    assert kaggle.calls.count("CreateDatasetVersion") == 0 and kaggle.calls.count("PUT") >= sent[0]
    assert len(kaggle.kernels["alice/aimokit-submission"]) == 1  # and the kernel followed


def test_a_savekernel_that_lands_after_its_timeout_is_not_sent_again(kaggle, tmp_path, adapter, wheelhouse):
    kaggle.faults = {"SaveKernel": ["late"]}  # applied, but answered after the client's timeout
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _cli(tmp_path, env, "push", "--no-wheels")
    assert proc.returncode == 0, proc.stderr
    assert len(kaggle.kernels["alice/aimokit-submission"]) == 1  # one GPU run queued, not two
    assert kaggle.calls.count("SaveKernel") == 1 and "reached Kaggle after all" in proc.stderr
    state = json.loads((tmp_path / "build" / "push-state.json").read_text())
    assert state["version:alice/aimokit-submission"] == "1"


def test_a_refused_upload_session_is_dropped_so_the_retry_starts_fresh(kaggle, tmp_path, adapter, wheelhouse):
    # storage refuses the wheel once; the session is dead (a resume answers 404), as Google's is
    kaggle.faults = {"PUT:tinypkg-0.1-py3-none-any.whl": [400]}
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _cli(tmp_path, env, "push")
    assert proc.returncode == 0, proc.stderr
    assert "upload of tinypkg-0.1-py3-none-any.whl failed (storage answers: send: refused" in proc.stderr
    built = tmp_path / "build" / "datasets" / "wheels"
    assert kaggle.files_of("alice/aimokit-wheels") == _local_files(built)
    uploads = tmp_path / "tmp" / ".kaggle" / "uploads"
    assert not uploads.exists() or not list(uploads.iterdir())  # no resume file left to poison a later push


def test_fetched_output_is_checked_and_access_errors_are_one_line(kaggle, tmp_path, adapter, wheelhouse):
    env = _setup(tmp_path, adapter, wheelhouse)
    assert _cli(tmp_path, env, "push", "--no-wheels").returncode == 0
    kaggle.outputs = {"submission.parquet": b"<html><body>Signature expired</body></html>"}
    out = _cli(tmp_path, env, "output", "--path", str(tmp_path / "fetched"))
    assert out.returncode == 2 and "submission.parquet is not a parquet file" in out.stderr
    assert not (tmp_path / "fetched" / "submission.parquet").exists()  # never left where a result is expected
    kaggle.outputs = {"submission.parquet": b""}
    out = _cli(tmp_path, env, "output", "--path", str(tmp_path / "fetched"))
    assert out.returncode == 2 and "is empty" in out.stderr
    kaggle.faults = {"ListKernelSessionOutput": [403], "GetKernelSessionStatus": [401]}
    out = _cli(tmp_path, env, "output", "--path", str(tmp_path / "fetched"))
    assert out.returncode == 2 and "Kaggle denies access to kernel alice/aimokit-submission" in out.stderr
    assert "Traceback" not in out.stderr
    st = _cli(tmp_path, env, "status")
    assert st.returncode == 2 and "denies access" in st.stderr and "Traceback" not in st.stderr


def test_license_names_are_the_clients_and_a_200_with_an_error_is_a_refusal(kaggle, tmp_path, adapter, wheelhouse):
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _push_with(tmp_path, env, license="Apache-2.0")
    assert proc.returncode == 2 and "write 'apache-2.0'" in proc.stderr and kaggle.calls == []
    kaggle.licenses = ("CC0-1.0",)  # Kaggle answers 200 with an error field
    proc = _cli(tmp_path, env, "push", "--no-wheels")
    assert proc.returncode == 2 and "The license 'apache-2.0' is invalid" in proc.stderr
    assert kaggle.calls.count("CreateDataset") == 1 and not kaggle.datasets  # refused, not retried


def test_settings_kaggle_applied_otherwise_are_read_back_and_warned(kaggle, tmp_path, adapter, wheelhouse):
    kaggle.applied_shape = "NvidiaTeslaP100"
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _cli(tmp_path, env, "push", "--no-wheels")
    assert proc.returncode == 0, proc.stderr
    assert "WARNING kernel alice/aimokit-submission: Kaggle reports machine NvidiaTeslaP100, asked NvidiaH100" \
        in proc.stdout


def test_a_retried_dataset_resumes_its_uploads_folders_included(kaggle, tmp_path, adapter, wheelhouse):
    kaggle.faults = {"CreateDataset": [500]}  # every file is up, then the create fails once
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _cli(tmp_path, env, "push", "--no-wheels")
    assert proc.returncode == 0, proc.stderr
    assert kaggle.calls.count("CreateDataset") == 3  # source (failed, retried), adapters
    sent = kaggle.bytes_in["src.zip"]
    assert sent == len(kaggle.datasets["alice/aimokit-source"][0]["files"]["src.zip"])  # once, not twice
    assert kaggle.files_of("alice/aimokit-source") == _local_files(tmp_path / "build" / "datasets" / "source")
    assert not (tmp_path / "build" / "upload" / "source").exists()  # the staged copy goes once it is ready


def test_probe_image_pushes_a_probe_kernel_and_output_records_its_image_list(kaggle, tmp_path, adapter, wheelhouse):
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _cli(tmp_path, env, "probe-image")
    assert proc.returncode == 0, proc.stderr
    (push,) = kaggle.kernels["alice/aimokit-probe-nvidiah100"]
    assert push["kernelType"] == "script" and push["enableInternet"] is False and push["enableGpu"] is True
    assert push["machineShape"] == "NvidiaH100"  # the submission kernel's shape
    assert push["competitionDataSources"] == ["ai-mathematical-olympiad-progress-prize-3"]
    assert push["datasetDataSources"] == ["alice/deepseek-math"]  # its inputs, so the layout recorded is theirs
    assert push["text"] == (ROOT / "kernels" / "probe_image.py").read_text()
    assert not kaggle.datasets  # a probe ships no datasets

    st = _cli(tmp_path, env, "status", "--probe")
    assert st.returncode == 0 and "alice/aimokit-probe-nvidiah100: complete" in st.stdout
    kaggle.outputs = {"image.txt": b"# pip list\ntorch==2.11.0\nnumpy==2.5.2\n",
                      "image-probe.json": json.dumps({"python": "3.12.3", "nvidia_smi": "H100, 80GB"}).encode()}
    into = tmp_path / "wheels-lists"
    out = _cli(tmp_path, env, "output", "--probe", "--path", str(tmp_path / "probe-out"), "--into", str(into))
    assert out.returncode == 0, out.stderr
    assert "2 packages on Python 3.12.3" in out.stdout
    assert (into / "image-nvidiah100.txt").read_text().endswith("numpy==2.5.2\n")
    recorded = json.loads((into / "image-nvidiah100.probe.json").read_text())
    assert recorded["python"] == "3.12.3" and recorded["docker_image"] == kaggle.ran_on  # as Kaggle reports it

    # the submission kernel is pinned to the image the probe ran on, whenever it is created
    ship = tmp_path / "ship.toml"
    _write_ship(tmp_path, merge_dotted(tomllib.loads(ship.read_text()), {
        "wheels.image": str(into / "image-nvidiah100.txt"), "wheels.requirements": []}))
    proc = _cli(tmp_path, env, "push", "--no-wheels")
    assert proc.returncode == 0, proc.stderr
    assert kaggle.kernels["alice/aimokit-submission"][-1]["dockerImage"] == kaggle.ran_on

    kaggle.outputs = {"image.txt": b"<html>error</html>", "image-probe.json": b"{}"}
    out = _cli(tmp_path, env, "output", "--probe", "--path", str(tmp_path / "probe-out2"), "--into", str(into))
    assert out.returncode == 2 and "is an error page" in out.stderr  # refused as it is fetched
    kaggle.outputs = {"image.txt": b"not a list of packages\n", "image-probe.json": b"{}"}
    out = _cli(tmp_path, env, "output", "--probe", "--path", str(tmp_path / "probe-out3"), "--into", str(into))
    assert out.returncode == 2 and "damaged" in out.stderr  # text that is no image list: refused by the probe


def test_probe_image_dry_run_sends_nothing(kaggle, tmp_path, adapter, wheelhouse):
    env = _setup(tmp_path, adapter, wheelhouse, creds=False)
    proc = _cli(tmp_path, env, "probe-image", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "kernel alice/aimokit-probe-nvidiah100: probe_image.py on NvidiaH100, internet off" in proc.stdout
    assert kaggle.calls == []


def test_invalid_sources_are_warnings_on_a_version_that_was_pushed_and_runs(kaggle, tmp_path, adapter, wheelhouse):
    """The client prints invalid_*_sources after "successfully pushed": the version runs. It is recorded (a rerun
    starts no second run) and each source is a warning; an `error` is the refusal."""
    kaggle.kernel_reply = {"invalidDatasetSources": ["alice/no-such-model"]}
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _cli(tmp_path, env, "push", "--no-wheels")
    assert proc.returncode == 0, proc.stderr
    assert "runs without its dataset_sources alice/no-such-model" in proc.stderr + proc.stdout
    state = json.loads((tmp_path / "build" / "push-state.json").read_text())
    assert state["version:alice/aimokit-submission"] == "1"
    again = _cli(tmp_path, env, "push", "--no-wheels")
    assert again.returncode == 0 and len(kaggle.kernels["alice/aimokit-submission"]) == 1  # not pushed again
    kaggle.kernel_reply = {"error": "Notebook not found"}
    refused = _cli(tmp_path, env, "push", "--no-wheels", "--force-kernels")
    assert refused.returncode != 0 and "Kaggle refused kernel" in refused.stderr


@pytest.mark.parametrize("name,body", [
    ("kernel_summary.json", b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code></Error>"),
    ("results.jsonl", b'{"id": "a"}\n{"id": '),  # cut mid-line
    ("notes.txt", b"\xff\xfe\x00garbage"),
    ("summary.json", b"not json at all"),
    ("anything.bin", b"<!DOCTYPE html><html>Access denied</html>"),
])
def test_every_fetched_output_file_is_checked_not_only_the_binary_formats(tmp_path, name, body):
    from aimokit.kaggle.push import PushError, check_output_file

    path = tmp_path / name
    path.write_bytes(body)
    with pytest.raises(PushError, match=f"fetched {name} is"):
        check_output_file(path)
    assert not path.exists()
    good = tmp_path / "kernel_summary.json"
    good.write_text('{"problems": 50}')
    check_output_file(good)  # a real file passes


def test_a_slow_savekernel_that_lands_after_the_retry_would_have_gone_is_not_sent_twice(kaggle, tmp_path, adapter,
                                                                                          wheelhouse):
    """The first SaveKernel lands only after the client's timeout and after the "did it land?" check would run:
    the abandoned request is waited for, so one GPU run is queued, not two."""
    kaggle.faults, kaggle.hang_s = {"SaveKernel": ["slow"]}, 4.5  # call_timeout_s is 3 s here, the grace 4 s
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _cli(tmp_path, env, "push", "--no-wheels")
    assert proc.returncode == 0, proc.stderr
    assert len(kaggle.kernels["alice/aimokit-submission"]) == 1 and kaggle.calls.count("SaveKernel") == 1
    assert "reached Kaggle after all" in proc.stderr


def test_a_dataset_create_in_its_404_window_is_not_created_again(kaggle, tmp_path, adapter, wheelhouse):
    """A create that timed out and landed answers 404 for a while: that is not "not there"."""
    kaggle.faults, kaggle.hang_s, kaggle.hidden_after_create = {"CreateDataset": ["late"]}, 4.0, 3
    env = _setup(tmp_path, adapter, wheelhouse)
    proc = _cli(tmp_path, env, "push", "--no-wheels")
    assert proc.returncode == 0, proc.stderr
    # the client re-sent the dropped create itself and Kaggle called the title taken: that is our own dataset
    assert len(kaggle.datasets["alice/aimokit-source"]) == 1 and "reached Kaggle after all" in proc.stderr


def _with_image(tmp_path, env) -> Path:
    """The ship config's wheelhouse resolved over an image list that its closure touches: what the fake-server
    tests missed while their image list was empty."""
    from wheels import zip_wheel

    idx = tmp_path / "idx"
    zip_wheel(idx, "tinyapp", "1.0", ("imgpkg>=1",))
    zip_wheel(idx, "imgpkg", "1.0")
    image = tmp_path / "image.txt"
    image.write_text("imgpkg==1.0\nnumpy==2.0.0\n")
    ship = tmp_path / "ship.toml"
    _write_ship(tmp_path, merge_dotted(tomllib.loads(ship.read_text()), {
        "wheels.requirements": ["tinyapp==1.0"], "wheels.find_links": [str(idx)], "wheels.image": str(image)}))
    return image


def test_two_builds_over_an_image_list_hash_the_same_and_a_push_after_a_rebuild_sends_nothing(
        kaggle, tmp_path, adapter, wheelhouse):
    from aimokit.kaggle.build import content_hash

    env = _setup(tmp_path, adapter, wheelhouse)
    _with_image(tmp_path, env)
    hashes = []
    for _ in range(2):
        proc = _cli(tmp_path, env, "build")
        assert proc.returncode == 0, proc.stderr
        built = tmp_path / "build" / "datasets"
        hashes.append({d.name: content_hash(d) for d in built.iterdir()})
    report = (tmp_path / "build" / "datasets" / "wheels" / "resolve-report.json").read_text()
    assert "image-stub:imgpkg" in report and str(tmp_path / "tmp") not in report  # the image took part
    assert hashes[0] == hashes[1]
    assert {p.stat().st_mtime for p in (tmp_path / "build" / "datasets").rglob("*")} == {315532800}

    proc = _cli(tmp_path, env, "push")
    assert proc.returncode == 0, proc.stderr
    before = list(kaggle.calls)
    proc = _cli(tmp_path, env, "push")  # builds again, then finds nothing to send
    assert proc.returncode == 0, proc.stderr
    assert kaggle.calls == before, "a push after a rebuild with no change must send nothing"


def test_an_interrupted_push_resumes_its_uploads_on_the_rerun_after_a_rebuild(kaggle, tmp_path, adapter, wheelhouse):
    """The client's resume record compares each file's mtime: a rebuild must not make a sent file look new."""
    kaggle.faults = {"CreateDataset": [500]}  # every file of the source is up, then its create fails
    env = _setup(tmp_path, adapter, wheelhouse, attempts=1)
    proc = _cli(tmp_path, env, "push", "--no-wheels")
    assert proc.returncode != 0
    sent = dict(kaggle.bytes_in)
    assert sent.get("submission.toml")
    proc = _cli(tmp_path, env, "push", "--no-wheels")  # the rerun builds the folders again
    assert proc.returncode == 0, proc.stderr
    files = kaggle.datasets["alice/aimokit-source"][0]["files"]
    for name in ("submission.toml", "src.zip"):
        assert kaggle.bytes_in[name] == sent[name] == len(files[name]), name  # sent once, resumed after


def test_push_runs_the_preflight_first_and_a_failed_row_sends_nothing(kaggle, tmp_path, adapter, wheelhouse):
    env = _setup(tmp_path, adapter, wheelhouse)
    summary = tmp_path / "kernel_summary.json"
    summary.write_text(json.dumps({"engine_start_s": 1200.0}))  # past the gateway's 15-minute start limit
    proc = _cli(tmp_path, env, "push", "--no-wheels", "--engine-summary", str(summary))
    assert proc.returncode == 2
    assert "engine start" in proc.stdout and "1200 s measured" in proc.stdout and "nothing was sent" in proc.stderr
    assert not any(c in kaggle.calls for c in ("CreateDataset", "SaveKernel", "StartBlobUpload"))
    summary.write_text(json.dumps({"engine_start_s": 130.0}))
    proc = _cli(tmp_path, env, "push", "--no-wheels", "--engine-summary", str(summary))
    assert proc.returncode == 0, proc.stderr
    assert "SaveKernel" in kaggle.calls


def test_a_fetched_compile_cache_keeps_its_empty_lock_files_and_an_empty_result_is_still_refused(tmp_path):
    """A saved compile cache holds Inductor's empty lock files: inside a folder with the cache's manifest they
    are content, anywhere else an empty file is a failed download."""
    from aimokit.engine.compile_cache import MANIFEST
    from aimokit.kaggle.config import PushOptions
    from aimokit.kaggle.push import PushError
    from aimokit.kaggle.runs import kernel_output

    class Api:  # stands in for KaggleApi.kernels_output: writes the files, returns their paths
        def __init__(self, files):
            self.files = files

        def kernels_output(self, ref, path, force=True, quiet=True):
            out = []
            for rel, body in self.files.items():
                (tmp_path / "out" / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / "out" / rel).write_bytes(body)
                out.append(str(tmp_path / "out" / rel))
            return out, None

    cache = {f"aimokit-compile-cache/{MANIFEST}": b'{"identity": {}}',
             "aimokit-compile-cache/vllm/torch_compile_cache/h/inductor_cache/locks/c1.lock": b""}
    got = kernel_output(Api(cache), "alice/k", tmp_path / "out", PushOptions(attempts=1))
    lock = tmp_path / "out" / "aimokit-compile-cache/vllm/torch_compile_cache/h/inductor_cache/locks/c1.lock"
    assert len(got) == 2 and lock.is_file()
    with pytest.raises(PushError, match="fetched submission.parquet is empty"):
        kernel_output(Api({"submission.parquet": b""}), "alice/k", tmp_path / "out", PushOptions(attempts=1))
