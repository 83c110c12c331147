"""Sockets of the simulated modem, bridged to real loopback TCP / UDP, with TLS and DTLS ended here.

On-air byte model (what ``counters()`` reports; an estimate, not a capture):
- IPv4 header 20 bytes; TCP header 20 bytes (no options); UDP header 8 bytes.
- TCP open: SYN (40 up), SYN-ACK (40 down), ACK (40 up): one round trip.
- TCP send of n bytes (TLS records included when TLS is on): ceil(n / 1460) segments of
  n + 40 * segments bytes up: one round trip per send.
- TCP receive of a chunk of n bytes: n + 40 * ceil(n / 1460) down.
- ACKs are delayed as TCP receivers do (RFC 1122 4.2.3.2, RFC 9293 3.8.6.3: less than 0.5 s, and
  at least every second full-sized segment): an ACK rides on the data the receiver sends back
  within its delay (the broker's PUBACK carries the ACK for the PUBLISH) and is a pure 40-byte
  segment only when nothing goes back in time. The far end's delay is Linux's shortest,
  TCP_DELACK_MIN = HZ/25 = 40 ms of real time (include/net/tcp.h; the peers here are real
  servers on this host); the modem's is 200 ms of device time (ASSUMED docs/ASSUMED.md#A-MODEM-DELACK).
  A FIN carries a pending ACK.
- TCP close (either side): FIN + ACK each way, 80 up and 80 down: one round trip.
- UDP: each datagram n + 28 bytes; a round trip is counted when a datagram arrives after a send.
TLS handshake bytes are counted as they pass over TCP, so the handshake's flights show up as sends
and receives. DTLS (a UDP socket given a DtlsPsk): every datagram counted as it goes, the handshake's
flights and retransmissions included; the payload counters hold the plain bytes.
"""

import asyncio
import math
import socket
import ssl

from .udploss import drops

IP_HDR = 20
TCP_HDR = 20
UDP_HDR = 8
MSS = 1460
PEER_ACK_S = 0.040  # the far end's delayed ACK, real seconds (Linux TCP_DELACK_MIN, HZ/25)
MODEM_ACK_MS = 200  # the modem's delayed ACK, device ms (ASSUMED docs/ASSUMED.md#A-MODEM-DELACK)


class OpenError(Exception):
    """Why a socket could not be opened: 'refused', 'timeout', 'dns', 'tls', 'no_pdp'."""

    def __init__(self, reason, detail=""):
        super().__init__(reason if not detail else "%s: %s" % (reason, detail))
        self.reason = reason
        self.detail = detail


class DtlsPsk:
    """The modem's own DTLS client with a pre-shared key: a real DTLS handshake and records, made by
    python-mbedtls (Mbed TLS 2.28; the device's MicroPython carries its own Mbed TLS build, and the
    server side in the tests is another). Given to BridgedSocket as the tls_context of a UDP socket.

    Retransmission from 1 s doubling to 8 s of modem time, then the handshake gives up (RFC 6347
    4.2.4.1 starts at 1 s; the modem's own values ASSUMED docs/ASSUMED.md#A-SIMCOM-DTLS-PSK).
    """

    def __init__(self, identity, key, version="1.2"):
        self.identity = identity  # str
        self.key = bytes(key)
        self.version = version  # "1.0" or "1.2"

    def buffers(self, clock):
        from mbedtls import tls as mtls

        v = mtls.DTLSVersion.DTLSv1_2 if self.version == "1.2" else mtls.DTLSVersion.DTLSv1_0
        conf = mtls.DTLSConfiguration(
            pre_shared_key=(self.identity, self.key), validate_certificates=False,
            lowest_supported_version=v, highest_supported_version=v,
            handshake_timeout_min=clock.real(1.0), handshake_timeout_max=clock.real(8.0))
        return mtls.ClientContext(conf).wrap_buffers(None)


