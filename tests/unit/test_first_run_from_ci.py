"""A team's first release from GitHub Actions into its own account, read against AWS's and
GitHub's rules: the workflow asks STS for a session the deploy role can hold and that outlasts
the run, installs deployer and nobody else's package, and the role trusts the workflow's
OIDC subject.
"""

from __future__ import annotations

import re
import tomllib

import yaml

from deployer.config.model import DeployConfig
from deployer.release.preflight import worst_case_of
from tests.cfn import load_template
from tests.conftest import REPO

WORKFLOWS = REPO / "examples" / "github-actions"
IAM = REPO / "cloudformation" / "deployer-iam.yaml"


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def distribution() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]


def test_the_release_workflow_asks_for_a_session_the_role_allows_and_the_run_fits():
    flow = workflow("release.yml")
    template = load_template(IAM)
    asked = int(flow["env"]["SESSION_SECONDS"])
    steps = flow["jobs"]["release"]["steps"]
    credentials = next(s for s in steps if "configure-aws-credentials" in s.get("uses", ""))
    assert credentials["with"]["role-duration-seconds"] == "${{ env.SESSION_SECONDS }}"
    maximum = template["Resources"]["DeployRole"]["Properties"]["MaxSessionDuration"]
    assert maximum == "MaxSessionSeconds"  # !Ref of the parameter
    role_maximum = int(template["Parameters"]["MaxSessionSeconds"]["Default"])
    # STS (AssumeRoleWithWebIdentity) refuses a DurationSeconds above the role's maximum.
    assert asked <= role_maximum
    # deployer's preflight exits 5 when the credentials end before the run's worst case.
    defaults = DeployConfig.model_validate({"app": "shop", "artifact": {"source": "app"}})
    assert worst_case_of(defaults) < asked
    # The job itself may run that long, and deployer is told when the credentials end.
    assert flow["jobs"]["release"]["timeout-minutes"] * 60 >= asked
    expiry = next(s for s in steps if "AWS_CREDENTIAL_EXPIRATION" in s.get("run", ""))
    assert "${SESSION_SECONDS} seconds" in expiry["run"]


def test_the_workflows_install_our_distribution_pinned_to_a_commit():
    ours = distribution()
    assert ours != "deployer"  # on PyPI, `deployer` is an unrelated project from 2014
    for name in ("release.yml", "rollback.yml"):
        flow = workflow(name)
        requirement = flow["env"]["DEPLOYER"]
        match = re.fullmatch(
            r"(?P<name>[a-z0-9-]+)(\[[a-z,]+\])? @ git\+https://\S+@(?P<commit>[0-9a-f]{40})",
            requirement,
        )
        assert match, (name, requirement)
        assert match["name"] == ours
        installs = [
            step["run"]
            for job in flow["jobs"].values()
            for step in job["steps"]
            if "pip install" in step.get("run", "")
        ]
        assert installs == ['python -m pip install "$DEPLOYER"'], (name, installs)


def test_the_deploy_role_trusts_the_subject_of_the_shipped_workflows():
    template = load_template(IAM)
    subject = template["Parameters"]["GitHubSubject"]["Default"]
    for name in ("release.yml", "rollback.yml"):
        job = next(iter(workflow(name)["jobs"].values()))
        # With an environment, GitHub's sub claim is repo:<owner/repo>:environment:<name>.
        assert subject == f"environment:{job['environment']['name']}", name
    pattern = template["Parameters"]["GitHubSubject"]["AllowedPattern"]
    for good in ("environment:production", "ref:refs/heads/main", "ref:refs/tags/v1.2"):
        assert re.fullmatch(pattern, good)
    assert not re.fullmatch(pattern, "*")


def test_cfn_lint_is_pinned_to_one_minor_version():
    """Its rules change between versions (1.51 rejected the listener Tags 1.58 accepts)."""
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    cfn_lint = next(d for d in dependencies if d.startswith("cfn-lint"))
    assert re.fullmatch(r"cfn-lint~=\d+\.\d+\.\d+", cfn_lint), cfn_lint


def config(**values) -> DeployConfig:
    return DeployConfig.model_validate({"app": "shop", "artifact": {"source": "app"}, **values})


