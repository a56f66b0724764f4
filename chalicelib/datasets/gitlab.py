"""GitLab -> ``ProjectSnapshot``s: a project's current state, read with python-gitlab.

``GitLabReader.snapshots(project_id)`` reads the project, its tags (one snapshot per tag) and its
default branch (one more snapshot, only when its README opts in: see ``snapshot.py``), and at each
ref only the files the builder needs: the README at the root, every ``*.dvc`` file and
``dvc.lock`` (found through the repository tree), and ``.dvc/config``.

A repository is input from whoever can push to it, so every read is bounded (``ReadLimits``): tags,
tree entries, files and bytes per ref; a file over the size bound is skipped with a warning, never
truncated (half a YAML document would parse into something else), and it is streamed, so memory
stays at one chunk over the bound whatever GitLab sends. Files are cached by blob id: versions that
share a ``.dvc`` file read it once.

Errors: a project GitLab does not know (deleted, or out of the token's reach) reads as absent
(``snapshots`` -> ``[]``, ``project_exists`` -> False), so its items are removed. Anything else
(GitLab down after python-gitlab's retries, a refused token) raises ``GitLabUnavailable``: the event
fails and is redelivered, and nothing is removed on the strength of an outage.

python-gitlab (and requests) are imported on first use: the API's cold start does not pay for them.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable

from .snapshot import TOPIC_COLLECTIONS, ProjectSnapshot, Tag

if TYPE_CHECKING:
    from gitlab.v4.objects import Project

log = logging.getLogger(__name__)

README = re.compile(r"^readme\.md$", re.IGNORECASE)
DVC_CONFIG = ".dvc/config"


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on what one project may make the reader fetch and hold."""

    max_tags: int = 200  # newest kept when a project has more (each is a version item)
    max_tree_entries: int = 20_000  # per ref; DVC data is not in git, so a dataset's tree is small
    max_files: int = 2_000  # files read per ref (README, *.dvc, dvc.lock, .dvc/config)
    max_file_bytes: int = 1 << 20  # per file: a .dvc file is ~200 bytes, dvc.lock a few KB
    max_ref_bytes: int = 16 << 20  # all files of one ref together
    max_retries: int = 3  # python-gitlab's retries of 429/5xx/connection errors, per request
    timeout: float = 10.0  # seconds per request


class GitLabUnavailable(RuntimeError):
    """GitLab could not answer (outage, refused token): retry later, change nothing now."""


class _TooBig(Exception):
    pass


@dataclass
class Tree:
    paths: list[str] = field(default_factory=list)  # every file (front-matter asset globs match them)
    needed: list[dict[str, Any]] = field(default_factory=list)  # tree entries of the files the builder reads


def wanted(path: str) -> bool:
    """Whether the builder needs the file at ``path`` (repository-relative)."""
    return (path.endswith(".dvc") or path == "dvc.lock" or path.endswith("/dvc.lock") or path == DVC_CONFIG
            or ("/" not in path and README.match(path) is not None))


