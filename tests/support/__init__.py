"""Helpers the tests share: not tests themselves (tests/conftest.py puts tests/ on the path)."""
