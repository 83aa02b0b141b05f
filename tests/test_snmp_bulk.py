"""The v2c multi-column GETBULK walk (probes/snmp_bulk.py) against a small real UDP agent
(tests/snmp/bulk_agent.py, pysnmp's codec) that can answer tooBig or scramble its rows, and the
BER codec (probes/snmp_ber.py) against pysnmp's."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pysnmp", reason="the test agent needs pysnmp (pip install snmpsim)")

from pyasn1.codec.ber import decoder, encoder  # noqa: E402
from pysnmp.proto import api, rfc1902, rfc1905  # noqa: E402

from probes.base import Target  # noqa: E402
from probes.snmp import SnmpPoller, SnmpSettings  # noqa: E402
from probes.snmp_ber import (  # noqa: E402
    GETBULK,
    Shape,
    decode_response,
    encode_request,
    oid_bytes,
    oid_text,
    values,
)
from tests.conftest import FakeClock  # noqa: E402
from tests.snmp import agents, extra  # noqa: E402
from tests.snmp.agents import COMMUNITY, Agent  # noqa: E402
from tests.snmp.bulk_agent import BulkAgent  # noqa: E402

snmpd_fixture = agents.snmpd_fixture

V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
ROWS = 30
IF, IFX = (1, 3, 6, 1, 2, 1, 2, 2, 1), (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)


def device() -> dict[tuple[int, ...], Any]:
    """The generic profile's objects for a 30-port switch, and objects around its columns."""
    objects: dict[tuple[int, ...], Any] = {
        (1, 3, 6, 1, 2, 1, 1, 1, 0): rfc1902.OctetString(b"bulk test agent"),
        (1, 3, 6, 1, 2, 1, 1, 2, 0): rfc1902.ObjectIdentifier((1, 3, 6, 1, 4, 1, 8072, 3)),
        (1, 3, 6, 1, 2, 1, 1, 3, 0): rfc1902.TimeTicks(123456),
        (1, 3, 6, 1, 2, 1, 1, 4, 0): rfc1902.OctetString(b"noc"),  # GETNEXT past sysObjectID
        (1, 3, 6, 1, 2, 1, 1, 5, 0): rfc1902.OctetString(b"sw-bulk"),
        (*IF, 2, 1): rfc1902.OctetString(b"not walked"),  # ifDescr: before the columns
        (*IFX, 18, 1): rfc1902.OctetString(b"alias"),  # ifAlias: after the last column
    }
    for i in range(1, ROWS + 1):
        objects |= {
            (*IF, 7, i): rfc1902.Integer(1),
            (*IF, 8, i): rfc1902.Integer(1 if i % 3 else 2),
            (*IF, 9, i): rfc1902.TimeTicks(100 * i),
            (*IF, 14, i): rfc1902.Counter32(i),
            (*IF, 20, i): rfc1902.Counter32(2 * i),
            (*IFX, 1, i): rfc1902.OctetString(f"Gi1/0/{i}".encode()),
            (*IFX, 6, i): rfc1902.Counter64(2**40 + i),
            (*IFX, 10, i): rfc1902.Counter64(2**33 + i),
            (*IFX, 15, i): rfc1902.Gauge32(1000),
        }
    return objects


async def poll(agent: BulkAgent, **settings: Any) -> tuple[dict[str, Any], int]:
    """Two polls (the second starts from the row count learned by the first): the last
    poll's findings and the requests of both."""
    poller, sent = SnmpPoller.from_directory(), 0
    config = SnmpSettings(**{"community": "c", "port": agent.port, "timeout": 1.0, **settings})
    for _ in range(2):
        result = await poller.poll(Target("s", "sw", "127.0.0.1"), config)
        assert result.ok and result.reason == "", result.reason
        sent += result.sent
    found = extra(result)
    found.pop("poll_seconds")
    return found, sent


async def test_a_24_port_poll_is_one_request_with_the_scalars_in_it() -> None:
    async with BulkAgent(device(), "c") as agent:
        found, sent = await poll(agent)
    assert sent == agent.requests == 2  # one per poll: 4 non-repeaters + 9 columns x 31+ rows
    assert found["complete"] and found["sys_name"] == "sw-bulk"
    assert found["sys_uptime_seconds"] == 1234.56 and found["sys_descr"] == "bulk test agent"
    assert found["sys_object_id"] == "1.3.6.1.4.1.8072.3"
    rows = found["interfaces"]
    assert [r["index"] for r in rows] == list(range(1, ROWS + 1))
    assert rows[-1]["name"] == "Gi1/0/30" and rows[-1]["in_octets_counter"] == 2**40 + 30
    assert rows[2]["oper_up"] is False and rows[-1]["in_bps"] == 0.0


