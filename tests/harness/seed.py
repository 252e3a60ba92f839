#!/usr/bin/env python3
"""Seeds one customer's AWS account into a running moto (see moto_shim.py).

Creates, inside the customer account:
  - IAM role <role-name> trusting arn:aws:iam::<operator-account>:root on condition sts:ExternalId;
  - EKS cluster <cluster-name> and two nodegroups:
      managed-ng  tags crossguard.dev/managed=true, crossguard.dev/cluster=<cluster-name>; 3 x m5.large
      legacy-ng   no crossguard tags;                                                    2 x t3.large
  - one Auto Scaling group per nodegroup (named as moto reports it in the nodegroup's
    resources.autoScalingGroups) with a launch template and EKS's usual tags, all propagated
    to the instances moto launches for it;
  - one unrelated EC2 instance with no cluster tags.

Prints a JSON summary on stdout:
  {"account_id", "region", "role_arn", "external_id", "cluster", "cluster_arn", "cluster_endpoint",
   "nodegroups": {"managed-ng": {"asg", "asg_name_source", "instance_type", "launch_template",
                                 "managed", "nodegroup_arn", "instances": [...]}, ...},
   "unrelated_instances": [...]}

Works inside the customer account by assuming arn:aws:iam::<account-id>:role/<role-name> with the
caller's credentials (moto needs no existing role for that and maps the returned keys to that
account). Safe to run again against the same moto: existing resources are reused.

Usage:
  seed.py --endpoint http://127.0.0.1:PORT [--account-id 111111111111] [--region us-east-1]
          [--cluster-name prod] [--role-name crossguard-access] [--operator-account 123456789012]
          [--external-id ID]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

PLACEHOLDER_EXTERNAL_ID = "crossguard-seed-placeholder-external-id"
MANAGED_TAGS = {"crossguard.dev/managed": "true"}  # plus crossguard.dev/cluster=<cluster>
NODE_AMI = "ami-ekslinux"  # moto ships this one ("amazon-eks-node-linux")
KUBERNETES_VERSION = "1.31"


def nodegroup_specs(cluster: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "managed-ng",
            "instance_type": "m5.large",
            "size": 3,
            "extra_tags": {**MANAGED_TAGS, "crossguard.dev/cluster": cluster},
        },
        {"name": "legacy-ng", "instance_type": "t3.large", "size": 2, "extra_tags": {}},
    ]


def log(msg: str) -> None:
    print(f"seed: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="seed a customer AWS account into moto")
    p.add_argument("--endpoint", required=True, help="moto endpoint, e.g. http://127.0.0.1:5000")
    p.add_argument("--account-id", default="111111111111")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--cluster-name", default="prod")
    p.add_argument("--role-name", default="crossguard-access")
    p.add_argument("--operator-account", default="123456789012")
    p.add_argument("--external-id", default=None, help=f"default: {PLACEHOLDER_EXTERNAL_ID}")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    args = p.parse_args(argv)

    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import ClientError
    except ImportError as exc:
        print(f"seed: cannot import boto3 ({exc}); use <repo>/.venv/bin/python", file=sys.stderr)
        return 2

    say = (lambda _m: None) if args.quiet else log
    account, region, cluster = args.account_id, args.region, args.cluster_name
    external_id = args.external_id or PLACEHOLDER_EXTERNAL_ID
    role_arn = f"arn:aws:iam::{account}:role/{args.role_name}"

    cfg = Config(region_name=region, retries={"max_attempts": 3, "mode": "standard"})
    base = boto3.session.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN"),
        region_name=region,
    )
    try:
        creds = base.client("sts", endpoint_url=args.endpoint, config=cfg).assume_role(
            RoleArn=role_arn, RoleSessionName="crossguard-seed"
        )["Credentials"]
    except Exception as exc:
        print(f"seed: cannot reach moto at {args.endpoint} (AssumeRole failed: {exc})", file=sys.stderr)
        return 1
    sess = boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )
    iam = sess.client("iam", endpoint_url=args.endpoint, config=cfg)
    ec2 = sess.client("ec2", endpoint_url=args.endpoint, config=cfg)
    eks = sess.client("eks", endpoint_url=args.endpoint, config=cfg)
    asg = sess.client("autoscaling", endpoint_url=args.endpoint, config=cfg)

    who = sess.client("sts", endpoint_url=args.endpoint, config=cfg).get_caller_identity()
    if who["Account"] != account:
        print(f"seed: acting as {who['Arn']}, not inside account {account}", file=sys.stderr)
        return 1

    def code(exc: ClientError) -> str:
        return exc.response.get("Error", {}).get("Code", "")

    # --- IAM role ---------------------------------------------------------------
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{args.operator_account}:root"},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }
    try:
        iam.create_role(
            RoleName=args.role_name,
            AssumeRolePolicyDocument=json.dumps(trust),
            MaxSessionDuration=3600,
            Description="crossguard cross-account access (seeded for tests)",
        )
        say(f"created role {role_arn}")
    except ClientError as exc:
        if code(exc) != "EntityAlreadyExists":
            raise
        iam.update_assume_role_policy(RoleName=args.role_name, PolicyDocument=json.dumps(trust))
        say(f"role {role_arn} exists; trust policy updated")
    # Roles EKS itself would need; moto only stores the ARNs.
    cluster_role_arn = f"arn:aws:iam::{account}:role/{cluster}-eks-cluster-role"
    node_role_arn = f"arn:aws:iam::{account}:role/{cluster}-eks-node-role"

    # --- network: moto gives every account/region a default VPC with subnets ------
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        print("seed: moto created no default VPC in the account", file=sys.stderr)
        return 1
    vpc_id = vpcs[0]["VpcId"]
    subnets = sorted(
        (s for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]),
        key=lambda s: s["AvailabilityZone"],
    )[:3]
    subnet_ids = [s["SubnetId"] for s in subnets]

    # --- EKS cluster --------------------------------------------------------------
    try:
        c = eks.create_cluster(
            name=cluster,
            version=KUBERNETES_VERSION,
            roleArn=cluster_role_arn,
            resourcesVpcConfig={"subnetIds": subnet_ids, "endpointPublicAccess": True},
            tags={"env": cluster},
        )["cluster"]
        say(f"created EKS cluster {cluster}")
    except ClientError as exc:
        if code(exc) != "ResourceInUseException":
            raise
        c = eks.describe_cluster(name=cluster)["cluster"]
        say(f"EKS cluster {cluster} exists")

    def eks_tags(ng: str) -> dict[str, str]:
        """What EKS puts on a managed nodegroup's Auto Scaling group."""
        return {
            "eks:cluster-name": cluster,
            "eks:nodegroup-name": ng,
            f"kubernetes.io/cluster/{cluster}": "owned",
            f"k8s.io/cluster-autoscaler/{cluster}": "owned",
            "k8s.io/cluster-autoscaler/enabled": "true",
        }

    summary_ngs: dict[str, Any] = {}
    for spec in nodegroup_specs(cluster):
        ng = spec["name"]
        try:
            n = eks.create_nodegroup(
                clusterName=cluster,
                nodegroupName=ng,
                scalingConfig={"minSize": 1, "maxSize": spec["size"] * 2, "desiredSize": spec["size"]},
                subnets=subnet_ids,
                instanceTypes=[spec["instance_type"]],
                amiType="AL2023_x86_64_STANDARD",
                capacityType="ON_DEMAND",
                nodeRole=node_role_arn,
                labels={"nodegroup": ng},
                tags=spec["extra_tags"],
                version=KUBERNETES_VERSION,
            )["nodegroup"]
            say(f"created nodegroup {ng}")
        except ClientError as exc:
            if code(exc) != "ResourceInUseException":
                raise
            n = eks.describe_nodegroup(clusterName=cluster, nodegroupName=ng)["nodegroup"]
            say(f"nodegroup {ng} exists")

        reported = (n.get("resources") or {}).get("autoScalingGroups") or []
        if reported and reported[0].get("name"):
            asg_name, source = reported[0]["name"], "moto"
        else:
            asg_name, source = f"eks-{cluster}-{ng}", "generated"

        lt_name = f"eks-{cluster}-{ng}"
        try:
            ec2.create_launch_template(
                LaunchTemplateName=lt_name,
                LaunchTemplateData={
                    "ImageId": NODE_AMI,
                    "InstanceType": spec["instance_type"],
                    "TagSpecifications": [
                        {
                            "ResourceType": "instance",
                            "Tags": [{"Key": "Name", "Value": f"{cluster}-{ng}-node"}],
                        }
                    ],
                },
                TagSpecifications=[
                    {
                        "ResourceType": "launch-template",
                        "Tags": [{"Key": k, "Value": v} for k, v in eks_tags(ng).items()],
                    }
                ],
            )
        except ClientError as exc:
            if code(exc) not in ("InvalidLaunchTemplateName.AlreadyExistsException",):
                raise

        tags = {**eks_tags(ng), **spec["extra_tags"]}
        existing = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])["AutoScalingGroups"]
        if not existing:
            asg.create_auto_scaling_group(
                AutoScalingGroupName=asg_name,
                LaunchTemplate={"LaunchTemplateName": lt_name, "Version": "$Latest"},
                MinSize=0,
                MaxSize=spec["size"] * 2,
                DesiredCapacity=spec["size"],
                VPCZoneIdentifier=",".join(subnet_ids),
                Tags=[
                    {
                        "ResourceId": asg_name,
                        "ResourceType": "auto-scaling-group",
                        "Key": k,
                        "Value": v,
                        "PropagateAtLaunch": True,
                    }
                    for k, v in tags.items()
                ],
            )
            say(
                f"created Auto Scaling group {asg_name} ({source} name) with {spec['size']} x {spec['instance_type']}"
            )
        else:
            say(f"Auto Scaling group {asg_name} exists")

        group = None
        for _ in range(50):  # moto launches synchronously; this only guards against surprises
            group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])["AutoScalingGroups"][0]
            if len(group["Instances"]) >= spec["size"]:
                break
            time.sleep(0.1)
        instance_ids = sorted(i["InstanceId"] for i in group["Instances"])  # type: ignore[index]
        if len(instance_ids) != spec["size"]:
            print(
                f"seed: {asg_name} has {len(instance_ids)} instances, wanted {spec['size']}", file=sys.stderr
            )
            return 1
        summary_ngs[ng] = {
            "asg": asg_name,
            "asg_name_source": source,
            "instance_type": spec["instance_type"],
            "launch_template": lt_name,
            "managed": bool(spec["extra_tags"]),
            "nodegroup_arn": n["nodegroupArn"],
            "instances": instance_ids,
        }

    # --- an instance that belongs to no cluster ------------------------------------
    unrelated_name = f"crossguard-seed-unrelated-{cluster}"
    found = ec2.describe_instances(
        Filters=[
            {"Name": "tag:Name", "Values": [unrelated_name]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]},
        ]
    )["Reservations"]
    unrelated = sorted(i["InstanceId"] for r in found for i in r["Instances"])
    if not unrelated:
        r = ec2.run_instances(
            ImageId=NODE_AMI,
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet_ids[0],
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": "Name", "Value": unrelated_name}, {"Key": "team", "Value": "data"}],
                }
            ],
        )
        unrelated = sorted(i["InstanceId"] for i in r["Instances"])
        say(f"created unrelated instance {unrelated[0]}")

    summary = {
        "account_id": account,
        "region": region,
        "role_arn": role_arn,
        "external_id": external_id,
        "cluster": cluster,
        "cluster_arn": c["arn"],
        "cluster_endpoint": c.get("endpoint"),
        "nodegroups": summary_ngs,
        "unrelated_instances": unrelated,
    }
    print(json.dumps(summary, indent=2, sort_keys=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
