"""Static checks of the cluster's node image (docker/Dockerfile) and its build context, no Docker needed:
the files it copies exist and are not ignored, it installs the same project and pins as the README and
CI, its Ray matches pyproject's pin, and nothing in docker/ holds a secret."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
DOCKERIGNORE = DOCKER_DIR / "Dockerfile.dockerignore"

TORCH_PIN = re.compile(r"\btorch==([0-9][0-9A-Za-z.+!-]*)")


# --- Dockerfile parsing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper-case: FROM, RUN, COPY, ...
    args: str  # the rest of the instruction, continuations joined
    workdir: str  # the WORKDIR in effect when the instruction runs


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str  # absolute path in the image
    flags: dict[str, str]


def instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile: comments dropped, backslash continuations joined (comment and
    blank lines inside a continuation are skipped, as Docker does), WORKDIR tracked."""
    out: list[Instruction] = []
    pending = ""
    workdir = "/"  # the base image's own WORKDIR is unknown here: use absolute paths before WORKDIR
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line = pending + stripped
        pending = ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            workdir = "/"
        out.append(Instruction(keyword, args, workdir))
        if keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / args)
    assert not pending, "the Dockerfile ends inside a line continuation"
    return out


def dockerfile() -> list[Instruction]:
    assert DOCKERFILE.is_file(), f"missing {DOCKERFILE}"
    return instructions(DOCKERFILE.read_text())


def split_args(args: str) -> list[str]:
    """The words of an instruction: its JSON (exec) form or its whitespace-separated form."""
    if args.startswith("["):
        words = json.loads(args)
        assert all(isinstance(w, str) for w in words), args
        return words
    return shlex.split(args)


