"""A self-hosted worker connects only to what its operator configured: the LiveKit server, the
model server and the store. Every connect and every datagram of the worker and its job
processes is recorded (strace) through a whole call under `dev`, the mode in which LiveKit
would otherwise send the caller's audio to its cloud gateway."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from tests.live.conftest import Join, StartWorker
from tests.support.caller import wait_until
from tests.support.processes import ModelServer
from voxkeep.sim.speech import Voice

LISBON = "I would like to plan a trip to Lisbon."
SOCKET = re.compile(r"^(\d+)\s+(connect|sendto|sendmsg|sendmmsg)\((\d+)<(\w+):\[([^\]]*)\]>")
ADDRESS = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6?, "([^"]+)"')


@dataclass(frozen=True)
class Traffic:
    call: str
    protocol: str
    destination: str


def _host(endpoint: str) -> str:
    """The address of `host:port` or `[v6]:port`."""
    host = endpoint.rpartition(":")[0]
    return host.strip("[]")


def _is_local(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return bool(ip.is_loopback or ip.is_unspecified or (mapped and mapped.is_loopback))


def traffic_beyond_loopback(trace: str) -> tuple[list[Traffic], list[Traffic]]:
    """From an `strace -f -yy` record: what left (or tried to leave) for another host, and the
    UDP connects that sent nothing (a routing-table lookup: no packet)."""
    left, lookups = [], []
    for line in trace.splitlines():
        found = SOCKET.match(line)
        if found is None:
            continue
        _, call, _, protocol, endpoints = found.groups()
        if protocol not in ("TCP", "TCPv6", "UDP", "UDPv6"):
            continue  # UNIX sockets and netlink stay on the machine
        named = [a or b for a, b in ADDRESS.findall(line)]
        peer = [_host(endpoints.split("->")[1])] if "->" in endpoints else []
        for address in named + peer:
            if _is_local(address):
                continue
            seen = Traffic(call, protocol, address)
            if call == "connect" and protocol.startswith("UDP"):
                lookups.append(seen)  # a send on that socket would show up below
            else:
                left.append(seen)
    return left, lookups


async def test_the_worker_connects_only_to_livekit_the_models_and_the_store(
    start_worker: StartWorker, model_server: ModelServer, join: Join, tmp_path: Path
) -> None:
    trace = tmp_path / "strace.txt"
    record = ["strace", "-f", "-qq", "-yy", "-e", "signal=none", "-o", str(trace),
              "-e", "trace=connect,sendto,sendmsg,sendmmsg"]  # fmt: skip
    await model_server.learn(LISBON, Voice())
    worker = await start_worker(command="dev", wrapper=record)
    alice = await join("alice")
    await alice.chat_id()
    await alice.turn(LISBON)  # speech recognized, answered and spoken: every model is used
    await alice.command({"v": 1, "id": "n1", "type": "new_chat"})
    await alice.leave()
    await wait_until(lambda: worker.saw("call.ended"), 30, "the call to end")
    assert await worker.stop() == 0
    recorded = trace.read_text(errors="replace")

    paths = [r["path"] for r in await model_server.requests()]
    assert {"/v1/audio/transcriptions", "/v1/chat/completions", "/v1/audio/speech"} <= set(paths)
    assert re.search(r"connect\(\d+<TCP:\[[^\]]*\]>, .*htons\(\d+\)", recorded)  # it was seen
    left, lookups = traffic_beyond_loopback(recorded)
    assert left == []
    # libwebrtc asks the routing table for its default address by connecting a UDP socket to a
    # public DNS server's address; no packet is sent
    assert {t.destination for t in lookups} <= {"8.8.8.8", "2001:4860:4860::8888"}


def test_the_trace_reading_sees_a_datagram_or_a_connection_leave() -> None:
    trace = "\n".join([
        '7 connect(3<UDP:[1]>, {sa_family=AF_INET, sin_port=htons(53), '
        'sin_addr=inet_addr("8.8.8.8")}, 16) = 0',
        '7 sendto(5<UDP:[192.0.2.2:58137->10.9.9.9:53]>, "q", 1, 0, NULL, 0) = 1',
        '7 sendto(4<UDP:[2]>, "x", 1, 0, {sa_family=AF_INET, sin_port=htons(9), '
        'sin_addr=inet_addr("127.0.0.1")}, 16) = 1',
        '8 connect(9<TCP:[3]>, {sa_family=AF_INET, sin_port=htons(443), '
        'sin_addr=inet_addr("20.42.65.90")}, 16) = -1 EINPROGRESS',
        '8 connect(9<TCPv6:[4]>, {sa_family=AF_INET6, sin6_port=htons(443), '
        'inet_pton(AF_INET6, "::1", &sin6_addr)}, 28) = 0',
        '9 connect(11<UNIX:[5]>, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110)',
    ])  # fmt: skip
    left, lookups = traffic_beyond_loopback(trace)
    assert left == [Traffic("sendto", "UDP", "10.9.9.9"), Traffic("connect", "TCP", "20.42.65.90")]
    assert lookups == [Traffic("connect", "UDP", "8.8.8.8")]
