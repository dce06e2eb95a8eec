#!/usr/bin/env python3
"""Check that each distribution imports only itself and the thor distributions it declares.

The order is events <- loop <- net <- http: a distribution may import from the distributions
below it (transitively, through its declared ``thor-*`` dependencies), never from above or
beside. Every ``import thor.X`` / ``from thor.X import ...`` in ``packages/<dist>/src`` is
attributed to the distribution that ships the longest matching module prefix.

Usage: python tools/check_layering.py [REPO_ROOT]    exit status 0 when clean, 1 otherwise.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def modules_of(src: Path) -> set[str]:
    """Dotted names of the packages and modules below ``src`` (``thor.loop._timers``...)."""
    names = set()
    for path in src.rglob("*.py"):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            names.add(".".join(parts))
    return names


def thor_dependencies(pyproject: Path) -> tuple[str, set[str]]:
    """The distribution's name and the ``thor-*`` names among its dependencies."""
    project = tomllib.loads(pyproject.read_text())["project"]
    deps = set()
    for requirement in project.get("dependencies", []):
        name = re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower()
        if name.startswith("thor-"):
            deps.add(name)
    return project["name"].lower(), deps


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every absolute import of ``thor...`` in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, alias.name)
                for alias in node.names
                if alias.name.split(".")[0] == "thor"
            ]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and node.module.split(".")[0] == "thor"
        ):
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def check(root: Path) -> list[str]:
    """Every layering violation in the repository at ``root``, as printable lines."""
    dists: dict[str, tuple[Path, set[str]]] = {}
    owner: dict[str, str] = {}
    for pyproject in sorted(root.glob("packages/*/pyproject.toml")):
        name, deps = thor_dependencies(pyproject)
        src = pyproject.parent / "src"
        dists[name] = (src, deps)
        for module in modules_of(src):
            owner[module] = name
    if not dists:
        return ["no packages/*/pyproject.toml found"]

    def allowed(name: str, chain: tuple[str, ...] = ()) -> set[str]:
        if name in chain:
            raise ValueError(" -> ".join((*chain, name)))
        result = {name}
        for dep in dists.get(name, (Path(), set()))[1]:
            result |= allowed(dep, (*chain, name))
        return result

    problems = []
    for name, (src, _) in dists.items():
        try:
            permitted = allowed(name)
        except ValueError as cycle:
            problems.append(f"{name}: dependency cycle {cycle}")
            continue
        for path in sorted(src.rglob("*.py")):
            for line, module in imports_of(path):
                parts = module.split(".")
                target = next(
                    (
                        owner[".".join(parts[:i])]
                        for i in range(len(parts), 1, -1)
                        if ".".join(parts[:i]) in owner
                    ),
                    None,
                )
                if target is not None and target not in permitted:
                    problems.append(
                        f"{path.relative_to(root)}:{line}: {name} imports {module} "
                        f"from {target}, not among its declared dependencies"
                    )
    return problems


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent).resolve()
    problems = check(root)
    for problem in problems:
        print(problem)
    print(f"check_layering: {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
