#!/usr/bin/env python3
"""A minimal Python JackBlockChain node, for jbc's interop tests: it serves a
chaindata directory over HTTP as the original's node.py does, and syncs from
peers as its sync.py does. Standard library only (the original used Flask
and requests); it listens on 127.0.0.1 only.

  GET  /blockchain.json  json.dumps of the list of the chain's block dicts,
                         read from the directory on every request (as
                         sync_local does): every value a string, genesis first
  POST /mined            a block dict a peer mined: saved if it is valid and
                         follows the last block (validate_possible_block);
                         answers {"received": true}

Usage:
  python3 serve.py CHAINDATA [--zeros N]          serve; prints the URL
  python3 serve.py CHAINDATA --sync-from URL...   sync once and exit: fetch
      each URL's /blockchain.json, keep the longest valid chain (the
      original's rule), and save it into CHAINDATA if longer than the local
      one. Prints the resulting length.
Blocks are validated the original's way: the hash is sha256 of
str(index) + prev_hash + data + str(timestamp) + str(nonce), starts with
NUM_ZEROS (--zeros, default 2) hex zeros, and links to the block before.
"""
import glob
import hashlib
import json
import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

NUM_ZEROS = 2
KEYS = ('index', 'timestamp', 'prev_hash', 'hash', 'data', 'nonce')


def header_hash(b):
    header = str(b['index']) + b['prev_hash'] + b['data'] + str(b['timestamp']) + str(b['nonce'])
    return hashlib.sha256(header.encode('utf-8')).hexdigest()


def to_dict(b):
    # The original's Block.to_dict: every value a string, in this order.
    return dict((k, str(b[k])) for k in KEYS)


def block_valid(b):
    return header_hash(b) == b['hash'] and (int(b['index']) == 0 or b['hash'][:NUM_ZEROS] == '0' * NUM_ZEROS)


def chain_valid(blocks):
    for i, b in enumerate(blocks):
        if int(b['index']) != i or not block_valid(b):
            return False
        if i > 0 and b['prev_hash'] != blocks[i - 1]['hash']:
            return False
    return len(blocks) > 0


def read_local(d):
    blocks = []
    for path in sorted(glob.glob(os.path.join(d, '*.json')), key=lambda p: int(os.path.basename(p)[:-5])):
        with open(path) as f:
            blocks.append(to_dict(json.load(f)))
    return blocks


def save(d, b):
    with open(os.path.join(d, str(b['index']).zfill(6) + '.json'), 'w') as f:
        json.dump(to_dict(b), f)


def sync_from(d, urls):
    best = read_local(d)
    for url in urls:
        with urllib.request.urlopen(url.rstrip('/') + '/blockchain.json', timeout=30) as resp:
            peer = [to_dict(b) for b in json.loads(resp.read().decode('utf-8'))]
        if chain_valid(peer) and len(peer) > len(best):
            best = peer
    for b in best:
        save(d, b)
    return len(best)


def make_handler(d):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code, body):
            data = body.encode('utf-8')
            self.send_response(code)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.split('?')[0] != '/blockchain.json':
                return self.reply(404, '{}')
            self.reply(200, json.dumps(read_local(d)))

        def do_POST(self):
            if self.path != '/mined':
                return self.reply(404, '{}')
            b = json.loads(self.rfile.read(int(self.headers['Content-Length'])).decode('utf-8'))
            local = read_local(d)
            ok = block_valid(b) and int(b['index']) == len(local) and b['prev_hash'] == local[-1]['hash']
            if ok:
                save(d, b)
            self.reply(200, json.dumps({'received': ok}))
    return Handler


def main():
    global NUM_ZEROS
    args = sys.argv[1:]
    d, peers, i = args[0], [], 1
    while i < len(args):
        if args[i] == '--zeros':
            NUM_ZEROS = int(args[i + 1])
            i += 2
        elif args[i] == '--sync-from':
            peers += args[i + 1:]
            break
        else:
            sys.exit('unknown argument ' + args[i])
    if peers:
        print(sync_from(d, peers))
        return
    srv = HTTPServer(('127.0.0.1', 0), make_handler(d))
    print('http://127.0.0.1:%d' % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == '__main__':
    main()
