"""Set up (or update) a role whose trust policy moto actually enforces, for tests of the
ExternalId check end to end.

moto evaluates trust policies and sts:ExternalId only for roles in the caller's own
account and only with auth enforcement on, so this creates, in the operator's account:
an IAM user `crossguard-operator` with an access key and a policy allowing sts:AssumeRole,
and a role `crossguard-selfhosted` trusting exactly that user with
sts:ExternalId = --external-id. Run it before enforcement is switched on (`setup`), or with
the admin key it printed (`update`).

    trust.py --endpoint URL setup --external-id ID   -> JSON with the user's and admin's keys
    trust.py --endpoint URL update --external-id ID --admin-key K --admin-secret S
"""
import argparse
import json
import sys

import boto3

ACCOUNT = "123456789012"
USER = "crossguard-operator"
ADMIN = "crossguard-test-admin"
ROLE = "crossguard-selfhosted"


def trust_policy(external_id):
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{USER}"},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
        }],
    })


def iam(endpoint, key="testing", secret="testing"):
    return boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)


def setup(args):
    client = iam(args.endpoint)
    out = {"role_arn": f"arn:aws:iam::{ACCOUNT}:role/{ROLE}", "account_id": ACCOUNT}
    for name, policy in [
        (USER, {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:GetCallerIdentity"], "Resource": "*"}),
        (ADMIN, {"Effect": "Allow", "Action": "*", "Resource": "*"}),
    ]:
        client.create_user(UserName=name)
        client.put_user_policy(UserName=name, PolicyName="test",
                               PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [policy]}))
        key = client.create_access_key(UserName=name)["AccessKey"]
        out[name] = {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    client.create_role(RoleName=ROLE, AssumeRolePolicyDocument=trust_policy(args.external_id), MaxSessionDuration=3600)
    client.put_role_policy(RoleName=ROLE, PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": "*"}],
    }))
    json.dump(out, sys.stdout)


def update(args):
    iam(args.endpoint, args.admin_key, args.admin_secret).update_assume_role_policy(
        RoleName=ROLE, PolicyDocument=trust_policy(args.external_id))
    json.dump({"updated": ROLE}, sys.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--external-id", required=True)
    p = sub.add_parser("update")
    p.add_argument("--external-id", required=True)
    p.add_argument("--admin-key", required=True)
    p.add_argument("--admin-secret", required=True)
    args = parser.parse_args()
    {"setup": setup, "update": update}[args.command](args)


if __name__ == "__main__":
    main()
