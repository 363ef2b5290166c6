"""The operator's commands as CI and people at 3 a.m. run them: twice, with bad input, and
against an AWS that refuses. Every run ends with its documented exit code, one JSON document
with --output json, and no traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deployer.sandbox import client, control
from deployer.sandbox.layout import Layout
from tests.conftest import REPO, copy_project
from tests.e2e.conftest import run, sandbox_client, sandboxed_project, served

pytestmark = pytest.mark.e2e

CONFIG = """\
app: ops
environment: {env}
artifact: {{source: {source}}}
capacity: {{min: 1, desired: 1, max: 4}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: {deadline}}}
strategy: {{kind: all_at_once, bake_seconds: 1}}
gates: {{interval_seconds: 0.5}}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    with sandboxed_project(tmp_path_factory, "operator") as (workdir, env):
        yield workdir, env


def write_config(workdir: Path, env_name: str, source="app", deadline=30, name="deployer.yaml"):
    (workdir / name).write_text(CONFIG.format(env=env_name, source=source, deadline=deadline))
    return name


def lock_token(workdir, scope):
    """The fencing token of the environment's lock: it rises whenever a run takes the lock."""
    ddb = sandbox_client(workdir, "dynamodb")
    item = ddb.get_item(
        TableName="deployer-journal", Key={"pk": {"S": scope}, "sk": {"S": "lock"}}
    )["Item"]
    return int(item["token"]["N"])


def listener_actions(workdir):
    elb = sandbox_client(workdir, "elbv2")
    return [
        (
            listener["DefaultActions"],
            elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"],
        )
        for lb in elb.describe_load_balancers()["LoadBalancers"]
        for listener in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        if listener["Port"] == 80
    ]


def test_rollback_and_abort_run_twice_change_nothing_the_second_time(project):
    workdir, env = project
    write_config(workdir, "twice")
    code, first, _ = run(workdir, env, "release", "v1")
    assert code == 0, first
    url = first["url"]
    assert run(workdir, env, "release", "v2")[0] == 0

    code, back, _ = run(workdir, env, "rollback")
    assert (code, back["changed"], back["version"]) == (0, True, "v1")
    assert served(url) == {"hello from v1"}
    before = listener_actions(workdir)
    history = run(workdir, env, "history")[1]["releases"]
    token = lock_token(workdir, "ops/twice")
    code, again, stderr = run(workdir, env, "rollback")
    assert (code, again["changed"]) == (0, False)
    assert "v1 is live" in again["message"] and "Nothing was changed" in again["message"]
    assert listener_actions(workdir) == before  # no listener change
    # Nothing to do writes nothing: no journal record, no lock taken (its token unchanged).
    assert run(workdir, env, "history")[1]["releases"] == history
    assert lock_token(workdir, "ops/twice") == token
    code, noop, _ = run(workdir, env, "release", "v1")
    assert (code, noop["outcome"]) == (0, "noop")
    assert run(workdir, env, "history")[1]["releases"] == history
    assert run(workdir, env, "status")[1]["last"]["kind"] == "rollback"  # what made v1 live
    assert lock_token(workdir, "ops/twice") == token
    code, same, _ = run(workdir, env, "rollback", "--to", "v1")
    assert (code, same["changed"]) == (0, False) and "v1 is live already" in same["message"]
    assert served(url) == {"hello from v1"}

    code, forward, _ = run(workdir, env, "rollback", "--to", "v2")
    assert (code, forward["changed"]) == (0, True)
    assert served(url) == {"hello from v2"}

    token = lock_token(workdir, "ops/twice")
    for _ in range(2):
        code, aborted, _ = run(workdir, env, "abort")
        assert (code, aborted["changed"]) == (0, False)
    code, collected, _ = run(workdir, env, "gc")
    assert (code, collected["changed"]) == (0, False)
    assert lock_token(workdir, "ops/twice") == token  # nothing to do: no lock taken


