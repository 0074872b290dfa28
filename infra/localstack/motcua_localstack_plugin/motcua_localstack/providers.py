"""DynamoDB and DynamoDB Streams served by moto, LocalStack's bundled open-source engine.

LocalStack's default DynamoDB provider downloads and runs Amazon's DynamoDB Local jar, which
is not open source. These providers answer every operation through moto instead: empty
subclasses of the generated API classes, dispatched with MotoFallbackDispatcher. Selected
with PROVIDER_OVERRIDE_DYNAMODB=moto and PROVIDER_OVERRIDE_DYNAMODBSTREAMS=moto.

moto is not safe under concurrent requests: two TransactWriteItems on the same item can
both succeed, and a cancelled transaction can leave some of its writes behind (seen here
with 16 concurrent conditional transactions). DynamoDB isolates transactions, so every
operation of both services runs under one lock: slower, but with DynamoDB's semantics.
moto_patches makes transactions cost what they touch instead of the whole account's data.
"""

import threading

from localstack.services.plugins import Service, aws_provider

# One lock for both services: the streams API reads the shards the table writes fill.
_LOCK = threading.RLock()


def _serialized(provider):
    from localstack.services.moto import MotoFallbackDispatcher

    table = MotoFallbackDispatcher(provider)

    def wrap(fn):
        def call(context, request):
            with _LOCK:
                return fn(context, request)

        return call

    return {op: wrap(fn) for op, fn in table.items()}


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto():
    from localstack.aws.api.dynamodb import DynamodbApi

    from motcua_localstack import moto_patches

    moto_patches.apply()

    class MotoDynamodbProvider(DynamodbApi):
        pass

    return Service.for_provider(MotoDynamodbProvider(), dispatch_table_factory=_serialized)


@aws_provider(api="dynamodbstreams", name="moto")
def dynamodbstreams_moto():
    from localstack.aws.api.dynamodbstreams import DynamodbstreamsApi

    class MotoDynamodbstreamsProvider(DynamodbstreamsApi):
        pass

    return Service.for_provider(MotoDynamodbstreamsProvider(), dispatch_table_factory=_serialized)
