"""dataset-metadata.json and kernel-metadata.json, validated as the kaggle client validates them.

The client checks these only at push time, after minutes of bundling; the same
rules (slug and title lengths, one license, a title that resolves to the kernel
slug, language and kernel type) are checked here first, with the fix named.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from slugify import slugify  # the kaggle client's own dependency (python-slugify)

from ..errors import AimokitError

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Accelerator ids in the kaggle client's documentation (early 2026; ../shared/docs/competitions.md). Kaggle
# adds shapes, so another value is a warning, not a refusal.
MACHINE_SHAPES = ("NvidiaTeslaP100", "NvidiaTeslaT4", "NvidiaTeslaT4Highmem", "NvidiaTeslaA100", "NvidiaL4",
                  "NvidiaL4X1", "NvidiaH100", "NvidiaRtxPro6000")
log = logging.getLogger(__name__)
# The dataset license names the kaggle client documents (docs/datasets_metadata.md), spelled as it spells them:
# a near miss ("Apache-2.0") is not matched by Kaggle.
LICENSES = ("CC0-1.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC-BY-NC-SA-4.0", "GPL-2.0", "ODbL-1.0", "DbCL-1.0",
            "copyright-authors", "other", "unknown", "CC-BY-4.0", "CC-BY-NC-4.0", "PDDL", "CC-BY-3.0",
            "CC-BY-3.0-IGO", "US-Government-Works", "CC-BY-NC-SA-3.0-IGO", "CDLA-Permissive-1.0",
            "CDLA-Sharing-1.0", "CC-BY-ND-4.0", "CC-BY-NC-ND-4.0", "ODC-BY-1.0", "LGPL-3.0", "AGPL-3.0",
            "FDL-1.3", "EU-ODP-Legal-Notice", "apache-2.0", "GPL-3.0")
PINNING_TYPES = ("original", "latest")  # kernel-metadata.json docker_image_pinning_type, as the client checks it


class MetadataError(AimokitError, ValueError):
    """Metadata that Kaggle would reject."""


# Slug lengths: the client refuses to create a dataset whose slug is outside 6-50 (kaggle 2.2.4
# `dataset_create_new`); an attached dataset is anyone's, and Kaggle's documented rule is 3-50; a kernel's 5-50.
SLUG_LENGTHS = {"dataset": (6, 50), "dataset source": (3, 50), "kernel": (5, 50)}


def check_ref(ref: str, what: str) -> tuple[str, str]:
    """`owner/slug` with Kaggle's slug rules (a source may name a version: `owner/slug/N`); returns (owner, slug)."""
    parts = ref.split("/")
    if what == "dataset source" and len(parts) == 3 and all(parts):
        if not parts[2].isdigit():
            raise MetadataError(f"{what} {ref!r}: a version after the slug must be a number ('<user>/<slug>/<N>')")
        parts = parts[:2]
    if len(parts) != 2 or not all(parts):
        raise MetadataError(f"{what} id {ref!r} must be '<user>/<slug>'")
    owner, slug = parts
    if not _SLUG.match(slug):
        raise MetadataError(
            f"{what} slug {slug!r} must be lowercase letters, digits and single hyphens; try {slugify(slug)!r}"
        )
    lo, hi = SLUG_LENGTHS[what]
    if not lo <= len(slug) <= hi:
        raise MetadataError(f"{what} slug {slug!r} must be {lo} to {hi} characters long (it has {len(slug)})")
    return owner, slug


def check_license(name: str) -> str:
    """A license name Kaggle knows, or a MetadataError naming the documented spelling."""
    if name in LICENSES:
        return name
    near = next((known for known in LICENSES if known.lower() == name.lower()), None)
    hint = f"write {near!r}" if near else f"use one of {', '.join(LICENSES)}"
    raise MetadataError(f"license {name!r} is not a name the kaggle client documents; {hint}")