def utc(iso: str) -> str:
    """GitLab's ISO 8601 dates (any offset) as UTC with a ``Z``."""
    parsed = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _natural(name: str) -> tuple[Any, ...]:
    """``v2`` < ``v10``: digit runs compare as numbers."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


def order_tags(tags: Iterable[Tag]) -> tuple[Tag, ...]:
    """Oldest first: by date, then by name in natural order (tags made within one second)."""
    return tuple(sorted(tags, key=lambda t: (t.created_at, _natural(t.name))))


class GitLabReader:
    def __init__(self, url: str, token: str | None, *, limits: ReadLimits = ReadLimits()) -> None:
        self.url, self.limits = url.rstrip("/"), limits
        self._token = token
        self._client: Any = None

    def __repr__(self) -> str:  # never the token
        return f"GitLabReader({self.url!r})"

    @property
    def client(self) -> Any:
        if self._client is None:
            import gitlab
            # keep_base_url: pagination links name GitLab's external_url, which may differ behind a proxy.
            self._client = gitlab.Gitlab(self.url, private_token=self._token, timeout=self.limits.timeout,
                                         retry_transient_errors=True, keep_base_url=True, per_page=100)
        return self._client

    # -- the project -----------------------------------------------------------------------
    def project(self, project_id: int) -> Project | None:
        """The project, or None if GitLab does not know it (deleted, or not visible to the token)."""
        import gitlab
        try:
            return self.client.projects.get(project_id, max_retries=self.limits.max_retries)
        except gitlab.GitlabGetError as err:
            if err.response_code == 404:
                return None
            raise GitLabUnavailable(f"GitLab answered {err.response_code} for project {project_id}") from err
        except (gitlab.GitlabError, OSError) as err:
            raise GitLabUnavailable(f"GitLab unreachable reading project {project_id}: {err}") from err

    def project_exists(self, project_id: int) -> bool:
        return self.project(project_id) is not None

    def snapshots(self, project_id: int) -> list[ProjectSnapshot]:
        """One snapshot per version tag (oldest first), then the default branch's if it opts in.

        ``[]`` when the project is gone or carries none of the published topics.
        """
        import gitlab
        project = self.project(project_id)
        if project is None:
            return []
        topics = tuple(getattr(project, "topics", None) or getattr(project, "tag_list", None) or ())
        if not any(t in TOPIC_COLLECTIONS for t in topics):
            return []
        try:
            return self._snapshots(project, topics)
        except gitlab.GitlabError as err:
            code = getattr(err, "response_code", None)
            raise GitLabUnavailable(f"GitLab answered {code} reading project {project_id}: {err}") from err
        except OSError as err:
            raise GitLabUnavailable(f"GitLab unreachable reading project {project_id}: {err}") from err

    def _snapshots(self, project: Project, topics: tuple[str, ...]) -> list[ProjectSnapshot]:
        tags = self._tags(project)
        files_cache: dict[str, bytes] = {}
        base = dict(id=int(project.id), path=project.path_with_namespace, web_url=project.web_url,
                    http_url_to_repo=project.http_url_to_repo, name=project.name,
                    description=project.description or None, topics=topics,
                    visibility=getattr(project, "visibility", "private"),
                    default_branch=project.default_branch or None, tags=tags)
        out = []
        for t in tags:
            read = self._files(project, t.commit, files_cache)
            if read is None:
                continue  # the tag's commit vanished meanwhile (a deleted tag): its event follows
            out.append(ProjectSnapshot(ref=t.name, commit=t.commit, committed_at=t.created_at, is_tag=True,
                                       files=read[0], tree=read[1], **base))
        dev = self._default_branch(project, files_cache)
        if dev is not None:
            commit, committed_at, (files, paths) = dev
            out.append(ProjectSnapshot(ref=project.default_branch, commit=commit, committed_at=committed_at,
                                       is_tag=False, files=files, tree=paths, **base))
        return out

    def _tags(self, project: Project) -> tuple[Tag, ...]:
        found = []
        # Newest first (GitLab's default order), so the bound keeps the newest versions.
        for i, t in enumerate(project.tags.list(iterator=True, order_by="updated", sort="desc",
                                                max_retries=self.limits.max_retries)):
            if i >= self.limits.max_tags:
                log.warning("project %s has more than %d tags: only the newest %d are published",
                            project.path_with_namespace, self.limits.max_tags, self.limits.max_tags)
                break
            commit = t.commit or {}
            when = getattr(t, "created_at", None) or commit.get("committed_date") or commit.get("created_at")
            if not commit.get("id") or not when:
                continue
            found.append(Tag(name=t.name, commit=commit["id"], created_at=utc(when)))
        return order_tags(found)

    def _default_branch(self, project: Project, cache: dict[str, bytes]
                        ) -> tuple[str, str, tuple[dict[str, bytes], tuple[str, ...]]] | None:
        """(commit, committed_at, files) of the default branch, if its README opts in to publication."""
        import gitlab

        from .frontmatter import wants_default_branch
        branch = project.default_branch
        if not branch:
            return None
        try:
            head = project.branches.get(branch, max_retries=self.limits.max_retries).commit
        except gitlab.GitlabGetError as err:
            if err.response_code == 404:
                return None  # an empty repository
            raise
        tree = self._tree(project, head["id"])
        if tree is None:
            return None
        readme = next((e for e in tree.needed if "/" not in e["path"] and README.match(e["path"])), None)
        text = self._read(project, head["id"], readme, cache) if readme else None
        if not text or not wants_default_branch(text):
            return None
        read = self._files(project, head["id"], cache, tree)
        if read is None:
            return None
        return head["id"], utc(head.get("committed_date") or head["created_at"]), read

    # -- files at a ref ----------------------------------------------------------------------
    def _tree(self, project: Project, ref: str) -> Tree | None:
        """The repository's files at ``ref`` (bounded), and those the builder needs; None: no such ref."""
        import gitlab
        tree = Tree()
        try:
            for n, entry in enumerate(project.repository_tree(ref=ref, recursive=True, iterator=True,
                                                              max_retries=self.limits.max_retries)):
                if n >= self.limits.max_tree_entries:
                    log.warning("project %s at %s: more than %d tree entries; the rest is ignored",
                                project.path_with_namespace, ref, self.limits.max_tree_entries)
                    break
                path = entry.get("path")
                if entry.get("type") != "blob" or not isinstance(path, str):
                    continue
                tree.paths.append(path)
                if wanted(path):
                    tree.needed.append(entry)
        except gitlab.GitlabGetError as err:
            if err.response_code == 404:
                return None
            raise
        return tree

    def _files(self, project: Project, ref: str, cache: dict[str, bytes],
               tree: Tree | None = None) -> tuple[dict[str, bytes], tuple[str, ...]] | None:
        """(needed files, every file path) at ``ref``; None: no such ref."""
        tree = self._tree(project, ref) if tree is None else tree
        if tree is None:
            return None
        files: dict[str, bytes] = {}
        total = 0
        for entry in tree.needed:
            if len(files) >= self.limits.max_files:
                log.warning("project %s at %s: more than %d DVC/README files; the rest is ignored",
                            project.path_with_namespace, ref, self.limits.max_files)
                break
            data = self._read(project, ref, entry, cache)
            if data is None:
                continue
            if total + len(data) > self.limits.max_ref_bytes:
                log.warning("project %s at %s: DVC/README files over %d bytes in all; %s and the rest are ignored",
                            project.path_with_namespace, ref, self.limits.max_ref_bytes, entry["path"])
                break
            total += len(data)
            files[entry["path"]] = data
        return files, tuple(tree.paths)

    def _read(self, project: Project, ref: str, entry: dict[str, Any], cache: dict[str, bytes]) -> bytes | None:
        """The file's bytes (streamed, bounded), or None when over the bound or gone."""
        import gitlab
        blob = entry.get("id") or ""
        if blob in cache:
            return cache[blob]
        limit = self.limits.max_file_bytes
        parts: list[bytes] = []
        size = 0

        def take(chunk: bytes) -> None:
            nonlocal size
            size += len(chunk)
            if size > limit:
                raise _TooBig
            parts.append(chunk)
        try:
            project.files.raw(entry["path"], ref=ref, streamed=True, action=take, chunk_size=64 << 10,
                              max_retries=self.limits.max_retries)
        except _TooBig:
            log.warning("project %s at %s: %s is over %d bytes; ignored", project.path_with_namespace, ref,
                        entry["path"], limit)
            return None
        except gitlab.GitlabGetError as err:
            if err.response_code == 404:
                return None
            raise
        data = b"".join(parts)
        if blob:
            cache[blob] = data
        return data


__all__ = ["GitLabReader", "GitLabUnavailable", "ReadLimits", "order_tags", "utc", "wanted"]
