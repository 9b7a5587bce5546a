"""QuickFIX (the official engine, Python `quickfix` package) as initiator
against the ringex FIX gateway. Run by gateways/tests/fix_interop.rs:

    python fix_interop.py PORT SCENARIO WORKDIR

Each scenario logs its sessions on, checks what comes back, prints
"PASS <scenario>" and exits 0; any failed check raises (exit 1). Waits are
bounded; QuickFIX's own logs are under WORKDIR/log.
"""

import os
import queue
import sys
import threading
import time

import quickfix as fix

SOH = "\x01"
TIMEOUT = 5.0


def parse(raw):
    """A FIX message as a list of (tag, value) pairs, in wire order."""
    pairs = []
    for part in raw.split(SOH):
        if "=" in part:
            tag, value = part.split("=", 1)
            pairs.append((int(tag), value))
    return pairs


def get(msg, tag, default=None):
    for t, v in msg:
        if t == tag:
            return v
    return default


def get_all(msg, tag):
    return [v for t, v in msg if t == tag]


class Client(fix.Application):
    """Collects what the gateway sends, per session (SenderCompID)."""

    def __init__(self, password=None):
        super().__init__()
        self.password = password
        self.inbox = {}
        self.admin = {}
        self.sessions = {}
        self.logged_on = set()
        self.lock = threading.Lock()

    def _name(self, session_id):
        return session_id.getSenderCompID().getValue()

    def onCreate(self, session_id):
        name = self._name(session_id)
        self.sessions[name] = session_id
        self.inbox.setdefault(name, queue.Queue())
        self.admin.setdefault(name, queue.Queue())

    def onLogon(self, session_id):
        with self.lock:
            self.logged_on.add(self._name(session_id))

    def onLogout(self, session_id):
        with self.lock:
            self.logged_on.discard(self._name(session_id))

    def toAdmin(self, message, session_id):
        if message.getHeader().getField(35) == "A" and self.password is not None:
            message.setField(554, self.password)

    def fromAdmin(self, message, session_id):
        self.admin[self._name(session_id)].put(parse(message.toString()))

    def toApp(self, message, session_id):
        pass

    def fromApp(self, message, session_id):
        self.inbox[self._name(session_id)].put(parse(message.toString()))

    # ---- helpers used by the scenarios (main thread)

    def wait_logon(self, name, timeout=TIMEOUT):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if name in self.logged_on:
                    return
            time.sleep(0.02)
        raise AssertionError(f"{name}: no logon within {timeout}s")

    def send(self, name, msg_type, fields, groups=()):
        """Sends msg_type with body fields [(tag, value)] and groups
        [(count_tag, delimiter, [[(tag, value)...] ...])]."""
        m = fix.Message()
        m.getHeader().setField(fix.MsgType(msg_type))
        for tag, value in fields:
            m.setField(tag, str(value))
        for count_tag, delim, entries in groups:
            for entry in entries:
                g = fix.Group(count_tag, delim)
                for tag, value in entry:
                    g.setField(tag, str(value))
                m.addGroup(g)
        if not fix.Session.sendToTarget(m, self.sessions[name]):
            raise AssertionError(f"{name}: sendToTarget refused {msg_type}")

    def expect(self, name, what, pred, timeout=TIMEOUT, inbox=None):
        """The next message on the session for which pred holds (others
        before it are dropped)."""
        box = (inbox or self.inbox)[name]
        deadline = time.time() + timeout
        seen = []
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"{name}: no {what} within {timeout}s; saw {seen}")
            try:
                msg = box.get(timeout=left)
            except queue.Empty:
                continue
            if pred(msg):
                return msg
            seen.append(msg)

    def report(self, name, cl_ord_id, exec_type, timeout=TIMEOUT):
        return self.expect(
            name,
            f"ExecutionReport 11={cl_ord_id} 150={exec_type}",
            lambda m: get(m, 35) == "8" and get(m, 11) == cl_ord_id and get(m, 150) == exec_type,
            timeout,
        )

    def quiet(self, name, seconds):
        """Asserts nothing arrives on the session for `seconds`."""
        try:
            msg = self.inbox[name].get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"{name}: unexpected {msg}")