def test_destroy_removes_the_environment_in_order_and_keeps_its_history(project):
    workdir, env = project
    write_config(workdir, "doomed")
    code, first, _ = run(workdir, env, "release", "v1")
    assert code == 0, first
    assert run(workdir, env, "release", "v2")[0] == 0  # v1 warm beside v2: two fleets

    code, unasked, _ = run(workdir, env, "destroy")
    assert code == 2 and "--yes" in unasked["error"]["message"]
    (workdir / "protected.yaml").write_text(
        (workdir / "deployer.yaml").read_text() + "protected: true\n"
    )
    code, refused, _ = run(workdir, env, "destroy", "--yes", config="protected.yaml")
    assert code == 2 and "protected" in refused["error"]["message"]
    assert served(first["url"]) == {"hello from v2"}  # nothing was touched

    code, gone, _ = run(workdir, env, "destroy", "--yes")
    assert code == 0 and gone["changed"]
    assert gone["removed"][-2:] == ["ops-doomed-service", "ops-doomed-network"]
    assert len(gone["removed"]) == 4  # two fleets first
    cfn = sandbox_client(workdir, "cloudformation")
    alive = [s["StackName"] for s in cfn.describe_stacks()["Stacks"]]
    assert not [name for name in alive if name.startswith("ops-doomed-")]
    code, history, _ = run(workdir, env, "history")
    assert [r["version"] for r in history["releases"]] == ["v2", "v1"]  # the journal is kept
    code, again, _ = run(workdir, env, "destroy", "--yes")
    assert (code, again["changed"]) == (0, False)


@pytest.mark.parametrize(
    ("args", "config_text", "expected"),
    [
        (["release", "v[/x]"], None, "version 'v[/x]'"),
        (["release", "[bold]v1"], None, "version '[bold]v1'"),
        (["release", "v1", "--strategy", "sideways"], None, "sideways"),
        (
            ["release", "v1"],
            "app: ops\nenvironment: dup\napp: other\nartifact: {source: app}\n",
            "the key 'app' is given twice",
        ),
        (
            ["check"],
            "app: ops\nenvironment: a--b\nartifact: {source: app}\n",
            "environment",
        ),
        (
            ["release", "v1"],
            "app: ops\nenvironment: nohold\nartifact: {source: app}\n"
            "strategy: {bake_seconds: 1}\ngates: {interval_seconds: 5}\n",
            "shorter than one gate interval",
        ),
        (
            ["release", "v1"],
            "app: ops\nenvironment: noapp\nartifact: {source: missing-dir}\n",
            "artifact.source",
        ),
    ],
)
def test_bad_input_exits_2_naming_it_and_starts_nothing(tmp_path, args, config_text, expected):
    copy_project(tmp_path)
    config = "deployer.yaml"
    if config_text is None:
        write_config(tmp_path, "bad")
    else:
        (tmp_path / config).write_text(config_text)
    code, document, stderr = run(tmp_path, {**os.environ, "PYTHONPATH": str(REPO)}, *args)
    assert code == 2, document
    assert expected in document["error"]["message"] and expected in stderr
    assert not (tmp_path / ".deployer" / "sandbox" / "state.json").exists()


def test_an_s3_artifact_that_does_not_exist_is_bad_input_naming_it(project):
    workdir, env = project
    config = write_config(
        workdir, "s3missing", source="s3://no-such-bucket-xyz/app.tar.gz", name="s3.yaml"
    )
    code, document, _ = run(workdir, env, "release", "v1", config=config)
    assert code == 2, document
    assert "artifact.source" in document["error"]["message"]
    assert "does not exist" in document["error"]["message"]


