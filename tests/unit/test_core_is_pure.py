"""The core decides from observed state; it must not reach AWS, the clock, disk or network."""

import ast
from pathlib import Path

import deployer.core

FORBIDDEN = {
    "boto3",
    "botocore",
    "ansible_runner",
    "fabric",
    "paramiko",
    "time",
    "os",
    "pathlib",
    "socket",
    "subprocess",
    "requests",
    "urllib",
    "http",
    "shutil",
    "random",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_core_module_imports_io_or_aws():
    core_dir = Path(deployer.core.__file__).parent
    modules = sorted(core_dir.glob("*.py"))
    assert len(modules) >= 4
    offenders = {p.name: imported_modules(p) & FORBIDDEN for p in modules}
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_the_purity_check_catches_an_offender(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("from boto3 import client\nimport time\n")
    assert imported_modules(sneaky) & FORBIDDEN == {"boto3", "time"}
