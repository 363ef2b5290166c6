"""How long AWS takes, per operation: the `aws` profile's latency model.

Every figure is in modelled seconds (the sandbox multiplies by DEPLOYER_SANDBOX_TIME_SCALE)
and carries its source. [D] AWS documentation, [M] a published measurement or log, [E] no
source found: a conservative engineering estimate. Typical values, not worst cases.

Sources cited below:
- GREMLIN: a CloudFormation event log of a VPC/NAT/IAM stack, us-west-2, 2018 (public repo
  GabeStah/gremlin-chaos-monkey); before AWS's 2024 change that made stack creation "up to
  40% faster" (aws.amazon.com/about-aws/whats-new/2024/03/aws-cloudformation-40-percent-
  faster-stack-creation/), so read as upper-typical.
- CDK: a CDK deploy log (ALB, listener, target group, security groups), ap-northeast-1.
- TF: Terraform "Creation complete after" / "Destruction complete after" lines in public repos
  (e.g. github.com/ltblueberry/tech-assignment-15112023 for the ALB: 2m19s-2m52s).
- DAEMONOLOGY: daemonology.net/blog/2021-08-12-EC2-boot-time-benchmarking.html
- BREVDEV: github.com/brevdev/ec2-coldboot-research docs/cold-baseline-results.md (AL2023, 2026)
- TG_HEALTH: docs.aws.amazon.com/elasticloadbalancing/latest/application/
  target-group-health-checks.html ("After your target is registered, it must pass one health
  check to be considered healthy")
- SNAPSHOT: repost.aws/knowledge-center/ebs-snapshot-ec2-ami-creation-slow and
  github.com/aws/aws-sdk-ruby/issues/978 ("about 3 minutes ... the snapshot is done")
- COPY: docs.aws.amazon.com/AWSEC2/latest/UserGuide/CopyingAMIs.html ("best-effort basis";
  first cross-region copies are full copies)
"""

from __future__ import annotations

STACK_OVERHEAD_S = 5.0  # [M] GREMLIN: 2 s before the first resource, 3 s after the last

# CloudFormation: seconds to create each resource type, once what it depends on exists.
CREATE_S: dict[str, float] = {
    "AWS::EC2::VPC": 18.0,  # [M] GREMLIN 16:28:45 -> 16:29:03
    "AWS::EC2::Subnet": 17.0,  # [M] GREMLIN 16:29:04 -> 16:29:21
    "AWS::EC2::InternetGateway": 17.0,  # [M] GREMLIN 16:28:45 -> 16:29:02
    "AWS::EC2::VPCGatewayAttachment": 16.0,  # [M] GREMLIN 16:29:05 -> 16:29:21
    "AWS::EC2::RouteTable": 2.0,  # [M] GREMLIN 16:29:04 -> 16:29:06
    "AWS::EC2::Route": 16.0,  # [M] GREMLIN 16:29:27 -> 16:29:43
    "AWS::EC2::SubnetRouteTableAssociation": 16.0,  # [M] GREMLIN 16:29:23 -> 16:29:39
    "AWS::EC2::NatGateway": 110.0,  # [M] GREMLIN 109 s; TF 1m25s-2m5s
    "AWS::EC2::EIP": 5.0,  # [E]
    "AWS::EC2::VPCEndpoint": 7.0,  # [M] TF aws_vpc_endpoint.s3 3-7 s
    "AWS::EC2::SecurityGroup": 6.0,  # [M] GREMLIN 16:29:04 -> 16:29:10; CDK 8 s
    "AWS::EC2::SecurityGroupIngress": 2.0,  # [E]
    "AWS::EC2::SecurityGroupEgress": 2.0,  # [E]
    "AWS::ElasticLoadBalancingV2::LoadBalancer": 150.0,  # [M] CDK 123 s; TF 139-172 s
    "AWS::ElasticLoadBalancingV2::Listener": 1.0,  # [M] CDK 16:10:46 -> 16:10:47
    "AWS::ElasticLoadBalancingV2::ListenerRule": 1.0,  # [E] like a listener
    "AWS::ElasticLoadBalancingV2::TargetGroup": 1.0,  # [M] CDK 16:08:32 -> 16:08:33
    "AWS::EC2::LaunchTemplate": 2.0,  # [E]
    # [E] anchored: TF (which waits for capacity) 15-47 s; without a CreationPolicy CFN marks
    # the group complete before instances bootstrap (ministryofjustice/bootstrap-cfn#30).
    "AWS::AutoScaling::AutoScalingGroup": 30.0,
    "AWS::AutoScaling::ScalingPolicy": 2.0,  # [E]
    "AWS::IAM::Role": 18.0,  # [M] GREMLIN 16:28:46 -> 16:29:03
    "AWS::IAM::Policy": 18.0,  # [E] like a role
    "AWS::IAM::InstanceProfile": 120.0,  # [M] GREMLIN 121 s; hashicorp/terraform#15341
    "AWS::CloudWatch::Alarm": 2.0,  # [E]
    "AWS::S3::Bucket": 3.0,  # [E]
}
DEFAULT_CREATE_S = 5.0  # [E] a resource type not listed above

