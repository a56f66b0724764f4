"""Test helpers: fakes, data builders, oracles and live servers the tests share (no tests here).

Fixtures stay in the ``conftest.py`` files; what they build comes from these modules.
"""
