#!/usr/bin/env bash
# The whole crossguard flow on a laptop, with no cluster and no AWS:
#   fake API server (management cluster) + moto (AWS, one seeded customer account)
#   -> CRDs and example CRs applied with kubectl (the account without a role) -> the
#   operator binary -> ExternalId and AwaitingCustomerRole -> the customer's template ->
#   the customer deploys it -> crossguard onboarding-complete from the stack's outputs
#   -> wait until CustomerAccount and ManagedCluster are Ready -> show them.
# Everything it starts is stopped on exit; logs and state stay in <repo>/.demo/.
# Run via `make demo` (builds first), or directly after `make tools build`.
#
#   scripts/demo.sh            run the demo, exit 0 if both resources became Ready
#   DEMO_KEEP=1 scripts/demo.sh  same, then keep everything running until Ctrl-C
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/crossguard-target}
venv=${CROSSGUARD_VENV:-$repo/.venv}
export PATH="$repo/.tools/bin:$PATH"
demo=$repo/.demo
namespace=acme
ready_timeout=${DEMO_READY_TIMEOUT:-90}
# The operator's own role, which the customer's trust policy should name.
operator_principal=arn:aws:iam::123456789012:role/crossguard-operator

if [[ -t 1 ]]; then
  say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
else
  say() { printf 'demo: %s\n' "$*"; }
fi
fail() {
  echo "demo: FAILED: $*" >&2
  for log in operator fake-apiserver moto receiver; do
    if [[ -s $demo/$log.log ]]; then
      echo "----- last lines of .demo/$log.log -----" >&2
      tail -n "$([[ $log == operator ]] && echo 60 || echo 20)" "$demo/$log.log" >&2
    fi
  done
  exit 1
}

# --- prerequisites -------------------------------------------------------------
fake_apiserver=$CARGO_TARGET_DIR/debug/fake-apiserver
operator=$CARGO_TARGET_DIR/debug/crossguard
python=$venv/bin/python
[[ -x $fake_apiserver ]] || fail "$fake_apiserver not built (run: make build)"
[[ -x $operator ]] || fail "$operator not built (run: make build)"
[[ -x $python ]] || fail "$python missing (run: make tools)"
[[ -x $repo/.tools/bin/kubectl ]] || fail "$repo/.tools/bin/kubectl missing (run: make tools)"
[[ -d $repo/crds ]] || fail "no crds/ directory (run: make crds)"
[[ -f $repo/examples/customeraccount.yaml && -f $repo/examples/managedcluster.yaml ]] \
  || fail "examples/customeraccount.yaml and examples/managedcluster.yaml are needed"

# --- a fresh .demo/ ------------------------------------------------------------
for f in "$demo"/*.pid; do # leftovers of a demo that was killed hard
  [[ -f $f ]] || continue
  pid=$(cat "$f")
  # only if that pid still runs one of ours (pids get reused)
  if [[ -n $pid ]] && grep -qaE 'crossguard|moto_shim|fake-apiserver|receiver.py' "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
  fi
done
rm -rf "$demo"
mkdir -p "$demo"
kubeconfig=$demo/kubeconfig
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }

pids=()
fake_apiserver_pid='' moto_pid='' operator_pid='' receiver_pid=''
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -f "$demo"/*.pid
  ((${#pids[@]})) && say "stopped everything it started (logs in .demo/)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD... : runs CMD in the background, output to .demo/NAME.log
start() {
  local name=$1; shift
  "$@" >"$demo/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  echo "$pid" >"$demo/$name.pid"
  eval "${name//-/_}_pid=$pid"
}
alive() { kill -0 "$1" 2>/dev/null; }

# --- fake API server -----------------------------------------------------------
# The dashboard's viewer: the token the fake's TokenReview accepts and what its
# SubjectAccessReview allows (on a real cluster: a ServiceAccount, a Role, `kubectl create
# token`; the fake has no TokenRequest API).
viewer_token=demo-viewer-$RANDOM$RANDOM
printf '%s\n' "$viewer_token" >"$demo/viewer-token"
cat >"$demo/reviews.yaml" <<YAML
tokens:
  - {token: "$viewer_token", username: "system:serviceaccount:acme:dashboard-viewer", groups: ["system:serviceaccounts", "system:authenticated"]}
grants:
  - {subject: "system:serviceaccount:acme:dashboard-viewer", namespace: acme, verbs: [get, list, watch], apiGroup: crossguard.dev, resources: [managedclusters, customeraccounts]}
YAML
start fake-apiserver "$fake_apiserver" --listen 127.0.0.1:0 --kubeconfig "$kubeconfig" --reviews "$demo/reviews.yaml"
api_url=
for _ in $(seq 300); do
  alive "$fake_apiserver_pid" || fail "fake-apiserver exited early"
  line=$(grep -m1 -i 'listening on' "$demo/fake-apiserver.log" 2>/dev/null || true)
  if [[ -n $line && -s $kubeconfig ]]; then
    api_url=$(sed -E 's/.*[Ll]istening on[: ]*//; s/[[:space:]].*//' <<<"$line")
    break
  fi
  sleep 0.1
