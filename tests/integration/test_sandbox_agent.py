"""The sandbox's CloudWatch agent follows a host's files as the agent does: complete lines
only, from the file's start, again from the start when the file was truncated (logrotate's
copytruncate), and what the configuration names, with its placeholders filled in.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployer.sandbox.agent import AGENT_CONFIG, HostFacts, LogAgent, files_of, placeholders
from deployer.sandbox.units import app_environment, app_unit, output_of

pytestmark = pytest.mark.integration


def test_complete_lines_are_shipped_once_and_a_truncated_file_from_its_start(tmp_path):
    agent = LogAgent(lambda: {}, lambda _id: "")
    log = tmp_path / "app.log"
    log.write_text("one\ntwo\nthr")
    assert agent._new_lines("i-0aaaaaaa", log) == ["one", "two"]
    assert agent._new_lines("i-0aaaaaaa", log) == []
    with open(log, "a") as out:
        out.write("ee\n\nfour\n")
    assert agent._new_lines("i-0aaaaaaa", log) == ["three", "four"]  # empty lines are not events
    log.write_text("rotated\n")  # copytruncate: the same file, shorter
    assert agent._new_lines("i-0aaaaaaa", log) == ["rotated"]


def test_the_playbooks_configuration_names_the_files_and_streams(tmp_path):
    root = tmp_path / "root"
    (root / AGENT_CONFIG).parent.mkdir(parents=True)
    config = {
        "logs": {
            "logs_collected": {
                "files": {
                    "collect_list": [
                        {
                            "file_path": "/var/log/deployer/app.log",
                            "log_group_name": "/deployer/shop/prod",
                            "log_stream_name": "v1/{instance_id}/app",
                        }
                    ]
                }
            }
        }
    }
    (root / AGENT_CONFIG).write_text(json.dumps(config))
    (entry,) = files_of(config)
    host = HostFacts("i-0aaaaaaa", "127.64.0.2", {})
    assert placeholders(entry["log_stream_name"], host) == "v1/i-0aaaaaaa/app"
    assert placeholders("{hostname}/{ip_address}", host) == "ip-127-64-0-2/127.64.0.2"


def test_a_units_output_goes_where_its_unit_says(tmp_path: Path):
    root = tmp_path
    (root / "opt/deployer/configure").mkdir(parents=True)
    (root / "opt/deployer/configure/vars.json").write_text('{"app_name": "shop"}')
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/shop.service").write_text(
        "[Service]\nExecStart=/opt/app/current/run\n"
        "StandardOutput=append:/var/log/deployer/app.log\n"
    )
    assert app_unit(root) == "shop.service"
    assert output_of(root, "shop.service") == root / "var/log/deployer/app.log"
    assert output_of(root, "deployer-configure.service") is None  # no such unit


def test_the_app_gets_its_units_environment_files_in_order_the_release_version_last(
    tmp_path: Path,
):
    """As systemd does: app.env (the build's), then boot.env (the launch template's VERSION)
    overriding it; a `-` file may be missing, a required one stops the app.
    """
    root = tmp_path
    (root / "opt/deployer/configure").mkdir(parents=True)
    (root / "opt/deployer/configure/vars.json").write_text('{"app_name": "shop"}')
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/shop.service").write_text(
        "[Service]\nEnvironmentFile=/etc/deployer/app.env\n"
        "EnvironmentFile=-/etc/deployer/boot.env\nExecStart=/opt/app/current/run\n"
    )
    (root / "etc/deployer").mkdir(parents=True)
    assert app_environment(root) == {}  # app.env is required: systemd would not start it
    (root / "etc/deployer/app.env").write_text('PORT=8080\nVERSION="baked"\n')
    assert app_environment(root) == {"PORT": "8080", "VERSION": "baked"}  # boot.env may miss
    (root / "etc/deployer/boot.env").write_text("VERSION=v2\nLOG_GROUP=/deployer/shop/prod\n")
    assert app_environment(root) == {
        "PORT": "8080",
        "VERSION": "v2",
        "LOG_GROUP": "/deployer/shop/prod",
    }
