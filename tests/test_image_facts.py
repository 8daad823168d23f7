"""The wheelhouse against the image the probe measured: Python, platform, torch's CUDA against the driver."""

import json
from dataclasses import replace

import pytest

from aimokit.kaggle import image_facts
from aimokit.kaggle.build import BuildError, build_wheels
from aimokit.kaggle.config import ShipConfig

from layout import ROOT

H100 = {"python": "3.12.3", "machine": "x86_64", "libc": "glibc-2.39", "kaggle": True,
        "nvidia_smi": "NVIDIA H100 80GB HBM3, 81559 MiB, 570.124.06",
        "cuda": {"torch": "2.9.0+cu128", "cuda": "12.8"}}


@pytest.mark.parametrize("shipped, facts, status, says", [
    (["torch==2.11.0+cu130"], H100, "fail", "the shipped torch 2.11.0+cu130 needs CUDA 13.0; driver 570 runs CUDA up to 12.8"),
    (["nvidia-cuda-runtime==13.0.96", "torch==2.11.0"], {**H100, "driver_cuda": "12.8"}, "fail", "nvidia-smi reports CUDA 12.8"),
    (["nvidia-cuda-runtime-cu12==12.9.79"], {**H100, "driver_cuda": "12.8"}, "warn", "minor-version compatibility"),
    (["nvidia-cuda-runtime-cu12==12.8.90"], H100, "ok", "needs CUDA 12.8"),
    (["vllm==0.26.0"], H100, "ok", "the image's torch (built for CUDA 12.8)"),  # torch is the image's
    (["torch==2.11.0+cu130"], {**H100, "nvidia_smi": "unavailable: no nvidia-smi"}, "skip", "no GPU driver"),
    (["tinypkg==0.1"], {"python": "3.12.3"}, "skip", "no CUDA build"),
])
def test_torchs_cuda_is_held_against_the_driver(shipped, facts, status, says):
    got, why = image_facts.check_cuda(shipped, facts)
    assert got == status and says in why, why


def test_platform_tags_newer_than_the_images_glibc_are_refused():
    assert image_facts.check_platform(["manylinux_2_17_x86_64", "manylinux_2_39_x86_64"], H100)[0] == "ok"
    status, why = image_facts.check_platform(["manylinux_2_39_x86_64"], {**H100, "libc": "glibc-2.35"})
    assert status == "fail" and "manylinux_2_39" in why and "glibc-2.35" in why
    assert image_facts.check_platform(["manylinux_2_17_aarch64"], H100)[0] == "fail"


def test_the_build_refuses_a_wheelhouse_whose_cuda_the_probed_driver_cannot_run(tmp_path, monkeypatch):
    from aimokit.kaggle import build as build_mod

    listing = tmp_path / "image-x.txt"
    listing.write_text("numpy==2.0.0\n")
    listing.with_suffix(".probe.json").write_text(json.dumps(H100))
    monkeypatch.setattr(build_mod, "build_wheelhouse", lambda *a, **k: {"shipped": ["torch==2.11.0+cu130"]})
    cfg = ShipConfig.load(ROOT / "configs" / "ship.toml", {"user": "alice"})
    cfg = replace(cfg, wheels=replace(cfg.wheels, image=str(listing)))
    with pytest.raises(BuildError, match="cannot load there. Fix: ship a torch built for CUDA 12.x"):
        build_wheels(ROOT, cfg, tmp_path / "b")


def test_a_probe_without_an_image_id_pins_nothing_and_a_malformed_one_is_ignored():
    assert image_facts.probed_docker_image({"docker_image": "gcr.io/kaggle-gpu-images/python@sha256:" + "a" * 64})
    assert image_facts.probed_docker_image({}) == ""
    assert image_facts.probed_docker_image({"docker_image": "rm -rf /; echo"}) == ""


def test_an_image_name_kaggle_would_not_take_is_refused_in_the_metadata():
    from aimokit.kaggle.metadata import KernelSpec, MetadataError

    spec = KernelSpec(id="alice/aimokit-submission", title="aimokit submission", code_file="a.ipynb",
                      docker_image="not an image")
    with pytest.raises(MetadataError, match="not an image name"):
        spec.metadata()
    image = "gcr.io/kaggle-gpu-images/python@sha256:" + "0" * 64
    assert replace(spec, docker_image=image).metadata()["docker_image"] == image