DELETE_S: dict[str, float] = {
    "AWS::EC2::NatGateway": 55.0,  # [M] TF 37 s-1m19s
    "AWS::ElasticLoadBalancingV2::LoadBalancer": 30.0,  # [M] TF 5 s and 1m1s
    "AWS::EC2::InternetGateway": 10.0,  # [M] TF 1-10 s, longer while public IPs are released
    "AWS::EC2::VPCGatewayAttachment": 5.0,  # [E]
    # [E] the group terminates its instances first (shutting-down -> terminated: 45 s, [M] TF
    # aws_instance "Destruction complete after 44s" / "1m11s").
    "AWS::AutoScaling::AutoScalingGroup": 60.0,
    "AWS::ElasticLoadBalancingV2::TargetGroup": 1.0,  # [E]
    "AWS::IAM::InstanceProfile": 10.0,  # [E]
}
DEFAULT_DELETE_S = 3.0  # [E] most deletes take seconds

UPDATE_S: dict[str, float] = {
    "AWS::ElasticLoadBalancingV2::LoadBalancer": 10.0,  # [E] attribute changes
    "AWS::AutoScaling::AutoScalingGroup": 10.0,  # [E] without a rolling update policy
}
DEFAULT_UPDATE_S = 5.0  # [E]

# EC2 instances.
INSTANCE_PENDING_S = 8.0  # [M] DAEMONOLOGY 4.9 s (c5.xlarge); BREVDEV <= 17.8 s (AL2023)
BOOT_S = 15.0  # [M] BREVDEV: RunInstances -> SSH ready about 21 s, of which ~8 s pending

# Images.
DEFAULT_ROOT_GIB = 8.0
IMAGE_BASE_S = 60.0  # [E] anchored on SNAPSHOT: about 3 minutes for an 8 GiB first snapshot
IMAGE_PER_GIB_S = 15.0  # [E] same anchor: (180 - 60) / 8
COPY_IMAGE_BASE_S = 300.0  # [E] COPY gives no figure; a full first copy takes minutes
COPY_IMAGE_PER_GIB_S = 30.0  # [E]

# Load balancing.
# [D] TG_HEALTH: a registered target is `initial` (Elb.RegistrationInProgress, then
# Elb.InitialHealthChecking) until it passes its first check; [E] registration lag ~10 s.
TARGET_REGISTRATION_S = 10.0

# Run Command: [E] the SSM agent takes a sent command from its message channel within about a
# second (no published figure).
RUN_COMMAND_DELIVERY_S = 1.0


def create_seconds(resource_type: str) -> float:
    return CREATE_S.get(resource_type, DEFAULT_CREATE_S)


def delete_seconds(resource_type: str) -> float:
    return DELETE_S.get(resource_type, DEFAULT_DELETE_S)


def update_seconds(resource_type: str) -> float:
    return UPDATE_S.get(resource_type, DEFAULT_UPDATE_S)


def image_seconds(size_gib: float) -> float:
    return IMAGE_BASE_S + IMAGE_PER_GIB_S * size_gib


def copy_image_seconds(size_gib: float) -> float:
    return COPY_IMAGE_BASE_S + COPY_IMAGE_PER_GIB_S * size_gib
