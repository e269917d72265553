"""The results-table and model-size scripts: generated Markdown from saved JSON, size variants."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _result(study: str, row: str, nme: float, epochs: int) -> dict:
    return {
        "nme_iod": nme, "nme_ipd": nme * 1.4, "fr": 0.5, "auc": 0.61,
        "protocol": {"weights_sha256": "abc123", "command": "faceland evaluate ..."},
        "ablation": {
            "study": study, "row": row, "base_config": "configs/x.yaml",
            "overrides": {"model_args": {"coordconv": False}} if row == "b" else {},
            "command": f"python scripts/ablations.py {study} --rows {row} --minutes 20",
            "training": {"epochs_done": epochs, "best_val_nme_iod_percent": nme + 0.3,
                         "max_time_minutes": 20.0, "input_size": 128, "n_train": 1811,
                         "n_val": 201, "batch_size": 16, "optimizer": "rmsprop", "lr": 1e-4,
                         "hardware": "x86_64, 2 CPU cores"},
        },
    }


def test_ablation_tables_from_json(tmp_path: Path) -> None:
    mod = _load("make_results")
    (tmp_path / "s-a.json").write_text(json.dumps(_result("s", "a", 5.123, 40)))
    (tmp_path / "s-b.json").write_text(json.dumps(_result("s", "b", 6.0, 41)))
    (tmp_path / "plain.json").write_text(json.dumps({"nme_iod": 1.0, "protocol": {}}))
    md = "\n".join(mod.ablation_tables(tmp_path))
    assert "### `s`" in md and "20 min per row" in md and "rmsprop lr 0.0001" in md
    assert "| a | `(base config)` | 40 | 5.42 | 5.12 | 7.17 | 0.50 | 0.6100 |" in md
    assert '| b | `{"model_args": {"coordconv": false}}` | 41 |' in md
    assert mod.ablation_tables(tmp_path / "missing") == []
    # a row sharing another study's run says so and links that run's CED plot
    shared = _result("t", "c", 5.123, 40)
    shared["ablation"]["same_run_as"] = "s/a"
    (tmp_path / "t-c.json").write_text(json.dumps(shared))
    (tmp_path / "s-a.png").write_bytes(b"png")
    md = "\n".join(mod.ablation_tables(tmp_path, study="t"))
    assert "(same run as `s/a`)" in md and "[plot](results/ablations/s-a.png)" in md


def test_training_time_table_lists_full_runs_and_ablation_rows_by_nme(tmp_path: Path) -> None:
    mod = _load("make_results")
    card = {"dataset": "300w", "split": "common", "box_source": "gt", "flip_test": False}
    full = {"nme_iod": 3.5, "fr": 0.0, "auc": 0.66, "protocol": {
        **card, "model": "run_a", "training": {
            "model": "token_regression", "epochs_done": 140, "train_wall_minutes_total": 65.2,
            "best_val_nme_iod_percent": 3.9, "hardware": "2 cores",
            "command": "faceland train configs/t.yaml --set max_time_minutes=65"}}}
    (tmp_path / "a.json").write_text(json.dumps(full))
    flip = {**full, "protocol": {**full["protocol"], "flip_test": True}}
    (tmp_path / "a-flip.json").write_text(json.dumps(flip))  # TTA rows are not compared
    (tmp_path / "untrained.json").write_text(json.dumps({"nme_iod": 1.0, "protocol": card}))
    (tmp_path / "ablations").mkdir()
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "x.yaml").write_text("model: hourglass\n")
    abl = _result("s", "b", 2.5, 30)
    abl["protocol"].update(card)
    abl["ablation"]["training"]["train_wall_minutes_total"] = 20.1
    (tmp_path / "ablations" / "s-b.json").write_text(json.dumps(abl))
    shared = {**abl, "ablation": {**abl["ablation"], "same_run_as": "s/b"}}
    (tmp_path / "ablations" / "t-b.json").write_text(json.dumps(shared))  # listed once
    mod.REPO = tmp_path  # the ablation's base config is read relative to the repository
    rows = [ln for ln in mod.training_time_table(tmp_path) if ln.startswith("| ")][1:]
    assert len(rows) == 2
    assert rows[0].startswith("| s / b | `hourglass` | 2.50 |") and "| 30 | 20 |" in rows[0]
    assert rows[1].startswith("| run_a | `token_regression` | 3.50 |") and "| 140 | 65 |" in rows[1]
    assert "`faceland train configs/t.yaml --set max_time_minutes=65`" in rows[1]


def test_model_stats_variants_count_parameters() -> None:
    from faceland.models import create_model

    mod = _load("model_stats")
    rows = mod.variant_rows(["hourglass", "stacks=1,2", "channels=16", "input_size=64"])
    assert [r[1] for r in rows] == ["stacks=1, channels=16, input_size=64",
                                    "stacks=2, channels=16, input_size=64"]
    for r, stacks in zip(rows, (1, 2), strict=True):
        m = create_model("hourglass", num_points=68, stacks=stacks, channels=16, input_size=64)
        assert r[3] == f"{sum(p.numel() for p in m.parameters()) / 1e6:.2f}"
        assert float(r[5]) > 0
    assert float(rows[1][3]) > float(rows[0][3])


def test_shared_ablation_runs_resolve_to_the_same_config() -> None:
    abl = _load("ablations")  # scripts import the library only, not each other

    assert abl.SAME_RUN
    for (study, row), (src_study, src_row) in abl.SAME_RUN.items():
        assert abl.same_run(study, row, src_study, src_row)
    assert not abl.same_run("repformer_tau", "tau10", "repformer_components", "pth_dlr")
    baseline = abl.row_config("repformer_components", "baseline", "data", 25.0)
    assert baseline.model_args["pth"] is False and baseline.max_time_minutes == 25.0


def test_stage_nme_per_stage_on_the_run_validation_split(tmp_path: Path, data_root: Path) -> None:
    import pytest

    from faceland.checkpoint import save_model
    from faceland.models import create_model

    stage_nme = _load("stage_nme").stage_nme
    card = {"scheme": "68", "input_size": 64, "enlarge": 1.25,
            "training": {"dataset": "300w", "root": str(data_root / "300w"), "split": "train",
                         "val_fraction": 0.1, "seed": 0, "max_images": 40}}
    rep = create_model("repformer", backbone="resnet18", input_size=64, dim=32, heads=2,
                       ff_dim=64, levels=3)
    values = stage_nme(str(save_model(rep, tmp_path / "rep", card)))
    assert len(values) == 4 and all(0 < v < 200 for v in values)
    reg = create_model("regression", backbone="resnet18", input_size=64)
    with pytest.raises(ValueError, match="has no stages"):
        stage_nme(str(save_model(reg, tmp_path / "reg", card)))


def test_mean_shape_is_box_invariant_and_placed_back_in_each_box() -> None:
    from faceland.data.datasets import FaceRecord

    mod = _load("mean_shape_predictions")
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, size=(68, 2))
    # The same shape at two scales and positions.
    recs = [FaceRecord(Path("a.jpg"), base * 100 + 20), FaceRecord(Path("b.jpg"), base * 40 + 300)]
    mean = mod.mean_shape(recs)
    lo, hi = base.min(0), base.max(0)
    assert np.allclose(mean, (base - (lo + hi) / 2) / (hi - lo).max())
    back = mod.apply_affine(mean, mod.invert_affine(mod.box_frame(recs[1].points)))
    assert np.allclose(back, recs[1].points)  # back in the face's own box, exactly


def _eval_result(f: Path, command: str, **protocol) -> dict:
    """A minimal result JSON at ``f`` whose recorded evaluate command is ``command``."""
    card = {"dataset": "300w", "split": "common", "box_source": "gt", "flip_test": False,
            "model": f.stem, "weights_sha256": None, "hardware": "2 cores",
            "faceland_version": "0", "command": command, **protocol}
    return {"nme_iod": 4.0, "nme_box": 2.0, "fr": 0.0, "auc": 0.6, "n_images": 2, "per_image": {},
            "protocol": card}


def test_historical_rows_get_their_own_table_and_are_not_rerun(tmp_path: Path, monkeypatch) -> None:
    mod = _load("make_results")
    ok = _eval_result(tmp_path / "ok.json", "faceland evaluate --root d --model m_ok", model="m_ok")
    old = _eval_result(tmp_path / "old.json", "faceland evaluate --root d --model m_old",
                       model="m_old", historical="its layout has no option left")
    (tmp_path / "ok.json").write_text(json.dumps(ok))
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "ablations").mkdir()
    for row, why in (("a", None), ("b", "trained with a loss that is gone")):
        r = _result("s", row, 5.0, 30)
        r["ablation"]["base_config"] = "configs/hourglass_cpu.yaml"
        if why:
            r["protocol"]["historical"] = why
        (tmp_path / "ablations" / f"s-{row}.json").write_text(json.dumps(r))
    out = tmp_path / "results.md"
    monkeypatch.setattr(sys, "argv", ["make_results.py", "--results", str(tmp_path), "--out",
                                      str(out)])
    mod.main()
    main_part, hist = out.read_text().split(f"## {mod.HISTORICAL_TITLE}")
    assert "| m_ok |" in main_part and "m_old" not in main_part
    assert "| m_old |" in hist and "| its layout has no option left |" in hist
    assert "| `faceland evaluate --root d --model m_old` |" in hist  # the command, as run then
    ablations = main_part.split("## Ablations")[1]
    assert "| a |" in ablations and "| b |" not in ablations
    assert "### Ablation rows of `s`" in hist and "| trained with a loss that is gone |" in hist
    assert mod._HISTORICAL_ANCHOR in main_part  # the main table points at the historical one
    # scripts/ablations.py prints a study whole
    assert len([ln for ln in mod.ablation_tables(tmp_path / "ablations") if ln[:4] == "| a "
                or ln[:4] == "| b "]) == 2

    ran = []
    monkeypatch.setattr(mod.subprocess, "run", lambda argv, cwd: ran.append(argv) or
                        type("Done", (), {"returncode": 0})())
    assert mod.rerun(tmp_path) == []
    assert ran == [["faceland", "evaluate", "--root", "d", "--model", "m_ok"]]


def test_check_mode_passes_on_every_reproducible_recorded_row() -> None:
    """What CI runs instead of --rerun: every command of a reproducible row in docs/results
    parses, names weights that resolve (or a runs/ file, noted), and its config builds."""
    report = _load("make_results").check()
    assert report.errors == []
    assert report.counts["evaluate commands"] >= 30 and report.counts["training commands"] >= 10
    assert report.counts["ablation rows"] >= 7 and report.counts["models built"] >= 10
    assert all(" runs/" in n for n in report.notes)
    assert not any("iact-300w-cpu" in n or "repformer_tau" in n for n in report.notes)


def test_check_mode_reports_what_would_not_run(tmp_path: Path) -> None:
    mod = _load("make_results")
    from faceland.checkpoint import read_card

    shipped = "faceland-300w-hourglass-2x64-128"
    sha = read_card(shipped)[1].weights_sha256

    def write(name: str, command: str, **protocol) -> None:
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps(_eval_result(f, f"{command} --json {f}", **protocol)))

    ev = "faceland evaluate --dataset 300w --root d --split common --boxes gt"
    write("good", f"{ev} --model {shipped}", weights_sha256=sha)
    write("flag", f"{ev} --model {shipped} --no-such-flag", weights_sha256=sha)
    write("name", f"{ev} --model no-such-shipped-model")
    write("hash", f"{ev} --model {shipped}", weights_sha256="0" * 16)
    write("boxes", f"{ev} --model {shipped}", weights_sha256=sha, box_source="detector")
    write("run", f"{ev} --model runs/no_such_run/model.safetensors",
          training={"command": "faceland train configs/hourglass_cpu.yaml --set epochs=3"})
    write("config", f"{ev} --model {shipped}", weights_sha256=sha, training={
        "command": "faceland train configs/hourglass_cpu.yaml --set 'model_args={stacks: 2, "
                   "no_such_arg: 1}'"})
    write("old", f"{ev} --no-such-flag", historical="skipped: not reproducible")
    report = mod.check(tmp_path)
    errors = "\n".join(report.errors)
    for name in ("flag", "name", "hash", "boxes", "config"):
        assert f"{name}.json" in errors, name
    assert "good.json" not in errors and "run.json" not in errors and "old.json" not in errors
    assert "--no-such-flag" in errors and "unrecognized arguments" in errors
    assert "holds weights" in errors and "no_such_arg" in errors
    assert report.notes == [f"{tmp_path / 'run.json'}: runs/no_such_run/model.safetensors needs "
                            "its training run: `faceland train configs/hourglass_cpu.yaml --set "
                            "epochs=3`"]
    assert report.counts["training commands"] == 2


def test_scripts_and_benchmarks_import_the_library_not_each_other() -> None:
    """Issue 28: scripts import faceland, not each other (a script runs another as a command);
    benchmarks share only benchmarks/peers.py (the peer re-creations, not library code)."""
    import ast

    repo = SCRIPTS.parent
    for folder, allowed in ((SCRIPTS, set()), (repo / "benchmarks", {"peers"})):
        names = {p.stem for p in folder.glob("*.py")}
        for path in folder.glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                        [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                bad = {m.split(".")[0] for m in mods} & (names - allowed)
                assert not bad, f"{path.name} imports {bad}"
