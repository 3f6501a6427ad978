"""Ribeiro et al.'s ResNet on the real PTB-XL copy (100 Hz, CPU size), pre-training on the superdiagnostic
labels and normal-vs-abnormal from scratch and transferred, in one schedule: multi-label selection and test,
thresholds from validation, transfer with frozen blocks, and champions that load without ecgtune."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ecgtune.cli import main
from ecgtune.spaces import spaces_dir
from tests.tuning.conftest import runs_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SUPERDIAG = "pretrain-ribeiro_resnet-smoke-ba16-ptbxl_superdiag_100hz-ptbxl-folds"
BINARY = "{stage}-ribeiro_resnet-smoke-297b-ptbxl_normal_abnormal_100hz-ptbxl-folds"
LABELS = ("NORM", "MI", "STTC", "CD", "HYP")


def test_superdiagnostic_pretraining_then_scratch_and_transfer_in_one_schedule(real_data_dir, ray_local, mlflow_uri,
                                                                               capsys, tmp_path):
    code = main(["search", "--space", "ribeiro_ptbxl_superdiagnostic_100hz", "--space", "ribeiro_ptbxl_binary_100hz",
                 "--smoke-test", "--mlflow-uri", mlflow_uri, "--data-dir", str(real_data_dir)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "AUROC / F1 / sensitivity / specificity" in out

    # Pre-training: multi-label, selected on val_auroc_macro; test scored with the thresholds of validation.
    client, parents, children = runs_of(mlflow_uri, "ribeiro_ptbxl_superdiagnostic_100hz-smoke")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    # (a label the 4 smoke validation records lack has no AUROC: NaN, which MLflow is not sent)
    assert all(f"val_threshold_{label}" in c.data.metrics for c in children for label in LABELS)
    assert all("val_auroc_macro" in c.data.metrics for c in children)
    (selected,) = [c for c in children if c.data.tags.get("ecgtune.selected") == "true"]
    version = client.get_model_version_by_alias(SUPERDIAG, "champion")
    best_epoch = int(version.tags["best_epoch"])
    for label in LABELS:
        history = client.get_metric_history(selected.info.run_id, f"val_threshold_{label}")
        (chosen,) = [m.value for m in history if m.step == best_epoch]
        assert selected.data.metrics[f"test_threshold_{label}"] == pytest.approx(chosen)
        assert json.loads(version.tags["thresholds"])[label] == pytest.approx(chosen)
    client.download_artifacts(selected.info.run_id, "label_counts", str(tmp_path))
    rows = json.loads((tmp_path / "label_counts" / "test.json").read_text())
    assert [r["label"] for r in rows] == list(LABELS)
    assert len({r["TP"] + r["FN"] + r["FP"] + r["TN"] for r in rows}) == 1  # every label counts every test record

    # Normal vs abnormal: scratch, and fine-tuned from the champion this search registered, k blocks frozen.
    client, _, binary = runs_of(mlflow_uri, "ribeiro_ptbxl_binary_100hz-smoke")
    finetune = [r for r in binary if r.data.tags["ecgtune.stage"] == "finetune"]
    scratch = [r for r in binary if r.data.tags["ecgtune.stage"] == "scratch"]
    assert len(scratch) == 2 and len(finetune) == 12
    assert sorted({r.data.params["train.freeze_blocks"] for r in finetune}) == ["0", "1", "2", "3", "4", "5"]
    assert all(r.data.params["starts_from.model"] == f"models:/{SUPERDIAG}/{version.version}" for r in finetune)
    assert all(r.info.start_time >= version.creation_timestamp for r in finetune)
    assert all("val_auroc" in r.data.metrics for r in binary)

    # Per k, the best trial on validation scored on test: the champion's row repeats its own test figure.
    common = ["--space", "ribeiro_ptbxl_binary_100hz", "--stage", "finetune", "--smoke-test", "--mlflow-uri",
              mlflow_uri, "--data-dir", str(real_data_dir)]
    assert main(["by-value", *common, "--param", "freeze_blocks"]) == 0
    table = capsys.readouterr().out.split("\n\n")[0].splitlines()[2:]  # the first table (one label: no second)
    assert [line.split()[0] for line in table] == ["0", "1", "2", "3", "4", "5"]
    assert all(line.split()[1] == "2" for line in table)  # two learning rates per k
    (champion,) = [line for line in table if line.endswith("(champion)")]
    (selected,) = [r for r in finetune if r.data.tags.get("ecgtune.selected") == "true"]
    assert champion.split()[-2] == selected.info.run_id
    # (a smoke test fold of four records may hold one class only: no AUROC, shown as "-" and not logged)
    logged = selected.data.metrics.get("test_auroc")
    assert champion.split()[3] == ("-" if logged is None else f"{logged:.4f}")
    assert main(["by-value", *common, "--param", "no_such_param"]) == 2
    assert "'train.no_such_param'" in capsys.readouterr().err
    # The space edited since the search (its records 1,000 samples long now): its checkpoints are not scored
    # on a test part prepared otherwise.
    edited = tmp_path / "edited" / "ribeiro_ptbxl_binary_100hz.yaml"
    edited.parent.mkdir()
    edited.write_text((spaces_dir() / edited.name).read_text().replace("length: 1024", "length: 1000"))
    assert main(["by-value", "--space", str(edited), *common[2:], "--param", "freeze_blocks"]) == 2
    assert "by-value: the last search of ribeiro_ptbxl_binary_100hz-smoke trained on data key" in capsys.readouterr().err

    # Every champion loads and runs where ecgtune cannot be imported.
    x = np.random.default_rng(0).standard_normal((3, 12, 1024)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = f"""
import sys
sys.modules["ecgtune"] = None
import json, numpy as np, torch, mlflow, mlflow.pytorch
mlflow.set_tracking_uri({mlflow_uri!r}); mlflow.set_registry_uri({mlflow_uri!r})
x = torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))
shapes = {{}}
for name in {[SUPERDIAG, BINARY.format(stage='scratch'), BINARY.format(stage='finetune')]!r}:
    shapes[name] = list(mlflow.pytorch.load_model(f"models:/{{name}}@champion")(x).shape)
print(json.dumps(shapes))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    shapes = json.loads(done.stdout.strip().splitlines()[-1])
    assert shapes == {SUPERDIAG: [3, 5], BINARY.format(stage="scratch"): [3, 1], BINARY.format(stage="finetune"): [3, 1]}
