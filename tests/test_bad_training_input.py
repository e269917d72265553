"""Bad input to training, configs and model cards: one line naming the file / key and the
problem (``faceland: error: ...``, exit 2), never a traceback, never lost work."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import write_tiny_config

from faceland.checkpoint import ModelCard, load_model, read_card, save_model
from faceland.cli import main
from faceland.errors import FormatError
from faceland.training import ConfigError, check_config, load_config

SRC = Path(__file__).resolve().parents[1] / "src" / "faceland"


def _cfg(tmp_path: Path, root: Path | None = None, name: str = "cfg.yaml", **over) -> Path:
    """The smoke run's tiny config; ``root`` None: a data folder that does not exist."""
    return write_tiny_config(tmp_path, root, name, **over)


def _error_line(capsys, argv: list[str]) -> str:
    """Run the CLI; it must exit 2 with exactly one ``faceland: error:`` line on stderr."""
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("faceland: error:")]
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- 1. misspelt keys in model_args (and every other nested block), from YAML or --set --------

def test_misspelt_model_args_key_in_yaml_names_file_key_and_valid_keys(tmp_path) -> None:
    p = _cfg(tmp_path, model_args={"backbone": "mobilenet_v2", "widht": 16})
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: ") and "model_args" in msg and "'widht'" in msg
    assert "did you mean 'width'" in msg and "valid keys: backbone, loss, pretrained, refine, width" \
        in msg
    assert "\n" not in msg


def test_misspelt_model_args_key_via_set_names_the_set_item(tmp_path, capsys) -> None:
    p = _cfg(tmp_path)
    line = _error_line(capsys, ["train", str(p), "--set", "model_args={widht: 8}"])
    assert line.startswith("faceland: error: --set model_args={widht: 8}: ")
    assert "'widht'" in line and "valid keys:" in line and "width" in line


@pytest.mark.parametrize(("block", "value", "bad"), [
    ("model_args", {"codec": {"kind": "gaussian", "sigmaa": 2.0}}, "sigmaa"),
    ("model_args", {"codec": {"kind": "no_such_codec"}}, "no_such_codec"),
    ("model_args", {"codec": 3}, "codec"),
    ("model_args", {"stacks": "two"}, "stacks"),
    ("model_args", {"input_size": 64}, "input_size"),
    ("augment", {"rotaton": 10}, "rotaton"),
    ("augment", {"scale": "big"}, "scale"),
    ("mtfl", {"pseudo_wieght": 0.5}, "pseudo_wieght"),
])
def test_nested_keys_are_checked_the_same_from_yaml_and_set(tmp_path, capsys, block, value,
                                                           bad) -> None:
    over = {"model": "hourglass", "model_args": {}} if block == "model_args" else {}
    p = _cfg(tmp_path, **{**over, block: value})
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value).startswith(f"{p}: ") and bad in str(e.value), e.value
    item = f"{block}={json.dumps(value)}"
    argv = ["train", str(_cfg(tmp_path, name="ok.yaml", **over)), "--set", item]
    line = _error_line(capsys, argv)
    assert line == f"faceland: error: --set {item}: {e.value.problem}"  # the same check


def test_a_set_that_breaks_another_key_names_the_config_and_the_sets(tmp_path, capsys) -> None:
    p = _cfg(tmp_path)  # integral model_args, then another architecture
    line = _error_line(capsys, ["train", str(p), "--set", "model=hourglass"])
    assert line.startswith(f"faceland: error: {p} with --set model=hourglass: model_args")
    assert "'backbone'" in line and "valid keys:" in line