def start(workdir, names, port, reset=True, password=None, tag="run"):
    spec = os.path.join(sys.prefix, "share", "quickfix", "FIX44.xml")
    if not os.path.exists(spec):
        raise AssertionError(f"QuickFIX's FIX44.xml not found at {spec}")
    cfg = os.path.join(workdir, f"{tag}.cfg")
    with open(cfg, "w") as f:
        f.write(
            "[DEFAULT]\n"
            "ConnectionType=initiator\n"
            "BeginString=FIX.4.4\n"
            "TargetCompID=ISLD\n"
            "SocketConnectHost=127.0.0.1\n"
            f"SocketConnectPort={port}\n"
            "StartTime=00:00:00\nEndTime=00:00:00\n"
            "HeartBtInt=2\nReconnectInterval=1\nLogonTimeout=3\n"
            f"FileStorePath={os.path.join(workdir, 'store')}\n"
            f"FileLogPath={os.path.join(workdir, 'log')}\n"
            "UseDataDictionary=Y\n"
            f"DataDictionary={spec}\n"
            f"ResetOnLogon={'Y' if reset else 'N'}\n"
        )
        for n in names:
            f.write(f"[SESSION]\nSenderCompID={n}\n")
    settings = fix.SessionSettings(cfg)
    app = Client(password)
    initiator = fix.SocketInitiator(
        app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings)
    )
    initiator.start()
    return app, initiator


def now():
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime())


def order(cl_ord_id, side, qty, ord_type, symbol, price=None, tif="1", extra=()):
    fields = [(11, cl_ord_id), (21, "1"), (55, symbol), (54, side), (60, now()),
              (38, qty), (40, ord_type), (59, tif)]
    if price is not None:
        fields.append((44, price))
    fields.extend(extra)
    return fields


# ------------------------------------------------------------------ scenarios


def scenario_logon(port, workdir):
    app, ini = start(workdir, ["QLOGON"], port)
    try:
        app.wait_logon("QLOGON")
        # A TestRequest-free heartbeat exchange at HeartBtInt=2 keeps it up.
        time.sleep(2.5)
        assert "QLOGON" in app.logged_on, "session dropped after logon"
    finally:
        ini.stop()


def scenario_orders(port, workdir):
    """Every order type, filled against a second session."""
    app, ini = start(workdir, ["QMAKER", "QTAKER"], port)
    try:
        app.wait_logon("QMAKER")
        app.wait_logon("QTAKER")
        sym = "RAIN"
        # Resting liquidity from the maker: 10 @ 60 on the ask.
        app.send("QMAKER", "D", order("M1", "2", 10, "2", sym, price=60))
        new = app.report("QMAKER", "M1", "0")
        assert get(new, 39) == "0" and get(new, 151) == "10", new
        # Market buy 2: fills at 60.
        app.send("QTAKER", "D", order("T1", "1", 2, "1", sym, tif="3"))
        fill = app.report("QTAKER", "T1", "F")
        assert get(fill, 31) == "60" and get(fill, 32) == "2" and get(fill, 39) == "2", fill
        maker_fill = app.report("QMAKER", "M1", "F")
        assert get(maker_fill, 39) == "1" and get(maker_fill, 14) == "2", maker_fill
        assert get(maker_fill, 151) == "8", maker_fill
        # IOC limit buy 3 @ 60: fills in full.
        app.send("QTAKER", "D", order("T2", "1", 3, "2", sym, price=60, tif="3"))
        fill = app.report("QTAKER", "T2", "F")
        assert get(fill, 14) == "3" and get(fill, 39) == "2", fill
        # FOK buy 10 @ 60 with 5 left: killed, nothing trades.
        app.send("QTAKER", "D", order("T3", "1", 10, "2", sym, price=60, tif="4"))
        dead = app.expect(
            "QTAKER", "FOK killed",
            lambda m: get(m, 11) == "T3" and get(m, 39) in ("4", "8"))
        assert get(dead, 14) == "0", dead
        # IOC buy 1 @ 50: no liquidity at 50, the remainder is cancelled.
        app.send("QTAKER", "D", order("T4", "1", 1, "2", sym, price=50, tif="3"))
        gone = app.expect("QTAKER", "IOC cancelled",
                          lambda m: get(m, 11) == "T4" and get(m, 39) == "4")
        assert get(gone, 14) == "0", gone
        # GTC limit buy 1 @ 10 rests.
        app.send("QTAKER", "D", order("T5", "1", 1, "2", sym, price=10, tif="1"))
        rest = app.report("QTAKER", "T5", "0")
        assert get(rest, 151) == "1" and get(rest, 44, "10") == "10", rest
        # Duplicate ClOrdID: rejected.
        app.send("QTAKER", "D", order("T5", "1", 1, "2", sym, price=11))
        dup = app.report("QTAKER", "T5", "8")
        assert "Duplicate" in get(dup, 58, ""), dup
        # A limit sell from the taker at 60 adds to the ask; the maker's
        # remaining 5 are still there: a status request says so.
        app.send("QMAKER", "H", [(11, "M1"), (55, sym), (54, "2")])
        status = app.report("QMAKER", "M1", "I")
        assert get(status, 39) == "1" and get(status, 14) == "5", status
        assert get(status, 151) == "5", status
        extra_orders(app, sym)
    finally:
        ini.stop()


