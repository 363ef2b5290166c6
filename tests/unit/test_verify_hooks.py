"""A verify hook runs with the URLs it checks and without the run's credentials, and what it
prints is recorded (events.jsonl, uploaded by CI as an artifact that GitHub does not mask)
only once every credential value is replaced by ***.
"""

from __future__ import annotations

import os

from deployer.release.verify import hook_env, run_hook

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEJr//////////wEaDEXAMPLESESSIONTOKEN"
PASSWORD = "correct-horse-battery-staple"


def test_a_hook_gets_the_urls_but_not_the_credentials_and_its_lines_are_scrubbed(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLEEXAMPLE12")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc-request-token-value")
    monkeypatch.setenv("DB_PASSWORD", PASSWORD)
    script = (
        'echo "key=${AWS_ACCESS_KEY_ID:-none} secret=${AWS_SECRET_ACCESS_KEY:-none}"; '
        'echo "oidc=${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-none} url=$DEPLOYER_URL"; '
        f'echo "printed by mistake: {SECRET} {TOKEN} AKIAIOSFODNN7EXAMPLE"; '
        'echo "db: $DB_PASSWORD"; exit 3'
    )
    printed: list[str] = []
    env = hook_env("http://app", "http://app:8081", "v2", "v1", "step 1")
    result = run_hook(script, tmp_path, env, 30, printed.append)
    assert result.exit_status == 3 and not result.passed
    assert printed[0] == "key=none secret=none"  # the deploy role's keys never reach it
    assert printed[1] == "oidc=none url=http://app"
    assert printed[2] == "printed by mistake: *** *** ***"
    assert printed[3] == "db: ***"
    recorded = str(result.observation(30).evidence) + result.observation(30).detail
    for value in (SECRET, TOKEN, PASSWORD, "AKIAIOSFODNN7EXAMPLE"):
        assert value not in recorded and value not in "".join(printed)
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == SECRET  # deployer's own are untouched


def test_a_hook_that_reads_aws_gets_the_credentials_when_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    printed: list[str] = []
    script = 'test -n "$AWS_SECRET_ACCESS_KEY" && echo "has it: $AWS_SECRET_ACCESS_KEY"'
    env = hook_env("http://app", "http://app:8081", "v2", "v1", "step 1")
    result = run_hook(script, tmp_path, env, 30, printed.append, aws_credentials=True)
    assert result.passed and printed == ["has it: ***"]