@pytest.mark.parametrize(
    ("too_big", "how"),
    [(40, "max-repetitions halved to 4"), (8, "9 columns x 1 row refused: column by column")],
)
async def test_an_agent_answering_too_big_gets_smaller_requests(too_big: int, how: str) -> None:
    async with BulkAgent(device(), "c") as good:
        reference, good_sent = await poll(good)
    async with BulkAgent(device(), "c", too_big=too_big) as agent:
        found, sent = await poll(agent)
    assert found == reference, how
    assert agent.refused > 0 and sent > good_sent


async def test_an_agent_returning_columns_out_of_order_is_walked_column_by_column() -> None:
    """Each row's varbinds come back in reverse column order: the slots of column 1 hold
    column 9's OIDs, which a position-only walk would take for column 1's end (and lose its
    rows). The answer's own order gives it away; the columns are then walked one by one."""
    async with BulkAgent(device(), "c") as good:
        reference, good_sent = await poll(good)
    async with BulkAgent(device(), "c", scramble=True) as agent:
        found, sent = await poll(agent, max_repetitions=10)
    assert found == reference
    assert sent > good_sent


async def test_a_late_answer_to_a_retried_request_is_not_taken_for_a_later_one() -> None:
    """The first GETBULK's answer arrives while the third request waits: each attempt has
    its own request-id, so it is dropped, not taken for the third's answer (which would have
    failed the order check and cost column-by-column requests)."""
    async with BulkAgent(device(), "c") as good:
        reference, good_sent = await poll(good, max_repetitions=2)
    async with BulkAgent(device(), "c", hold_first=True) as agent:
        # 1 s: only the held first request waits it out; every other answer must come within
        # it, or its retry is one more request (0.2 s was missed once under CI load)
        found, sent = await poll(agent, max_repetitions=2, timeout=1.0, retries=1)
    assert agent.late_sent and found == reference
    assert sent == agent.requests == good_sent + 1  # the retry, nothing else


async def test_snmpv1_stays_on_per_column_walks_with_the_same_data(snmpd: Agent) -> None:
    """v1 has no GETBULK: gufo-snmp's GETNEXT walks, column by column, read what the v2c
    multi-column walk reads (in many more requests)."""
    poller = SnmpPoller.from_directory()
    results = {}
    for version in ("1", "2c"):
        config = SnmpSettings(version=version, community=COMMUNITY, port=snmpd.port)
        result = await poller.poll(Target("s", f"snmpd-v{version}", snmpd.host), config)
        assert result.ok and result.reason == "", result.reason
        found = extra(result)
        results[version] = (result.sent, [i["name"] for i in found["interfaces"]])
    (v1_sent, v1_names), (v2_sent, v2_names) = results["1"], results["2c"]
    assert v1_names == v2_names and v1_names
    assert v2_sent == 1 < v1_sent


def test_the_codec_reads_what_pysnmp_writes_and_writes_what_it_reads() -> None:
    oids = [oid_bytes("1.3.6.1.2.1.1.3"), oid_bytes("1.3.6.1.4.1.14179.2.2.1.1.3")]
    request = encode_request(1, b"public", GETBULK, 12345, oids, 1, 25)
    message, _ = decoder.decode(request, asn1Spec=V2C.Message())
    pdu = V2C.apiMessage.get_pdu(message)
    assert str(V2C.apiMessage.get_community(message)) == "public"
    assert V2C.apiPDU.get_request_id(pdu) == 12345
    assert (V2C.apiBulkPDU.get_non_repeaters(pdu), V2C.apiBulkPDU.get_max_repetitions(pdu)) == (
        1,
        25,
    )
    assert [str(o) for o, _ in V2C.apiPDU.get_varbinds(pdu)] == [
        "1.3.6.1.2.1.1.3",
        "1.3.6.1.4.1.14179.2.2.1.1.3",
    ]
    values = [
        (rfc1902.Integer(-5), -5),
        (rfc1902.OctetString(b"\x00\xffab"), b"\x00\xffab"),
        (rfc1902.ObjectIdentifier((1, 3, 6, 1, 4, 1, 200000)), "1.3.6.1.4.1.200000"),
        (rfc1902.IpAddress("10.1.2.3"), "10.1.2.3"),
        (rfc1902.Counter32(2**32 - 1), 2**32 - 1),
        (rfc1902.Gauge32(7), 7),
        (rfc1902.TimeTicks(360000), 360000),
        (rfc1902.Counter64(2**64 - 1), 2**64 - 1),
        (rfc1905.endOfMibView, "endOfMibView"),
    ]
    answer = V2C.apiMessage.get_response(message)
    rpdu = V2C.apiMessage.get_pdu(answer)
    names = [(1, 3, 6, 1, 4, 1, 9, 300 + i, 128 * i) for i in range(len(values))]
    V2C.apiPDU.set_varbinds(rpdu, [(n, v) for n, (v, _) in zip(names, values, strict=True)])
    decoded = decode_response(encoder.encode(answer), b"public")
    assert decoded.request_id == 12345 and decoded.error_status == 0
    assert [oid_text(o) for o, _ in decoded.varbinds] == [".".join(map(str, n)) for n in names]
    assert [v for _, v in decoded.varbinds] == [want for _, want in values]


