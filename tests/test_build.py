"""The package imports, reports its version and which profile the core was compiled with."""

from __future__ import annotations

import re

import allsuse
from allsuse import _core


def test_version_matches_core() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", allsuse.__version__)
    assert allsuse.__version__ == _core.__version__


def test_build_profile_is_release_under_make() -> None:
    # `make test` builds with --release; a debug core here means the Makefile regressed.
    assert allsuse.build_profile() == "release"
