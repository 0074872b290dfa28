"""DynamoDB and DynamoDB Streams served by moto, LocalStack's bundled open-source engine.

LocalStack's default DynamoDB provider downloads and runs Amazon's DynamoDB Local jar, which
is not open source. These providers answer every operation through moto instead: empty
subclasses of the generated API classes, dispatched with MotoFallbackDispatcher. Selected
with PROVIDER_OVERRIDE_DYNAMODB=moto and PROVIDER_OVERRIDE_DYNAMODBSTREAMS=moto.
"""

from localstack.services.plugins import Service, aws_provider


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto():
    from localstack.aws.api.dynamodb import DynamodbApi
    from localstack.services.moto import MotoFallbackDispatcher

    class MotoDynamodbProvider(DynamodbApi):
        pass

    return Service.for_provider(MotoDynamodbProvider(), dispatch_table_factory=MotoFallbackDispatcher)


@aws_provider(api="dynamodbstreams", name="moto")
def dynamodbstreams_moto():
    from localstack.aws.api.dynamodbstreams import DynamodbstreamsApi
    from localstack.services.moto import MotoFallbackDispatcher

    class MotoDynamodbstreamsProvider(DynamodbstreamsApi):
        pass

    return Service.for_provider(
        MotoDynamodbstreamsProvider(), dispatch_table_factory=MotoFallbackDispatcher
    )
