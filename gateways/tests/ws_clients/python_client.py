"""A real third-party client: Python `websockets` drives subscribe, resync
and order entry against a running gateway. Usage: python_client.py HOST:PORT
TICKER API_KEY. Exits 0 when every check holds; prints what failed otherwise."""

import asyncio
import json
import sys

import websockets


async def main(addr: str, ticker: str, key: str) -> None:
    async with websockets.connect(f"ws://{addr}/ws?api_key={key}") as ws:
        next_id = 0
        backlog = []

        async def call(cmd, params):
            nonlocal next_id
            next_id += 1
            await ws.send(json.dumps({"id": next_id, "cmd": cmd, "params": params}))
            return await until(lambda m: m.get("id") == next_id, keep=True)

        async def until(pred, keep=False):
            for i, m in enumerate(backlog):
                if pred(m):
                    del backlog[i]
                    return m
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if pred(m):
                    return m
                if keep:
                    backlog.append(m)

        sub = await call("subscribe", {"channels": ["orderbook_delta"], "market_tickers": [ticker]})
        assert sub["type"] == "subscribed", sub
        sid = sub["msg"]["sid"]
        snap = await until(lambda m: m["type"] == "orderbook_snapshot")
        assert snap["seq"] == 1 and snap["msg"]["yes"] == [], snap

        created = await call("create_order", {"ticker": ticker, "action": "buy", "side": "yes",
                                              "count": 3, "yes_price": 40, "client_order_id": "py-1"})
        assert created["type"] == "order_created", created
        assert created["msg"]["order"]["client_order_id"] == "py-1", created
        delta = await until(lambda m: m["type"] == "orderbook_delta")
        assert (delta["seq"], delta["msg"]["price"], delta["msg"]["delta"], delta["msg"]["side"]) == (2, 40, 3, "yes"), delta

        dup = await call("create_order", {"ticker": ticker, "action": "buy", "side": "yes",
                                          "count": 3, "yes_price": 40, "client_order_id": "py-1"})
        assert dup["type"] == "error" and dup["msg"]["reject_reason"] == "DuplicateClientOrderId", dup

        ok = await call("update_subscription", {"sids": [sid], "action": "get_snapshot"})
        assert ok["type"] == "ok", ok
        snap = await until(lambda m: m["type"] == "orderbook_snapshot")
        assert snap["seq"] == 3 and snap["msg"]["yes"] == [[40, 3]], snap

        cancel = await call("cancel_order", {"client_order_id": "py-1"})
        assert cancel["type"] == "order_canceled", cancel
        delta = await until(lambda m: m["type"] == "orderbook_delta")
        assert (delta["seq"], delta["msg"]["delta"]) == (4, -3), delta
        print("python websockets client: all checks passed")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
