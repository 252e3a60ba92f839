#!/usr/bin/env python3
"""Local AWS emulator for crossguard's tests: moto's server plus test controls.

Runs moto (all services in one server) on 127.0.0.1 and wraps its WSGI app with
controls under /_crossguard/ that moto itself lacks:

  GET    /_crossguard/health                  -> 200 {"status": "ok"}
  POST   /_crossguard/faults                  {"action": "AssumeRole", "status": 503,
                                               "code": "ServiceUnavailable", "count": 2,
                                               "service": "sts" (optional), "message": "..." (optional)}
                                              -> the next `count` calls of that action (any service
                                                 unless `service` is given; "*" matches every action)
                                                 fail with that error in the protocol's wire format
  POST   /_crossguard/faults                  {"action": "TerminateInstanceInAutoScalingGroup", "delay": 5}
                                              -> with "delay" (seconds) and no "status": the next
                                                 `count` matching calls are held that long and then
                                                 served by moto as usual, even if the client has gone
                                                 (a call in flight when its caller dies)
  GET    /_crossguard/faults                  -> faults still armed
  DELETE /_crossguard/faults                  -> disarm all faults
  POST   /_crossguard/enforce-auth            {"after": N} -> moto checks signatures and IAM policies
                                                 after N more requests (DELETE: never again)
  POST   /_crossguard/backdate-access-key     {"account_id": "...", "user_name": "...",
                                               "access_key_id": "...", "days": 90}
                                              -> sets that IAM access key's CreateDate to now - days
  POST   /_crossguard/nodegroup-tags          {"account_id": "...", "region": "...", "cluster": "...",
                                               "nodegroup": "...", "remove": ["k"], "set": {"k": "v"},
                                               "desired_size": N (optional)}
                                              -> changes an EKS nodegroup's tags (moto's TagResource and
                                                 UntagResource handle clusters only) and, like EKS
                                                 following its Auto Scaling group, its desired size
  GET    /_crossguard/price-list              -> the fake Price List GetProducts serves (see below)
  POST   /_crossguard/price-list              {"publicationDate": "...", "products": [...], "page_size": 2}
                                              -> replaces it (any key left out keeps its value)
  DELETE /_crossguard/price-list              -> back to tests/harness/price_list.json, page size 2
  POST   /_crossguard/spot-prices             {"account_id": "...", "region": "...", "prices": [
                                                {"instance_type": "m5.large", "availability_zone": "us-east-1a",
                                                 "product_description": "Linux/UNIX", "price": 0.035,
                                                 "timestamp": "2026-11-30T10:00:00Z"}, ...]}
                                              -> replaces that account's and region's spot price history;
                                                 ec2:DescribeSpotPriceHistory is then answered by the shim
                                                 (not moto, whose price is a constant 0.00001) for every
                                                 account and region: the latest entry per type, zone and
                                                 product description matching InstanceType.N,
                                                 ProductDescription.N and an availability-zone filter
                                                 (StartTime is not looked at); MaxResults/NextToken pages
  POST   /_crossguard/reserved-instances      {"account_id": "...", "region": "...", "reserved_instances": [
                                                {"id": "ri-1", "instance_type": "m5.large", "availability_zone":
                                                 "us-east-1a" (absent: regional), "count": 1, "state": "active",
                                                 "start": "...", "end": "...", "duration": 31536000,
                                                 "product_description": "Linux/UNIX", "fixed_price": 0,
                                                 "usage_price": 0, "hourly_charge": 0.06,
                                                 "offering_type": "No Upfront", "offering_class": "standard"}, ...]}
                                              -> replaces them; ec2:DescribeReservedInstances (which moto
                                                 lacks) answers them, filtered by a `state` filter only
  POST   /_crossguard/savings-plans           {"account_id": "...", "savings_plans": [
                                                {"id": "sp-1", "type": "Compute", "state": "active", "commitment": 1.0,
                                                 "start": "...", "end": "...", "region": "" , "ec2_instance_family": "",
                                                 "payment_option": "No Upfront",
                                                 "rates": [{"instance_type": "m5.large", "region": "us-east-1",
                                                            "product_description": "Linux/UNIX", "rate": 0.06}]}, ...]}
                                              -> replaces them; savingsplans:DescribeSavingsPlans (by `states`)
                                                 and DescribeSavingsPlanRates (by the instanceType, region,
                                                 productDescription and tenancy filters) answer them in
                                                 REST-JSON (moto has no Savings Plans service); one page each
  GET    /_crossguard/calls                   -> every AWS API call served so far, in arrival order:
                                                 {"service", "action", "account_id", "access_key_id",
                                                  "status", "region", "method", "path", "fault"}
  DELETE /_crossguard/calls                   -> forget them

moto has no Price List service: AWSPriceListService.GetProducts (JSON 1.1, X-Amz-Target,
signing name "pricing") is answered here from a fake price list (default:
tests/harness/price_list.json): ServiceCode AmazonEC2 only (others: NotFoundException),
TERM_MATCH filters matched exactly against each product's attributes (other filter
types: ValidationException), PriceList entries as AWS-shaped JSON strings, and NextToken
pages of min(MaxResults, page_size) products. Faults apply to it like any call.

Everything else goes to moto unchanged (including moto's own /moto-api/).

Usage:
  moto_shim.py [--port 0] [--port-file PATH] [--enforce-auth N] [--log-requests] [--exit-with-parent]

Prints "listening on http://127.0.0.1:PORT" (flushed) once the server accepts
connections, and writes PORT to --port-file at the same moment (atomically).
Stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

# ---------------------------------------------------------------------------
# Request classification (pure helpers, no moto import needed)
# ---------------------------------------------------------------------------

_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")
_ACCESS_KEY_RE = re.compile(r"AWS.*(?P<access_key>(?<![A-Z0-9])[A-Z0-9]{20}(?![A-Z0-9]))[:/]")


class _ServiceModels:
    """Caches botocore service models, keyed by SigV4 signing name."""

    # signing name -> botocore service name, where they differ
    ALIASES = {"execute-api": "apigateway", "states": "stepfunctions", "email": "ses"}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, Any] = {}
        self._routes: dict[str, list[tuple[str, re.Pattern[str], int, str]]] = {}
        self._session: Any = None

    def model(self, signing_name: str | None) -> Any:
        if not signing_name:
            return None
        with self._lock:
            if signing_name in self._models:
                return self._models[signing_name]
            model = None
            try:
                import botocore.session

                if self._session is None:
                    self._session = botocore.session.get_session()
                name = self.ALIASES.get(signing_name, signing_name)
                model = self._session.get_service_model(name)
            except Exception:  # unknown service: classify heuristically
                model = None
            self._models[signing_name] = model
            return model

    def protocol(self, signing_name: str | None) -> str | None:
        model = self.model(signing_name)
        if model is None:
            return None
        try:
            return model.protocol
        except Exception:
            return model.metadata.get("protocol")

    def xml_namespace(self, signing_name: str | None) -> str | None:
        model = self.model(signing_name)
        if model is None:
            return None
        ns = model.metadata.get("xmlNamespace")
        if isinstance(ns, dict):
            ns = ns.get("uri")
        return ns

    def rest_operation(self, signing_name: str | None, method: str, path: str) -> str | None:
        """Operation name for a REST (rest-json / rest-xml) request, from the model's HTTP bindings."""
        model = self.model(signing_name)
        if model is None:
            return None
        with self._lock:
            routes = self._routes.get(signing_name)  # type: ignore[arg-type]
            if routes is None:
                routes = []
                for op_name in model.operation_names:
                    http = model.operation_model(op_name).http
                    uri = http.get("requestUri", "/").split("?", 1)[0]
                    pattern = ""
                    literal = 0
                    for part in re.split(r"(\{[^}]+\})", uri):
                        if part.startswith("{") and part.endswith("}"):
                            pattern += ".+" if part.endswith("+}") else "[^/]+"
                        else:
                            pattern += re.escape(part)
                            literal += len(part)
                    routes.append(
                        (http.get("method", "POST").upper(), re.compile(f"^{pattern}/?$"), literal, op_name)
                    )
                self._routes[signing_name] = routes  # type: ignore[index]
        best: tuple[int, str] | None = None
        for route_method, regex, literal, op_name in routes:
            if route_method == method and regex.match(path):
                if best is None or literal > best[0]:
                    best = (literal, op_name)
        return best[1] if best else None