done
[[ -n $api_url ]] || fail "fake-apiserver did not say 'listening on' within 30s"
say "fake API server at $api_url (kubeconfig .demo/kubeconfig)"

# --- moto ----------------------------------------------------------------------
start moto "$python" "$repo/tests/harness/moto_shim.py" --port 0 --port-file "$demo/moto.port" --exit-with-parent
for _ in $(seq 300); do
  alive "$moto_pid" || fail "moto shim exited early"
  [[ -s $demo/moto.port ]] && break
  sleep 0.1
done
[[ -s $demo/moto.port ]] || fail "moto shim did not start within 30s"
moto_port=$(cat "$demo/moto.port")
moto_url=http://127.0.0.1:$moto_port
say "moto at $moto_url"

# --- a local stand-in for Slack (the key-audit messages land here) ---------------
start receiver "$python" "$repo/tests/harness/receiver.py" --port 0 --port-file "$demo/receiver.port" \
  --log "$demo/receiver.jsonl" --exit-with-parent
for _ in $(seq 300); do
  alive "$receiver_pid" || fail "receiver.py exited early"
  [[ -s $demo/receiver.port ]] && break
  sleep 0.1
done
[[ -s $demo/receiver.port ]] || fail "receiver.py did not start within 30s"
receiver_url=http://127.0.0.1:$(cat "$demo/receiver.port")
say "Slack stand-in at $receiver_url (messages in .demo/receiver.jsonl)"

if ! "$python" "$repo/tests/harness/seed.py" --endpoint "$moto_url" >"$demo/seed.json" 2>"$demo/seed.log"; then
  cat "$demo/seed.log" >&2
  fail "seeding moto failed"
fi
summary=$("$python" -c '
import json, sys
s = json.load(open(sys.argv[1]))
ngs = ", ".join("%s (%d nodes)" % (n, len(g["instances"])) for n, g in s["nodegroups"].items())
print("account %s, role %s, cluster %s: %s" % (s["account_id"], s["role_arn"], s["cluster"], ngs))
' "$demo/seed.json") || fail "seed.py printed no usable summary"
say "seeded $summary"

# --- the customer's EKS cluster ------------------------------------------------
# moto's EKS endpoints are not real servers, so a second fake API server plays the
# customer's cluster: one Node per seeded instance plus examples/customer-cluster/.
"$python" - "$demo/seed.json" "$repo/examples/customer-cluster/workloads.yaml" >"$demo/customer-seed.json" <<'PY' \
  || fail "could not build the customer cluster's objects"
import json, sys
seed = json.load(open(sys.argv[1]))
docs = [sys.argv[2]]
items, nodes = [], []
for ng, group in seed["nodegroups"].items():
    for iid in group["instances"]:
        name = "ip-%s.ec2.internal" % iid
        nodes.append(name)
        items.append({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {
                "node.kubernetes.io/instance-type": group["instance_type"],
                "eks.amazonaws.com/nodegroup": ng,
                "topology.kubernetes.io/region": seed["region"],
                "topology.kubernetes.io/zone": seed["region"] + "a",
                "kubernetes.io/hostname": name}},
            "spec": {"providerID": "aws:///%sa/%s" % (seed["region"], iid)},
            "status": {"allocatable": {"cpu": "1930m", "memory": "7Gi", "pods": "29"}}})
items.append({"apiVersion": "apps/v1", "kind": "ReplicaSet",
    "metadata": {"name": "web-5d4f", "namespace": "shop", "uid": "demo-rs-web",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "demo-dep-web", "controller": True}]},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}})
