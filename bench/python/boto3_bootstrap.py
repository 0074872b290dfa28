"""A Python 3.11 function with boto3, as most Lambda users write one: the reference
`motcua-cold-start` puts beside the Rust functions. It builds the clients the submission
and identity functions build (DynamoDB, Secrets Manager, EventBridge), then serves the
Runtime API like the managed Python runtime does: GET the next event, answer an HTTP API
event by reading the catalogue from DynamoDB, POST the answer."""

import json
import os
import urllib.request

import boto3

TABLE = os.environ["MOTCUA_TABLE"]
ddb = boto3.client("dynamodb")
secrets = boto3.client("secretsmanager")
events = boto3.client("events")


def handler(event):
    items = ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "CATALOGUE"}},
    )["Items"]
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps([i.get("body", {}).get("S") for i in items]),
    }


api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    body = json.dumps(handler(event)).encode()
    urllib.request.urlopen(
        urllib.request.Request(api + request_id + "/response", data=body, method="POST")
    ).read()
