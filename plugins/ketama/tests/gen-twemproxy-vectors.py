#!/usr/bin/env python3
"""Regenerate twemproxy-vectors.txt: which server real twemproxy picks for each key.

Starts memcached processes and one nutcracker (twemproxy) on loopback, sets every key through
each nutcracker pool, then asks every memcached directly which one holds it. Stops everything it
started. Run from anywhere:

    python3 plugins/ketama/tests/gen-twemproxy-vectors.py > plugins/ketama/tests/twemproxy-vectors.txt

Needs `nutcracker` and `memcached` on PATH, and the loopback ports below free.
"""

import hashlib
import os
import socket
import subprocess
import tempfile
import time

MEMCACHED_PORTS = [31211, 31212, 31213]
DEFAULT_PORT_HOSTS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]  # port 11211: name is the host
STATS_PORT = 32299

# (label, hash, listen port, [(host, port, weight, explicit name or None)])
POOLS = [
    ("equal", "md5", 32211, [("127.0.0.1", p, 1, None) for p in MEMCACHED_PORTS]),
    ("weighted", "md5", 32212,
     [("127.0.0.1", 31211, 1, None), ("127.0.0.1", 31212, 2, None), ("127.0.0.1", 31213, 5, None)]),
    ("default-port", "md5", 32213, [(h, 11211, 1, None) for h in DEFAULT_PORT_HOSTS]),
    ("named", "md5", 32214,
     [("127.0.0.1", 31211, 1, "alpha"), ("127.0.0.1", 31212, 1, "beta"),
      ("127.0.0.1", 31213, 1, "gamma")]),
    ("fnv1a_64", "fnv1a_64", 32215, [("127.0.0.1", p, 1, None) for p in MEMCACHED_PORTS]),
]


def ketama_name(host, port, name):
    """twemproxy src/nc_conf.c conf_add_server: the explicit name, else host (port 11211) or host:port."""
    if name is not None:
        return name
    return host if port == 11211 else f"{host}:{port}"


def keys():
    out = [f"key:{i}" for i in range(60)]
    out += [f"user:{i * 7919}" for i in range(40)]
    for i in range(90):
        digest = hashlib.sha1(str(i).encode()).hexdigest()
        out.append(digest[: 1 + i % 40])
    out += ["a", "Z", "~", "0", "session:", "{tag}x", "x" * 250, "key-with-dashes_and.dots",
            "UPPER:lower:123", "!#$%&'()*+,-./"]
    seen, uniq = set(), []
    for k in out:
        if k not in seen:
            seen.add(k)
            uniq.append(k)
    return uniq


def connect(host, port, deadline=10.0):
    end = time.time() + deadline
    while True:
        try:
            return socket.create_connection((host, port), timeout=5)
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.05)


def request(sock, data, terminators):
    sock.sendall(data)
    buf = b""
    while not any(buf.endswith(t) for t in terminators):
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"connection closed after {buf!r}")
        buf += chunk
    return buf


def main():
    tmp = tempfile.mkdtemp(prefix="ketama-vectors-")
    backends = [("127.0.0.1", p) for p in MEMCACHED_PORTS] + [(h, 11211) for h in DEFAULT_PORT_HOSTS]
    procs = []  # started in the foreground, so they are stopped and reaped below
    try:
        for host, port in backends:
            procs.append(subprocess.Popen(["memcached", "-u", "nobody", "-U", "0", "-l", host,
                                           "-p", str(port)]))
        conf = []
        for label, alg, listen, servers in POOLS:
            conf += [f"{label}:", f"  listen: 127.0.0.1:{listen}", f"  hash: {alg}",
                     "  distribution: ketama", "  auto_eject_hosts: false", "  timeout: 2000",
                     "  servers:"]
            for host, port, weight, name in servers:
                conf.append(f"   - {host}:{port}:{weight}" + (f" {name}" if name else ""))
        conf_text = "\n".join(conf) + "\n"
        conf_path = os.path.join(tmp, "nutcracker.yml")
        with open(conf_path, "w") as f:
            f.write(conf_text)
        procs.append(subprocess.Popen(["nutcracker", "-c", conf_path, "-s", str(STATS_PORT),
                                       "-a", "127.0.0.1", "-o", os.path.join(tmp, "nutcracker.log")]))

        direct = {b: connect(*b) for b in backends}
        version = subprocess.run(["nutcracker", "-V"], capture_output=True, text=True)
        nc_version = (version.stdout + version.stderr).strip().splitlines()[0]
        mc_version = subprocess.run(["memcached", "-V"], capture_output=True, text=True).stdout.strip()

        print("# Known answers from real twemproxy: for each key, the server its ketama pool picks.")
        print("# Produced by plugins/ketama/tests/gen-twemproxy-vectors.py (see there) with")
        print(f"# {nc_version} and {mc_version}: every key was set through the pool's")
        print("# nutcracker listener, then each memcached was asked directly which one held it.")
        print("# nutcracker config:")
        for line in conf_text.splitlines():
            print(f"#   {line}")
        print("#")
        print("# Format: `pool <label> <hash>`, then `child <ketama name> <weight>` in server order")
        print("# (the name is what twemproxy hashes: the explicit name, else host when the port is")
        print("# 11211, else host:port), then `key <key> <index of the child holding it>`.")
        for label, alg, listen, servers in POOLS:
            for sock in direct.values():
                assert request(sock, b"flush_all\r\n", [b"OK\r\n"]) == b"OK\r\n"
            proxy = connect("127.0.0.1", listen)
            print()
            print(f"pool {label} {alg}")
            for host, port, weight, name in servers:
                print(f"child {ketama_name(host, port, name)} {weight}")
            for key in keys():
                k = key.encode()
                reply = request(proxy, b"set %s 0 0 %d\r\n%s\r\n" % (k, len(k), k), [b"\r\n"])
                if reply != b"STORED\r\n":
                    raise RuntimeError(f"set {key} through {label}: {reply!r}")
                holders = []
                for idx, (host, port, _, _) in enumerate(servers):
                    got = request(direct[(host, port)], b"get %s\r\n" % k, [b"END\r\n"])
                    if got.startswith(b"VALUE "):
                        holders.append(idx)
                if len(holders) != 1:
                    raise RuntimeError(f"{key} in pool {label} held by {holders}")
                print(f"key {key} {holders[0]}")
            proxy.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