for i, node in enumerate(nodes):
    if i < 3:
        items.append({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-5d4f-%d" % i, "namespace": "shop", "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f", "uid": "demo-rs-web", "controller": True}]},
            "spec": {"nodeName": node, "containers": [{"name": "web", "image": "nginx:1.27",
                "env": [{"name": "DB_PASSWORD", "value": "demo-planted-secret"}],
                "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}}}]},
            "status": {"phase": "Running"}})
    items.append({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "node-agent-%d" % i, "namespace": "kube-system",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "node-agent", "uid": "demo-ds", "controller": True}]},
        "spec": {"nodeName": node, "containers": [{"name": "agent", "image": "agent:1",
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}]},
        "status": {"phase": "Running"}})
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
start customer-cluster "$fake_apiserver" --listen 127.0.0.1:0 \
  --seed "$repo/examples/customer-cluster/workloads.yaml" --seed "$demo/customer-seed.json" --request-log "$demo/customer-requests.jsonl" \
  --kubeconfig "$demo/customer.kubeconfig"
customer_url=
for _ in $(seq 300); do
  alive "$customer_cluster_pid" || fail "the customer cluster's fake-apiserver exited early"
  line=$(grep -m1 -i 'listening on' "$demo/customer-cluster.log" 2>/dev/null || true)
  if [[ -n $line && -s $demo/customer.kubeconfig ]]; then customer_url=$(sed -E 's/.*[Ll]istening on[: ]*//; s/[[:space:]].*//' <<<"$line"); break; fi
  sleep 0.1
done
[[ -n $customer_url ]] || fail "the customer cluster's fake-apiserver did not start"
say "customer cluster at $customer_url"

# --- CRDs and example resources ------------------------------------------------
kc apply --validate=false -f "$repo/crds/" >"$demo/kubectl.log" 2>&1 \
  || { cat "$demo/kubectl.log" >&2; fail "kubectl apply -f crds/ failed"; }
kc apply --validate=false -f - >>"$demo/kubectl.log" 2>&1 <<EOF || { cat "$demo/kubectl.log" >&2; fail "creating namespace $namespace failed"; }
apiVersion: v1
kind: Namespace
metadata:
  name: $namespace
EOF
applied=
for _ in $(seq 30); do # the new resource types may take a moment to be served
  if kc apply --validate=false -f "$repo/examples/" >>"$demo/kubectl.log" 2>&1; then applied=1; break; fi
  sleep 0.5
done
[[ -n $applied ]] || { tail -n 20 "$demo/kubectl.log" >&2; fail "kubectl apply -f examples/ failed"; }
kc patch managedcluster acme-prod -n "$namespace" --type merge \
  -p "{\"spec\":{\"apiEndpoint\":{\"url\":\"$customer_url\"}}}" >>"$demo/kubectl.log" 2>&1 \
  || { tail -n 5 "$demo/kubectl.log" >&2; fail "pointing acme-prod at the customer cluster failed"; }
say "applied crds/ and examples/ (acme-prod reads the customer cluster at $customer_url)"

# --- the operator --------------------------------------------------------------
# DEMO_OPERATOR_ROOTFS (set by scripts/image.sh --smoke): start the operator from the
# container image's root filesystem instead (chroot, as the image's user), with its
# kubeconfig and store inside that filesystem.
rootfs=${DEMO_OPERATOR_ROOTFS:-}
if [[ -n $rootfs ]]; then
  cp "$kubeconfig" "$rootfs/tmp/kubeconfig"
  chmod 0644 "$rootfs/tmp/kubeconfig"
  operator_kubeconfig=/tmp/kubeconfig
  store_url=file:///var/lib/crossguard
  store_dir=$rootfs/var/lib/crossguard
  # In a cluster the chart mounts a volume here, writable through fsGroup 65532.
  chown "${DEMO_OPERATOR_USER:-65532:65532}" "$store_dir"
  run_operator=(chroot --userspec="${DEMO_OPERATOR_USER:-65532:65532}" "$rootfs" "${DEMO_OPERATOR_ENTRYPOINT:-/usr/local/bin/crossguard}")
else
  operator_kubeconfig=$kubeconfig
  store_url=file://$demo/store
  store_dir=$demo/store
  run_operator=("$operator")
fi
(
  cd "$demo"
  export KUBECONFIG=$operator_kubeconfig AWS_ENDPOINT_URL=$moto_url AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing RUST_LOG=${RUST_LOG:-info} \
    CROSSGUARD_STORE_URL="$store_url" CROSSGUARD_SLACK_API_URL="$receiver_url/api" \
    CROSSGUARD_OPERATOR_PRINCIPAL="$operator_principal"
  unset AWS_SESSION_TOKEN AWS_PROFILE
  exec "${run_operator[@]}" run --http-addr 127.0.0.1:0
) >"$demo/operator.log" 2>&1 &
operator_pid=$!
pids+=("$operator_pid")
echo "$operator_pid" >"$demo/operator.pid"
say "operator started (log .demo/operator.log)"

