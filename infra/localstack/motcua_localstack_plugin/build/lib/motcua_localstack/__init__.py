"""LocalStack providers of motcua: DynamoDB on moto instead of Amazon's DynamoDB Local jar."""
