"""The protocol and rule book are read through libyaml's parser: the same data as PyYAML's safe loader, the same
errors with their line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from allsuse import _yaml

CONFIG = Path(__file__).resolve().parents[1] / "config"


def test_the_pinned_pyyaml_brings_libyaml_and_it_is_used() -> None:
    assert _yaml._LOADER is yaml.CSafeLoader


@pytest.mark.parametrize("path", sorted(CONFIG.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_file_reads_as_the_safe_loader_reads_it(path: Path) -> None:
    text = path.read_text()
    assert _yaml.safe_load(text) == yaml.safe_load(text)


def test_a_bad_document_raises_with_its_line_and_no_object_is_built() -> None:
    with pytest.raises(yaml.YAMLError) as caught:
        _yaml.safe_load("a: 1\nb: [1, 2\nc: 3\n")
    mark = getattr(caught.value, "problem_mark", None)
    assert mark is not None and mark.line >= 1
    with pytest.raises(yaml.YAMLError):  # the safe schema: no Python objects
        _yaml.safe_load("x: !!python/object/apply:os.system ['true']\n")
