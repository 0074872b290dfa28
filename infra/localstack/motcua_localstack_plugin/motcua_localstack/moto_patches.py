"""Patches of moto's DynamoDB engine, applied when our providers load.

moto's TransactWriteItems deep-copies every table of the account before each transaction
(to roll back on failure), which makes each transaction cost as much as all the data held:
with a few thousand dossiers LocalStack fell to single-digit transactions per second. This
version checks every condition first and writes nothing if one fails (as DynamoDB does),
then applies the writes, keeping only the touched items to put back if a write raises.
Callers hold the providers' lock, so nothing changes between the check and the writes.

moto also answers a Query on the table's own key by scanning every item of the table; the
patched query looks only at the partition asked for (index queries still scan).
"""

import copy
import functools


def transact_write_items(self, transact_items):
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models.dynamo_type import DynamoType

    if len(transact_items) > 100:
        raise TooManyTransactionsException()

    seen = set()
    errors = []
    plan = []
    # Phase 1: every condition, no writes.
    for item in transact_items:
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        table_name = op["TableName"]
        table = self.get_table(table_name)
        if op_type == "Put":
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        unique = (str(table_name), str(key))
        if unique in seen:
            raise MultipleTransactionsException()
        seen.add(unique)
        current = self.get_item(table_name, key)
        condition = op.get("ConditionExpression")
        original_item = None
        if condition is not None:
            condition_op = get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not condition_op.expr(current):
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    original_item = current.to_json()["Attributes"]
                errors.append(("ConditionalCheckFailed", "The conditional request failed", original_item))
                continue
        errors.append((None, None, None))
        plan.append((op_type, op, table_name, table, key))

    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    # Phase 2: the writes, with an undo log of the touched items.
    undo = []
    try:
        for op_type, op, table_name, table, key in plan:
            if op_type == "ConditionCheck":
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = (
                DynamoType(key[table.range_key_attr]) if table.range_key_attr is not None else None
            )
            previous = table.get_item(hash_value, range_value)
            stream_len = len(table.stream_shard.items) if table.stream_shard is not None else None
            undo.append((table, hash_value, range_value, copy.deepcopy(previous), stream_len))
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(table_name, op["Item"], expression_attribute_names=names,
                              expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(table_name, key, expression_attribute_names=names,
                                 expression_attribute_values=values)
            elif op_type == "Update":
                self.update_item(table_name, key, update_expression=op["UpdateExpression"],
                                 expression_attribute_names=names,
                                 expression_attribute_values=values)
    except Exception as e:
        for table, hash_value, range_value, previous, stream_len in reversed(undo):
            if range_value is not None:
                if previous is None:
                    table.items[hash_value].pop(range_value, None)
                else:
                    table.items[hash_value][range_value] = previous
            else:
                if previous is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = previous
            if stream_len is not None:
                del table.stream_shard.items[stream_len:]
        if isinstance(e, MockValidationException):
            raise
        raise TransactionCanceledException(
            [(type(e).__name__, str(e), None)] + [(None, None, None)] * (len(transact_items) - 1)
        )


def _partition_query(original):
    @functools.wraps(original)
    def query(self, hash_key, *args, **kwargs):
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name:
            return original(self, hash_key, *args, **kwargs)
        partition = self.items.get(hash_key)

        def only_partition():
            if partition is None:
                return iter(())
            if self.range_key_attr is not None:
                return iter(list(partition.values()))
            return iter([partition])

        self.all_items = only_partition
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    return query


def apply():
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    if getattr(DynamoDBBackend, "_motcua_patched", False):
        return
    DynamoDBBackend.transact_write_items = transact_write_items
    Table.query = _partition_query(Table.query)
    DynamoDBBackend._motcua_patched = True
