"""The README's "Your own data" spaces, copied from the README as they stand, run end to end on synthetic
databases the test writes: a beat database at 128 Hz with leads ECG1/ECG2 and record names no dataset
knows, a nested 12-lead database labelled by its headers' Dx codes, and the same database labelled by a CSV
table with patients and given splits; each to a selected, test-scored, registered model (real local Ray,
real SQLite MLflow store and registry). A lead the records lack is refused before Ray or MLflow start."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from ecgtune.cli import main
from tests.synthetic_wfdb import patients_owning_several, write_12lead_database, write_beat_database, write_label_table
from tests.tuning.conftest import runs_of

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_spaces(folder: Path) -> list[Path]:
    """The YAML blocks of the README's own-data section, each written to the file its first line names."""
    section = README.read_text().split("## Your own data", 1)[1].split("\n## ", 1)[0]
    paths = []
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        name = re.match(r"# (\S+\.yaml)\n", block).group(1)
        (folder / name).write_text(block)
        paths.append(folder / name)
    return paths


def write_databases(root: Path) -> None:
    write_beat_database(root / "svdb", fs=128, records=tuple(str(r) for r in range(800, 810)), seconds=120)
    written = write_12lead_database(root / "challenge12", n_records=48, fs=500, nested=True)
    names = sorted(written)
    patients = patients_owning_several(names, 3)
    order = sorted(set(patients.values()))
    part = {p: ("test" if i % 4 == 3 else "val" if i % 4 == 2 else "train") for i, p in enumerate(order)}
    write_label_table(root / "challenge12" / "labels.csv", written, patients=patients,
                      splits={r: part[patients[r]] for r in names})


def test_own_databases_run_from_the_yaml_alone_to_registered_champions(tmp_path, ray_local, mlflow_uri, capsys):
    write_databases(tmp_path / "data")
    spaces = readme_spaces(tmp_path)
    assert [p.name for p in spaces] == ["my_beats.yaml", "my_12lead_dx.yaml", "my_12lead_table.yaml"]
    argv = ["search", *[a for p in spaces for a in ("--space", str(p))], "--smoke-test",
            "--mlflow-uri", mlflow_uri, "--data-dir", str(tmp_path / "data")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'data' / 'svdb'}: 10 records read, lead(s) ECG1 in 10" in out
    assert "left out 6 record(s) with none of the labels" in out  # the OTHER-only records of the 12-lead set
    names = {"my_beats": "scratch-cnet_rr-smoke-47ed-my_beats-wfdb-random_records",
             "my_12lead_dx": "scratch-ribeiro_resnet-smoke-ed94-rhythm12_dx-wfdb-stratified_records",
             "my_12lead_table": "scratch-ribeiro_resnet-smoke-09a9-rhythm12_table-wfdb-given"}
    for space, registered in names.items():
        client, parents, children = runs_of(mlflow_uri, f"{space}-smoke")
        assert parents[0].info.status == "FINISHED" and len(children) == 2
        assert parents[0].data.params["dataset.path"] in ("svdb", "challenge12")
        assert "dataset/notes.json" in {a.path for a in client.list_artifacts(parents[0].info.run_id, "dataset")}
        selected = [c for c in children if c.data.tags.get("ecgtune.selected") == "true"]
        assert len(selected) == 1 and any(k.startswith("test_") for k in selected[0].data.metrics)
        champion = client.get_model_version_by_alias(registered, "champion")
        assert champion.run_id == selected[0].info.run_id
    assert parents[0].data.params["dataset.leads_read"] == "I,II,V1,V5"


BAD = {  # name -> (the README's text, what replaces it, what the one error line says)
    "lead_missing": ("lead: ECG1 ", "lead: MLII ", "wfdb record 800 has no lead 'MLII'; its leads: ECG1, ECG2"),
    "folder_missing": ("path: svdb ", "path: nowhere ", "nowhere is not a folder; expected a folder of WFDB records"),
    "map_matches_nothing": ("symbol_map: {N: [N, L, R, e, j], S: [A, a, J, S], V: [V, E]}", "symbol_map: {X: [x]}",
                            "the labels ('X',) match no annotation of .atr"),
    "protocol_unfit": ("split: random_records ", "split: folds ", "split 'folds' does not fit dataset 'wfdb'"),
    "given_without_split_column": ("split: random_records ", "split: given ", "split protocol 'given' needs a table"),
    "table_unknown_record": ("    rhythm: true", "    rhythm: true\n    table: records.csv",
                             "records.csv, line 2: record '999' is not a record of the database"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_in_one_line_before_ray_and_mlflow(case, tmp_path, capsys, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: (_ for _ in ()).throw(AssertionError("Ray started")))
    write_beat_database(tmp_path / "data" / "svdb", fs=128, records=("800", "801"), seconds=30)
    (tmp_path / "data" / "svdb" / "records.csv").write_text("record,patient\n999,P1\n")
    old, new, expected = BAD[case]
    space = readme_spaces(tmp_path)[0]
    assert old in space.read_text()
    space.write_text(space.read_text().replace(old, new))
    db = tmp_path / "m.db"
    code = main(["search", "--space", str(space), "--smoke-test", "--mlflow-uri", f"sqlite:///{db}",
                 "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], err
    if db.exists():
        with sqlite3.connect(db) as conn:
            tables = {t for (t,) in conn.execute("select name from sqlite_master where type='table'")}
            assert "runs" not in tables or conn.execute("select count(*) from runs").fetchone() == (0,)
