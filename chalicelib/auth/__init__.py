"""Access control backed by GitLab: who the caller is, and what they may read, write or delete."""
