"""Blender-side test isolation: every test gets its own temporary folder as the system temp dir, so the
add-on's default cache (``<tempdir>/z2h-cache``) is never shared between tests, runs or Blender versions
(a 5.0 scene.blend left there was unreadable for bpy 4.2)."""

import tempfile

import pytest


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path, monkeypatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    yield tmp