def test_out_dir_that_is_a_file_is_one_line(tmp_path, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for out, words in ((afile, "is a file"), (afile / "run", f"lies under {afile}, a file")):
        line = _error_line(capsys, ["train", str(_cfg(tmp_path, out_dir=str(out)))])
        assert line == f"faceland: error: out_dir {out}: {words}, not a folder for the run"
    assert afile.read_text() == "keep me"


# --- 2. malformed --set items -----------------------------------------------------------------

@pytest.mark.parametrize("item", ["lr=[", "epochs=abc", "augment=3", "epochs", "=3",
                                  "lr={a: 1}", "model_args=[1, 2]", "mtfl=x", "lerning_rate=1",
                                  "augment={rotation: [}"])
def test_malformed_set_item_is_one_line_naming_it(tmp_path, capsys, item) -> None:
    line = _error_line(capsys, ["train", str(_cfg(tmp_path)), "--set", item])
    assert line.startswith(f"faceland: error: --set {item}: "), line


# --- 3. ranges --------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value", "words"), [
    ("lr", -1e-3, "lr must be >= 0"),
    ("lr", ".nan", "lr must be a finite number"),
    ("epochs", 0, "epochs must be >= 1"),
    ("batch_size", 0, "batch_size must be >= 1"),
    ("weight_decay", -0.1, "weight_decay must be >= 0"),
    ("input_size", 0, "input_size must be in [8, 4096]"),
    ("input_size", 100000, "input_size must be in [8, 4096]"),
    ("enlarge", -1.25, "enlarge must be in (0, 10]"),
    ("val_fraction", 0, "val_fraction must be in (0, 1)"),
    ("val_fraction", 1.0, "val_fraction must be in (0, 1)"),
    ("num_workers", -1, "num_workers must be >= 0"),
    ("threads", 0, "threads must be >= 1"),
    ("max_images", -5, "max_images must be >= 0"),
    ("max_time_minutes", -1, "max_time_minutes must be >= 0"),
    ("limit_train_batches", 0, "limit_train_batches must be"),
    ("limit_train_batches", 2.5, "limit_train_batches must be"),
    ("warmup_epochs", -1, "warmup_epochs must be >= 0"),
    ("seed", -1, "seed must be in [0, 2**32)"),
    ("num_nodes", 0, "num_nodes must be >= 1"),
    ("devices", 0, "devices must be"),
    ("optimizer", "sgdd", "optimizer must be one of adam, adamw, rmsprop"),
    ("schedule", "linear", "schedule must be one of cosine, step"),
    ("milestone_unit", "epochs", "milestone_unit must be one of"),
    ("milestones", [-1], "milestones must be"),
    ("gamma", 0, "gamma must be > 0"),
    ("precision", "fp8", "precision must be one of"),
    ("accelerator", "tpuu", "accelerator must be one of"),
    ("scheme", "no_such_scheme", "scheme: unknown landmark scheme"),
    ("dataset", "nope", "dataset: unknown dataset"),
    ("model", "nope", "model: unknown model"),
    ("init_from", "no-such-weights", "init_from: no-such-weights: neither a weights file nor"),
    ("augment", {"flip": 1.5}, "augment.flip must be a probability in [0, 1]"),
    ("augment", {"blur": -0.1}, "augment.blur must be a probability in [0, 1]"),
    ("augment", {"rotation": 400}, "augment.rotation must be in [0, 180]"),
    ("augment", {"scale": [1.2, 0.9]}, "augment.scale must be [min, max]"),
    ("augment", {"jitter": [0.1, 0.1, 0.1]}, "augment.jitter must be a list of 4 numbers"),
    ("augment", {"shift": 1.5}, "augment.shift must be in [0, 1)"),
    ("mtfl", {"pseudo_weight": -1}, "mtfl.pseudo_weight must be >= 0"),
    ("mtfl", {"max_err5": 0}, "mtfl.max_err5 must be > 0"),
])
def test_out_of_range_values_name_file_and_key(tmp_path, capsys, key, value, words) -> None:
    p = tmp_path / "cfg.yaml"
    p.write_text(f"{key}: {json.dumps(value) if not isinstance(value, str) else value}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value).startswith(f"{p}: {words}"), e.value
    item = f"{key}={json.dumps(value) if not isinstance(value, str) else value}"
    line = _error_line(capsys, ["train", str(_cfg(tmp_path, name="ok.yaml")), "--set", item])
    assert line == f"faceland: error: --set {item}: {e.value.problem}"


def test_shipped_configs_pass_the_range_checks() -> None:
    for p in sorted((SRC.parents[1] / "configs").glob("*.yaml")):
        check_config(load_config(p), str(p))


def test_train_checks_a_config_built_in_python(tmp_path) -> None:
    from faceland.training import TrainConfig, train

    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        train(TrainConfig(batch_size=0, out_dir=str(tmp_path / "run")))


# --- 4. a finished run, epochs lowered, an interrupted export -----------------------------------

@pytest.mark.slow
def test_finished_run_is_a_no_op_and_lower_epochs_never_lose_work(tmp_path, data_root,
                                                                  capsys) -> None:
    p = _cfg(tmp_path, data_root)
    run = tmp_path / "run"
    assert main(["train", str(p)]) == 0
    model = run / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    ck = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    best = [v["best_model_path"] for k, v in ck["callbacks"].items() if "ModelCheckpoint" in k]
    assert best and Path(best[0]).exists()  # last.ckpt records the best checkpoint of its epoch
    capsys.readouterr()

    assert main(["train", str(p)]) == 0  # finished: nothing to do, nothing rewritten
    out = capsys.readouterr().out
    assert "run already finished 2 of 2 epochs; nothing to do - raise epochs to continue" in out
    assert main(["train", str(p), "--set", "epochs=1"]) == 0  # fewer epochs than done
    assert "raise epochs above 2 to continue" in capsys.readouterr().out
    assert model.stat().st_mtime_ns == stamp
    other = json.dumps({"backbone": "mobilenet_v2", "pretrained": False, "width": 8})
    line = _error_line(capsys, ["train", str(p), "--set", "epochs=3", "--set",
                                f"model_args={other}"])  # resuming another architecture
    assert "last.ckpt: written by a run with another model than the config describes" in line
    assert model.stat().st_mtime_ns == stamp

    model.unlink()  # killed during the export: fewer epochs is an error, the same epochs exports
    model.with_suffix(".json").unlink()
    line = _error_line(capsys, ["train", str(p), "--set", "epochs=1"])
    assert "last.ckpt: the run already finished 2 epochs, more than epochs: 1" in line
    assert main(["train", str(p)]) == 0
    assert model.exists()
    assert load_model(model)[1]["training"]["epochs_done"] == 2


def test_best_checkpoint_falls_back_when_its_record_is_stale(tmp_path) -> None:
    from faceland.training import _best_checkpoint

    last = tmp_path / "last.ckpt"
    last.write_bytes(b"")
    for name in ("best-epoch=003-val_nme=5.500.ckpt", "best-epoch=004-val_nme=5.250.ckpt"):
        (tmp_path / name).write_bytes(b"")
    gone = str(tmp_path / "best-epoch=001-val_nme=6.000.ckpt")
    assert _best_checkpoint(gone, tmp_path, last).name == "best-epoch=004-val_nme=5.250.ckpt"
    for p in tmp_path.glob("best-*.ckpt"):
        p.unlink()
    assert _best_checkpoint(gone, tmp_path, last) == last


def test_resume_with_another_model_is_one_line_and_keeps_the_checkpoint(tmp_path, capsys) -> None:
    from faceland.models import create_model
    from faceland.training import LandmarkModule, TrainConfig, _check_resumable

    cfg = TrainConfig(input_size=64, model_args={"width": 16})
    saved = LandmarkModule(create_model("integral", input_size=64, width=16), cfg)
    now = LandmarkModule(create_model("integral", input_size=64, width=8), cfg)
    last = tmp_path / "last.ckpt"
    with pytest.raises(ValueError, match=r"last.ckpt: written by a run with another model.*"
                                         r"model.lateral.0.weight"):
        _check_resumable({"epoch": 0, "state_dict": saved.state_dict()}, now, last)
    _check_resumable({"epoch": 0, "state_dict": saved.state_dict()}, saved, last)


# --- 5. a corrupt last.ckpt -------------------------------------------------------------------

class _NotAllowed:
    """An object a safe (weights-only) load refuses."""


def _corrupt_files(path: Path) -> dict:
    torch.save({"epoch": 3, "state_dict": {}, "x": torch.zeros(1000)}, path)
    good = path.read_bytes()
    torch.save({"epoch": _NotAllowed(), "state_dict": {}}, path)
    evil = path.read_bytes()
    torch.save({"weights": torch.zeros(3)}, path)
    return {"random bytes": bytes(range(256)) * 20, "truncated": good[: len(good) // 2],
            "empty": b"", "unsafe pickle": evil, "not a training checkpoint": path.read_bytes()}


@pytest.mark.parametrize("kind", ["random bytes", "truncated", "empty", "unsafe pickle",
                                  "not a training checkpoint"])
def test_corrupt_last_ckpt_is_one_line_naming_it(tmp_path, capsys, kind) -> None:
    p = _cfg(tmp_path)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    data = _corrupt_files(tmp_path / "scratch.pt")[kind]
    ckpt.write_bytes(data)
    line = _error_line(capsys, ["train", str(p)])
    assert line.startswith(f"faceland: error: {ckpt}: unreadable training checkpoint"), line
    assert "move it away or delete it to start the run over" in line
    assert "weights_only" not in line
    assert ckpt.read_bytes() == data  # left as it was


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["random bytes", "unsafe pickle"])
def test_corrupt_last_ckpt_of_a_real_config_is_one_line(tmp_path, data_root, capsys, kind) -> None:
    """With the data present too: the checkpoint is checked before anything else runs."""
    p = _cfg(tmp_path, data_root)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(_corrupt_files(tmp_path / "scratch.pt")[kind])
    line = _error_line(capsys, ["train", str(p)])
    assert line.startswith(f"faceland: error: {ckpt}: unreadable training checkpoint"), line
    assert "weights_only" not in line


def test_no_message_suggests_an_unsafe_load() -> None:
    """No string literal in faceland (messages, logs, docs) tells a user to load with
    ``weights_only=False``; the keyword may appear only as code (a save argument)."""
    bad = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and "weights_only" in node.value.replace(" ", "") \
                    and "False" in node.value:
                bad.append(f"{path.name}:{node.lineno}")
    assert not bad, bad


# --- 6. model cards ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    from faceland.models import create_model

    torch.manual_seed(0)
    model = create_model("integral", input_size=64, width=8).eval()
    return save_model(model, tmp_path_factory.mktemp("card") / "m",
                      {"scheme": "68", "input_size": 64, "enlarge": 1.25})


def _with_card(saved: Path, tmp_path: Path, change) -> Path:
    w = tmp_path / "m.safetensors"
    w.write_bytes(saved.read_bytes())
    card = json.loads(saved.with_suffix(".json").read_text())
    card = change(card)
    w.with_suffix(".json").write_text(json.dumps(card))  # NaN is written as JSON's NaN
    return w


def _set(key, value, inner: bool = False):
    def change(card):
        (card["config"] if inner else card)[key] = value
        return card
    return change


@pytest.mark.parametrize(("change", "words"), [
    (lambda c: [c], "a JSON object is needed, not a list"),
    (lambda c: "model", "a JSON object is needed, not a string"),
    (lambda c: 3, "a JSON object is needed, not a number"),
    (_set("config", "integral"), "'config' object"),
    (_set("config", {"input_size": 64}), "'config' object with the architecture 'name'"),
    (_set("input_size", "64"), "field 'input_size' must be a whole number of pixels"),
    (_set("input_size", 0), "field 'input_size' must be a whole number of pixels in [8, 4096]"),
    (_set("input_size", 64.5), "field 'input_size'"),
    (_set("input_size", True), "field 'input_size'"),
    (_set("input_size", math.nan), "field 'input_size'"),
    (_set("enlarge", -1.25), "field 'enlarge' must be a number in (0, 10]"),
    (_set("enlarge", "1.25"), "field 'enlarge'"),
    (_set("enlarge", math.nan), "field 'enlarge'"),
    (_set("enlarge", math.inf), "field 'enlarge'"),
    (_set("scheme", 68), "field 'scheme' must be a string"),
    (_set("layout_version", 0), "field 'layout_version'"),
    (_set("training", [1]), "field 'training' must be an object"),
    (_set("input_size", -64, inner=True), "field 'config.input_size'"),
    (_set("num_points", "68", inner=True), "field 'config.num_points'"),
])
def test_malformed_card_is_one_error_naming_card_and_field(saved, tmp_path, change, words) -> None:
    w = _with_card(saved, tmp_path, change)
    with pytest.raises(FormatError) as e:
        read_card(w)
    msg = str(e.value)
    assert msg.startswith(f"{w.with_suffix('.json')}: ") and words in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize(("change", "words"), [
    (_set("widht", 8, inner=True), "config of architecture 'integral' has unknown key 'widht' "
                                   "(did you mean 'width'?)"),
    (_set("name", "no_such_net", inner=True), "config name: unknown model 'no_such_net'"),
    (_set("width", -8, inner=True), "config does not fit the architecture 'integral'"),
    (_set("refine", "maybe", inner=True), "config does not fit the architecture 'integral'"),
])
def test_card_config_the_architecture_rejects_names_the_card(saved, tmp_path, change, words,
                                                             capsys) -> None:
    w = _with_card(saved, tmp_path, change)
    with pytest.raises(FormatError, match="m.json: ") as e:
        load_model(w)
    assert words in str(e.value), e.value
    line = _error_line(capsys, ["export", "--model", str(w), "--out", str(tmp_path / "o.onnx")])
    assert words in line and not (tmp_path / "o.onnx").exists()


def test_card_from_dict_rejects_what_is_not_an_object() -> None:
    for bad in ([], "card", 3, None):
        with pytest.raises(FormatError, match="c.json: not a faceland model card"):
            ModelCard.from_dict(bad, "c.json")  # type: ignore[arg-type]


def test_malformed_card_beside_an_onnx_file(saved, tmp_path) -> None:
    from faceland.export import export_onnx
    from faceland.inference import FaceLandmarker

    model, card = load_model(saved)
    onnx = export_onnx(model, tmp_path / "m.onnx", card)
    FaceLandmarker(onnx, detector=None)  # the good card loads
    cases = [("[1, 2]", "JSON object"), ('{"config": {"name": "integral"}, "enlarge": -2}',
                                          "field 'enlarge'"),
             ('{"config": {"name": "integral"}, "input_size": "big"}', "field 'input_size'"),
             ("{not json", "not valid JSON")]
    for text, words in cases:
        onnx.with_suffix(".json").write_text(text)
        with pytest.raises(FormatError) as e:
            FaceLandmarker(onnx, detector=None)
        assert str(e.value).startswith(str(onnx.with_suffix(".json"))) and words in str(e.value)