def extra_orders(app, sym):
    """Post-only, stop, stop-limit, GTD, the NO leg, and the account from
    Parties. The book now: asks 5 @ 60 (QMAKER); bids 1 @ 10 (QTAKER)."""
    # Post-only that would cross: not placed.
    app.send("QTAKER", "D", order("P1", "1", 1, "2", sym, price=60, extra=[(18, "6")]))
    dead = app.expect("QTAKER", "post-only refused",
                      lambda m: get(m, 11) == "P1" and get(m, 39) in ("4", "8"))
    assert get(dead, 14) == "0", dead
    # Post-only that rests.
    app.send("QTAKER", "D", order("P2", "1", 1, "2", sym, price=15, extra=[(18, "6")]))
    app.report("QTAKER", "P2", "0")
    # Stop (market) buy above the last price, and a stop-limit sell below:
    # both accepted and waiting.
    app.send("QTAKER", "D", order("S1", "1", 1, "3", sym, extra=[(99, 90)]))
    assert get(app.report("QTAKER", "S1", "0"), 39) == "0"
    app.send("QTAKER", "D", order("S2", "2", 1, "4", sym, price=5, extra=[(99, 5)]))
    assert get(app.report("QTAKER", "S2", "0"), 39) == "0"
    # A stop without StopPx: rejected.
    app.send("QTAKER", "D", order("S3", "1", 1, "3", sym))
    assert "StopPx" in get(app.report("QTAKER", "S3", "8"), 58, "")
    # GTD with an ExpireTime an hour away; without one it is rejected.
    later = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(time.time() + 3600))
    app.send("QTAKER", "D", order("G1", "1", 1, "2", sym, price=12, tif="6",
                                  extra=[(126, later)]))
    app.report("QTAKER", "G1", "0")
    app.send("QTAKER", "D", order("G2", "1", 1, "2", sym, price=12, tif="6"))
    assert "ExpireTime" in get(app.report("QTAKER", "G2", "8"), 58, "")
    # NO leg: buying NO at 90 is selling YES at 10; it meets the best YES
    # bid (15, P2) and the NO buyer pays 100 - 15 = 85.
    app.send("QMAKER", "D", order("N1", "1", 1, "2", f"{sym}-NO", price=90))
    fill = app.report("QMAKER", "N1", "F")
    assert get(fill, 31) == "85" and get(fill, 54) == "1" and get(fill, 55) == f"{sym}-NO", fill
    assert get(app.report("QTAKER", "P2", "F"), 31) == "15"
    # Account from Parties (PartyRole 24) for a session allowed two accounts.
    parties = [(453, 448, [[(448, "61"), (447, "D"), (452, "24")]])]
    app.send("QMAKER", "D", order("Y1", "1", 1, "2", sym, price=11), groups=parties)
    assert get(app.report("QMAKER", "Y1", "0"), 1) == "61"
    # ... and an account the session may not trade: BusinessMessageReject.
    parties = [(453, 448, [[(448, "52"), (447, "D"), (452, "24")]])]
    app.send("QMAKER", "D", order("Y2", "1", 1, "2", sym, price=11), groups=parties)
    rej = app.expect("QMAKER", "BusinessMessageReject", lambda m: get(m, 35) == "j")
    assert get(rej, 380) == "6", rej


