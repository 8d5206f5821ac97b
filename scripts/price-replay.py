#!/usr/bin/env python3
"""Writes pipelines/data/coinlore-tickers.jsonl: 60 polls, 30 s apart, of a price API in
Coinlore's /api/tickers/ response shape, replayed by pipelines/crypto.sql when there is no
internet. The prices are synthetic (a seeded random walk from levels of 2024-05-01), the shape is
Coinlore's: prices and market caps as strings, the poll's time in info.time.

    scripts/price-replay.py > pipelines/data/coinlore-tickers.jsonl
"""

import json
import random
from datetime import datetime, timedelta, timezone

COINS = [
    ("90", "BTC", "Bitcoin", "bitcoin", 57800.0, 19_700_000),
    ("80", "ETH", "Ethereum", "ethereum", 2970.0, 120_100_000),
    ("518", "USDT", "Tether", "tether", 1.0, 110_400_000_000),
    ("2710", "BNB", "Binance Coin", "binance-coin", 560.0, 147_600_000),
    ("48543", "SOL", "Solana", "solana", 128.0, 447_000_000),
    ("33285", "USDC", "USD Coin", "usd-coin", 1.0, 33_600_000_000),
    ("58", "XRP", "XRP", "ripple", 0.505, 55_300_000_000),
    ("2", "DOGE", "Dogecoin", "dogecoin", 0.128, 144_300_000_000),
    ("257", "ADA", "Cardano", "cardano", 0.445, 35_600_000_000),
    ("2713", "TRX", "TRON", "tron", 0.118, 87_500_000_000),
]


def main():
    rng = random.Random(20240501)
    prices = {coin[0]: coin[4] for coin in COINS}
    start = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    for poll in range(60):
        at = start + timedelta(seconds=30 * poll)
        data = []
        for rank, (cid, symbol, name, nameid, _, supply) in enumerate(COINS, start=1):
            stable = symbol in ("USDT", "USDC")
            step = rng.gauss(0, 0.0002 if stable else 0.0015)
            before = prices[cid]
            prices[cid] = before * (1 + step)
            price = prices[cid]
            data.append({
                "id": cid,
                "symbol": symbol,
                "name": name,
                "nameid": nameid,
                "rank": rank,
                "price_usd": f"{price:.6g}" if price < 1 else f"{price:.2f}",
                "percent_change_1h": f"{100 * (price / before - 1):.2f}",
                "market_cap_usd": f"{price * supply:.2f}",
                "csupply": f"{supply:.2f}",
            })
        body = {"data": data, "info": {"coins_num": 10, "time": int(at.timestamp())}}
        print(json.dumps({"poll_time": at.strftime("%Y-%m-%d %H:%M:%S"), "body": body}, separators=(",", ":")))


if __name__ == "__main__":
    main()
