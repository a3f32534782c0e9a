"""The contract rules every request passes before a service sees it (proofline_kit.contract_rules):
the requests a hostile run used, and every enum field of every request of every service, found
from the descriptors."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, cast

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from proofline.common.v1 import common_pb2
from proofline.publisher.v1 import publisher_pb2
from proofline.signer.v1 import signer_pb2
from proofline.utxo.v1 import utxo_pb2
from proofline.wallet.v1 import wallet_pb2

from proofline_kit.contract_rules import MAX_VIOLATIONS, ContractRules
from proofline_kit.errors import DomainError, ErrorKind
from proofline_kit.wire import MAX_SATOSHIS

SERVICE_MODULES = (signer_pb2, utxo_pb2, publisher_pb2, wallet_pb2)
INT64_MAX = 2**63 - 1
rules = ContractRules()


def refusal(request: Message) -> DomainError:
    with pytest.raises(DomainError) as raised:
        rules.check(request)
    error = raised.value
    assert error.kind is ErrorKind.INVALID_ARGUMENT
    assert error.field_violations, "every refusal names its field"
    return error


def request_types() -> Iterator[Descriptor]:
    for module in SERVICE_MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield method.input_type


FieldPath = tuple[FieldDescriptor, ...]


def enum_fields(descriptor: Descriptor, prefix: FieldPath = ()) -> Iterator[FieldPath]:
    """Every path from the request to an enum field, through nested messages (not through WKTs)."""
    for field in descriptor.fields:
        inner = field.message_type
        if field.type == FieldDescriptor.TYPE_ENUM:
            yield (*prefix, field)
        elif inner is not None and not inner.full_name.startswith("google.protobuf.") and inner != descriptor:
            yield from enum_fields(inner, (*prefix, field))


def with_value(request: Message, path: tuple[FieldDescriptor, ...], value: int) -> None:
    target: Any = request
    for field in path[:-1]:
        target = getattr(target, field.name).add() if field.is_repeated else getattr(target, field.name)
    last = path[-1]
    if last.is_repeated:
        getattr(target, last.name).append(value)
    else:
        setattr(target, last.name, value)


ENUM_CASES = [
    pytest.param(descriptor, path, id=f"{descriptor.name}.{'.'.join(f.name for f in path)}")
    for descriptor in request_types()
    for path in enum_fields(descriptor)
]


@pytest.mark.parametrize(("descriptor", "path"), ENUM_CASES)
@pytest.mark.parametrize("value", [-1, 99, 2147483647])
def test_every_unknown_enum_value_of_every_request_is_refused(
    descriptor: Descriptor, path: tuple[FieldDescriptor, ...], value: int
) -> None:
    request = GetMessageClass(descriptor)()
    with_value(request, path, value)
    error = refusal(request)
    leaf = path[-1]
    in_policy = leaf.containing_type is not None and leaf.containing_type.name == "KeyPolicy"
    expected = "POLICY_INVALID" if in_policy else f"{leaf.name.upper()}_INVALID"
    assert error.reason == expected
    assert error.field_violations[0].field.startswith(path[0].name)


def test_the_enum_cases_cover_every_service() -> None:
    services = {cast(Descriptor, case.values[0]).file.package for case in ENUM_CASES}
    assert services == {m.DESCRIPTOR.package for m in SERVICE_MODULES}
    assert len(ENUM_CASES) >= 20


@pytest.mark.parametrize("descriptor", list(request_types()), ids=lambda d: d.full_name)
def test_an_empty_request_passes_the_rules(descriptor: Descriptor) -> None:
    rules.check(GetMessageClass(descriptor)())


@pytest.mark.parametrize("value", [-1, 99, 2147483647])
def test_publish_wait_for_unknown_is_wait_for_invalid(value: int) -> None:
    error = refusal(publisher_pb2.PublishRequest(request_id="r-1", wait_for=value))  # type: ignore[arg-type]
    assert (error.reason, error.field_violations[0].field) == ("WAIT_FOR_INVALID", "wait_for")


@pytest.mark.parametrize("satoshis", [INT64_MAX, MAX_SATOSHIS + 1, -1])
def test_add_outputs_refuses_amounts_beyond_the_supply(satoshis: int) -> None:
    request = utxo_pb2.AddOutputsRequest(request_id="r-1", outputs=[utxo_pb2.NewOutput(satoshis=satoshis)])
    error = refusal(request)
    assert (error.reason, error.field_violations[0].field) == ("SATOSHIS_INVALID", "outputs[0].satoshis")


def test_the_supply_itself_is_accepted_but_not_a_sum_above_it() -> None:
    rules.check(utxo_pb2.AddOutputsRequest(outputs=[utxo_pb2.NewOutput(satoshis=MAX_SATOSHIS)]))
    outputs = [utxo_pb2.NewOutput(satoshis=MAX_SATOSHIS), utxo_pb2.NewOutput(satoshis=1)]
    two = utxo_pb2.AddOutputsRequest(outputs=outputs)
    assert refusal(two).field_violations[0].field == "outputs"


def test_list_utxos_max_satoshis_beyond_the_supply() -> None:
    error = refusal(utxo_pb2.ListUtxosRequest(max_satoshis=2_100_000_000_000_001))
    assert error.reason == "MAX_SATOSHIS_INVALID"


def test_sign_transaction_inputs_claiming_int64_max_are_refused_before_signing() -> None:
    spent = [common_pb2.SpentOutput(satoshis=INT64_MAX, locking_script=b"\x51") for _ in range(2)]
    error = refusal(signer_pb2.SignTransactionRequest(request_id="r-1", spent_outputs=spent))
    assert error.reason == "AMOUNT_INVALID"
    # In a batch, the signer refuses such a transaction alone (an ItemError) and signs the others.
    many = signer_pb2.SignTransactionsRequest(
        request_id="r-1", transactions=[signer_pb2.TransactionToSign(spent_outputs=spent)]
    )
    rules.check(many)
    assert refusal(signer_pb2.SignTransactionsRequest(transactions=[many.transactions[0]] * 10_001)).reason == (
        "TRANSACTIONS_INVALID"
    )


def test_a_fencing_token_beyond_bigint_is_refused() -> None:
    error = refusal(utxo_pb2.RenewLeaseRequest(lease_id="l", fencing_token=2**64 - 1))
    assert error.reason == "FENCING_TOKEN_INVALID"


@pytest.mark.parametrize(
    "request_",
    [
        utxo_pb2.LeaseUtxosRequest(lease_duration=Duration(seconds=INT64_MAX)),
        utxo_pb2.RenewLeaseRequest(lease_duration=Duration(seconds=INT64_MAX)),
        utxo_pb2.RenewLeaseRequest(lease_duration=Duration(seconds=5, nanos=-1)),
        utxo_pb2.RenewLeaseRequest(lease_duration=Duration(nanos=1_000_000_000)),
    ],
)
def test_lease_durations_out_of_range(request_: Message) -> None:
    assert refusal(request_).reason == "LEASE_DURATION_INVALID"


@pytest.mark.parametrize(
    "stamp", [{"seconds": 253_402_300_800}, {"seconds": 1, "nanos": -1}, {"seconds": 1, "nanos": 1_000_000_000}]
)
def test_list_jobs_time_range_out_of_range(stamp: dict[str, int]) -> None:
    assert refusal(publisher_pb2.ListJobsRequest(end_time=stamp)).reason == "END_TIME_INVALID"  # type: ignore[arg-type]
    assert refusal(publisher_pb2.ListJobsRequest(start_time=stamp)).reason == "START_TIME_INVALID"  # type: ignore[arg-type]


NUL_CASES = [
    (publisher_pb2.GetJobRequest, "job_id", "JOB_ID_INVALID"),
    (publisher_pb2.WatchJobRequest, "job_id", "JOB_ID_INVALID"),
    (publisher_pb2.RegisterIdentityRequest, "label", "LABEL_INVALID"),
    (publisher_pb2.RegisterIdentityRequest, "owner_ref", "OWNER_REF_INVALID"),
    (publisher_pb2.RevokeIdentityRequest, "reason", "REASON_INVALID"),
    (publisher_pb2.ListIdentitiesRequest, "owner_ref", "OWNER_REF_INVALID"),
    (utxo_pb2.RenewLeaseRequest, "lease_id", "LEASE_ID_INVALID"),
    (utxo_pb2.ReleaseLeaseRequest, "lease_id", "LEASE_ID_INVALID"),
    (utxo_pb2.ReportConflictRequest, "lease_id", "LEASE_ID_INVALID"),
    (utxo_pb2.CommitSpendRequest, "lease_id", "LEASE_ID_INVALID"),
    (utxo_pb2.LeaseUtxosRequest, "holder", "HOLDER_INVALID"),
]


@pytest.mark.parametrize(("message", "field", "reason"), NUL_CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_nul_bytes_never_reach_the_database(message: type[Message], field: str, reason: str) -> None:
    error = refusal(message(**{field: "job\x00id"}))
    assert (error.reason, error.field_violations[0].field) == (reason, field)


def test_names_refuse_control_characters_and_free_text_allows_line_breaks() -> None:
    assert refusal(publisher_pb2.RegisterIdentityRequest(label="a\nb")).reason == "LABEL_INVALID"
    assert refusal(publisher_pb2.RegisterIdentityRequest(label="a\x85b")).reason == "LABEL_INVALID"
    rules.check(publisher_pb2.RevokeIdentityRequest(reason="compromised:\n\tsee ticket 7"))
    assert refusal(publisher_pb2.RevokeIdentityRequest(reason="a\x00")).reason == "REASON_INVALID"
    rules.check(publisher_pb2.RegisterIdentityRequest(label="Zoë's key — 日本"))


def test_a_refusal_never_repeats_the_value_and_names_a_bounded_number_of_fields() -> None:
    huge = "x" * 1_000_000
    error = refusal(signer_pb2.SetKeyPolicyRequest(policy=signer_pb2.KeyPolicy(allowed_destinations=[huge])))
    assert error.reason == "POLICY_INVALID"
    assert len(str(error)) < 200
    items = [signer_pb2.SignItem(key_id="\x00") for _ in range(2000)]
    error = refusal(signer_pb2.SignRequest(items=items))
    assert len(error.field_violations) == MAX_VIOLATIONS


def test_repeated_fields_are_bounded() -> None:
    request = utxo_pb2.SyncFromChainRequest(owner_key_ids=["k"] * 10_001)
    assert refusal(request).reason == "OWNER_KEY_IDS_INVALID"


EDGE_INTS = [0, 1, -1, 2**31 - 1, 2**31, 2**32 - 1, MAX_SATOSHIS, MAX_SATOSHIS + 1, INT64_MAX, -(2**63)]
EDGE_STRINGS = ["", "key-1", "a\x00b", "tab\there", "line\nbreak", "x" * 4096, "x" * 4097, "é\x85", "日本"]
_BOUNDS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
}


def random_value(field: FieldDescriptor, rng: random.Random, depth: int) -> Any:
    if field.type == FieldDescriptor.TYPE_STRING:
        return rng.choice(EDGE_STRINGS)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.randint(0, 40))
    if field.type == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return rng.choice([*field.enum_type.values_by_number, -1, 99])
    if field.type in _BOUNDS:
        low, high = _BOUNDS[field.type]
        return min(max(rng.choice([*EDGE_INTS, rng.randint(0, 10**6)]), low), high)
    assert field.message_type is not None
    return random_message(field.message_type, rng, depth + 1)


def random_message(descriptor: Descriptor, rng: random.Random, depth: int = 0) -> Message:
    message = GetMessageClass(descriptor)()
    if descriptor.full_name == "google.protobuf.Timestamp":
        message.seconds = rng.choice([0, 1_700_000_000, 253_402_300_800, -62_135_596_801])  # type: ignore[attr-defined]
        message.nanos = rng.choice([0, -1, 999_999_999, 10**9])  # type: ignore[attr-defined]
        return message
    if descriptor.full_name == "google.protobuf.Duration":
        message.seconds = rng.choice([0, 30, -5, 315_576_000_001, INT64_MAX])  # type: ignore[attr-defined]
        message.nanos = rng.choice([0, -1, 5, 10**9])  # type: ignore[attr-defined]
        return message
    for field in descriptor.fields:
        if depth > 3 or rng.random() < 0.4:
            continue
        if field.is_repeated:
            target = getattr(message, field.name)
            for _ in range(rng.randint(0, 3)):
                value = random_value(field, rng, depth)
                if field.message_type is not None:
                    target.add().CopyFrom(value)
                else:
                    target.append(value)
        elif field.message_type is not None:
            getattr(message, field.name).CopyFrom(random_value(field, rng, depth))
        else:
            setattr(message, field.name, random_value(field, rng, depth))
    return message


@pytest.mark.parametrize("descriptor", list(request_types()), ids=lambda d: d.full_name)
def test_the_compiled_check_agrees_with_the_walk_that_names_violations(descriptor: Descriptor) -> None:
    rng = random.Random(descriptor.full_name)
    outcomes = set()
    for _ in range(200):
        message = random_message(descriptor, rng)
        valid = rules.valid(message)
        assert valid == (not rules.violations(message)), message
        outcomes.add(valid)
    if any(f.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_ENUM) for f in descriptor.fields):
        assert outcomes == {True, False}, "the random messages reach both answers"
