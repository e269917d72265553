"""The shipped-model table (faceland.pretrained): every entry matches its card and files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from faceland.checkpoint import default_model_path, read_card, resolve_weights
from faceland.errors import UnknownNameError
from faceland.pretrained import (
    DEFAULT_MODEL,
    PRETRAINED,
    WEIGHTS_DIR,
    get_pretrained,
    list_pretrained,
)


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_entry_matches_its_card_and_files(name: str) -> None:
    m = PRETRAINED[name]
    assert all(f.exists() for f in m.files), m.files
    card = json.loads(m.files[1].read_text())
    assert card["config"]["name"] == m.architecture
    assert str(card["scheme"]) == m.scheme
    assert card["input_size"] == m.input_size == card["config"]["input_size"]
    assert ("onnx" in card) == m.onnx
    assert "research" in card["terms"]
    assert resolve_weights(name) == m.weights
    assert read_card(name)[1]["name"] == name


def test_every_shipped_weights_file_is_in_the_table() -> None:
    shipped = {p.stem for p in WEIGHTS_DIR.glob("*.safetensors")}
    assert shipped == set(PRETRAINED)
    assert [n for n in PRETRAINED if PRETRAINED[n].default] == [DEFAULT_MODEL]
    assert list_pretrained()[0] == DEFAULT_MODEL
    assert default_model_path() == PRETRAINED[DEFAULT_MODEL].weights


def test_unknown_names() -> None:
    with pytest.raises(UnknownNameError, match="shipped: \\["):
        get_pretrained("faceland-nope")
    with pytest.raises(FileNotFoundError, match="neither a weights file nor a shipped model"):
        resolve_weights("faceland-nope")


def test_table_and_listing_are_torch_free() -> None:
    code = ("import sys; from faceland.pretrained import PRETRAINED; import faceland.profiling; "
            "import faceland.results; "
            "from faceland.checkpoint import read_card; read_card('default'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_models_prints_the_table(capsys) -> None:
    from faceland.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name, m in PRETRAINED.items():
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name))
        assert f"{m.architecture}, {m.scheme}-point scheme, {m.input_size} px" in line
        assert ("(default)" in line) == m.default


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_model_card_json_round_trip(name: str) -> None:
    """Typed model cards: every shipped card reads into a ModelCard whose fields are the JSON's
    and whose to_dict() is the JSON object again."""
    from faceland.checkpoint import ModelCard

    m = PRETRAINED[name]
    raw = json.loads(m.files[1].read_text())
    card = ModelCard.from_dict(raw, m.weights)
    assert card.to_dict() == raw
    assert card.architecture == m.architecture and card.input_size == m.input_size
    assert card.path == m.weights and card.extra == {}
    _, read = read_card(name)
    assert isinstance(read, ModelCard) and read.to_dict() == raw and read.path == m.weights
    assert read["scheme"] == raw["scheme"] and "config" in read and read.get("nope", 1) == 1


def test_model_card_rejects_a_card_without_config(tmp_path) -> None:
    from faceland.checkpoint import ModelCard
    from faceland.errors import FormatError

    with pytest.raises(FormatError, match="needs a 'config' object"):
        ModelCard.from_dict({"scheme": "68"}, tmp_path / "m.safetensors")


def test_a_weights_file_in_the_package_folder_resolves_by_name(tmp_path, monkeypatch) -> None:
    """scripts/release_model.py copies new weights into the package before the table entry
    exists; the bare name must still resolve there."""
    import faceland.checkpoint as ck

    monkeypatch.setattr(ck, "WEIGHTS_DIR", tmp_path)
    (tmp_path / "faceland-new.safetensors").write_bytes(b"x")
    assert ck.resolve_weights("faceland-new") == tmp_path / "faceland-new.safetensors"
