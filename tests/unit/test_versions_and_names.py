import pytest

from deployer.core.names import Names, Version
from deployer.errors import BadInput


@pytest.mark.parametrize("text", ["v1.2", "1.2.3", "2026.11.26-3", "v1.0+build.7", "release_9"])
def test_ordinary_versions_parse(text):
    assert Version.parse(text).text == text


@pytest.mark.parametrize("text", ["", "-v1", "v 1", "v1/2", "a" * 65, "v1;rm", "../x"])
def test_bad_versions_are_bad_input(text):
    with pytest.raises(BadInput, match="version"):
        Version.parse(text)


def test_names_are_deterministic_and_fit_cloudformation():
    names = Names("hello", "prod")
    stack = names.fleet_stack(Version.parse("v1.2+build.7"), "abcdef0123456789")
    assert stack == "hello-prod-fleet-v1-2-build-7-abcdef01"
    assert stack == names.fleet_stack(Version.parse("v1.2+build.7"), "abcdef0123456789")
    assert stack.startswith(names.fleet_stack_prefix)