def test_each_failure_class_ends_with_its_exit_code(project):
    """Refused before any change: 5. A stack that fails: 4. Refused once the fleet exists:
    the release fails and traffic stays (1). A build that fails its gate: 1, fast.
    """
    workdir, env = project
    endpoint = control.status(Layout.for_workdir(workdir)).endpoint
    write_config(workdir, "classes")

    client.set_behaviours(endpoint, denied={"sts:GetCallerIdentity": "AccessDenied"})
    code, document, _ = run(workdir, env, "release", "v1")
    assert code == 5 and "AccessDenied" in document["error"]["message"]

    client.set_behaviours(endpoint, denied={}, stack_failures={"Vpc": "VPC limit exceeded"})
    code, document, _ = run(workdir, env, "release", "v1")
    assert code == 4 and "Vpc: VPC limit exceeded" in document["error"]["message"]
    client.set_behaviours(endpoint, stack_failures={})

    assert run(workdir, env, "release", "v1")[0] == 0
    stacks_before = run(workdir, env, "status")[1]["fleets"]
    client.set_behaviours(endpoint, denied={"elbv2:ModifyRule": "AccessDenied"})
    code, document, _ = run(workdir, env, "release", "v2")
    assert code == 5, document  # the policy simulator knew: refused before any change
    assert "elasticloadbalancing:ModifyRule" in document["error"]["message"]
    assert "Nothing was changed" in document["error"]["message"]
    assert run(workdir, env, "status")[1]["fleets"] == stacks_before

    # A role that may not simulate its policy: the check is skipped (said), and the refusal
    # comes from the switch itself, once the fleet exists.
    client.set_behaviours(
        endpoint,
        denied={"elbv2:ModifyRule": "AccessDenied", "iam:SimulatePrincipalPolicy": "AccessDenied"},
    )
    code, document, stderr = run(workdir, env, "release", "v2")
    assert code in (1, 4) and "AccessDenied" in document["error"]["message"]
    assert "permission preflight skipped" in stderr
    client.set_behaviours(endpoint, denied={})

    broken = workdir / "app-broken"
    if not broken.exists():
        import shutil

        shutil.copytree(workdir / "app", broken)
        (broken / "BROKEN").write_text("1")
    config = write_config(workdir, "classes", source="app-broken", deadline=600, name="b.yaml")
    code, document, _ = run(workdir, env, "release", "v3", config=config)
    assert code == 1
    assert "every target fails its health check" in document["error"]["message"]


def test_plan_shows_a_changed_service_template_resource_by_resource_and_writes_nothing_else(
    project, monkeypatch
):
    workdir, env = project
    planned = workdir / "planned"
    copy_project(planned)
    write_config(planned, "planned")
    assert run(workdir, env, "release", "v1", config="planned/deployer.yaml")[0] == 0
    code, same, _ = run(workdir, env, "plan", "v1", config="planned/deployer.yaml")
    assert code == 0 and {r["action"] for r in same["infra"]} == {"unchanged"}

    service = planned / "cloudformation" / "service.yaml"
    text = service.read_text().replace("no release is being tested", "idle")
    service.write_text(text.replace("no release is live yet", "nothing live"))
    monkeypatch.chdir(workdir)
    from deployer.cli.context import Context
    from deployer.ops.operations import plan

    engine = Context(Path("planned/deployer.yaml")).engine(start_sandbox=False)
    data = plan(engine, "v1")
    rows = {row["stack"]: row for row in data["infra"]}
    assert rows["ops-planned-network"]["action"] == "unchanged"
    assert rows["ops-planned-service"]["action"] == "update"
    assert {
        "resource": "TestListener",
        "type": "AWS::ElasticLoadBalancingV2::Listener",
        "action": "modify",
    } in rows["ops-planned-service"]["changes"]
    written = set(engine.runtime.aws.mutations)
    assert written == {"cloudformation.CreateChangeSet", "cloudformation.DeleteChangeSet"}

    code, shown, _ = run(workdir, env, "plan", "v1", config="planned/deployer.yaml")
    assert code == 0 and any(r["changes"] for r in shown["infra"])

    # The update rewrites both listeners' default actions; production's weights are deployer's
    # alone (its own rule), so v1 keeps all traffic through and after it.
    code, again, _ = run(workdir, env, "release", "v1", config="planned/deployer.yaml")
    assert code == 0 and again["outcome"] == "noop"
    assert served(again["url"], 20) == {"hello from v1"}
    code, after, _ = run(workdir, env, "plan", "v1", config="planned/deployer.yaml")
    assert {r["action"] for r in after["infra"]} == {"unchanged"}