def answer_with(binds: list[tuple[tuple[int, ...], Any]]) -> bytes:
    """A v2c response datagram (pysnmp's encoder) carrying ``binds``."""
    request = encode_request(1, b"public", GETBULK, 777, [oid_bytes("1.3.6.1.2.1.1")], 0, 5)
    message, _ = decoder.decode(request, asn1Spec=V2C.Message())
    answer = V2C.apiMessage.get_response(message)
    V2C.apiPDU.set_varbinds(V2C.apiMessage.get_pdu(answer), binds)
    return bytes(encoder.encode(answer))


@pytest.mark.parametrize("long_value", [False, True], ids=["short-form", "long-form lengths"])
def test_an_answer_of_the_same_shape_is_read_without_decoding_and_reads_the_same(
    long_value: bool,
) -> None:
    """A Shape cuts an answer whose bytes between the values are the same into the same
    varbinds' values; a value whose encoded length changed makes it another shape."""
    name = b"x" * (200 if long_value else 7)  # 200 bytes: long-form lengths in the varbind

    def binds(counter: int, text: bytes) -> list[tuple[tuple[int, ...], Any]]:
        return [
            ((*IF, 8, 1), rfc1902.Integer(1)),
            ((*IFX, 1, 1), rfc1902.OctetString(text)),
            ((*IFX, 6, 1), rfc1902.Counter64(counter)),
            ((*IFX, 6, 2), rfc1905.noSuchInstance),
        ]

    first = decode_response(answer_with(binds(2**40, name)), b"public")
    shape = Shape.of(first)
    later = decode_response(answer_with(binds(2**40 + 12345, name[::-1])), b"public", lazy=True)
    got = shape.values(later)
    assert got is not None
    assert values(shape.tags, got) == [v for _, v in later.varbinds]  # decoded only here
    assert values(shape.tags, got)[2] == 2**40 + 12345
    longer = decode_response(answer_with(binds(2**56, name)), b"public", lazy=True)
    assert shape.values(longer) is None  # the counter is one byte longer
    other = decode_response(answer_with(binds(2**40, name[:-1] + b"")), b"public", lazy=True)
    assert shape.values(other) is None


async def test_later_polls_read_by_the_layout_what_decoding_reads() -> None:
    """Polls 3.. of a device take the table's answer by the last poll's layout (same shape):
    their findings are those of polls that decode every answer, whether the values keep
    their encoded lengths or not (the layout is then replaced)."""
    objects = device()
    results: dict[bool, list[dict[str, Any]]] = {}
    layouts = []
    for forget in (False, True):
        clock = FakeClock()
        poller, found = SnmpPoller.from_directory(clock=clock), []
        async with BulkAgent(objects, "c") as agent:
            config = SnmpSettings(community="c", port=agent.port, timeout=1.0)
            for step in range(6):
                for i in range(1, ROWS + 1):  # counters move; at step 3 one gets a byte longer
                    grow = 2**56 if step == 3 and i == 4 else 1000 * step
                    agent.objects[(*IFX, 6, i)] = rfc1902.Counter64(2**40 + i + grow)
                if forget:
                    poller._rows = {key: (rows, {}) for key, (rows, _) in poller._rows.items()}
                result = await poller.poll(Target("s", "sw", "127.0.0.1"), config)
                clock.advance(60.0)
                assert result.ok and result.reason == "" and result.sent == 1
                found.append({k: v for k, v in extra(result).items() if k != "poll_seconds"})
                if not forget:
                    layouts.append(poller._rows[("s", "sw")][1].get("if"))
        results[forget] = found
    assert results[False] == results[True]
    assert results[False][5]["interfaces"][0]["in_octets_counter"] == 2**40 + 1 + 5000
    # none from the first poll (the next asks for fewer rows); kept while the shape holds
    assert layouts[0] is None and layouts[1] is not None
    assert layouts[2] is layouts[1] and layouts[3] is not layouts[2]  # a longer counter
    assert layouts[4] is not layouts[3] and layouts[5] is layouts[4]