def scenario_amend_cancel(port, workdir):
    app, ini = start(workdir, ["QAMEND"], port)
    try:
        app.wait_logon("QAMEND")
        sym = "SNOW"
        app.send("QAMEND", "D", order("A1", "1", 5, "2", sym, price=30))
        app.report("QAMEND", "A1", "0")
        # Amend: 5 @ 30 -> 7 @ 31.
        app.send("QAMEND", "G", [(11, "A2"), (41, "A1"), (21, "1"), (55, sym), (54, "1"),
                                 (60, now()), (38, 7), (40, "2"), (44, 31)])
        replaced = app.report("QAMEND", "A2", "5")
        assert get(replaced, 41) == "A1" and get(replaced, 151) == "7", replaced
        # Amending the old ClOrdID again: unknown order.
        app.send("QAMEND", "G", [(11, "A3"), (41, "A1"), (21, "1"), (55, sym), (54, "1"),
                                 (60, now()), (38, 7), (40, "2"), (44, 32)])
        rej = app.expect("QAMEND", "OrderCancelReject",
                         lambda m: get(m, 35) == "9" and get(m, 11) == "A3")
        assert get(rej, 434) == "2", rej
        # Cancel.
        app.send("QAMEND", "F", [(11, "A4"), (41, "A2"), (55, sym), (54, "1"), (60, now())])
        cancelled = app.report("QAMEND", "A4", "4")
        assert get(cancelled, 41) == "A2" and get(cancelled, 39) == "4", cancelled
        # Mass cancel: three resting orders go in one request.
        for i in range(3):
            app.send("QAMEND", "D", order(f"B{i}", "1", 1, "2", sym, price=20 + i))
            app.report("QAMEND", f"B{i}", "0")
        app.send("QAMEND", "q", [(11, "MC1"), (530, "7"), (60, now())])
        report = app.expect("QAMEND", "OrderMassCancelReport",
                            lambda m: get(m, 35) == "r")
        assert get(report, 531) == "7", report
        for i in range(3):
            app.expect("QAMEND", f"B{i} cancelled",
                       lambda m, i=i: get(m, 41, get(m, 11)) == f"B{i}" and get(m, 39) == "4")
    finally:
        ini.stop()


def scenario_market_data(port, workdir):
    app, ini = start(workdir, ["QMD", "QMDTRADER"], port)
    try:
        app.wait_logon("QMD")
        app.wait_logon("QMDTRADER")
        sym = "SUN"
        app.send("QMDTRADER", "D", order("D1", "1", 4, "2", sym, price=45))
        app.report("QMDTRADER", "D1", "0")
        app.send("QMD", "V", [(262, "REQ1"), (263, "1"), (264, "0"), (265, "1")],
                 groups=[(267, 269, [[(269, "0")], [(269, "1")]]),
                         (146, 55, [[(55, sym)]])])
        snap = app.expect("QMD", "MarketDataSnapshotFullRefresh", lambda m: get(m, 35) == "W")
        assert get(snap, 262) == "REQ1" and get(snap, 55) == sym, snap
        assert get_all(snap, 270) == ["45"] and get_all(snap, 271) == ["4"], snap
        app.send("QMDTRADER", "D", order("D2", "2", 3, "2", sym, price=55))
        app.report("QMDTRADER", "D2", "0")
        inc = app.expect("QMD", "MarketDataIncrementalRefresh", lambda m: get(m, 35) == "X")
        assert get(inc, 262) == "REQ1", inc
        assert get(inc, 269) == "1" and get(inc, 270) == "55" and get(inc, 271) == "3", inc
        assert get(inc, 279) == "0", inc
        # Unsubscribe: no more updates.
        app.send("QMD", "V", [(262, "REQ1"), (263, "2"), (264, "0")],
                 groups=[(267, 269, [[(269, "0")]]), (146, 55, [[(55, sym)]])])
        time.sleep(0.3)
        app.send("QMDTRADER", "D", order("D3", "2", 1, "2", sym, price=56))
        app.report("QMDTRADER", "D3", "0")
        app.quiet("QMD", 0.5)
        # An application message the venue does not support.
        app.send("QMD", "c", [(320, "SD1"), (321, "0")])
        rej = app.expect("QMD", "BusinessMessageReject", lambda m: get(m, 35) == "j")
        assert get(rej, 380) == "3" and get(rej, 372) == "c", rej
        # Security list.
        app.send("QMD", "x", [(320, "SL1"), (559, "4")])
        sl = app.expect("QMD", "SecurityList", lambda m: get(m, 35) == "y")
        assert get(sl, 320) == "SL1" and sym in get_all(sl, 55), sl
        assert f"{sym}-NO" in get_all(sl, 55), sl
    finally:
        ini.stop()


