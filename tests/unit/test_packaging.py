"""The wheel's package list (pyproject.toml) is written out because `mp3mesh.auth` comes from
two folders (the service in mp3mesh/auth, the generated mp3mesh.auth.v1 in gen/), which
setuptools' discovery cannot map. This keeps the list equal to the tree, so a new
subpackage is not left out of the wheel and the images."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def packages_under(root: Path) -> set[str]:
    """Every folder under root/mp3mesh holding files (modules, or data such as the SQL
    migrations and the web page), as a dotted name."""
    return {
        ".".join(folder.relative_to(root).parts)
        for folder in (root / "mp3mesh").rglob("*")
        if folder.is_dir()
        and "__pycache__" not in folder.parts
        and any(f.is_file() for f in folder.iterdir())
    }


def test_every_package_of_the_tree_and_of_gen_is_in_the_wheel() -> None:
    assert set(SETUPTOOLS["packages"]) == packages_under(ROOT) | packages_under(ROOT / "gen")


def test_each_generated_package_is_taken_from_gen() -> None:
    generated = packages_under(ROOT / "gen")
    assert {name: Path(folder) for name, folder in SETUPTOOLS["package-dir"].items()} == {
        name: Path("gen", *name.split(".")) for name in generated
    }


def test_the_namespace_packages_have_no_init_module() -> None:
    """`mp3mesh` and `mp3mesh.auth` span the tree and gen/: an __init__.py in either would
    hide the other half."""
    for folder in (ROOT / "mp3mesh", ROOT / "mp3mesh" / "auth"):
        assert not (folder / "__init__.py").exists(), folder
