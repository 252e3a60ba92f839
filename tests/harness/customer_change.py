#!/usr/bin/env python3
"""Act inside a seeded customer account the way the customer (or AWS itself) would, for
end-to-end tests of the tag guard: change management tags between crossguard's plan and
its call, play EKS removing an instance after a nodegroup scale-in, and report state.

  customer_change.py --endpoint URL [--account-id ID] [--region R] [--role-name N] COMMAND
    untag-asg NAME KEY...                  remove tags from an Auto Scaling group
    tag-asg NAME KEY=VALUE...              set tags on an Auto Scaling group
    untag-nodegroup CLUSTER NAME KEY...    remove tags from an EKS nodegroup (through the shim's
                                           /_crossguard/nodegroup-tags: moto cannot untag nodegroups)
    terminate-instance ID                  terminate an instance and detach it from its group
    sync-nodegroup CLUSTER NAME            set the nodegroup's desired size to its group's, as EKS
                                           does when the group changes (moto does not)
    state CLUSTER                          JSON: nodegroups, groups and instances as AWS has them
    iam-user NAME [KEY=VALUE...]           create (or re-tag) an IAM user
    access-key USER [AGE_DAYS]             create an access key, back-date its CreateDate by AGE_DAYS
                                           (through the shim's /_crossguard/backdate-access-key)
                                           and print its id; the secret is thrown away
    key-status USER KEY_ID Active|Inactive set a key's status (the customer re-enabling a key)
    keys                                   JSON: every user's keys {user: {key id: status}}
    attach-policy NAME JSON                create a customer managed policy NAME with document JSON and
                                           attach it to the role (a customer's own guardrail policy)
    deploy-template FILE                   play the customer deploying `crossguard onboarding-template`:
                                           the role's trust policy, MaxSessionDuration and inline
                                           policies become the template's (Fn::Sub, Ref resolved)

Runs with the venv's python (boto3 from moto[server]).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request


def shim_control(a: argparse.Namespace, control: str, change: dict) -> None:
    """POST one of the shim's /_crossguard/ controls, for this account."""
    body = json.dumps({"account_id": a.account_id, **change}).encode()
    req = urllib.request.Request(f"{a.endpoint}/_crossguard/{control}", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def shim_nodegroup(a: argparse.Namespace, cluster: str, nodegroup: str, change: dict) -> None:
    """Change a nodegroup through the shim's control (moto's API cannot)."""
    shim_control(a, "nodegroup-tags", {"region": a.region, "cluster": cluster, "nodegroup": nodegroup, **change})


def shim_backdate(a: argparse.Namespace, user: str, key_id: str, days: int) -> None:
    """Set a key's CreateDate to now - days (moto has no API for it)."""
    shim_control(a, "backdate-access-key", {"user_name": user, "access_key_id": key_id, "days": days})


def resolve(value, params: dict):
    """Resolve the intrinsic functions crossguard's templates use: Ref and Fn::Sub."""
    if isinstance(value, list):
        return [resolve(v, params) for v in value]
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return params[value["Ref"]]
        if set(value) == {"Fn::Sub"}:
            text = value["Fn::Sub"]
            for k, v in params.items():
                text = text.replace("${" + k + "}", str(v))
            return text
        return {k: resolve(v, params) for k, v in value.items()}
    return value


def deploy_template(iam, a: argparse.Namespace, path: str) -> None:
    template = json.load(open(path))
    params = {"AWS::Partition": "aws", "AWS::AccountId": a.account_id, "AWS::Region": a.region}
    for name, p in template.get("Parameters", {}).items():
        if "Default" in p:
            params[name] = p["Default"]
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    if len(roles) != 1:
        raise SystemExit(f"expected one AWS::IAM::Role in {path}, found {len(roles)}")
    props = resolve(roles[0]["Properties"], params)
    name = props.get("RoleName", a.role_name)
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))
    iam.update_role(RoleName=name, MaxSessionDuration=int(props.get("MaxSessionDuration", 3600)))
    for old in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=old)
    for policy in props.get("Policies", []):
        iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"],
                            PolicyDocument=json.dumps(policy["PolicyDocument"]))
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
    for arn in props.get("ManagedPolicyArns", []):
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--account-id", default="111111111111")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--role-name", default="crossguard-access")
    p.add_argument("command")
    p.add_argument("args", nargs="*")
    a = p.parse_args(argv)

    import boto3

    base = boto3.session.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        region_name=a.region,
    )
    creds = base.client("sts", endpoint_url=a.endpoint).assume_role(
        RoleArn=f"arn:aws:iam::{a.account_id}:role/{a.role_name}", RoleSessionName="customer-change"
    )["Credentials"]
    if os.environ.get("CROSSGUARD_HARNESS_KEYS_FILE"):
        # Tests tell the harness's calls from the operator's by this session's key id.
        with open(os.environ["CROSSGUARD_HARNESS_KEYS_FILE"], "a") as f:
            f.write(creds["AccessKeyId"] + "\n")
    sess = boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=a.region,
    )
    asg = sess.client("autoscaling", endpoint_url=a.endpoint)
    eks = sess.client("eks", endpoint_url=a.endpoint)
    ec2 = sess.client("ec2", endpoint_url=a.endpoint)
    iam = sess.client("iam", endpoint_url=a.endpoint)

    cmd, args = a.command, a.args
    if cmd == "untag-asg" and len(args) >= 2:
        asg.delete_tags(
            Tags=[{"ResourceId": args[0], "ResourceType": "auto-scaling-group", "Key": k} for k in args[1:]]
        )
    elif cmd == "tag-asg" and len(args) >= 2:
        tags = []
        for kv in args[1:]:
            k, _, v = kv.partition("=")
            tags.append(
                {"ResourceId": args[0], "ResourceType": "auto-scaling-group", "Key": k, "Value": v,
                 "PropagateAtLaunch": True}
            )
        asg.create_or_update_tags(Tags=tags)
    elif cmd == "untag-nodegroup" and len(args) >= 3:
        shim_nodegroup(a, args[0], args[1], {"remove": args[2:]})
    elif cmd == "sync-nodegroup" and len(args) == 2:
        ng = eks.describe_nodegroup(clusterName=args[0], nodegroupName=args[1])["nodegroup"]
        names = [g["name"] for g in ng.get("resources", {}).get("autoScalingGroups", [])]
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=names)["AutoScalingGroups"][0]
        shim_nodegroup(a, args[0], args[1], {"desired_size": group["DesiredCapacity"]})
    elif cmd == "terminate-instance" and len(args) == 1:
        groups = asg.describe_auto_scaling_instances(InstanceIds=args)["AutoScalingInstances"]
        if groups:
            asg.detach_instances(
                InstanceIds=args,
                AutoScalingGroupName=groups[0]["AutoScalingGroupName"],
                ShouldDecrementDesiredCapacity=True,
            )
        ec2.terminate_instances(InstanceIds=args)
    elif cmd == "state" and len(args) == 1:
        cluster = args[0]
        out: dict = {"nodegroups": {}, "groups": {}, "instances": {}}
        for name in eks.list_nodegroups(clusterName=cluster)["nodegroups"]:
            ng = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
            out["nodegroups"][name] = {"scaling": ng.get("scalingConfig", {}), "tags": ng.get("tags", {})}
            names = [g["name"] for g in ng.get("resources", {}).get("autoScalingGroups", [])]
            for g in asg.describe_auto_scaling_groups(AutoScalingGroupNames=names)["AutoScalingGroups"] if names else []:
                out["groups"][g["AutoScalingGroupName"]] = {
                    "desired": g["DesiredCapacity"],
                    "min": g["MinSize"],
                    "instances": sorted(i["InstanceId"] for i in g.get("Instances", [])),
                    "tags": {t["Key"]: t["Value"] for t in g.get("Tags", [])},
                }
        for r in ec2.describe_instances()["Reservations"]:
            for i in r["Instances"]:
                out["instances"][i["InstanceId"]] = i["State"]["Name"]
        print(json.dumps(out, sort_keys=True))
    elif cmd == "iam-user" and len(args) >= 1:
        tags = [{"Key": k, "Value": v} for k, _, v in (kv.partition("=") for kv in args[1:])]
        try:
            iam.create_user(UserName=args[0], Tags=tags)
        except iam.exceptions.EntityAlreadyExistsException:
            if tags:
                iam.tag_user(UserName=args[0], Tags=tags)
    elif cmd == "access-key" and len(args) in (1, 2):
        key_id = iam.create_access_key(UserName=args[0])["AccessKey"]["AccessKeyId"]
        if len(args) == 2:
            shim_backdate(a, args[0], key_id, int(args[1]))
        print(key_id)
    elif cmd == "key-status" and len(args) == 3:
        iam.update_access_key(UserName=args[0], AccessKeyId=args[1], Status=args[2])
    elif cmd == "keys" and not args:
        out = {}
        for page in iam.get_paginator("list_users").paginate():
            for u in page["Users"]:
                keys = iam.list_access_keys(UserName=u["UserName"])["AccessKeyMetadata"]
                out[u["UserName"]] = {k["AccessKeyId"]: k["Status"] for k in keys}
        print(json.dumps(out, sort_keys=True))
    elif cmd == "attach-policy" and len(args) == 2:
        arn = iam.create_policy(PolicyName=args[0], PolicyDocument=args[1])["Policy"]["Arn"]
        iam.attach_role_policy(RoleName=a.role_name, PolicyArn=arn)
        print(arn)
    elif cmd == "deploy-template" and len(args) == 1:
        deploy_template(iam, a, args[0])
    else:
        p.print_usage(sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
