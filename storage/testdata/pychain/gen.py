#!/usr/bin/env python
"""Makes a small chain written the way the Python JackBlockChain writes its
chain, for jbc's import and export tests (storage/python_test.go).

The original ran under Python 2, whose dicts have no insertion order: its own
files have their keys in Python 2's dict order for these keys (nonce, index,
hash, timestamp, prev_hash, data). Under Python 3 json.dump writes them in
to_dict's order (index, timestamp, prev_hash, hash, data, nonce). This script
runs under both and writes what that interpreter writes:
  python2 gen.py   -> chaindata-py2/  (the original's own files; jbc export's
                      default key order)
  python3 gen.py   -> chaindata/      (the original run under Python 3;
                      jbc export --key-order python3)
The blocks, and so their hashes, are the same in both.

It follows the original's block and mining logic:
  - header = str(index) + prev_hash + data + str(timestamp) + str(nonce)
  - hash = sha256(header.encode('utf-8')).hexdigest()
  - the first block (index 0, prev_hash '', nonce 0) is not mined
  - a mined block's hash starts with NUM_ZEROS '0' hex digits, the nonce
    counting up from 0
  - each block is saved as chaindata/<index zero-padded to 6>.json with
    json.dump(block.to_dict()): every value a string, keys in the order the
    interpreter's dict gives them.
Timestamps are fixed (not now()) so the output is reproducible, and a few
blocks carry data that exercises JSON escaping.

Usage: python3 gen.py [OUT_DIR]   (default: chaindata beside this script)
       python2 gen.py [OUT_DIR]   (default: chaindata-py2 beside this script)
"""
import hashlib
import json
import os
import sys

NUM_ZEROS = 2
NUM_BLOCKS = 20
START_TIME = 1500000000  # July 2017, when the original was written
SPACING = 37             # seconds between blocks

PY2 = sys.version_info[0] == 2

SPECIAL_DATA = {
    3: u"h\u00e9llo, \u4e16\u754c \U0001F30D",
    4: u"quote \" backslash \\ slash / newline \n tab \t cr \r",
    5: u"controls \x00\x01\x1f del \x7f <html> & \u2028",
}
if PY2:
    # The original's data was a byte string read from a file (data.txt):
    # UTF-8 bytes, which its json.dump decodes and escapes.
    SPECIAL_DATA = dict((k, v.encode('utf-8')) for k, v in SPECIAL_DATA.items())


class Block(object):
    def __init__(self, index, timestamp, prev_hash, data, nonce=0, hash=None):
        self.index = index
        self.timestamp = timestamp
        self.prev_hash = prev_hash
        self.data = data
        self.nonce = nonce
        self.hash = hash if hash is not None else self.update_self_hash()

    def header_string(self):
        return str(self.index) + self.prev_hash + self.data + str(self.timestamp) + str(self.nonce)

    def update_self_hash(self):
        sha = hashlib.sha256()
        header = self.header_string()
        if not isinstance(header, bytes):  # Python 3: text, hashed as UTF-8
            header = header.encode('utf-8')
        sha.update(header)
        self.hash = sha.hexdigest()
        return self.hash

    def to_dict(self):
        info = {}
        info['index'] = str(self.index)
        info['timestamp'] = str(self.timestamp)
        info['prev_hash'] = str(self.prev_hash)
        info['hash'] = str(self.hash)
        info['data'] = str(self.data)
        info['nonce'] = str(self.nonce)
        return info

    def self_save(self, chaindata_dir):
        index_string = str(self.index).zfill(6)
        filename = '%s/%s.json' % (chaindata_dir, index_string)
        with open(filename, 'w') as block_file:
            json.dump(self.to_dict(), block_file)


def create_first_block():
    return Block(0, START_TIME, '', 'First block data', 0)


def mine_from_prev_block(prev_block):
    index = int(prev_block.index) + 1
    timestamp = START_TIME + SPACING * index
    data = SPECIAL_DATA.get(index, "I block #%s" % index)
    block = Block(index, timestamp, prev_block.hash, data, 0)
    while block.hash[:NUM_ZEROS] != '0' * NUM_ZEROS:
        block.nonce += 1
        block.update_self_hash()
    return block


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = 'chaindata-py2' if PY2 else 'chaindata'
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, default)
    if not os.path.isdir(out):
        os.makedirs(out)
    block = create_first_block()
    block.self_save(out)
    for _ in range(1, NUM_BLOCKS):
        block = mine_from_prev_block(block)
        block.self_save(out)


if __name__ == '__main__':
    main()
