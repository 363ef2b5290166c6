"""The bake playbooks install packages the way each supported distribution needs."""

from __future__ import annotations

import yaml

from tests.conftest import REPO

TASKS = REPO / "playbooks" / "roles" / "base" / "tasks" / "main.yml"


def test_ubuntu_updates_the_apt_cache_before_installing_packages():
    tasks = yaml.safe_load(TASKS.read_text())
    install = next(i for i, t in enumerate(tasks) if "ansible.builtin.package" in t)
    updates = [
        t
        for t in tasks[:install]
        if t.get("ansible.builtin.apt", {}).get("update_cache") is True
        and "Debian" in str(t.get("when", ""))
    ]
    assert updates, "a fresh Ubuntu image has no package lists: apt install would fail"
    # Idempotent: a second run within the hour changes nothing.
    assert updates[0]["ansible.builtin.apt"].get("cache_valid_time")
