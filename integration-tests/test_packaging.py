"""The distributions as users get them: layering, wheel contents, each one installed alone.

These tests build real wheels and virtual environments (tens of seconds): they are what proves
that ``pip install thor-loop`` works without the network packages, and that no distribution
imports a sibling it does not declare.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p.parent for p in ROOT.glob("packages/*/pyproject.toml"))
SHARED_LAYER_CHECK = ROOT.parent / "shared" / "tools" / "check_layers.py"
EXPECTED_ORDER = ["thor-events", "thor-loop", "thor-net", "thor-http"]


def project_of(package_dir: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((package_dir / "pyproject.toml").read_text())[
        "project"
    ]
    return project


def thor_deps(package_dir: Path) -> list[str]:
    deps = project_of(package_dir).get("dependencies", [])
    assert isinstance(deps, list)
    names = [re.split(r"[\s<>=!~;\[(]", d, maxsplit=1)[0].lower() for d in deps]
    return [n for n in names if n.startswith("thor-")]


def dist_closure(name: str) -> list[str]:
    by_name = {str(project_of(p)["name"]): p for p in PACKAGES}
    result: list[str] = []
    pending = [name]
    while pending:
        current = pending.pop()
        if current not in result:
            result.append(current)
            pending += thor_deps(by_name[current])
    return result


def shipped_modules(package_dir: Path) -> list[str]:
    src = package_dir / "src"
    modules = []
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:
            modules.append(".".join(parts))
    return modules


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every distribution built once (wheel and sdist), each from its own directory."""
    out = tmp_path_factory.mktemp("wheelhouse")
    for package_dir in PACKAGES:
        target = tmp_path_factory.mktemp(package_dir.name)
        subprocess.run(
            [sys.executable, "-m", "hatchling", "build", "-d", str(target)],
            cwd=package_dir,
            check=True,
            capture_output=True,
        )
        for built in target.iterdir():
            built.rename(out / built.name)
    return out


def test_layering_is_respected() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_layering.py"), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not SHARED_LAYER_CHECK.exists(), reason="../shared is not beside the repo")
def test_shared_layer_check_passes() -> None:
    # the shared tool reads pyproject files with tomllib (3.11+); on 3.10, tomli stands in
    runner = (
        "import runpy, sys\n"
        "if sys.version_info < (3, 11):\n"
        "    import tomli\n"
        "    sys.modules['tomllib'] = tomli\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", runner, str(SHARED_LAYER_CHECK), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_layering_check_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself fails when a lower layer imports a higher one."""
    for package_dir in PACKAGES:
        copy = tmp_path / "packages" / package_dir.name
        (copy / "src").mkdir(parents=True)
        (copy / "pyproject.toml").write_text((package_dir / "pyproject.toml").read_text())
        for path in (package_dir / "src").rglob("*.py"):
            dest = copy / "src" / path.relative_to(package_dir / "src")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(path.read_text())
    bad = tmp_path / "packages" / "thor-events" / "src" / "thor" / "events" / "_bad.py"
    bad.write_text("import thor.loop\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_layering.py"), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "_bad.py:1: thor-events imports thor.loop" in result.stdout


def test_dependencies_follow_the_declared_order() -> None:
    names = [str(project_of(p)["name"]) for p in PACKAGES]
    assert sorted(names) == sorted(EXPECTED_ORDER)
    for name in EXPECTED_ORDER:
        package_dir = ROOT / "packages" / name
        below = EXPECTED_ORDER[: EXPECTED_ORDER.index(name)]
        assert thor_deps(package_dir) == below[-1:], f"{name} must depend on exactly {below[-1:]}"
        for requirement in project_of(package_dir).get("dependencies", []):  # type: ignore[attr-defined]
            if requirement.startswith("thor-"):
                assert re.search(r">=\d+\.\d+,\s*<\d+\.\d+", requirement), requirement


@pytest.mark.slow
def test_each_package_builds_alone(wheelhouse: Path) -> None:
    files = sorted(p.name for p in wheelhouse.iterdir())
    for package_dir in PACKAGES:
        dist = str(project_of(package_dir)["name"]).replace("-", "_")
        own = [f for f in files if f.startswith(dist + "-")]
        assert len(own) == 2, own
        assert any(f.endswith(".whl") for f in own) and any(f.endswith(".tar.gz") for f in own)


@pytest.mark.slow
def test_wheel_contents(wheelhouse: Path) -> None:
    for wheel in wheelhouse.glob("*.whl"):
        names = zipfile.ZipFile(wheel).namelist()
        owns_facade = wheel.name.startswith("thor_http-")
        if not owns_facade:
            assert "thor/__init__.py" not in names, wheel.name
            assert "thor/py.typed" not in names, wheel.name
        subpackages = {
            n.split("/")[1] for n in names if n.startswith("thor/") and n.count("/") >= 2
        }
        assert subpackages, wheel.name
        for sub in subpackages:
            assert f"thor/{sub}/py.typed" in names, f"{wheel.name}: thor/{sub} lacks py.typed"
            assert f"thor/{sub}/__init__.py" in names, f"{wheel.name}: thor/{sub} is no package"


def _install_alone(dist: str, wheelhouse: Path, where: Path) -> Path:
    env_dir = where / dist
    # no pip inside (ensurepip is slow and fragile under load): this interpreter's pip installs
    # into it with --python
    venv.EnvBuilder(with_pip=False, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    wheels = [
        str(next(wheelhouse.glob(d.replace("-", "_") + "-*.whl"))) for d in dist_closure(dist)
    ]
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, "--no-deps", *wheels], check=True, capture_output=True)
    # third-party dependencies (if any) come from the package index, thor ones are there already
    subprocess.run(
        [*pip, "--find-links", str(wheelhouse), wheels[0]], check=True, capture_output=True
    )
    return python


@pytest.mark.slow
def test_each_package_imports_with_only_its_declared_dependencies(
    wheelhouse: Path, tmp_path: Path
) -> None:
    dists = {str(project_of(p)["name"]): p for p in PACKAGES}
    with ThreadPoolExecutor(max_workers=4) as pool:
        pythons = dict(
            zip(
                dists,
                pool.map(lambda d: _install_alone(d, wheelhouse, tmp_path), dists),
                strict=True,
            )
        )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    for dist, package_dir in dists.items():
        modules = shipped_modules(package_dir)
        assert modules, dist
        probe = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\n"
        result = subprocess.run(
            [str(pythons[dist]), "-c", probe, *modules],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        assert result.returncode == 0, f"{dist} alone: {result.stderr}"
        # and the distributions it does not depend on are really absent from that environment
        for other, other_dir in dists.items():
            if other in dist_closure(dist):
                continue
            top = next(m for m in shipped_modules(other_dir) if m.count(".") == 1)
            absent = subprocess.run(
                [str(pythons[dist]), "-c", f"import {top}"],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
            )
            assert absent.returncode != 0, f"{other}'s {top} is importable beside {dist} alone"
