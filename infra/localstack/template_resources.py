"""Reads infra/template.yaml and deploys or describes what LocalStack can run of it.

LocalStack cannot create runnable Lambda functions without Docker, so the serverless
resources (functions, HTTP API) and everything that refers to them are removed; the rest
(table, bus, queues, alarms on them) is deployed as a CloudFormation stack, so the tests run
against the template's own resources.

  python template_resources.py deploy STACK [Key=Value ...]   -> outputs as JSON
  python template_resources.py delete STACK
  python template_resources.py wiring                         -> routes and event sources as JSON
  python template_resources.py http-api [Key=Value ...]       -> the HTTP API's parameter-driven settings
  python template_resources.py grants                         -> each function's DynamoDB grants
  python template_resources.py environment                    -> each function's environment variable names
"""

import json
import os
import sys
import time

from cfnlint.decode import decode

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "template.yaml")


def load():
    template, matches = decode(TEMPLATE)
    if matches:
        raise SystemExit(f"cannot parse {TEMPLATE}: {matches}")
    return json.loads(json.dumps(template, default=str))


def refs(node):
    """Logical ids a template fragment refers to."""
    out = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                out.add(v)
            elif k == "Fn::GetAtt":
                target = v[0] if isinstance(v, list) else str(v).split(".")[0]
                out.add(target)
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) else v
                import re

                out.update(m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text))
                out |= refs(v)
            else:
                out |= refs(v)
    elif isinstance(node, list):
        for v in node:
            out |= refs(v)
    return out


def without_functions(t):
    resources = dict(t["Resources"])
    removed = {k for k, r in resources.items() if r["Type"].startswith("AWS::Serverless::")}
    changed = True
    while changed:
        changed = False
        for k, r in list(resources.items()):
            if k in removed:
                continue
            if refs(r) & removed:
                removed.add(k)
                changed = True
    kept = {k: r for k, r in resources.items() if k not in removed}
    # Log groups named after removed functions are of no use without them.
    kept = {k: r for k, r in kept.items() if r["Type"] != "AWS::Logs::LogGroup"}
    outputs = {k: o for k, o in t.get("Outputs", {}).items() if not (refs(o) & (set(resources) - set(kept)))}
    return {
        "AWSTemplateFormatVersion": t["AWSTemplateFormatVersion"],
        "Description": t.get("Description", ""),
        "Parameters": t.get("Parameters", {}),
        "Conditions": t.get("Conditions", {}),
        "Resources": kept,
        "Outputs": outputs,
    }


def client(name):
    import boto3

    return boto3.client(
        name,
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )


def deploy(stack, params):
    t = without_functions(load())
    cfn = client("cloudformation")
    parameters = [{"ParameterKey": "JwtSecrets", "ParameterValue": "x" * 44}]
    if not any(p.startswith("Scanner=") for p in params):
        # No default in the template: every deployment names its scanner.
        parameters.append({"ParameterKey": "Scanner", "ParameterValue": "none"})
    for p in params:
        k, v = p.split("=", 1)
        parameters.append({"ParameterKey": k, "ParameterValue": v})
    # Parameters the stripped template no longer uses are dropped by CloudFormation only if
    # declared; keep every declared one.
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(t), Parameters=parameters)
    for _ in range(600):
        s = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = s["StackStatus"]
        if status == "CREATE_COMPLETE":
            out = {o["OutputKey"]: o["OutputValue"] for o in s.get("Outputs", [])}
            out["Resources"] = sorted(t["Resources"])
            print(json.dumps(out))
            return
        if status.endswith("FAILED") or status.startswith("ROLLBACK"):
            events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
            reasons = [e.get("ResourceStatusReason") for e in events if e.get("ResourceStatusReason")]
            raise SystemExit(f"stack {stack}: {status}: {reasons[:5]}")
        time.sleep(0.2)
    raise SystemExit(f"stack {stack} not created in time")


def delete(stack):
    client("cloudformation").delete_stack(StackName=stack)
    print(json.dumps({"deleted": stack}))


