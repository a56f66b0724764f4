"""Test helpers shared across test packages: loopback fakes of external services."""
