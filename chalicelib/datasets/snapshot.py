"""The contract between the GitLab reader (``gitlab.py``) and the item builder (``items.py``).

A ``ProjectSnapshot`` is everything the builder needs about one version of one project, read at
one ref; ``build_items(snapshot, remote, settings)`` is a pure function of it plus the DVC remote's
``.dir`` manifests and object presence (read through ``Remote``), so redelivered and out-of-order
events produce the same items from the same state.

Versions and the development item:
- every git tag is a version (``ProjectSnapshot.is_tag``); ``tags`` lists every version tag of the
  project, oldest first, and the builder derives ``predecessor-version`` / ``successor-version`` /
  ``latest-version`` (the newest tag) from it;
- the default branch is published as a *development* item (id ``<project slug>~dev``, with
  ``experimental: true``) ONLY if the README front matter at that branch opts in::

      stacflow:
        publish_default_branch: true

  The reader may always pass the default-branch snapshot (``is_tag=False``, ``ref`` = the default
  branch): ``build_items`` returns ``[]`` for it unless the README opts in. ``wants_default_branch``
  (in ``frontmatter.py``) answers the same question for a reader that wants to skip the work.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Protocol

if TYPE_CHECKING:
    from ..store import ObjectStore

DATASET_TOPIC = "sharinghub:dataset"
AIMODEL_TOPIC = "sharinghub:aimodel"
TOPIC_COLLECTIONS = {DATASET_TOPIC: "dataset", AIMODEL_TOPIC: "ai-model"}


@dataclass(frozen=True)
class Tag:
    name: str
    commit: str
    created_at: str  # ISO 8601 UTC (the tag's or its commit's date)


@dataclass(frozen=True)
class ProjectSnapshot:
    id: int
    path: str  # path_with_namespace, e.g. "eo/sentinel-tiles"
    web_url: str  # https://gitlab.example/eo/sentinel-tiles
    http_url_to_repo: str  # for `dvc get <repo> <path> --rev <tag>`
    name: str
    description: str | None
    topics: tuple[str, ...]
    visibility: str  # "public" | "internal" | "private"
    default_branch: str | None
    ref: str  # the tag name, or the default branch for a development item
    commit: str
    committed_at: str  # ISO 8601 UTC
    is_tag: bool
    tags: tuple[Tag, ...]  # every version tag of the project, oldest first
    # At `ref`: README.md (any case), every *.dvc file, dvc.lock, .dvc/config; paths relative to the
    # repository root ("data.dvc", "sub/dir/dvc.lock", ".dvc/config").
    files: Mapping[str, bytes] = field(default_factory=dict)
    # Optional: every file path of the repository at `ref` (the GitLab tree). Front-matter `assets`
    # globs also match these (href: the file's raw URL on GitLab); empty: they match DVC outputs only.
    tree: tuple[str, ...] = ()


class Remote(Protocol):
    """The DVC S3 remote(s), read through the ObjectStore port."""

    def store_for(self, url: str) -> ObjectStore | None:
        """``s3://bucket/prefix`` -> a store rooted at that prefix; None if not a configured remote."""


@dataclass(frozen=True)
class BuildSettings:
    """Builder knobs (from ``chalicelib.settings``; defaults are what tests and local runs use)."""

    max_files_per_directory: int = 100  # a tracked directory with more files becomes one manifest asset
    max_assets: int = 1000  # per item: bounds the item's size (~0.5 KB per asset) and the HEADs per build
    base_url: str | None = None  # public base URL of the service (None: links relative to the catalog)