def final_stage(insts: list[Instruction]) -> list[Instruction]:
    starts = [i for i, inst in enumerate(insts) if inst.keyword == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return insts[starts[-1] :]


def copies(insts: list[Instruction]) -> list[Copy]:
    """COPY/ADD instructions that read the build context (not --from another stage, not URLs)."""
    out = []
    for inst in insts:
        if inst.keyword not in ("COPY", "ADD"):
            continue
        flag_part = re.match(r"(?:--\S+\s+)*", inst.args).group(0)
        flags = dict((f[2:].partition("=")[0], f[2:].partition("=")[2]) for f in flag_part.split())
        words = split_args(inst.args[len(flag_part) :])
        assert len(words) >= 2, f"{inst.keyword} needs a source and a destination: {inst.args}"
        *sources, dest = words
        sources = [s for s in sources if not re.match(r"^(https?://|git@)", s)]
        if "from" in flags or not sources:
            continue
        dest_abs = str(PurePosixPath(inst.workdir) / dest) + ("/" if dest.endswith("/") else "")
        out.append(Copy(tuple(sources), dest_abs, flags))
    return out


def image_paths(cps: list[Copy]) -> dict[str, str]:
    """Image path -> context path, for every source: a directory's contents land in the destination
    itself; a file lands in the destination if that is a file name, else under its own name."""
    out = {}
    for cp in cps:
        for src in cp.sources:
            src_path = ROOT / src
            into_dir = cp.dest.endswith("/") or len(cp.sources) > 1
            if src_path.is_dir() or not into_dir:
                target = cp.dest.rstrip("/") or "/"
            else:
                target = str(PurePosixPath(cp.dest) / PurePosixPath(src).name)
            out[target] = str(PurePosixPath(src)).rstrip("/")
    return out


def arg_defaults(insts: list[Instruction]) -> dict[str, str]:
    """Defaults of the ARGs declared before the first FROM (the ones FROM lines may use)."""
    out = {}
    for inst in insts:
        if inst.keyword == "FROM":
            break
        if inst.keyword == "ARG":
            name, _, default = inst.args.partition("=")
            out[name.strip()] = default.strip().strip("\"'")
    return out


def env_settings(insts: list[Instruction]) -> dict[str, str]:
    """NAME -> value of every ENV instruction (NAME=value pairs and the legacy `ENV NAME value`)."""
    out = {}
    for inst in insts:
        if inst.keyword != "ENV":
            continue
        if "=" not in inst.args.split(None, 1)[0]:
            name, _, value = inst.args.partition(" ")
            out[name] = value.strip()
            continue
        for word in shlex.split(inst.args):
            name, _, value = word.partition("=")
            out[name] = value
    return out


# --- the README's first command ---------------------------------------------------------------------


def readme_first_command() -> str:
    """The first fenced code block of README.md: the install command users copy first."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M)
    assert match, "README.md has no code block"
    return match.group(1).strip()


# --- .dockerignore matching (moby/patternmatcher semantics) ------------------------------------------


def ignore_rules(text: str) -> list[tuple[bool, re.Pattern]]:
    """(excludes, regex) per pattern line: `!` re-includes, a leading `/` is dropped (patterns are
    relative to the context root anyway), `**` spans any number of directories, `*` and `?` stay
    within one path segment."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        if not excludes:
            line = line[1:].strip()
        line = str(PurePosixPath(line)).lstrip("/")
        rules.append((excludes, re.compile(glob_regex(line))))
    return rules


def glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            if body.startswith(("!", "^")):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def is_ignored(path: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """Whether the context leaves `path` out: the last rule that matches the path or one of its parent
    directories decides."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for excludes, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            ignored = excludes
    return ignored


def context_files(src: str) -> list[str]:
    """The context path itself and, for a directory, every file under it, minus the bytecode caches
    Python writes next to the sources (the ignore file drops those on purpose)."""
    path = ROOT / src
    out = [str(PurePosixPath(src)).rstrip("/")]
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            rel = f.relative_to(ROOT)
            if "__pycache__" in rel.parts or f.suffix in (".pyc", ".pyo"):
                continue
            out.append(rel.as_posix())
    return out


# --- tests ---------------------------------------------------------------------------------------------


def test_every_copy_source_exists_in_the_context():
    """A COPY/ADD whose source is missing (renamed, moved) fails `docker build`: catch it without Docker."""
    cps = copies(dockerfile())
    assert cps, "docker/Dockerfile copies nothing from the context"
    for cp in cps:
        for src in cp.sources:
            assert not PurePosixPath(src).is_absolute() and ".." not in PurePosixPath(src).parts, (
                f"COPY source {src!r} is outside the build context (the repository root)"
            )
            if any(ch in src for ch in "*?["):
                assert list(ROOT.glob(src)), f"COPY source pattern {src!r} matches nothing under {ROOT}"
            else:
                assert (ROOT / src).exists(), f"COPY source {src!r} does not exist under {ROOT}"


def test_torch_pin_matches_readme_and_ci():
    """The image installs the same torch as the README's first command and .ci/run."""
    found = {
        "docker/Dockerfile": set(TORCH_PIN.findall(DOCKERFILE.read_text())),
        "README.md (first command)": set(TORCH_PIN.findall(readme_first_command())),
        ".ci/run": set(TORCH_PIN.findall((ROOT / ".ci" / "run").read_text())),
    }
    for where, pins in found.items():
        assert len(pins) == 1, f"{where}: expected exactly one torch==X pin, found {sorted(pins) or 'none'}"
    assert len(set.union(*found.values())) == 1, f"torch pins disagree: {found}"


def test_image_installs_the_copied_project_like_the_readme():
    """The image pip-installs (not editable) the directory its COPYs put pyproject.toml, the readme and the
    package in; the README installs the same project with `pip install -e` from the repository root."""
    insts = final_stage(dockerfile())
    placed = image_paths(copies(insts))
    project_dirs = [str(PurePosixPath(p).parent) for p, src in placed.items() if src == "pyproject.toml"]
    assert len(project_dirs) == 1, f"pyproject.toml must be copied exactly once, got {project_dirs}"
    project = project_dirs[0]

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    readme = meta["project"].get("readme")
    readme = readme if isinstance(readme, str) else (readme or {}).get("file")
    needed = {"pyproject.toml": "pyproject.toml", "ecgtune": "ecgtune"}
    if readme:
        needed[readme] = readme
    for rel, src in needed.items():
        target = str(PurePosixPath(project) / rel)
        assert placed.get(target) == src, f"the image must copy {src} to {target}; copies: {placed}"

    copy_index = max(i for i, inst in enumerate(insts) if inst.keyword in ("COPY", "ADD"))
    installs = []
    for inst in insts[copy_index + 1 :]:
        if inst.keyword != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", inst.args):
            words = shlex.split(command)
            if words[:1] in (["pip"], ["pip3"]) or words[:3] in (["python", "-m", "pip"], ["python3", "-m", "pip"]):
                if "install" in words:
                    installs.append((words, inst.workdir))
    targets = []
    for words, workdir in installs:
        args = words[words.index("install") + 1 :]
        assert "-e" not in args and "--editable" not in args, f"the image's install must not be editable: {words}"
        for a in args:  # paths, not requirement specifiers such as torch==2.13.0
            if not a.startswith("-") and (a.startswith((".", "/")) or "/" in a):
                targets.append(str(PurePosixPath(workdir) / re.sub(r"\[.*\]$", "", a)))
    assert project in [t.rstrip("/") for t in targets], (
        f"no `pip install {project}` after the COPYs (pip-installed paths: {targets})"
    )

    first = readme_first_command()
    pip_e = re.search(r"pip install (?:-e|--editable)\s+(['\"]?)\.(\[[^\]]*\])?\1(?=\s|$)", first)
    assert pip_e, f"README's first command must `pip install -e .` the project: {first}"
    assert not re.search(r"(^|[\s;&|])cd\s", first[: pip_e.start()]), "README's install must run from the repo root"


def test_search_spaces_are_found_in_the_image():
    """The image's pip install builds the wheel from its copy of the project: search_spaces/ must be copied
    beside ecgtune/ (pyproject.toml installs it as ecgtune.search_spaces). No ECGTUNE_SPACES_DIR is baked in:
    the installed package finds its own spaces (tests/test_packaging.py), and one baked in would hide them."""
    insts = final_stage(dockerfile())
    placed = image_paths(copies(insts))
    package = [p for p, src in placed.items() if src == "ecgtune"]
    spaces = [p for p, src in placed.items() if src == "search_spaces"]
    assert package and spaces, "the image does not copy ecgtune/ and search_spaces/"
    assert {str(PurePosixPath(p).parent) for p in spaces} == {str(PurePosixPath(p).parent) for p in package}, (
        f"search_spaces/ ({spaces}) must sit beside ecgtune/ ({package}) in the project the image installs"
    )
    assert "ECGTUNE_SPACES_DIR" not in env_settings(insts)


def test_ray_version_matches_pyproject_and_base_image_is_gpu():
    """Every node runs the Ray pinned in pyproject.toml: ARG RAY_VERSION equals the `ray[...]==X` pin, and
    the FROM line takes rayproject/ray at that version with a GPU (-gpu or -cuXXX) tag for Python 3.11+."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [
        m.group(1)
        for dep in meta["project"]["dependencies"]
        if (m := re.fullmatch(r"ray(?:\[[^\]]*\])?==([^\s;,]+)", re.sub(r"\s+", "", dep).split(";")[0]))
    ]
    assert len(pins) == 1, f"pyproject.toml must pin ray exactly once as ray[...]==X, got {pins}"
    insts = dockerfile()
    args = arg_defaults(insts)
    assert args.get("RAY_VERSION") == pins[0], f"ARG RAY_VERSION={args.get('RAY_VERSION')!r}, pyproject pins {pins[0]!r}"

    froms = [i.args for i in insts if i.keyword == "FROM"]
    raw = froms[-1].split()[0] if not froms[-1].startswith("--") else froms[-1].split()[1]
    assert re.search(r"\$\{?RAY_VERSION\b", raw), f"the FROM line must use ARG RAY_VERSION: {raw}"
    image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), raw)
    repo, _, tag = image.partition(":")
    assert repo in ("rayproject/ray", "docker.io/rayproject/ray"), f"base image must be rayproject/ray, got {repo}"
    assert tag.startswith(pins[0] + "-"), f"base image tag {tag!r} is not Ray {pins[0]}"
    assert re.search(r"-(gpu|cu\d{3,})(-|$)", tag), f"base image tag {tag!r} is not a GPU (-gpu / -cuXXX) tag"
    py = re.search(r"-py(\d)(\d+)(-|$)", tag)
    assert py and (int(py.group(1)), int(py.group(2))) >= (3, 11), f"base image tag {tag!r}: need a -py311+ tag"


def test_image_bakes_in_no_cluster_setting_and_stays_user_ray():
    """Tracking URI, storage path and Ray auth differ per cluster (cluster.yaml's run_options); the image
    must not fix them, and it runs as the base image's user `ray`, never root."""
    insts = dockerfile()
    settings = set(env_settings(insts)) | set(arg_defaults(insts))
    settings |= {i.args.partition("=")[0].strip() for i in insts if i.keyword == "ARG"}
    baked = settings & {"MLFLOW_TRACKING_URI", "ECGTUNE_STORAGE_PATH", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                        "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    assert not baked, f"set per cluster, not in the image: {sorted(baked)}"
    users = [i.args.split(":")[0] for i in final_stage(insts) if i.keyword == "USER"]
    assert not users or users[-1] in ("ray", "1000"), f"the image must end as user ray, not {users[-1]!r}"


@pytest.mark.parametrize(
    "path",
    [".venv/bin/python", ".git/HEAD", "ecgtune/__pycache__/cli.cpython-311.pyc", "ecgtune.egg-info/PKG-INFO",
     ".pytest_cache/README.md", "tests/test_cli.py", "benchmarks/bench_training.py", "docs/results.md",
     "data/mitdb/100.dat", "shared/data/mitdb/RECORDS", "prepared/x.npz", "mlruns/0/meta.yaml", "mlflow.db",
     ".env", "cluster/.env", "ray_auth_token", "secrets.token"],
)
def test_dockerignore_excludes_local_state(path):
    """The context never carries the venv, git history, caches, tests, data, MLflow stores or secrets."""
    assert DOCKERIGNORE.is_file(), f"missing {DOCKERIGNORE}"
    assert is_ignored(path, ignore_rules(DOCKERIGNORE.read_text())), f"{DOCKERIGNORE.name} lets {path} through"


def test_dockerignore_keeps_every_copied_source():
    """An ignore pattern that catches a copied file (e.g. `**/data` vs ecgtune/data/) breaks the image
    silently: every file under every COPY source must stay in the context."""
    rules = ignore_rules(DOCKERIGNORE.read_text())
    dropped = [
        f for cp in copies(dockerfile()) for src in cp.sources for f in context_files(src) if is_ignored(f, rules)
    ]
    assert not dropped, f"{DOCKERIGNORE.name} excludes copied sources: {dropped[:10]}"


PLACEHOLDER = r"""(?:$|["']?(?:\$|<[^>]*>|["']))"""  # empty, a $reference or a <placeholder>
SECRET_PATTERNS = {
    "a RAY_AUTH_TOKEN value": re.compile(r"RAY_AUTH_TOKEN\s*[=:]\s*(?!" + PLACEHOLDER + r")\S"),
    "a password/token/secret key value": re.compile(
        r"(?i)\b[a-z0-9_]*(?:password|passwd|token|secret_key)\s*=[ \t]*(?!" + PLACEHOLDER + r")\S", re.M
    ),
    "credentials in a URI": re.compile(r"://[^\s/:@<>]+:[^\s/@]+@"),
    "an AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


def test_no_secret_in_docker_dir():
    """docker/ is baked into images and under version control: no token, password or credential in it."""
    files = sorted(p for p in DOCKER_DIR.rglob("*") if p.is_file())
    assert DOCKERFILE in files
    found = []
    for path in files:
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for what, regex in SECRET_PATTERNS.items():
                if regex.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{lineno}: {what}")
    assert not found, "\n".join(found)