# --- onboarding, account first (docs/onboarding-flow.md) -------------------------
# examples/customeraccount.yaml has no roleArn: the account gets its ExternalId and waits
# for the customer's role (Ready=False, AwaitingCustomerRole) without calling AWS.
deadline=$((SECONDS + ready_timeout))
awaiting=
while ((SECONDS < deadline)); do
  alive "$operator_pid" || fail "the operator exited"
  reason=$(kc get customeraccount acme -n "$namespace" -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}' 2>/dev/null || true)
  external_id=$(kc get customeraccount acme -n "$namespace" -o jsonpath='{.status.externalId}' 2>/dev/null || true)
  if [[ $reason == AwaitingCustomerRole && -n $external_id ]]; then awaiting=1; break; fi
  sleep 1
done
[[ -n $awaiting ]] || fail "CustomerAccount/acme did not get its ExternalId and AwaitingCustomerRole within ${ready_timeout}s"
say "onboarding 1/4: CustomerAccount acme applied without a role: ExternalId issued, waiting for the customer's role"
kc get customeraccounts -n "$namespace"
# --from reads the account id, regions, mode, clusters and ExternalId from the CustomerAccount.
KUBECONFIG=$kubeconfig "$operator" onboarding-template --from customeraccount/acme -n "$namespace" \
  --operator-principal "$operator_principal" >"$demo/customer-template.json" \
  || fail "onboarding-template --from customeraccount/acme failed"
grep -q "$external_id" "$demo/customer-template.json" \
  || fail "the template does not carry the account's ExternalId"
say "onboarding 2/4: crossguard onboarding-template --from customeraccount/acme -n $namespace: the customer's template, for this account and ExternalId: .demo/customer-template.json"
# The customer deploys it: the seeded role now requires this account's ExternalId, and
# the stack's outputs come back as `aws cloudformation describe-stacks --query
# 'Stacks[0].Outputs' --output json` prints them.
if ! "$python" "$repo/tests/harness/seed.py" --endpoint "$moto_url" --external-id "$external_id" \
  >"$demo/seed-role.json" 2>>"$demo/seed.log"; then
  tail -n 20 "$demo/seed.log" >&2
  fail "deploying the customer's role (seed.py --external-id) failed"
fi
"$python" - "$demo/seed-role.json" >"$demo/stack-outputs.json" <<'PY' || fail "writing the stack outputs failed"
import json, sys
role = json.load(open(sys.argv[1]))["role_arn"]
print(json.dumps([{"OutputKey": "RoleArn", "OutputValue": role,
                   "Description": "Put this ARN in the CustomerAccount's spec.roleArn"}], indent=2))
PY
say "onboarding 3/4: the customer deployed the role and handed back its outputs: .demo/stack-outputs.json"
KUBECONFIG=$kubeconfig "$operator" onboarding-complete customeraccount/acme -n "$namespace" \
  --stack-outputs "$demo/stack-outputs.json" || fail "crossguard onboarding-complete failed"
say "onboarding 4/4: crossguard onboarding-complete set spec.roleArn; waiting up to ${ready_timeout}s for Ready"

deadline=$((SECONDS + ready_timeout))
ready=
while ((SECONDS < deadline)); do
  alive "$operator_pid" || fail "the operator exited"
  if kc wait --for=condition=Ready --timeout=5s customeraccounts/acme managedclusters/acme-prod \
    -n "$namespace" >"$demo/wait.log" 2>&1; then
    ready=1
    break
  fi
  sleep 1
done
if [[ -z $ready ]]; then
  cat "$demo/wait.log" >&2 || true
  kc get customeraccounts,managedclusters -n "$namespace" -o yaml >"$demo/resources.yaml" 2>&1 || true
  fail "CustomerAccount/acme and ManagedCluster/acme-prod not Ready within ${ready_timeout}s (see .demo/resources.yaml)"
fi

say "both resources are Ready"
echo
kc get customeraccounts,managedclusters -n "$namespace"
echo
kc describe managedcluster acme-prod -n "$namespace"
echo
report=$(kc get managedcluster acme-prod -n "$namespace" -o jsonpath='{.status.reportRef}')
say "stored report: $report"
say "what is stored for the tenant:"
(cd "$store_dir" && find . -type f | sort | sed 's#^\./#  #')
if grep -rq demo-planted-secret "$store_dir"; then
  fail "a planted workload secret reached the store"
