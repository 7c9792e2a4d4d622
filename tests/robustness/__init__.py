"""Robustness tests (issue 11): each one failed on the code before its fix."""