@dataclass
class DatasetSpec:
    id: str  # "<user>/<slug>"
    title: str
    license: str = "CC0-1.0"
    subtitle: str = ""
    keywords: list[str] = field(default_factory=list)
    description: str = ""  # markdown Kaggle shows on the dataset's page (datasets/<name>/README.md)

    def metadata(self) -> dict[str, Any]:
        check_ref(self.id, "dataset")
        if not 6 <= len(self.title) <= 50:
            raise MetadataError(f"dataset title {self.title!r} must be 6 to 50 characters long")
        if self.subtitle and not 20 <= len(self.subtitle) <= 80:
            raise MetadataError("dataset subtitle must be 20 to 80 characters long, or empty")
        meta: dict[str, Any] = {"title": self.title, "id": self.id,
                                "licenses": [{"name": check_license(self.license)}]}
        if self.subtitle:
            meta["subtitle"] = self.subtitle
        if self.keywords:
            meta["keywords"] = self.keywords
        if self.description:
            meta["description"] = self.description
        return meta


@dataclass
class KernelSpec:
    id: str  # "<user>/<slug>"; the slug should be slugify(title)
    title: str
    code_file: str
    language: str = "python"
    kernel_type: str = "notebook"
    is_private: bool = True
    enable_gpu: bool = True
    enable_internet: bool = False  # code competitions: submissions run offline
    dataset_sources: list[str] = field(default_factory=list)
    competition_sources: list[str] = field(default_factory=list)
    model_sources: list[str] = field(default_factory=list)
    kernel_sources: list[str] = field(default_factory=list)
    machine_shape: str = ""  # the accelerator; empty lets Kaggle choose (it may pick a P100)
    docker_image_pinning_type: str = ""  # "original": the image of the kernel's first run; "" or "latest"
    docker_image: str = ""  # a Kaggle-provided image, as Kaggle names it (gcr.io/kaggle-gpu-images/python@sha256:...)

    def metadata(self) -> dict[str, Any]:
        _, slug = check_ref(self.id, "kernel")
        if len(self.title) < 5:
            raise MetadataError(f"kernel title {self.title!r} must be at least 5 characters")
        if slugify(self.title) != slug:
            raise MetadataError(
                f"kernel title {self.title!r} resolves to slug {slugify(self.title)!r}, not {slug!r}; "
                "Kaggle derives the slug from the title, so make them agree"
            )
        if self.language != "python" or self.kernel_type not in ("notebook", "script"):
            raise MetadataError("kernel language must be 'python' and kernel_type 'notebook' or 'script'")
        for ref in self.dataset_sources:
            check_ref(ref, "dataset source")
        if self.machine_shape and self.machine_shape not in MACHINE_SHAPES:
            log.warning("machine_shape %r is not one the kaggle client documents (%s); pushing it anyway, "
                        "since Kaggle adds shapes", self.machine_shape, ", ".join(MACHINE_SHAPES))
        for ref in self.model_sources:
            from .inputs import InputError, model_mount

            try:
                model_mount(ref)
            except InputError as e:
                raise MetadataError(str(e)) from None
        meta: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "code_file": self.code_file,
            "language": self.language,
            "kernel_type": self.kernel_type,
            "is_private": self.is_private,
            "enable_gpu": self.enable_gpu,
            "enable_tpu": False,
            "enable_internet": self.enable_internet,
            "dataset_sources": self.dataset_sources,
            "competition_sources": self.competition_sources,
            "kernel_sources": self.kernel_sources,
            "model_sources": self.model_sources,
        }
        if self.machine_shape:
            meta["machine_shape"] = self.machine_shape
        if self.docker_image_pinning_type:
            if self.docker_image_pinning_type not in PINNING_TYPES:
                raise MetadataError(f"docker_image_pinning_type {self.docker_image_pinning_type!r} must be one of "
                                    f"{', '.join(PINNING_TYPES)}")
            meta["docker_image_pinning_type"] = self.docker_image_pinning_type
        if self.docker_image:
            from .image_facts import IMAGE_RE

            if not IMAGE_RE.fullmatch(self.docker_image):
                raise MetadataError(f"docker_image {self.docker_image!r} is not an image name; Kaggle takes one of "
                                    "its own, e.g. gcr.io/kaggle-gpu-images/python@sha256:<64 hex digits>")
            meta["docker_image"] = self.docker_image
        return meta
