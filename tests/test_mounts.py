"""Inputs named by their source, found under every layout Kaggle mounts them (aimokit.mounts)."""

import time

import pytest

from aimokit import mounts

GPT_OSS = "kaggle:models/openai/gpt-oss-120b/transformers/default/2"


@pytest.mark.parametrize("where,how", [
    ("models/openai/gpt-oss-120b/transformers/default/2", "the models/ layout"),  # 2026
    ("gpt-oss-120b/transformers/default/2", "the flat layout"),  # before
    ("elsewhere/gpt-oss-120b/transformers/default/2", "a search of"),  # a layout nobody told the kit about
])
def test_a_model_is_found_under_each_layout(tmp_path, where, how):
    (tmp_path / where / "config.json").parent.mkdir(parents=True)
    (tmp_path / where / "config.json").write_text("{}")
    path, said = mounts.resolve(GPT_OSS, tmp_path)
    assert path == str(tmp_path / where) and how in said
    inside, _ = mounts.resolve(GPT_OSS + "/config.json", tmp_path)
    assert inside == str(tmp_path / where / "config.json")


def test_a_missing_input_names_what_was_tried_and_lists_the_root_quickly(tmp_path):
    for i in range(300):  # a wide tree: the search is bounded, the listing capped
        (tmp_path / f"d{i}" / "x" / "y").mkdir(parents=True)
    t = time.monotonic()
    with pytest.raises(mounts.MountError) as e:
        mounts.resolve("kaggle:datasets/alice/qwen3-8b", tmp_path)
    assert time.monotonic() - t < 10
    msg = str(e.value)
    assert "dataset alice/qwen3-8b" in msg and str(tmp_path / "datasets" / "alice" / "qwen3-8b") in msg
    assert "d0/" in msg and "Attach that source" in msg and msg.count("\n") <= 205


def test_a_malformed_source_name_says_the_shapes():
    with pytest.raises(ValueError, match="kaggle:models/<owner>/<model>/<framework>/<variation>/<version>"):
        mounts.parse("kaggle:models/openai/gpt-oss-120b")
    assert mounts.parse("/kaggle/input/x") is None
    assert mounts.parse("kaggle:competitions/aimo-3/test.csv") == ("competitions", ["aimo-3"], "test.csv")