fi
say "the planted workload secret (demo-planted-secret) appears nowhere in the store"
# Everything under tenants/ is sealed with the tenant's data key (docs/data-protection.md).
report_file=$store_dir/${report#"$store_url"/}
[[ $(head -c 4 "$report_file") == CGSE ]] || fail "the stored report is not encrypted"
if grep -rqa currentMonthlyCost "$store_dir/tenants"; then
  fail "a stored object under tenants/ is plaintext"
fi
say "stored objects are ciphertext: $(head -c 4 "$report_file") header, no report field readable in the files"
report_plain=$demo/report.json
(
  cd "$demo"
  KUBECONFIG=$kubeconfig CROSSGUARD_STORE_URL="file://$store_dir" "$operator" store-get "${report#"$store_url"/}"
) >"$report_plain" || fail "crossguard store-get could not decrypt the stored report"
summary=$("$python" -c 'import json, sys; r = json.load(open(sys.argv[1])); print("$%.2f a month, $%.2f could be saved" % (r["currentMonthlyCost"], r["savings"]["total"]))' "$report_plain") \
  || fail "the report crossguard store-get printed is not the report"
say "read through crossguard store-get (decrypted with the tenant's key): $summary"
say "  (KUBECONFIG=.demo/kubeconfig CROSSGUARD_STORE_URL=file://.demo/store crossguard store-get \"\$(kubectl get mc acme-prod -n acme -o jsonpath='{.status.reportRef}')\")"
if grep -q '"/api/v1/secrets\|/secrets"\|/configmaps' "$demo/customer-requests.jsonl"; then
  fail "crossguard read Secrets or ConfigMaps of the customer cluster"
fi
say "requests to the customer cluster: $(wc -l <"$demo/customer-requests.jsonl") lists, none of Secrets or ConfigMaps"

# --- the same analysis offline, on a kubectl-style dump --------------------------
echo
say "offline: the customer dumps their cluster (kubectl get … -A -o json > .demo/customer-dump.json) and runs crossguard analyze on it (no AWS inventory)"
kubectl --kubeconfig "$demo/customer.kubeconfig" get nodes,pods,deployments,replicasets,statefulsets,daemonsets,jobs,cronjobs,pdb \
  -A -o json >"$demo/customer-dump.json" || fail "kubectl could not dump the customer cluster"
"$operator" analyze "$demo/customer-dump.json" >"$demo/analyze.txt" 2>"$demo/analyze.log" \
  || { cat "$demo/analyze.log" >&2; fail "crossguard analyze failed"; }
sed 's/^/  /' "$demo/analyze.log"
cat "$demo/analyze.txt"
if ! grep -q demo-planted-secret "$demo/customer-dump.json"; then
  fail "the dump should carry the planted secret (in env vars) for the check below to mean anything"
fi
if grep -q demo-planted-secret "$demo/analyze.txt" "$demo/analyze.log"; then
  fail "the planted workload secret reached crossguard analyze's output"
fi
say "the planted secret (in the dump's env vars) appears nowhere in the offline analysis"
# The dump alone lacks what only AWS knows (nodegroup minimum sizes above all), so its
# figures differ from the operator's; the report says so. Given the AWS inventory the
# operator stored in its report, the same objects give the operator's figures.
report_file=$report_plain
say "offline with the operator's AWS inventory: crossguard analyze .demo/customer-dump.json --inventory <stored report>"
"$operator" analyze "$demo/customer-dump.json" --inventory "$report_file" -o json \
  >"$demo/analyze-inventory.json" 2>"$demo/analyze.log" \
  || { cat "$demo/analyze.log" >&2; fail "crossguard analyze --inventory failed"; }
agreement=$("$python" - "$report_file" "$demo/analyze-inventory.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
fields = ("currentMonthlyCost", "optimizedMonthlyCost", "savings", "unpricedNodes")
diff = [f for f in fields if a[f] != b[f]]
print("differ: " + ", ".join(f"{f} {a[f]} vs {b[f]}" for f in diff) if diff else
      f"same figures: ${a['currentMonthlyCost']:.2f} a month, ${a['savings']['total']:.2f} could be saved")
PY
)
[[ $agreement == same* ]] || fail "the operator's report and crossguard analyze with its inventory disagree ($agreement)"
say "operator and offline analysis agree: $agreement"

# --- automation: a dry run first, then a guarded scale-in -----------------------
mutating_calls() {
  "$python" - "$moto_url" <<'PY'
import json, sys, urllib.request
calls = json.load(urllib.request.urlopen(sys.argv[1] + "/_crossguard/calls"))
print(sum(c["action"] in ("TerminateInstanceInAutoScalingGroup", "UpdateNodegroupConfig") for c in calls))
PY
}
wait_jsonpath() { # what, jsonpath, expected substring
  local deadline=$((SECONDS + ready_timeout)) got=
  while ((SECONDS < deadline)); do
    alive "$operator_pid" || fail "the operator exited"
    got=$(kc get managedcluster acme-prod -n "$namespace" -o jsonpath="$2" 2>/dev/null || true)
    [[ $got == *"$3"* ]] && return 0
    sleep 1
  done
  fail "$1 did not happen within ${ready_timeout}s (last: $got)"
}
echo
say "automation: account and cluster to Automated; automation.dryRun stays true (the default)"
kc patch customeraccount acme -n "$namespace" --type merge -p '{"spec":{"mode":"Automated"}}' >>"$demo/kubectl.log" 2>&1 \
  || fail "switching the account to Automated failed"
kc patch managedcluster acme-prod -n "$namespace" --type merge -p \
  '{"spec":{"mode":"Automated","automation":{"dryRun":true,"disruptionBudget":{"maxNodesPerRun":1,"maxNodesPerHour":3,"minNodeAge":"1h"}}}}' \
  >>"$demo/kubectl.log" 2>&1 || fail "switching the cluster to Automated failed"
wait_jsonpath "the dry run" '{.status.conditions[?(@.type=="Automation")].reason}' DryRun
kc get managedcluster acme-prod -n "$namespace" \
  -o jsonpath='{range .status.recentActions[*]}  planned: {.action} on {.target} (node {.node}){"\n"}{end}{range .status.refusals[*]}  refused: {.action} on {.target}: {.reason}{"\n"}{end}'
[[ $(mutating_calls) == 0 ]] || fail "the dry run made a mutating AWS call"
say "dry run: actions planned and refusals recorded, no mutating AWS call, no write to the customer cluster"

echo
say "automation.dryRun: false -- the planned node is drained, then its instance terminated"
kc patch managedcluster acme-prod -n "$namespace" --type merge -p '{"spec":{"automation":{"dryRun":false}}}' \
  >>"$demo/kubectl.log" 2>&1 || fail "turning off dry run failed"
wait_jsonpath "the scale-in" '{.status.recentActions[*].outcome}' Succeeded
echo
kc describe managedcluster acme-prod -n "$namespace"
echo
say "AWS now (Auto Scaling desired capacity per nodegroup; the untagged legacy-ng untouched):"
"$python" "$repo/tests/harness/customer_change.py" --endpoint "$moto_url" state prod | "$python" -c '
import json, sys
s = json.load(sys.stdin)
for name, g in sorted(s["groups"].items()):
    ng = g["tags"].get("eks:nodegroup-name", "?")
    managed = "managed" if g["tags"].get("crossguard.dev/managed") == "true" else "not managed"
    print("  %-11s %-12s desired %d, %d instances" % (ng, managed, g["desired"], len(g["instances"])))
' || fail "could not read the AWS state"
say "mutating AWS calls in all: $(mutating_calls) (the guard-approved termination)"
writes=$("$python" - "$demo/customer-requests.jsonl" <<'PY'
import json, sys
w = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
w = [r for r in w if r["method"] not in ("GET", "HEAD")]
bad = [r for r in w if not ((r["method"] == "PATCH" and r["path"].startswith("/api/v1/nodes/"))
                            or (r["method"] == "POST" and r["path"].endswith("/eviction")))]
print("%d %d" % (len(w), len(bad)))
PY
) || fail "could not read the customer cluster's request log"
[[ ${writes#* } == 0 ]] || fail "crossguard wrote something other than cordon/eviction in the customer cluster"
say "writes to the customer cluster: ${writes% *}, all cordon or eviction (the automated RBAC)"

# --- account hygiene: the customer's role and its IAM users' access keys ---------
echo
account_json() { kc get customeraccount acme -n "$namespace" -o json; }
condition_of() { # type -> "status reason: message"
  account_json | "$python" -c '
import json, sys
c = [c for c in json.load(sys.stdin)["status"].get("conditions", []) if c["type"] == sys.argv[1]]
print("%s %s: %s" % (c[0]["status"], c[0]["reason"], c[0]["message"]) if c else "absent")
' "$1"
}
say "role posture of the seeded role (it trusts the operator's whole account):"
echo "  RolePosture $(condition_of RolePosture)"
KUBECONFIG=$kubeconfig "$operator" onboarding-template --from customeraccount/acme -n "$namespace" \
  --mode automated --operator-principal "$operator_principal" --key-audit-enforce \
  >"$demo/crossguard-role.json" || fail "onboarding-template failed"
"$python" "$repo/tests/harness/customer_change.py" --endpoint "$moto_url" deploy-template "$demo/crossguard-role.json" \
  || fail "deploying the template into moto failed"
say "the customer re-deployed the role from: crossguard onboarding-template --from customeraccount/acme --mode automated --key-audit-enforce"

cc() { "$python" "$repo/tests/harness/customer_change.py" --endpoint "$moto_url" "$@"; }
cc iam-user alice type=engineer slack-id=U0ALICE "full-name=Alice Doe" crossguard.dev/managed=true
cc iam-user bob type=engineer slack-id=U0BOB "full-name=Bob Roe" crossguard.dev/managed=true
alice_key=$(cc access-key alice 81) || fail "creating alice's key failed"
bob_key=$(cc access-key bob 95) || fail "creating bob's key failed"
say "IAM users in the customer account: alice (key $alice_key, 81 days old), bob (key $bob_key, 95 days old), both tagged crossguard.dev/managed=true"
kc create secret generic key-audit-delivery -n "$namespace" \
  --from-literal=slack-bot-token=xoxb-demo-not-a-real-token \
  --from-literal=webhook-url="$receiver_url/hooks/generic" >>"$demo/kubectl.log" 2>&1 \
  || fail "creating the delivery Secret failed"
kc patch customeraccount acme -n "$namespace" --type merge -p '{"spec":{"accessKeyAudit":{
  "enabled":true,"enforce":true,"firstScanGraceDays":0,
  "notifications":{"secretName":"key-audit-delivery","slackChannel":"C0PLATFORM"}}}}' >>"$demo/kubectl.log" 2>&1 \
  || fail "turning on the key audit failed"
say "spec.accessKeyAudit: enabled, enforce (firstScanGraceDays 0 so the demo need not wait a week)"
wait_account() { # what, python expression over the status dict `s`
  local deadline=$((SECONDS + ready_timeout))
  while ((SECONDS < deadline)); do
    alive "$operator_pid" || fail "the operator exited"
    if account_json | "$python" -c 'import json, sys; s = json.load(sys.stdin).get("status", {}); sys.exit(0 if eval(sys.argv[1]) else 1)' "$2" 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  fail "$1 did not happen within ${ready_timeout}s"
}
scanned='any(c["type"] == "KeyAudit" and c["reason"] == "Scanned" for c in s.get("conditions", [])) and s.get("keyAudit", {}).get("pendingNotifications", 1) == 0'
wait_account "the first key scan" "$scanned"
cc access-key alice >/dev/null || fail "creating a new key failed"
kc annotate customeraccount acme -n "$namespace" --overwrite crossguard.dev/check-requested-at=demo-1 >>"$demo/kubectl.log" 2>&1
wait_account "the requested check" 's.get("lastHandledCheckRequest") == "demo-1" and '"$scanned"
echo
kc get customeraccounts -n "$namespace"
echo
echo "  RolePosture $(condition_of RolePosture)"
echo "  KeyAudit    $(condition_of KeyAudit)"
keys=$(cc keys) || fail "reading the keys failed"
say "keys in AWS now: $keys"
[[ $("$python" -c 'import json,sys; print(json.loads(sys.argv[1])["bob"][sys.argv[2]])' "$keys" "$bob_key") == Inactive ]] \
  || fail "bob's 95-day key was not disabled"
say "messages the Slack stand-in received (owner DMs to U0…, the team's copy to C0PLATFORM):"
"$python" - "$demo/receiver.jsonl" <<'PY' || fail "reading the receiver's log failed"
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    to = m.get("channel") or m["path"]
    print("  -> %-14s %s" % (to, (m.get("text") or "")[:150]))
PY
for what in "81 days old" "has been disabled" "was this you?"; do
  grep -q "$what" "$demo/receiver.jsonl" || fail "no message saying \"$what\""
done
if grep -rq xoxb-demo "$store_dir" "$demo/operator.log" || kc get customeraccount acme -n "$namespace" -o yaml | grep -q xoxb-demo; then
  fail "the bot token reached the store, the log or status"
fi
say "one key warned, one disabled, one new-key alert; the bot token appears in no status, log or stored object"

# --- the web dashboard (docs/dashboard.md) ---------------------------------------
echo
operator_http=$(grep -m1 'serving the dashboard' "$demo/operator.log" | grep -oE '127\.0\.0\.1:[0-9]+' || true)
[[ -n $operator_http ]] || fail "the operator did not say where it serves the dashboard"
status_of() { # URL [TOKEN]: the HTTP status of a GET
  "$python" - "$@" <<'PY'
import sys, urllib.error, urllib.request
req = urllib.request.Request(sys.argv[1])
if len(sys.argv) > 2:
    req.add_header("Authorization", "Bearer " + sys.argv[2])
try:
    print(urllib.request.urlopen(req, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
PY
}
[[ $(status_of "http://$operator_http/dashboard/") == 401 ]] || fail "the dashboard answered without a token"
[[ $(status_of "http://$operator_http/dashboard/" "$viewer_token") == 200 ]] \
  || fail "the dashboard refused the viewer's token"
say "web dashboard: http://$operator_http/dashboard/ -- 401 without a token; sign in with the token in .demo/viewer-token"
say "  (a TokenReview says it is system:serviceaccount:acme:dashboard-viewer; a SubjectAccessReview per namespace lets it see acme only)"
say "  history as JSON: curl -H \"Authorization: Bearer \$(cat .demo/viewer-token)\" http://$operator_http/api/v1/namespaces/acme/managedclusters/acme-prod/history?since=30d"
say "  on a real cluster: kubectl -n crossguard-system port-forward service/crossguard 8080:8080"
say "                     kubectl -n acme create token dashboard-viewer    # then open http://localhost:8080/dashboard/"
if command -v chromium >/dev/null 2>&1; then
  # Headless Chromium cannot send a header or a cookie: a small proxy adds the token.
  "$python" "$repo/tests/harness/bearer_proxy.py" --upstream "http://$operator_http" \
    --token-file "$demo/viewer-token" >"$demo/bearer-proxy.out" 2>"$demo/bearer-proxy.log" &
  proxy_pid=$!
  pids+=("$proxy_pid")
  proxy_url=
  for _ in $(seq 50); do
    proxy_url=$(sed -n 's/^listening on //p' "$demo/bearer-proxy.out" 2>/dev/null)
    [[ -n $proxy_url ]] && break
    sleep 0.1
  done
  [[ -n $proxy_url ]] || fail "the bearer proxy did not start"
  shoot() { # URL PNG SIZE
    chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
      --hide-scrollbars --user-data-dir="$demo/chromium-profile" --window-size="$3" \
      --screenshot="$2" "$1" >>"$demo/chromium.log" 2>&1 || fail "chromium could not take $2"
  }
  shoot "$proxy_url/dashboard/" "$demo/dashboard-overview.png" 1280,520
  shoot "$proxy_url/dashboard/namespaces/acme/managedclusters/acme-prod?range=30d" "$demo/dashboard-cluster.png" 1280,1500
  kill "$proxy_pid" 2>/dev/null || true
  say "screenshots (headless Chromium): .demo/dashboard-overview.png, .demo/dashboard-cluster.png"
else
  say "no chromium on PATH: no screenshot (make tools installs it when run as root)"
fi

# The cluster's cost history, as an operator user reads it (docs/history.md).
if (
  cd "$demo"
  KUBECONFIG=$kubeconfig CROSSGUARD_STORE_URL="file://$store_dir" "$operator" history -n acme --cluster acme-prod
) >"$demo/history.txt" 2>"$demo/history.log"; then
  say "crossguard history -n acme --cluster acme-prod:"
  sed 's/^/    /' "$demo/history.txt"
else
  cat "$demo/history.log" >&2
  fail "crossguard history could not read the cluster's history"
fi

if [[ ${DEMO_KEEP:-} == 1 ]]; then
  echo
  say "still running; try: kubectl --kubeconfig .demo/kubeconfig get managedclusters -A -w   (Ctrl-C to stop)"
  wait "$operator_pid" || true
else
  say "DEMO_KEEP=1 make demo keeps all of this running, to open the dashboard and try kubectl and crossguard against it"
fi