def scenario_reconnect(port, workdir):
    """Disconnect, trade against the absent session, reconnect without a
    reset: the gateway's higher sequence number makes QuickFIX ask for a
    resend, and the fill comes as a PossDup resend."""
    app, ini = start(workdir, ["QRECON", "QRECONCP"], port, reset=False, tag="first")
    app.wait_logon("QRECON")
    app.wait_logon("QRECONCP")
    sym = "WIND"
    app.send("QRECON", "D", order("R1", "1", 2, "2", sym, price=70))
    app.report("QRECON", "R1", "0")
    ini.stop()
    # QuickFIX looks sessions up in a process-wide registry that a stopped
    # initiator still holds until it is destroyed.
    del ini
    # A second initiator for the counterparty only; QRECON is away.
    cp, cp_ini = start(workdir, ["QRECONCP"], port, reset=False, tag="cp")
    try:
        cp.wait_logon("QRECONCP")
        cp.send("QRECONCP", "D", order("C1", "2", 2, "2", sym, price=70))
        cp.report("QRECONCP", "C1", "F")
        # QRECON comes back with its stored sequence numbers.
        back, back_ini = start(workdir, ["QRECON"], port, reset=False, tag="back")
        try:
            back.wait_logon("QRECON")
            fill = back.report("QRECON", "R1", "F")
            assert get(fill, 43) == "Y", f"the fill should be a PossDup resend: {fill}"
            assert get(fill, 122) is not None, fill
            assert get(fill, 39) == "2", fill
            # The session carries on in sequence.
            back.send("QRECON", "H", [(11, "R1"), (55, sym), (54, "1")])
            status = back.report("QRECON", "R1", "I")
            assert get(status, 39) == "2", status
        finally:
            back_ini.stop()
    finally:
        cp_ini.stop()


def scenario_bad_password(port, workdir):
    app, ini = start(workdir, ["QPASS"], port, password="wrong")
    try:
        logout = app.expect("QPASS", "Logout", lambda m: get(m, 35) == "5", inbox=app.admin)
        assert "password" in get(logout, 58, "").lower(), logout
        time.sleep(0.5)
        assert "QPASS" not in app.logged_on, "logged on with a bad password"
    finally:
        ini.stop()
    good, gini = start(workdir, ["QPASS"], port, password="secret", tag="good")
    try:
        good.wait_logon("QPASS")
    finally:
        gini.stop()


def scenario_foreign_cancel(port, workdir):
    app, ini = start(workdir, ["QVICTIM", "QTHIEF"], port)
    try:
        app.wait_logon("QVICTIM")
        app.wait_logon("QTHIEF")
        sym = "FOG"
        app.send("QVICTIM", "D", order("V1", "1", 3, "2", sym, price=25))
        app.report("QVICTIM", "V1", "0")
        # Naming the victim's account: not authorized (BusinessMessageReject).
        app.send("QTHIEF", "F", [(11, "X1"), (41, "V1"), (1, "52"), (55, sym), (54, "1"),
                                 (60, now())])
        rej = app.expect("QTHIEF", "BusinessMessageReject", lambda m: get(m, 35) == "j")
        assert get(rej, 380) == "6" and get(rej, 372) == "F", rej
        # In its own account the ClOrdID is unknown: OrderCancelReject.
        app.send("QTHIEF", "F", [(11, "X2"), (41, "V1"), (55, sym), (54, "1"), (60, now())])
        rej = app.expect("QTHIEF", "OrderCancelReject", lambda m: get(m, 35) == "9")
        assert get(rej, 11) == "X2" and get(rej, 102) == "1", rej
        # The victim's order is untouched.
        app.send("QVICTIM", "H", [(11, "V1"), (55, sym), (54, "1")])
        status = app.report("QVICTIM", "V1", "I")
        assert get(status, 39) == "0" and get(status, 151) == "3", status
    finally:
        ini.stop()


SCENARIOS = {
    "logon": scenario_logon,
    "orders": scenario_orders,
    "amend_cancel": scenario_amend_cancel,
    "market_data": scenario_market_data,
    "reconnect": scenario_reconnect,
    "bad_password": scenario_bad_password,
    "foreign_cancel": scenario_foreign_cancel,
}


def main():
    port, name, workdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    SCENARIOS[name](port, workdir)
    print(f"PASS {name}", flush=True)


if __name__ == "__main__":
    main()
