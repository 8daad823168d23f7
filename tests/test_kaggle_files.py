"""Kaggle metadata, the source bundle's secret hygiene, and the generated notebook."""

import os
import subprocess
import sys

import nbformat
import pytest

from aimokit.kaggle.bundle import copy_tree, is_secret
from aimokit.kaggle.metadata import DatasetSpec, KernelSpec, MetadataError
from aimokit.kaggle.notebook import SOURCE_MARKER, WHEELS_MARKER, make_notebook, write_notebook

from layout import ROOT


def test_dataset_metadata_follows_the_client_rules():
    meta = DatasetSpec("alice/aimokit-source", "aimokit source code").metadata()
    assert meta == {"title": "aimokit source code", "id": "alice/aimokit-source", "licenses": [{"name": "CC0-1.0"}]}
    with pytest.raises(MetadataError, match="6 to 50"):
        DatasetSpec("alice/src", "aimokit source").metadata()
    with pytest.raises(MetadataError, match="lowercase.*try 'my-data-set'"):
        DatasetSpec("alice/My_Data set", "aimokit source").metadata()
    with pytest.raises(MetadataError, match="<user>/<slug>"):
        DatasetSpec("aimokit-source", "aimokit source").metadata()


def test_kernel_metadata_is_offline_gpu_and_title_matches_slug():
    spec = KernelSpec("alice/aimokit-submission", "aimokit submission", "submission.ipynb",
                      dataset_sources=["alice/aimokit-source"], machine_shape="NvidiaH100",
                      competition_sources=["ai-mathematical-olympiad-progress-prize-3"])
    meta = spec.metadata()
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True
    assert meta["machine_shape"] == "NvidiaH100" and meta["kernel_type"] == "notebook"
    with pytest.raises(MetadataError, match="resolves to slug 'other-title'"):
        KernelSpec("alice/aimokit-submission", "Other title", "x.ipynb").metadata()


def test_no_secret_ever_enters_a_bundle(tmp_path):
    src = tmp_path / "tree"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "code.py").write_text("print('hi')\n")
    (src / "kaggle.json").write_text('{"username": "a", "key": "0123456789abcdef0123456789abcdef"}')
    (src / "pkg" / "kaggle.json").write_text("{}")
    (src / ".env").write_text("KAGGLE_KEY=abc\n")
    (src / "pkg" / "hf_token").write_text("hf_" + "x" * 34)
    (src / "notes.txt").write_text('copied creds: {"key": "0123456789abcdef0123456789abcdef"}')
    (src / ".git").mkdir()
    (src / ".git" / "config").write_text("[core]\n")
    skipped = []
    copied = copy_tree(src, tmp_path / "out", skipped)
    names = sorted(str(p.relative_to(tmp_path / "out")) for p in copied)
    assert names == ["pkg/code.py"]
    assert len(skipped) == 5
    everything = b"".join(p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert b"0123456789abcdef" not in everything and b"KAGGLE_KEY" not in everything
    assert is_secret(src / ".env") and not is_secret(src / "pkg" / "code.py")


def test_notebook_is_valid_and_its_setup_cell_finds_inputs_as_kaggle_mounts_them(tmp_path):
    nb = make_notebook(ROOT / "kernels" / "submission.py", "aimokit submission")
    path = tmp_path / "submission.ipynb"
    write_notebook(nb, path)
    nbformat.validate(nbformat.read(str(path), as_version=4))
    assert nb.cells[2].source == (ROOT / "kernels" / "submission.py").read_text()
    # /kaggle/input/<owner>/<slug>/... layout, with markers
    src = tmp_path / "input" / "alice" / "aimokit-source"
    (src / "src").mkdir(parents=True)
    (src / SOURCE_MARKER).write_text("")
    wheels = tmp_path / "input" / "alice" / "aimokit-wheels"
    wheels.mkdir(parents=True)
    (wheels / WHEELS_MARKER).write_text("")
    env = dict(os.environ, AIMOKIT_INPUT=str(tmp_path / "input"))
    env.pop("AIMOKIT_CONFIG", None)
    code = nb.cells[1].source + "\nprint('ENV', os.environ['AIMOKIT_SRC'], os.environ['AIMOKIT_CONFIG'])\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"ENV {src / 'src'} {src / 'kernel.toml'}" in out.stdout
    env["AIMOKIT_INPUT"] = str(tmp_path / "empty")
    out = subprocess.run([sys.executable, "-c", nb.cells[1].source], capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "source dataset not attached" in out.stderr


SECRET_SHAPES = {  # each planted where the name filter cannot see it: in a file that looks like code or config
    "kernels/extra.py": 'TOKEN = "KGAT_3f9a1c0b7d2e4f6a8b9c0d1e2f3a4b5c"\n',
    "configs/ci.yaml": "env:\n  KAGGLE_KEY: 3f9a1c0b7d2e4f6a8b9c0d1e2f3a4b5c\n",
    "configs/user.yml": "kaggle_username: alice\n",
    "notes/upper.txt": "key 3F9A1C0B7D2E4F6A8B9C0D1E2F3A4B5C here\n",
    "scripts/env.sh": "export KAGGLE_USERNAME=alice\n",
    "src/settings.json": '{"KAGGLE_KEY" : "x"}\n',
    "deploy/id": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    "big/blob.txt": "x" * (3 << 20) + " KGAT_3f9a1c0b7d2e4f6a8b9c0d1e2f3a4b5c\n",  # past the first MiB
}


@pytest.mark.parametrize("rel", sorted(SECRET_SHAPES))
def test_every_token_shape_is_refused_wherever_it_appears(tmp_path, rel):
    from aimokit.kaggle.bundle import secret_shape

    src = tmp_path / "tree"
    (src / rel).parent.mkdir(parents=True)
    (src / rel).write_text(SECRET_SHAPES[rel])
    (src / "ok.py").write_text("SHA256 = '446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d'\n")
    copied = copy_tree(src, tmp_path / "out")
    assert [p.name for p in copied] == ["ok.py"], secret_shape(src / rel)  # a sha256 (64 hex) is no API key
    assert secret_shape(src / rel) is not None