def test_the_credential_estimate_holds_each_step_to_its_evidence_deadline_and_counts_hooks():
    canary = {"kind": "canary", "steps": [10, 50, 100], "bake_seconds": 60}
    without_metrics = worst_case_of(
        config(strategy=canary, gates={"metrics": {"enabled": False}}), alarm_window_s=0
    )
    with_metrics = worst_case_of(config(strategy=canary), alarm_window_s=0)
    # Each of the 3 steps may hold min_periods minutes and twice the publication delay
    # (3 x 60 + 2 x 120 = 420 s at the defaults), not bake_seconds' 60 s.
    assert with_metrics - without_metrics == 3 * (420 - 60)
    # A longer alarm window holds a step longer still (5 minutes, published 2 minutes later).
    assert worst_case_of(config(strategy=canary), alarm_window_s=300) - with_metrics == 0
    assert worst_case_of(config(strategy=canary), alarm_window_s=600) - with_metrics == 3 * (
        600 + 120 - 420
    )
    hooks = {"timeout_seconds": 600, "before_traffic": ["./smoke"], "after_step": ["./a", "./b"]}
    with_hooks = worst_case_of(config(strategy=canary, verify=hooks), alarm_window_s=0)
    assert with_hooks - with_metrics == 600 * (1 + 3 * 2)
    watched = worst_case_of(config(strategy={**canary, "watch_seconds": 30}), alarm_window_s=0)
    assert watched - with_metrics == 420  # the watch is held to the same deadline


def test_the_rollback_workflow_gets_a_session_that_outlasts_a_re_release_and_says_when_it_ends():
    """A rollback to a retired fleet is a whole re-release: the same session as a release,
    the expiry told to deployer, a job that may run as long, and a concurrency group of its
    own (in the release's group, a tag pushed after it was queued would cancel it).
    """
    release, rollback = workflow("release.yml"), workflow("rollback.yml")
    asked = int(rollback["env"]["SESSION_SECONDS"])
    assert asked == int(release["env"]["SESSION_SECONDS"])
    steps = rollback["jobs"]["rollback"]["steps"]
    credentials = next(s for s in steps if "configure-aws-credentials" in s.get("uses", ""))
    assert credentials["with"]["role-duration-seconds"] == "${{ env.SESSION_SECONDS }}"
    expiry = [i for i, s in enumerate(steps) if "AWS_CREDENTIAL_EXPIRATION" in s.get("run", "")]
    assert expiry and expiry[0] < steps.index(credentials)
    assert rollback["jobs"]["rollback"]["timeout-minutes"] * 60 >= asked
    canary = config(strategy={"kind": "canary"})
    assert worst_case_of(canary, bakes=False) < asked
    assert rollback["concurrency"]["group"] != release["concurrency"]["group"]
    assert rollback["concurrency"]["cancel-in-progress"] is False


def test_the_cloudwatch_agent_is_a_pinned_signed_package_and_its_pin_is_in_the_bake_key(
    tmp_path,
):
    """`latest` would change the image without changing the bake key; the pin lives in a
    file of the playbooks, so a new agent is a new bake. Its signature is checked against a
    pinned key, and a base image without the SSM agent is refused.
    """
    import shutil

    from deployer.bake.key import digest_files, playbook_files

    defaults = yaml.safe_load((REPO / "playbooks/roles/base/defaults/main.yml").read_text())
    assert "latest" not in defaults["base_agent_deb"]
    assert "base_agent_version" in defaults["base_agent_deb"]
    assert re.fullmatch(r"\d+\.\d+\.\d+b\d+", defaults["base_agent_version"])
    assert re.fullmatch(r"[0-9A-F]{40}", defaults["base_agent_key_fingerprint"])
    tasks = (REPO / "playbooks/roles/base/tasks/main.yml").read_text()
    assert "VALIDSIG" in tasks and "amazon-ssm-agent" in tasks

    copy = tmp_path / "playbooks"
    shutil.copytree(REPO / "playbooks", copy)
    before = digest_files(copy, playbook_files(copy / "bake.yml"))
    pinned = copy / "roles/base/defaults/main.yml"
    pinned.write_text(pinned.read_text().replace("1.300072.0b1766", "1.300073.0b1"))
    assert digest_files(copy, playbook_files(copy / "bake.yml")) != before
