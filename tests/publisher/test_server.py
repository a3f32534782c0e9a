"""What the network adds: reflection, health, metrics of intake outcomes."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.harness.grpc_errors import expect_rpc_error
from tests.publisher.conftest import IdentityKey, PublisherUnderTest, publish, register


def _list_services(port: int) -> set[str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return set(ProtoReflectionDescriptorDatabase(channel).get_services())


async def test_reflection_and_health_are_open(publisher: PublisherUnderTest) -> None:
    services = await asyncio.to_thread(_list_services, publisher.running.port)
    assert "proofline.publisher.v1.PublisherService" in services
    health = health_pb2_grpc.HealthStub(publisher.channel)
    for name in ["", "proofline.publisher.v1.PublisherService"]:
        response = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_intake_outcomes_are_counted(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    intent = key.intent()
    await publish(publisher, intent)
    await publish(publisher, intent)
    await expect_rpc_error(publish(publisher, IdentityKey.generate().intent()), grpc.StatusCode.PERMISSION_DENIED)
    registry = publisher.running.registry
    assert registry.get_sample_value("publisher_intents_total", {"outcome": "accepted", "reason": ""}) == 1
    assert registry.get_sample_value("publisher_intents_total", {"outcome": "deduplicated", "reason": ""}) == 1
    assert (
        registry.get_sample_value("publisher_intents_total", {"outcome": "refused", "reason": "IDENTITY_UNKNOWN"}) == 1
    )
