import os

import pytest

from deployer.bake.artifact import S3Location, check_tarball, package_directory
from deployer.errors import BadInput


def make_app(root, body="print('hi')"):
    root.mkdir()
    run = root / "run"
    run.write_text("#!/bin/sh\nexec python3 app.py\n")
    run.chmod(0o755)
    (root / "app.py").write_text(body)
    return root


def test_packaging_is_deterministic(tmp_path):
    app = make_app(tmp_path / "app")
    first = package_directory(app, tmp_path / "cache", "app")
    os.utime(app / "app.py", (1, 1))  # a new mtime must not change the identity
    second = package_directory(app, tmp_path / "cache2", "app")
    assert first.digest == second.digest
    check_tarball(first.path, "app")


def test_a_change_in_content_is_a_new_digest(tmp_path):
    one = package_directory(make_app(tmp_path / "a"), tmp_path / "c", "a")
    two = package_directory(make_app(tmp_path / "b", "print('bye')"), tmp_path / "c", "b")
    assert one.digest != two.digest


def test_an_app_without_an_executable_run_is_bad_input(tmp_path):
    app = make_app(tmp_path / "app")
    (app / "run").chmod(0o644)
    with pytest.raises(BadInput, match="missing or not executable"):
        package_directory(app, tmp_path / "cache", "app")


def test_s3_urls_need_a_bucket_and_a_key():
    assert S3Location.parse("s3://b/k/x.tar.gz") == S3Location("b", "k/x.tar.gz")
    with pytest.raises(BadInput, match="s3://bucket/key"):
        S3Location.parse("s3://only-bucket")
