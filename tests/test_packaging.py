"""ecgtune as users install it: a wheel (not an editable checkout) knows every shipped search space and runs
the quickstart from any folder; the package list in pyproject.toml misses no package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ecgtune.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.stem for p in (ROOT / "search_spaces").glob("*.yaml"))


def test_pyproject_lists_every_package_and_installs_the_spaces_as_one():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(p.relative_to(ROOT).parent.parts) for p in (ROOT / "ecgtune").rglob("__init__.py")}
    assert set(config["packages"]) == found | {"ecgtune.search_spaces"}
    assert config["package-dir"] == {"ecgtune.search_spaces": "search_spaces"}
    assert config["package-data"]["ecgtune.search_spaces"] == ["*.yaml"]


def test_a_missing_spaces_folder_is_refused_not_listed_as_empty(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ECGTUNE_SPACES_DIR", str(tmp_path / "nowhere"))
    assert main(["spaces"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ECGTUNE_SPACES_DIR" in err[0] and "nowhere" in err[0] and "no such folder" in err[0]


def _wheel(tmp_path: Path) -> Path:
    """The wheel pip would build from a clean checkout (built from a copy: no build/ left in this one)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("ecgtune", "search_spaces"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path / "dist"), str(source)], check=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("ecgtune-*.whl")
    return wheel


@pytest.mark.integration
@pytest.mark.slow
def test_a_wheel_lists_every_shipped_space_and_runs_the_quickstart_from_another_folder(tmp_path, real_data_dir):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(_wheel(tmp_path))], check=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed copy first on the path (Ray's workers inherit it), run from a folder with no checkout.
    env = {k: v for k, v in os.environ.items() if k not in ("ECGTUNE_SPACES_DIR", "MLFLOW_TRACKING_URI")}
    env.update(PYTHONPATH=str(target), ECGTUNE_HOME=str(tmp_path / "home"), ECGTUNE_DATA_DIR=str(real_data_dir))

    def ecgtune(*args: str, timeout: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ecgtune.cli", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=timeout)

    where = subprocess.run([sys.executable, "-c", "import ecgtune.spaces as s; print(s.__file__); print(s.spaces_dir())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(target) for p in where), where  # the wheel's code and spaces, not ours

    listed = ecgtune("spaces", timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert {line.split()[0] for line in listed.stdout.splitlines() if line.strip()} >= set(SHIPPED)

    quick = ecgtune("search", "--space", "quickstart", "--smoke-test", timeout=900)
    assert quick.returncode == 0, quick.stdout[-3000:] + quick.stderr[-3000:]
    assert "champion" in quick.stdout
    assert (tmp_path / "home" / "mlflow.db").is_file()