MODELS = _ServiceModels()


def _form_fields(environ: dict[str, Any], body: bytes) -> dict[str, list[str]]:
    fields = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    ctype = environ.get("CONTENT_TYPE", "")
    if body and ctype.startswith("application/x-www-form-urlencoded"):
        for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
            fields.setdefault(k, []).extend(v)
    return fields


def classify(environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    """Works out service, region, access key, action and protocol of an AWS API request."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    fields = _form_fields(environ, body)
    service = region = access_key = None
    m = _CREDENTIAL_RE.search(auth)
    if m:
        access_key, _, region, service = m.group(1), m.group(2), m.group(3), m.group(4)
    elif fields.get("X-Amz-Credential"):  # presigned URL
        parts = fields["X-Amz-Credential"][0].split("/")
        if len(parts) >= 5:
            access_key, region, service = parts[0], parts[2], parts[3]
    if access_key is None:
        m2 = _ACCESS_KEY_RE.search(auth)
        if m2:
            access_key = m2.group("access_key")
        elif fields.get("AWSAccessKeyId"):
            access_key = fields["AWSAccessKeyId"][0]

    method = environ.get("REQUEST_METHOD", "GET").upper()
    path = environ.get("PATH_INFO", "") or "/"
    target = environ.get("HTTP_X_AMZ_TARGET")
    protocol = MODELS.protocol(service)
    action = None
    if target:
        action = target.rsplit(".", 1)[-1]
        protocol = protocol or "json"
    elif fields.get("Action"):
        action = fields["Action"][0]
        if protocol not in ("query", "ec2"):
            protocol = "ec2" if service == "ec2" else "query"
    else:
        action = MODELS.rest_operation(service, method, path)
        protocol = protocol or "rest-json"
    return {
        "service": service,
        "region": region,
        "access_key_id": access_key,
        "action": action or f"{method} {path}",
        "protocol": protocol,
        "method": method,
        "path": path,
    }


def error_response(
    protocol: str | None, service: str | None, status: int, code: str, message: str
) -> tuple[str, list[tuple[str, str]], bytes]:
    """An AWS error in the wire format of the request's protocol."""
    from http import HTTPStatus

    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    status_line = f"{status} {reason}"
    request_id = str(uuid.uuid4())

    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    if protocol == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{esc(code)}</Code><Message>{esc(message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        headers = [("Content-Type", "text/xml;charset=UTF-8")]
    elif protocol in ("query", "rest-xml"):
        ns = MODELS.xml_namespace(service) if protocol == "query" else None
        xmlns = f' xmlns="{ns}"' if ns else ""
        kind = "Receiver" if status >= 500 else "Sender"
        if protocol == "rest-xml" and service == "s3":
            body = f"<Error><Code>{esc(code)}</Code><Message>{esc(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        else:
            body = (
                f"<ErrorResponse{xmlns}><Error><Type>{kind}</Type><Code>{esc(code)}</Code>"
                f"<Message>{esc(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            )
        headers = [("Content-Type", "text/xml")]
    elif protocol == "json":
        body = json.dumps({"__type": code, "message": message})
        headers = [("Content-Type", "application/x-amz-json-1.1")]
    else:  # rest-json and anything unknown
        body = json.dumps({"message": message, "__type": code})
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
    data = body.encode("utf-8")
    headers += [
        ("x-amzn-RequestId", request_id),
        ("x-amz-request-id", request_id),
        ("Content-Length", str(len(data))),
    ]
    return status_line, headers, data


# ---------------------------------------------------------------------------
# Spot prices, Reserved Instances and Savings Plans (moto lacks or fakes them)
# ---------------------------------------------------------------------------

EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"


def _xml_escape(v: Any) -> str:
    return str(v).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _indexed(fields: dict[str, list[str]], prefix: str) -> list[str]:
    """Values of EC2 query list parameters PREFIX.1, PREFIX.2, ... in order."""
    out = []
    n = 1
    while f"{prefix}.{n}" in fields:
        out.append(fields[f"{prefix}.{n}"][0])
        n += 1
    return out


def _ec2_filters(fields: dict[str, list[str]]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    n = 1
    while f"Filter.{n}.Name" in fields:
        filters[fields[f"Filter.{n}.Name"][0]] = _indexed(fields, f"Filter.{n}.Value")
        n += 1
    return filters


class BillingFakes:
    """Spot price history, Reserved Instances and Savings Plans per account, set through the
    controls and answered in each protocol's wire format."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spot: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.ris: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.plans: dict[str, list[dict[str, Any]]] = {}

    def control(self, name: str, req: Any) -> str | None:
        if not isinstance(req, dict) or not isinstance(req.get("account_id"), str):
            return "need account_id"
        account = req["account_id"]
        with self.lock:
            if name == "spot-prices":
                if not isinstance(req.get("region"), str) or not isinstance(req.get("prices"), list):
                    return "need region and prices"
                self.spot[(account, req["region"])] = list(req["prices"])
            elif name == "reserved-instances":
                if not isinstance(req.get("region"), str) or not isinstance(req.get("reserved_instances"), list):
                    return "need region and reserved_instances"
                self.ris[(account, req["region"])] = list(req["reserved_instances"])
            else:
                if not isinstance(req.get("savings_plans"), list):
                    return "need savings_plans"
                self.plans[account] = list(req["savings_plans"])
        return None

    def answer(
        self, info: dict[str, Any], environ: dict[str, Any], body: bytes, account: str
    ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        service, action = info["service"], info["action"]
        if service == "ec2" and action == "DescribeSpotPriceHistory":
            return self._spot(_form_fields(environ, body), account, info["region"] or "us-east-1")
        if service == "ec2" and action == "DescribeReservedInstances":
            return self._reserved(_form_fields(environ, body), account, info["region"] or "us-east-1")
        if service == "savingsplans" and action in ("DescribeSavingsPlans", "DescribeSavingsPlanRates"):
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                req = {}
            if action == "DescribeSavingsPlans":
                return self._plans(req, account)
            return self._rates(req, account)
        return None

    @staticmethod
    def _xml(action: str, inner: str) -> tuple[str, list[tuple[str, str]], bytes]:
        request_id = str(uuid.uuid4())
        data = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{EC2_XMLNS}">'
            f"<requestId>{request_id}</requestId>{inner}</{action}Response>"
        ).encode("utf-8")
        return "200 OK", [("Content-Type", "text/xml;charset=UTF-8"), ("Content-Length", str(len(data)))], data

    def _spot(self, fields: dict[str, list[str]], account: str, region: str):
        types = set(_indexed(fields, "InstanceType"))
        products = set(_indexed(fields, "ProductDescription"))
        filters = _ec2_filters(fields)
        zones = set(filters.get("availability-zone", []))
        with self.lock:
            history = list(self.spot.get((account, region), []))
        latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        for p in history:
            key = (p["instance_type"], p["availability_zone"], p.get("product_description", "Linux/UNIX"))
            if types and key[0] not in types or zones and key[1] not in zones or products and key[2] not in products:
                continue
            if key not in latest or latest[key]["timestamp"] < p["timestamp"]:
                latest[key] = p
        items = [latest[k] for k in sorted(latest)]
        start = int(fields.get("NextToken", ["0"])[0] or 0)
        size = int(fields.get("MaxResults", ["1000"])[0] or 1000)
        page = items[start : start + size]
        token = str(start + size) if start + size < len(items) else ""
        inner = "<spotPriceHistorySet>" + "".join(
            "<item>"
            f"<availabilityZone>{_xml_escape(p['availability_zone'])}</availabilityZone>"
            f"<instanceType>{_xml_escape(p['instance_type'])}</instanceType>"
            f"<productDescription>{_xml_escape(p.get('product_description', 'Linux/UNIX'))}</productDescription>"
            f"<spotPrice>{float(p['price']):.6f}</spotPrice>"
            f"<timestamp>{_xml_escape(p['timestamp'])}</timestamp>"
            "</item>"
            for p in page
        ) + "</spotPriceHistorySet>"
        inner += f"<nextToken>{token}</nextToken>"
        return self._xml("DescribeSpotPriceHistory", inner)

    def _reserved(self, fields: dict[str, list[str]], account: str, region: str):
        states = set(_ec2_filters(fields).get("state", []))
        with self.lock:
            ris = list(self.ris.get((account, region), []))
        items = []
        for r in ris:
            if states and r.get("state", "active") not in states:
                continue
            zone = r.get("availability_zone")
            hourly = r.get("hourly_charge", 0)
            charges = (
                f"<recurringCharges><item><frequency>Hourly</frequency><amount>{float(hourly)}</amount></item></recurringCharges>"
                if hourly
                else "<recurringCharges/>"
            )
            items.append(
                "<item>"
                f"<reservedInstancesId>{_xml_escape(r['id'])}</reservedInstancesId>"
                f"<instanceType>{_xml_escape(r['instance_type'])}</instanceType>"
                + (f"<availabilityZone>{_xml_escape(zone)}</availabilityZone>" if zone else "")
                + f"<start>{_xml_escape(r['start'])}</start><end>{_xml_escape(r['end'])}</end>"
                f"<duration>{int(r.get('duration', 31536000))}</duration>"
                f"<fixedPrice>{float(r.get('fixed_price', 0))}</fixedPrice>"
                f"<usagePrice>{float(r.get('usage_price', 0))}</usagePrice>"
                f"<instanceCount>{int(r.get('count', 1))}</instanceCount>"
                f"<productDescription>{_xml_escape(r.get('product_description', 'Linux/UNIX'))}</productDescription>"
                f"<state>{_xml_escape(r.get('state', 'active'))}</state>"
                f"<instanceTenancy>{_xml_escape(r.get('tenancy', 'default'))}</instanceTenancy>"
                "<currencyCode>USD</currencyCode>"
                f"<offeringType>{_xml_escape(r.get('offering_type', 'No Upfront'))}</offeringType>"
                f"{charges}"
                f"<offeringClass>{_xml_escape(r.get('offering_class', 'standard'))}</offeringClass>"
                f"<scope>{'Availability Zone' if zone else 'Region'}</scope>"
                "</item>"
            )
        return self._xml("DescribeReservedInstances", "<reservedInstancesSet>" + "".join(items) + "</reservedInstancesSet>")

    @staticmethod
    def _rest_json(obj: Any) -> tuple[str, list[tuple[str, str]], bytes]:
        data = json.dumps(obj).encode("utf-8")
        return (
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("x-amzn-RequestId", str(uuid.uuid4())),
                ("Content-Length", str(len(data))),
            ],
            data,
        )

    def _plans(self, req: dict[str, Any], account: str):
        states = set(req.get("states") or [])
        with self.lock:
            plans = list(self.plans.get(account, []))
        out = []
        for p in plans:
            if states and p.get("state", "active") not in states:
                continue
            out.append(
                {
                    "savingsPlanId": p["id"],
                    "savingsPlanArn": f"arn:aws:savingsplans::{account}:savingsplan/{p['id']}",
                    "start": p["start"],
                    "end": p["end"],
                    "state": p.get("state", "active"),
                    "region": p.get("region", ""),
                    "ec2InstanceFamily": p.get("ec2_instance_family", ""),
                    "savingsPlanType": p.get("type", "Compute"),
                    "paymentOption": p.get("payment_option", "No Upfront"),
                    "productTypes": ["EC2", "Fargate", "Lambda"] if p.get("type", "Compute") == "Compute" else ["EC2"],
                    "currency": "USD",
                    "commitment": str(p["commitment"]),
                    "termDurationInSeconds": int(p.get("duration", 31536000)),
                }
            )
        return self._rest_json({"savingsPlans": out})

    def _rates(self, req: dict[str, Any], account: str):
        plan_id = req.get("savingsPlanId")
        filters = {f.get("name"): set(f.get("values") or []) for f in req.get("filters") or []}
        with self.lock:
            plan = next((p for p in self.plans.get(account, []) if p["id"] == plan_id), None)
        if plan is None:
            return error_response("rest-json", "savingsplans", 404, "ResourceNotFoundException", f"Savings Plan {plan_id} not found")
        results = []
        for r in plan.get("rates", []):
            props = {
                "region": r["region"],
                "instanceType": r["instance_type"],
                "instanceFamily": r["instance_type"].split(".")[0],
                "productDescription": r.get("product_description", "Linux/UNIX"),
                "tenancy": "shared",
            }
            if any(values and props.get(name) not in values for name, values in filters.items()):
                continue
            results.append(
                {
                    "rate": str(r["rate"]),
                    "currency": "USD",
                    "unit": "Hrs",
                    "productType": "EC2",
                    "serviceCode": "AmazonEC2",
                    "usageType": f"BoxUsage:{r['instance_type']}",
                    "operation": "RunInstances",
                    "properties": [{"name": k, "value": v} for k, v in props.items()],
                }
            )
        return self._rest_json({"savingsPlanId": plan_id, "searchResults": results})


# ---------------------------------------------------------------------------
# The wrapping WSGI app
# ---------------------------------------------------------------------------


def _json(start_response: Callable[..., Any], status: int, obj: Any) -> list[bytes]:
    from http import HTTPStatus

    data = (json.dumps(obj, default=str) + "\n").encode("utf-8")
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


# ---------------------------------------------------------------------------
# A fake AWS Price List Query API (moto has none)
# ---------------------------------------------------------------------------

PRICE_LIST_FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "price_list.json")
PRICE_LIST_DEFAULTS = {
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
    "licenseModel": "No License required",
    "servicecode": "AmazonEC2",
    "locationType": "AWS Region",
}


def load_price_list(path: str = PRICE_LIST_FIXTURE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        fixture = json.load(f)
    return {
        "publicationDate": fixture.get("publicationDate", "2026-11-01T00:00:00Z"),
        "products": fixture.get("products", []),
        "page_size": fixture.get("page_size", 2),
    }


def price_list_document(product: dict[str, Any], index: int, published: str) -> str:
    """One fixture product as a PriceList entry of AWS's shape (a JSON string)."""
    attributes = dict(PRICE_LIST_DEFAULTS)
    attributes.update(product.get("attributes", {}))
    attributes.setdefault(
        "operation", "RunInstances:0002" if attributes.get("operatingSystem") == "Windows" else "RunInstances"
    )
    sku = f"FAKESKU{index:09d}"
    terms: dict[str, Any] = {}
    usd = product.get("onDemandUsd")
    if usd is not None:
        offer = f"{sku}.JRTCKXETXF"
        terms["OnDemand"] = {
            offer: {
                "offerTermCode": "JRTCKXETXF",
                "sku": sku,
                "effectiveDate": published,
                "termAttributes": {},
                "priceDimensions": {
                    f"{offer}.6YS6EN2CT7": {
                        "unit": "Hrs",
                        "beginRange": "0",
                        "endRange": "Inf",
                        "appliesTo": [],
                        "rateCode": f"{offer}.6YS6EN2CT7",
                        "description": f"${usd} per On Demand {attributes.get('operatingSystem')} "
                        f"{attributes.get('instanceType')} Instance Hour",
                        "pricePerUnit": {"USD": usd},
                    }
                },
            }
        }
    return json.dumps(
        {
            "product": {"productFamily": "Compute Instance", "attributes": attributes, "sku": sku},
            "serviceCode": "AmazonEC2",
            "terms": terms,
            "version": published.replace("-", "").replace(":", "").replace("T", "").rstrip("Z"),
            "publicationDate": published,
        }
    )


def get_products(price_list: dict[str, Any], request: Any) -> tuple[int, dict[str, Any]]:
    """AWSPriceListService.GetProducts over `price_list`; returns (HTTP status, JSON body)."""
    if not isinstance(request, dict):
        return 400, {"__type": "ValidationException", "message": "the request body is not a JSON object"}
    if request.get("ServiceCode") != "AmazonEC2":
        return 400, {"__type": "NotFoundException", "message": f"the fake Price List has no service {request.get('ServiceCode')!r}"}
    filters = request.get("Filters") or []
    for f in filters:
        if f.get("Type") != "TERM_MATCH":
            return 400, {"__type": "ValidationException", "message": f"the fake Price List supports TERM_MATCH only, not {f.get('Type')!r}"}
    matching = []
    for i, product in enumerate(price_list["products"]):
        attributes = dict(PRICE_LIST_DEFAULTS)
        attributes.update(product.get("attributes", {}))
        if all(attributes.get(f.get("Field")) == f.get("Value") for f in filters):
            matching.append((i, product))
    token = request.get("NextToken")
    start = 0
    if token:
        m = re.fullmatch(r"fake-page-(\d+)", str(token))
        if not m:
            return 400, {"__type": "InvalidNextTokenException", "message": "the NextToken is not one this fake issued"}
        start = int(m.group(1))
    size = min(int(request.get("MaxResults") or 100), int(price_list["page_size"]))
    page = matching[start : start + size]
    body: dict[str, Any] = {
        "FormatVersion": request.get("FormatVersion") or "aws_v1",
        "PriceList": [price_list_document(p, i, price_list["publicationDate"]) for i, p in page],
    }
    if start + size < len(matching):
        body["NextToken"] = f"fake-page-{start + size}"
    return 200, body


class ShimApp:
    PREFIX = "/_crossguard/"

    def __init__(self, moto_app: Callable[..., Iterable[bytes]]):
        self.moto_app = moto_app
        self.lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.canary: dict[str, str] | None = None
        self.canary_issued = 0
        self.price_list = load_price_list()
        self.billing = BillingFakes()

    # -- account resolution, exactly as moto's BaseResponse.get_current_account --
    @staticmethod
    def resolve_account(environ: dict[str, Any], access_key: str | None) -> str:
        if "MOTO_ACCOUNT_ID" in os.environ:
            return os.environ["MOTO_ACCOUNT_ID"]
        if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
            return environ["HTTP_X_MOTO_ACCOUNT_ID"]
        from moto.iam.models import get_account_id_from

        return get_account_id_from(access_key or "AKIAEXAMPLE")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(self.PREFIX) or path == self.PREFIX.rstrip("/"):
            try:
                return self.control(environ, start_response)
            except Exception as exc:  # report, don't crash the server
                return _json(start_response, 500, {"error": f"{type(exc).__name__}: {exc}"})
        if path.startswith("/moto-api") or path == "/favicon.ico":
            return self.moto_app(environ, start_response)

        body = self._buffer_body(environ)
        info = classify(environ, body)
        account_id = self.resolve_account(environ, info["access_key_id"])
        entry = {
            "service": info["service"],
            "action": info["action"],
            "account_id": account_id,
            "access_key_id": info["access_key_id"],
            "status": None,
            "region": info["region"],
            "method": info["method"],
            "path": info["path"],
            "fault": False,
        }
        with self.lock:
            self.calls.append(entry)
            fault = self._take_fault(info)
        if fault is not None and fault.get("delay") is not None:
            # A held call: it still happens, just later.
            entry["fault"] = True
            time.sleep(fault["delay"])
            fault = None
        if fault is not None:
            entry["fault"] = True
            entry["status"] = fault["status"]
            status_line, headers, data = error_response(
                info["protocol"], info["service"], fault["status"], fault["code"], fault["message"]
            )
            start_response(status_line, headers)
            return [data]

        if info["service"] == "pricing" and info["action"] == "GetProducts":
            return self._get_products(body, start_response, entry)
        answer = self.billing.answer(info, environ, body, account_id)
        if answer is not None:
            status_line, headers, data = answer
            entry["status"] = int(status_line.split(" ", 1)[0])
            start_response(status_line, headers)
            return [data]

        with self.lock:
            canary = dict(self.canary) if self.canary else None
        if canary and info["action"] == "AssumeRole":
            return self._plant_canary(environ, start_response, entry, canary)

        def recording_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            try:
                entry["status"] = int(status.split(" ", 1)[0])
            except ValueError:
                entry["status"] = status
            return start_response(status, headers, exc_info)

        try:
            return self.moto_app(environ, recording_start_response)
        except Exception:
            # moto crashed (it has a few 500s of its own); the server answers 500
            if entry["status"] is None:
                entry["status"] = 500
            raise

    def _plant_canary(
        self, environ: dict[str, Any], start_response: Callable[..., Any], entry: dict[str, Any], canary: dict[str, str]
    ) -> list[bytes]:
        """Serve AssumeRole from moto, then replace the secret key and session token in the
        response with unique marker strings (moto does not check signatures, so the session
        keeps working), so tests can prove no credential ever surfaces anywhere."""
        captured: dict[str, Any] = {}

        def capture(status: str, headers: Any, exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        body = b"".join(self.moto_app(environ, capture))
        with self.lock:
            self.canary_issued += 1
            n = self.canary_issued
        secret = f"{canary['secret_access_key']}{n:06d}".encode()
        token = f"{canary['session_token']}{n:06d}".encode()
        body = re.sub(rb"<SecretAccessKey>[^<]*</SecretAccessKey>", b"<SecretAccessKey>" + secret + b"</SecretAccessKey>", body)
        body = re.sub(rb"<SessionToken>[^<]*</SessionToken>", b"<SessionToken>" + token + b"</SessionToken>", body)
        status = captured.get("status", "500 Internal Server Error")
        entry["status"] = int(status.split(" ", 1)[0])
        headers = [(k, v) for k, v in captured.get("headers", []) if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    def _get_products(self, body: bytes, start_response: Callable[..., Any], entry: dict[str, Any]) -> list[bytes]:
        from http import HTTPStatus

        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        with self.lock:
            status, answer = get_products(self.price_list, request)
        entry["status"] = status
        data = json.dumps(answer).encode("utf-8")
        headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("Content-Length", str(len(data))),
        ]
        if status != 200:
            headers.append(("x-amzn-ErrorType", answer["__type"]))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [data]

    @staticmethod
    def _buffer_body(environ: dict[str, Any]) -> bytes:
        stream = environ.get("wsgi.input")
        if stream is None:
            return b""
        length = environ.get("CONTENT_LENGTH")
        if length:
            try:
                body = stream.read(int(length))
            except ValueError:
                body = b""
        elif environ.get("wsgi.input_terminated") or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", ""):
            body = stream.read()
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ.pop("wsgi.input_terminated", None)
        else:
            body = b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return body

    def _take_fault(self, info: dict[str, Any]) -> dict[str, Any] | None:
        for fault in self.faults:
            if fault["remaining"] <= 0:
                continue
            if fault["action"] not in ("*", info["action"]):
                continue
            if fault.get("service") and fault["service"] != info["service"]:
                continue
            fault["remaining"] -= 1
            fault["fired"] += 1
            return fault
        return None

    # -- /_crossguard/ ----------------------------------------------------------
    def control(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        name = environ.get("PATH_INFO", "")[len(self.PREFIX) :].strip("/")
        if name == "health" and method in ("GET", "HEAD"):
            return _json(start_response, 200, {"status": "ok"})
        if name == "calls":
            if method == "GET":
                with self.lock:
                    return _json(start_response, 200, [dict(c) for c in self.calls])
            if method == "DELETE":
                with self.lock:
                    n = len(self.calls)
                    self.calls.clear()
                return _json(start_response, 200, {"cleared": n})
        if name == "faults":
            if method == "GET":
                with self.lock:
                    return _json(start_response, 200, [dict(f) for f in self.faults if f["remaining"] > 0])
            if method == "DELETE":
                with self.lock:
                    n = len(self.faults)
                    self.faults.clear()
                return _json(start_response, 200, {"cleared": n})
            if method == "POST":
                req = self._read_json(environ)
                fault, err = self._parse_fault(req)
                if err:
                    return _json(start_response, 400, {"error": err})
                with self.lock:
                    self.faults.append(fault)
                return _json(start_response, 200, fault)
        if name == "enforce-auth":
            from moto import settings as moto_settings
            from moto.core.authorization import ActionAuthenticatorMixin

            if method == "POST":
                req = self._read_json(environ)
                after = req.get("after", 0) if isinstance(req, dict) else None
                if not isinstance(after, int) or isinstance(after, bool) or after < 0:
                    return _json(start_response, 400, {"error": "'after' must be an integer >= 0"})
                moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = float(after)
            elif method == "DELETE":
                moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
            else:
                return _json(start_response, 405, {"error": 'use POST {"after": N} or DELETE'})
            ActionAuthenticatorMixin.request_count = 0
            limit = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT
            return _json(
                start_response, 200, {"enforce_after": None if limit == float("inf") else int(limit)}
            )
        if name == "canary":
            if method == "POST":
                req = self._read_json(environ)
                if not isinstance(req, dict) or not all(
                    isinstance(req.get(k), str) and req.get(k) for k in ("secret_access_key", "session_token")
                ):
                    return _json(start_response, 400, {"error": "need secret_access_key and session_token prefixes"})
                with self.lock:
                    self.canary = {k: req[k] for k in ("secret_access_key", "session_token")}
            elif method == "DELETE":
                with self.lock:
                    self.canary = None
            with self.lock:
                return _json(start_response, 200, {"canary": self.canary, "issued": self.canary_issued})
        if name == "price-list":
            if method == "POST":
                req = self._read_json(environ)
                if not isinstance(req, dict):
                    return _json(start_response, 400, {"error": "send a JSON object"})
                if "products" in req and not isinstance(req["products"], list):
                    return _json(start_response, 400, {"error": "'products' must be a list"})
                size = req.get("page_size", 1)
                if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                    return _json(start_response, 400, {"error": "'page_size' must be an integer >= 1"})
                with self.lock:
                    for key in ("publicationDate", "products", "page_size"):
                        if key in req:
                            self.price_list[key] = req[key]
            elif method == "DELETE":
                with self.lock:
                    self.price_list = load_price_list()
            elif method != "GET":
                return _json(start_response, 405, {"error": "use GET, POST or DELETE"})
            with self.lock:
                return _json(start_response, 200, self.price_list)
        if name in ("spot-prices", "reserved-instances", "savings-plans") and method == "POST":
            req = self._read_json(environ)
            err = self.billing.control(name, req)
            if err:
                return _json(start_response, 400, {"error": err})
            return _json(start_response, 200, {"ok": True})
        if name == "nodegroup-tags" and method == "POST":
            return self._nodegroup_tags(start_response, self._read_json(environ))
        if name == "backdate-access-key" and method == "POST":
            req = self._read_json(environ)
            return self._backdate(start_response, req)
        return _json(start_response, 404, {"error": f"no control {method} {self.PREFIX}{name}"})

    @staticmethod
    def _read_json(environ: dict[str, Any]) -> Any:
        body = ShimApp._buffer_body(environ)
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except ValueError:
            return None

    @staticmethod
    def _parse_fault(req: Any) -> tuple[dict[str, Any], str | None]:
        if not isinstance(req, dict):
            return {}, "body must be a JSON object"
        action = req.get("action")
        if not isinstance(action, str) or not action:
            return {}, "'action' (the API operation name, e.g. AssumeRole, or '*') is required"
        delay = req.get("delay")
        if delay is not None:
            if "status" in req or not isinstance(delay, (int, float)) or isinstance(delay, bool) or not 0 < delay <= 300:
                return {}, "'delay' must be a number of seconds in (0, 300], without 'status'"
        status = req.get("status", 400)
        if not isinstance(status, int) or not 400 <= status <= 599:
            return {}, "'status' must be an HTTP error status (400-599)"
        code = req.get("code") or ("ServiceUnavailable" if status >= 500 else "Throttling")
        count = req.get("count", 1)
        if not isinstance(count, int) or count < 1:
            return {}, "'count' must be a positive integer"
        service = req.get("service")
        if service is not None and not isinstance(service, str):
            return {}, "'service' must be a string (the SigV4 signing name, e.g. sts, eks)"
        fault = {
            "id": str(uuid.uuid4()),
            "action": action,
            "service": service,
            "status": status,
            "code": str(code),
            "message": str(req.get("message") or f"Injected by crossguard test harness: {code}"),
            "count": count,
            "remaining": count,
            "fired": 0,
            "delay": delay,
        }
        return fault, None

    @staticmethod
    def _nodegroup_tags(start_response: Callable[..., Any], req: Any) -> list[bytes]:
        if not isinstance(req, dict) or not all(
            isinstance(req.get(k), str) for k in ("account_id", "region", "cluster", "nodegroup")
        ):
            return _json(start_response, 400, {"error": "need account_id, region, cluster and nodegroup"})
        from moto.eks.models import eks_backends

        try:
            cluster = eks_backends[req["account_id"]][req["region"]].clusters[req["cluster"]]
            nodegroup = cluster.nodegroups[req["nodegroup"]]
        except KeyError:
            return _json(start_response, 404, {"error": "no such cluster or nodegroup"})
        tags = dict(nodegroup.tags or {})
        for key in req.get("remove") or []:
            tags.pop(key, None)
        tags.update(req.get("set") or {})
        nodegroup.tags = tags
        desired = req.get("desired_size")
        if desired is not None:
            if not isinstance(desired, int) or isinstance(desired, bool) or desired < 0:
                return _json(start_response, 400, {"error": "'desired_size' must be an integer >= 0"})
            nodegroup.scaling_config = {**nodegroup.scaling_config, "desiredSize": desired}
        return _json(start_response, 200, {"tags": tags, "scaling": nodegroup.scaling_config})

    @staticmethod
    def _backdate(start_response: Callable[..., Any], req: Any) -> list[bytes]:
        if not isinstance(req, dict):
            return _json(start_response, 400, {"error": "body must be a JSON object"})
        missing = [k for k in ("account_id", "user_name", "access_key_id", "days") if k not in req]
        if missing:
            return _json(start_response, 400, {"error": f"missing fields: {', '.join(missing)}"})
        days = req["days"]
        if not isinstance(days, (int, float)) or isinstance(days, bool):
            return _json(start_response, 400, {"error": "'days' must be a number"})
        from moto.core.utils import utcnow
        from moto.iam.models import iam_backends
        from moto.utilities.utils import PARTITION_NAMES

        account_id = str(req["account_id"])
        if account_id not in iam_backends:
            return _json(start_response, 404, {"error": f"no IAM data for account {account_id}"})
        for partition in PARTITION_NAMES:
            backend = iam_backends[account_id][partition]
            user = backend.users.get(req["user_name"])
            if user is None:
                continue
            for key in user.access_keys:
                if key.access_key_id == req["access_key_id"]:
                    new_date = utcnow() - datetime.timedelta(days=days)
                    key.create_date = new_date
                    other = getattr(backend, "access_keys", {}).get(key.access_key_id)
                    if other is not None and other is not key:
                        other.create_date = new_date
                    return _json(
                        start_response,
                        200,
                        {
                            "account_id": account_id,
                            "user_name": req["user_name"],
                            "access_key_id": key.access_key_id,
                            "create_date": new_date.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        },
                    )
            return _json(
                start_response,
                404,
                {
                    "error": f"user {req['user_name']} in account {account_id} has no access key {req['access_key_id']}"
                },
            )
        return _json(
            start_response, 404, {"error": f"no IAM user {req['user_name']} in account {account_id}"}
        )


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parent = os.getppid()
    parser = argparse.ArgumentParser(description="moto server with crossguard test controls")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--port-file", help="write the bound port here once the server accepts connections")
    parser.add_argument(
        "--enforce-auth",
        type=int,
        metavar="N",
        help="enforce moto's IAM signature/policy checks after the first N requests "
        "(moto's INITIAL_NO_AUTH_ACTION_COUNT; default: never enforce)",
    )
    parser.add_argument("--log-requests", action="store_true", help="log every request to stderr")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="exit when the process that started this one goes away",
    )
    args = parser.parse_args(argv)

    if args.enforce_auth is not None:
        if args.enforce_auth < 0:
            parser.error("--enforce-auth must be >= 0")
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(args.enforce_auth)

    try:
        from moto import settings as moto_settings
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server
    except ImportError as exc:
        print(
            f"moto_shim: cannot import moto[server] ({exc}); run tests/harness/install-tools.sh "
            "and use <repo>/.venv/bin/python",
            file=sys.stderr,
        )
        return 2

    if args.enforce_auth is not None:
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = float(args.enforce_auth)

    if not args.log_requests:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

    moto_app = DomainDispatcherApplication(create_backend_app)
    app = ShimApp(moto_app)
    try:
        server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    except OSError as exc:
        print(f"moto_shim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    port = server.server_address[1]
    os.environ["MOTO_PORT"] = str(port)  # moto uses it when it calls itself

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="moto-shim", daemon=True)
    thread.start()

    if args.port_file:
        tmp = f"{args.port_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"listening on http://{args.host}:{port}", flush=True)

    while not stop.wait(0.2):
        if args.exit_with_parent and os.getppid() != parent:
            break
        if not thread.is_alive():
            print("moto_shim: server thread died", file=sys.stderr)
            return 1
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