def wiring():
    """Which function serves which route and event source, as the template declares."""
    t = load()
    out = {}
    for name, r in t["Resources"].items():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        binary = r.get("Metadata", {}).get("BuildProperties", {}).get("Binary", name)
        events = []
        for ev in r["Properties"].get("Events", {}).values():
            p = ev.get("Properties", {})
            if ev["Type"] == "HttpApi":
                events.append({"type": "http", "method": p["Method"], "path": p["Path"]})
            elif ev["Type"] == "DynamoDB":
                events.append({"type": "dynamodb-stream", "table": sorted(refs(p["Stream"]))[0],
                               "report_batch_item_failures": "ReportBatchItemFailures" in p.get("FunctionResponseTypes", []),
                               "bisect": p.get("BisectBatchOnFunctionError", False),
                               "on_failure": "OnFailure" in p.get("DestinationConfig", {})})
            elif ev["Type"] == "SQS":
                events.append({"type": "sqs", "queue": sorted(refs(p["Queue"]))[0],
                               "report_batch_item_failures": "ReportBatchItemFailures" in p.get("FunctionResponseTypes", [])})
            else:
                events.append({"type": ev["Type"]})
        out[binary] = events
    print(json.dumps(out))


def grants():
    """Each function's DynamoDB grants: actions, the tables they reach, key conditions."""
    t = load()
    out = {}
    for name, r in t["Resources"].items():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        binary = r.get("Metadata", {}).get("BuildProperties", {}).get("Binary", name)
        found = []
        for policy in r["Properties"].get("Policies", []):
            if not isinstance(policy, dict):
                found.append({"managed": str(policy)})
                continue
            for st in policy.get("Statement", []):
                actions = st.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                if not any(a.startswith("dynamodb:") for a in actions):
                    continue
                cond = st.get("Condition", {})
                leading = None
                for op in cond.values():
                    if "dynamodb:LeadingKeys" in op:
                        leading = op["dynamodb:LeadingKeys"]
                found.append({
                    "actions": sorted(actions),
                    "tables": sorted(refs(st.get("Resource", []))),
                    "leading_keys": leading,
                })
        out[binary] = found
    print(json.dumps(out))


def environment():
    """The names of each function's environment variables (globals included)."""
    t = load()
    common = t.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    out = {}
    for name, r in t["Resources"].items():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        binary = r.get("Metadata", {}).get("BuildProperties", {}).get("Binary", name)
        own = r["Properties"].get("Environment", {}).get("Variables", {})
        out[binary] = sorted(set(common) | set(own))
    print(json.dumps(out))


def resolve(node, params, conditions):
    """Evaluates Ref (parameters), Fn::If, Fn::Equals and Fn::Not over `params`."""
    if isinstance(node, dict) and len(node) == 1:
        (k, v), = node.items()
        if k == "Ref" and v in params:
            return params[v]
        if k == "Fn::If":
            cond, yes, no = v
            return resolve(yes if resolve(conditions[cond], params, conditions) else no, params, conditions)
        if k == "Fn::Equals":
            a, b = (resolve(x, params, conditions) for x in v)
            return str(a) == str(b)
        if k == "Fn::Not":
            return not resolve(v[0], params, conditions)
    return node


def http_api(assignments):
    """The HTTP API's settings that depend on parameters, for `Name=value` assignments."""
    t = load()
    params = {k: v.get("Default") for k, v in t.get("Parameters", {}).items()}
    for a in assignments:
        k, _, v = a.partition("=")
        params[k] = v
    api = next(r for r in t["Resources"].values() if r["Type"] == "AWS::Serverless::HttpApi")
    props = api["Properties"]
    conditions = t.get("Conditions", {})
    print(json.dumps({
        "disable_execute_api_endpoint": resolve(props.get("DisableExecuteApiEndpoint", False), params, conditions),
    }))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "deploy":
        deploy(sys.argv[2], sys.argv[3:])
    elif cmd == "delete":
        delete(sys.argv[2])
    elif cmd == "wiring":
        wiring()
    elif cmd == "grants":
        grants()
    elif cmd == "environment":
        environment()
    elif cmd == "http-api":
        http_api(sys.argv[2:])
    else:
        raise SystemExit(__doc__)
