"""The stubs (_native.pyi) name what the native module has, no more, no less."""

import ast
import inspect
from pathlib import Path

import ubuntu_ci
from ubuntu_ci import _native

STUBS = Path(ubuntu_ci.__file__).with_name("_native.pyi")


def stubbed() -> dict:
    tree = ast.parse(STUBS.read_text())
    names: dict = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names[node.name] = None
        elif isinstance(node, ast.ClassDef):
            names[node.name] = {
                item.name for item in node.body if isinstance(item, ast.FunctionDef)
            }
    return names


def public(cls: type) -> set:
    return {
        name
        for name, _ in inspect.getmembers(cls)
        if not name.startswith("_") or name == "__init__"
    }


def test_the_stubs_match_the_native_module() -> None:
    stubs = stubbed()
    native = {name for name in dir(_native) if not name.startswith("_")}
    assert set(stubs) == native, "names of _native and of _native.pyi differ"
    for name, methods in stubs.items():
        if methods is None:
            continue
        cls = getattr(_native, name)
        dunders = {m for m in methods if m.startswith("__")}
        actual = public(cls) - {"__init__"}
        assert methods - dunders == actual, f"{name}: stubs and module differ"
        for dunder in dunders - {"__init__"}:
            assert hasattr(cls, dunder), f"{name}.{dunder} is in the stubs only"


def test_the_package_ships_its_stubs_and_marker() -> None:
    assert STUBS.exists()
    assert STUBS.with_name("py.typed").exists()