class BridgedSocket:
    """One socket of the modem: a real loopback connection plus the modem's receive buffer."""

    def __init__(self, modem, conn_id, proto, host, port, tls_context=None, server_hostname=None):
        self.modem = modem
        self.conn_id = conn_id
        self.proto = proto  # "tcp" or "udp"
        self.host = host
        self.port = int(port)
        self.tls_context = tls_context
        self.server_hostname = server_hostname
        self.state = "opening"  # opening, open, closed (by us), peer_closed
        self.local_port = 0
        self.chunks = []  # received payload; UDP keeps one chunk per datagram
        self.rx_total = 0
        self.rx_read = 0
        self.tx_total = 0
        self.urc_armed = True
        self.extra = {}  # dialect bookkeeping (access mode, flags)
        self.c = {"tx_payload": 0, "rx_payload": 0, "tx_air": 0, "rx_air": 0,
                  "round_trips": 0, "tx_packets": 0, "rx_packets": 0}
        self._reader = self._writer = None
        self._transport = None
        self._task = None
        self._tls = None
        self._dtls = None  # a UDP socket's DTLS session (python-mbedtls buffers), DtlsPsk given
        self._dtls_q = None  # datagrams that arrive during the DTLS handshake
        self._udp_waiting = False
        self._owed = {"rx": None, "tx": None}  # a delayed ACK's timer, by the direction it goes

    # ---- counters -------------------------------------------------------------------------
    def _pure_ack(self, way, k=1):
        # k pure ACK segments: "rx" the far end's, down; "tx" the modem's, up
        self.c[way + "_air"] += (IP_HDR + TCP_HDR) * k
        self.c[way + "_packets"] += k

    def _owe_ack(self, way, delay_s):
        # the receiver owes an ACK: it rides on data it sends within delay_s, or goes alone then
        if self._owed[way] is not None:
            return  # one delayed ACK acknowledges everything received since (cumulative)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._pure_ack(way)
            return

        def due():
            self._owed[way] = None
            self._pure_ack(way)

        self._owed[way] = loop.call_later(delay_s, due)

    def _ack_rides(self, way):
        # data (or a FIN) leaves from the side that owed an ACK: the ACK is in its header
        h = self._owed[way]
        if h is not None:
            h.cancel()
            self._owed[way] = None

    def _acks(self, n, way, delay_s):
        # ACKs for n bytes received by `way`'s side: every second full-sized segment at once
        # (RFC 1122 4.2.3.2), the rest delayed
        full, rest = divmod(n, MSS)
        self._pure_ack(way, full // 2)
        if full % 2 or rest:
            self._owe_ack(way, delay_s)

    def _tcp_out(self, n):
        segs = max(1, math.ceil(n / MSS))
        self._ack_rides("tx")
        self.c["tx_air"] += n + (IP_HDR + TCP_HDR) * segs
        self.c["tx_packets"] += segs
        self.c["round_trips"] += 1
        self._acks(n, "rx", PEER_ACK_S)

    def _tcp_in(self, n):
        segs = max(1, math.ceil(n / MSS))
        self._ack_rides("rx")
        self.c["rx_air"] += n + (IP_HDR + TCP_HDR) * segs
        self.c["rx_packets"] += segs
        self._acks(n, "tx", self.modem.clock.real(MODEM_ACK_MS / 1000))

    def _tcp_handshake(self):
        self.c["tx_air"] += 2 * (IP_HDR + TCP_HDR)
        self.c["rx_air"] += IP_HDR + TCP_HDR
        self.c["tx_packets"] += 2
        self.c["rx_packets"] += 1
        self.c["round_trips"] += 1

    def _tcp_teardown(self):
        self._ack_rides("tx")  # the FINs carry what was owed
        self._ack_rides("rx")
        self.c["tx_air"] += 2 * (IP_HDR + TCP_HDR)
        self.c["rx_air"] += 2 * (IP_HDR + TCP_HDR)
        self.c["tx_packets"] += 2
        self.c["rx_packets"] += 2
        self.c["round_trips"] += 1

    def counters(self):
        d = dict(self.c)
        d.update(id=self.conn_id, proto=self.proto, tls=self.tls_context is not None,
                 remote="%s:%d" % (self.host, self.port), state=self.state)
        return d

    # ---- buffer ---------------------------------------------------------------------------
    def available(self):
        return sum(len(c) for c in self.chunks)

    def read(self, n):
        """Take up to n bytes; for UDP never more than one datagram."""
        out = bytearray()
        while self.chunks and len(out) < n:
            c = self.chunks[0]
            take = c[: n - len(out)]
            out += take
            if len(take) == len(c):
                self.chunks.pop(0)
            else:
                self.chunks[0] = c[len(take):]
            if self.proto == "udp":
                break
        self.rx_read += len(out)
        return bytes(out)

    def _deliver(self, data):
        if not data:
            return
        self.chunks.append(bytearray(data))
        self.rx_total += len(data)
        self.c["rx_payload"] += len(data)
        self.modem.sock_data_arrived(self, len(data))

    # ---- open -----------------------------------------------------------------------------
    async def open(self, timeout_s):
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self.host, self.port, family=socket.AF_INET,
                                           type=socket.SOCK_STREAM if self.proto == "tcp" else socket.SOCK_DGRAM)
        except (socket.gaierror, UnicodeError) as e:
            raise OpenError("dns", str(e))
        addr = infos[0][4]
        if self.proto == "udp":
            sock = self

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data, _addr):
                    sock._udp_in(data)

                def error_received(self, exc):
                    pass  # ICMP errors never reach the host application on these modems

            self._transport, _ = await loop.create_datagram_endpoint(Proto, remote_addr=addr)
            self.local_port = self._transport.get_extra_info("sockname")[1]
            if self.tls_context is not None:
                try:
                    await asyncio.wait_for(self._dtls_handshake(), timeout_s)
                except Exception as e:  # mbedtls.exceptions.TLSError, a timeout: no session
                    self._close_transport()
                    self.state = "closed"
                    raise OpenError("tls", "DTLS handshake: %s" % (e,))
            self.state = "open"
            return
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(addr[0], addr[1]), timeout_s)
        except asyncio.TimeoutError:
            raise OpenError("timeout")
        except OSError as e:
            # A refused connection still cost the SYN and the RST.
            self.c["tx_air"] += IP_HDR + TCP_HDR
            self.c["rx_air"] += IP_HDR + TCP_HDR
            self.c["round_trips"] += 1
            raise OpenError("refused", str(e))
        self.local_port = self._writer.get_extra_info("sockname")[1]
        self._tcp_handshake()
        if self.tls_context is not None:
            try:
                await asyncio.wait_for(self._tls_handshake(), timeout_s)
            except (ssl.SSLError, ConnectionError, asyncio.TimeoutError, OSError) as e:
                await self._abort()
                raise OpenError("tls", str(e))
        self.state = "open"
        self._task = asyncio.ensure_future(self._tcp_reader())

    async def _tls_handshake(self):
        inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = (self.tls_context.wrap_bio(inc, outg, server_hostname=self.server_hostname), inc, outg)
        obj = self._tls[0]
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._tls_flush()
                data = await self._reader.read(65536)
                if not data:
                    raise ConnectionError("server closed the connection during the TLS handshake")
                self._tcp_in(len(data))
                inc.write(data)
            except ssl.SSLError:
                await self._tls_flush()  # let the alert reach the server
                raise
        await self._tls_flush()

    async def _tls_flush(self):
        raw = self._tls[2].read()
        if raw:
            self._tcp_out(len(raw))
            self._writer.write(raw)
            await self._writer.drain()

    async def _dtls_handshake(self):
        from mbedtls import tls as mtls

        self._dtls_q = asyncio.Queue()
        b = self._dtls = self.tls_context.buffers(self.modem.clock)
        while b._handshake_state is not mtls.HandshakeStep.HANDSHAKE_OVER:
            try:
                b.do_handshake()
            except mtls.WantWriteError:
                self._dtls_out()
            except mtls.WantReadError:
                self._dtls_out()
                try:
                    data = await asyncio.wait_for(self._dtls_q.get(), 0.02)
                except asyncio.TimeoutError:
                    continue  # the next do_handshake() retransmits when its timer has run out
                b.receive_from_network(data)
        self._dtls_out()
        self._dtls_q = None

    def _dtls_out(self):
        # the records the DTLS session has ready, one datagram per flush
        b = self._dtls
        while True:
            out = b.peek_outgoing(65536)
            if not out:
                return
            b.consume_outgoing(len(out))
            self._udp_out(out)

    def _udp_out(self, data):
        self.c["tx_air"] += len(data) + IP_HDR + UDP_HDR
        self.c["tx_packets"] += 1
        self._udp_waiting = True
        if not drops(self, "up"):  # udploss.py: the network may lose it
            self._transport.sendto(data)

    # ---- data -----------------------------------------------------------------------------
    def _udp_in(self, data):
        if drops(self, "down"):
            return
        self.c["rx_air"] += len(data) + IP_HDR + UDP_HDR
        self.c["rx_packets"] += 1
        if self._udp_waiting:
            self._udp_waiting = False
            self.c["round_trips"] += 1
        if self._dtls is not None:
            if self._dtls_q is not None:
                self._dtls_q.put_nowait(data)  # the handshake takes it
            elif self.state == "open":
                self._dtls_in(data)
            return
        if self.state == "open":
            self._deliver(data)

    def _dtls_in(self, data):
        # one datagram's records: each application record's plain bytes kept as one datagram
        from mbedtls import tls as mtls

        b = self._dtls
        try:
            b.receive_from_network(data)
            while True:
                try:
                    plain = b.read(65536)
                except mtls.WantReadError:
                    break
                if not plain:
                    break
                self._deliver(plain)
        except Exception:
            pass  # a record that does not decrypt is dropped, as DTLS does (RFC 6347 4.1.2.7)
        self._dtls_out()  # a retransmitted flight of the server's may want an answer

    async def _tcp_reader(self):
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                self._tcp_in(len(data))
                if self._tls is None:
                    self._deliver(data)
                    continue
                obj, inc, _ = self._tls
                inc.write(data)
                plain = bytearray()
                eof = False
                while True:
                    try:
                        chunk = obj.read(65536)
                    except ssl.SSLWantReadError:
                        break
                    except ssl.SSLZeroReturnError:
                        eof = True
                        break
                    if not chunk:
                        eof = True
                        break
                    plain += chunk
                self._deliver(bytes(plain))
                if eof:
                    break
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        if self.state == "open":
            self.state = "peer_closed"
            self._tcp_teardown()
            self._close_transport()
            self.modem.sock_peer_closed(self)

    async def send(self, data):
        if self.state != "open":
            raise ConnectionError("socket not open")
        self.c["tx_payload"] += len(data)
        self.tx_total += len(data)
        if self.proto == "udp":
            if self._dtls is not None:
                self._dtls.write(data)  # one record, one datagram
                self._dtls_out()
                return
            self._udp_out(data)
            return
        if self._tls is not None:
            self._tls[0].write(data)
            await self._tls_flush()
            return
        self._tcp_out(len(data))
        self._writer.write(data)
        await self._writer.drain()

    # ---- close ----------------------------------------------------------------------------
    def _close_transport(self):
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:
                pass
        if self._transport is not None:
            self._transport.close()

    async def _abort(self):
        self._close_transport()
        self.state = "closed"

    async def close(self):
        """Close from the modem side (the host asked for it)."""
        was = self.state
        self.state = "closed"
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if was == "open" and self.proto == "tcp":
            if self._tls is not None:
                try:
                    self._tls[0].unwrap()
                except ssl.SSLError:
                    pass
                try:
                    await self._tls_flush()
                except (ConnectionError, OSError):
                    pass
            self._tcp_teardown()
        if was == "open" and self._dtls is not None:
            try:
                self._dtls.shutdown()  # close_notify
                self._dtls_out()
            except Exception:
                pass
        self._close_transport()

    def far_end_close(self):
        """Fault: the far end goes away (FIN from the peer)."""
        if self.state != "open":
            return False
        if self._task is not None:
            self._task.cancel()
        self.state = "peer_closed"
        if self.proto == "tcp":
            self._tcp_teardown()
        self._close_transport()
        self.modem.sock_peer_closed(self)
        return True
