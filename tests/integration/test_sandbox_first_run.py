"""What a team meets on its first real run, reproduced by the sandbox (aws profile) so that a
test fails here where AWS would refuse: user data run as cloud-init runs it, EC2's default
quotas, termination protection, stack deletes that fail on what the stack does not own, and
STS's session limit. Each test fails on plain moto.

Everything goes through plain boto3 against the sandbox endpoint, as a user would.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from deployer.aws.poller import Poll, Poller
from deployer.bake.baker import user_data
from deployer.sandbox.layout import CREDENTIALS

pytestmark = pytest.mark.integration
BASE_AMI = "ami-0d27e0fb3bac4d724"
POLL = Poller(first_interval=0.1, max_interval=0.5)
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def aws(sandbox):
    _, state = sandbox

    def make(service, config=None):
        return boto3.client(
            service,
            region_name=state.region,
            endpoint_url=state.endpoint,
            config=config,
            **CREDENTIALS,
        )

    return make


def code(exc_info):
    return exc_info.value.response["Error"]["Code"]


def state_of(ec2, instance_id):
    found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return found["State"]["Name"], found.get("StateReason", {}).get("Code", "")


def wait_state(ec2, instance_id, wanted, deadline_s):
    def check():
        try:
            state, reason = state_of(ec2, instance_id)
        except ClientError as exc:  # a new id is not found for a moment, as on EC2
            return Poll(False, str(exc))
        return Poll(state == wanted, state, (state, reason))

    return POLL.until(f"{instance_id} to be {wanted}", check, deadline_s)


# ---- user data, as cloud-init runs it ----------------------------------------------------------


def launch(ec2, script, behaviour):
    return ec2.run_instances(
        ImageId=BASE_AMI,
        MinCount=1,
        MaxCount=1,
        UserData=script,
        InstanceInitiatedShutdownBehavior=behaviour,
    )["Instances"][0]["InstanceId"]


def test_a_shutdown_in_user_data_terminates_the_instance_after_its_scaled_minutes(aws):
    ec2 = aws("ec2")
    builder = launch(ec2, "#!/bin/sh\nshutdown -h +1 'deployer: time is up'\n", "terminate")
    wait_state(ec2, builder, "running", 30)
    assert state_of(ec2, builder)[0] == "running"  # not at once: after 1 minute, scaled
    state, reason = wait_state(ec2, builder, "terminated", 60)
    assert reason == "Client.InstanceInitiatedShutdown"


def test_without_terminate_behaviour_an_instance_that_shuts_down_is_stopped(aws):
    ec2 = aws("ec2")
    instance = launch(ec2, "#!/bin/sh\nshutdown -h now\n", "stop")
    assert wait_state(ec2, instance, "stopped", 60)[1] == "Client.InstanceInitiatedShutdown"


def test_a_user_data_script_that_does_not_parse_never_arms_its_timer(aws, sandbox):
    layout, _ = sandbox
    ec2 = aws("ec2")
    broken = "#!/bin/sh\nshutdown -h now 'the builder's time is up'\n"  # the old quoting bug
    instance = launch(ec2, broken, "terminate")
    wait_state(ec2, instance, "running", 30)
    output = layout.host_root(instance) / "var/log/cloud-init-output.log"
    ran = lambda: Poll(output.is_file() and output.stat().st_size > 0, "no output")  # noqa: E731
    POLL.until("the script to run", ran, 30)
    assert "Unterminated quoted string" in output.read_text()
    assert state_of(ec2, instance)[0] == "running"
    ec2.terminate_instances(InstanceIds=[instance])


def test_the_builders_own_user_data_arms_its_timer(aws, sandbox):
    layout, state = sandbox
    ec2 = aws("ec2")
    builder = launch(ec2, user_data(10), "terminate")
    wait_state(ec2, builder, "running", 30)
    planned = layout.host_dir(builder) / "shutdown.json"
    POLL.until("the timer", lambda: Poll(planned.is_file(), "not armed"), 30)
    ec2.terminate_instances(InstanceIds=[builder])
