"""What the network adds: reflection, health, auth ordering, shutdown."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.harness.grpc_errors import expect_rpc_error
from tests.signer_gateway.conftest import SignerUnderTest, signer_env, start_signer_under_test


def _list_services(port: int) -> set[str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return set(ProtoReflectionDescriptorDatabase(channel).get_services())


async def test_reflection_lists_services_without_credentials(signer: SignerUnderTest) -> None:
    services = await asyncio.to_thread(_list_services, signer.running.port)
    assert services == {
        "proofline.signer.v1.SignerService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


async def test_health_is_open_and_serving(signer: SignerUnderTest) -> None:
    health = health_pb2_grpc.HealthStub(signer.channel)
    for name in ["", "proofline.signer.v1.SignerService"]:
        response = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_unknown_methods_are_unimplemented_even_without_credentials(signer: SignerUnderTest) -> None:
    for method in [
        "/proofline.signer.v1.SignerService/Nope",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ]:
        call = signer.channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        await expect_rpc_error(call(b"", timeout=5), grpc.StatusCode.UNIMPLEMENTED)


async def test_health_turns_not_serving_when_the_server_drains(database_url: str) -> None:
    under_test = await start_signer_under_test(signer_env(database_url))
    health = health_pb2_grpc.HealthStub(under_test.channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    stopping = asyncio.ensure_future(under_test.running.stop())
    second = await asyncio.wait_for(watch.read(), 5)
    assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await stopping
    await under_test.channel.close()
