"""The README's exit-code table is the one in errors.py."""

import re
from pathlib import Path

from deployer.errors import ExitCode


def test_readme_exit_code_table_matches_errors_py():
    readme = Path(__file__).resolve().parents[2] / "README.md"
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", readme.read_text(), flags=re.M))
    assert {int(code) for code in rows} == {int(code) for code in ExitCode}
    for code in ExitCode:
        assert rows[str(int(code))] == code.meaning
