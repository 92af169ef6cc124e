#!/usr/bin/env python3
"""Independent reference for jbc's block hash, in the Python JackBlockChain's
own terms: sha256(str(index) + prev_hash + data + str(timestamp) + str(nonce)).

Prints the golden vectors pinned in block_test.go, and writes
python_chain.json: a short chain mined the way the Python original mines
(NUM_ZEROS = 1, every value written as a JSON string) on top of jbc's test
network genesis. Run from this directory: python3 golden.py
"""
import hashlib
import json

def header(index, prev_hash, data, timestamp, nonce):
    return str(index) + prev_hash + data + str(timestamp) + str(nonce)

def block_hash(*fields):
    return hashlib.sha256(header(*fields).encode("utf-8")).hexdigest()

TEST_GENESIS = (0, "", "jbc test network", 1577836800, 0)
MAIN_GENESIS = (0, "", "jbc genesis: the JackBlockChain carried on, 2026-11-23", 1795392000, 0)

def vectors():
    tg = block_hash(*TEST_GENESIS)
    return [
        ("testnet genesis", TEST_GENESIS),
        ("mainnet genesis", MAIN_GENESIS),
        ("unicode data", (1, tg, "h\u00e9llo, \u4e16\u754c \U0001F30D", 1577836801, 42)),
        ("max nonce and index", (18446744073709551615, tg, "x", 1577836802, 18446744073709551615)),
        ("all zero, empty data", (0, "", "", 0, 0)),
        ("negative timestamp", (7, tg, "before 1970", -1, 3)),
        ("min int64 timestamp", (1, tg, "", -9223372036854775808, 0)),
        ("max int64 timestamp", (2, tg, "", 9223372036854775807, 1)),
        ("json specials in data", (3, tg, "q\"b\\s\n\t\x00</script>&", 1577836803, 99)),
    ]

def mine(index, prev_hash, data, timestamp, num_zeros):
    nonce = 0
    while True:
        h = block_hash(index, prev_hash, data, timestamp, nonce)
        if h.startswith("0" * num_zeros):
            return nonce, h
        nonce += 1

def python_chain(n=12, num_zeros=1):
    blocks = []
    idx, prev, data, ts, nonce = TEST_GENESIS
    blocks.append(dict(index=str(idx), timestamp=str(ts), data=data,
                       prev_hash=prev, hash=block_hash(*TEST_GENESIS), nonce=str(nonce)))
    for i in range(1, n):
        prev = blocks[-1]["hash"]
        ts = 1577836800 + 60 * i
        data = "Python block %d \u2713" % i
        nonce, h = mine(i, prev, data, ts, num_zeros)
        blocks.append(dict(index=str(i), timestamp=str(ts), data=data,
                           prev_hash=prev, hash=h, nonce=str(nonce)))
    return blocks

if __name__ == "__main__":
    for name, f in vectors():
        print("%-24s %s" % (name, block_hash(*f)))
    with open("python_chain.json", "w") as out:
        json.dump(python_chain(), out, indent=1)
        out.write("\n")
