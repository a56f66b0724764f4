"""Datasets (and model projects) kept in GitLab with DVC, published as versioned STAC items.

``snapshot`` (the contract with the GitLab reader), ``frontmatter`` (README metadata), ``dvc``
(``.dvc``/``dvc.lock``/``.dir``), ``items`` (the builder), ``availability`` (remote objects landing),
``remotes`` (the configured DVC remotes).
"""
