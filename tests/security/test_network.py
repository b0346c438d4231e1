"""Network (issue 3): without the option a function has no network but its own loopback and its
Runtime API endpoint; with "network": "outbound" it reaches the outside through slirp4netns,
but never the host's loopback (wispd's API, other sandboxes' endpoints), nor private, link-local
(cloud metadata) and other non-public addresses unless the operator allows them
(outbound_private_networks), and its helper process ends with it.

The only traffic these tests send goes to loopback and to a network namespace the test creates:
a veth pair with 198.18.0.5/30 on the host side and 198.18.0.6/30 inside (198.18.0.0/15 is
reserved for benchmarks; sandbox_test uses 198.18.0.0/30, so both can run at once), with a TCP
server in it. The namespace also holds one address of each private range and the metadata
address 169.254.169.254, which the host routes to it: connections a sandbox wrongly gets to
make there never leave the machine. (While the class runs, the host's own metadata requests go
there too; the route is appended, so sandbox_test may hold one at the same time.)"""

import os
import shutil
import subprocess
import time
import unittest

import sandbox_fixture as sf
import wisp_fixture
from sandbox_fixture import SecurityTestCase

HOST_ADDR = "198.18.0.5"
NETNS_ADDR = "198.18.0.6"
SERVER_PORT = 8080
METADATA_ADDR = "169.254.169.254"
METADATA_PORT = 80
# One address in each private or shared range a LAN or a cloud uses.
PRIVATE_ADDRS = ("10.198.0.6", "172.16.198.6", "192.168.198.6", "100.64.198.6")
SLIRP = "/usr/bin/slirp4netns"

# Answers on every address of the namespace, on the server's and the metadata port.
SERVER_SCRIPT = f"""
import select, socket
listeners = []
for port in ({SERVER_PORT}, {METADATA_PORT}):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    listeners.append(s)
print("listening", flush=True)
while True:
    for s in select.select(listeners, [], [])[0]:
        c, _ = s.accept()
        c.sendall(b"hello from the netns\\n")
        c.close()
"""

# Tries each "host:port": "ok:<what the server said first>", an errno name, or "TIMEOUT".
PROBE = r'''
import errno, socket

def probe(target):
    host, port = target.rsplit(":", 1)
    try:
        s = socket.create_connection((host, int(port)), 3)
    except socket.timeout:
        return "TIMEOUT"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
    s.settimeout(1)
    try:
        said = s.recv(100).decode().strip()
    except OSError:
        said = ""
    s.close()
    return "ok:" + said

def handler(event, context=None):
    out = {t: probe(t) for t in event["targets"]}
    with open("/etc/resolv.conf") as f:
        out["resolv"] = f.read().strip()
    with open("/proc/net/dev") as f:
        out["interfaces"] = sorted(l.split(":")[0].strip() for l in f.read().splitlines()[2:])
    return out
'''


# Tries to take the routes that refuse non-public addresses away, over rtnetlink (the sandbox's
# seccomp policy allows NETLINK_ROUTE sockets, for getifaddrs), and to get around them by
# binding a socket to tap0, where the kernel sends to a destination it has no route for as if it
# were on the link.
REROUTE = r'''
import errno, socket, struct

RTM_NEWROUTE, RTM_DELROUTE, RTA_DST, RTA_GATEWAY = 24, 25, 1, 5
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 1, 4, 0x400
RTN_UNICAST, RTN_PROHIBIT, RT_TABLE_MAIN, RTPROT_STATIC = 1, 8, 254, 4

def route(kind, flags, dst, length, rtype, gateway=None):
    attrs = struct.pack("=HH4s", 8, RTA_DST, socket.inet_aton(dst))
    if gateway:
        attrs += struct.pack("=HH4s", 8, RTA_GATEWAY, socket.inet_aton(gateway))
    body = struct.pack("=8BI", socket.AF_INET, length, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, 0,
                       rtype, 0) + attrs
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    s.send(struct.pack("=IHHII", 16 + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK, 1, 0)
           + body)
    error = -struct.unpack_from("=i", s.recv(4096), 16)[0]
    s.close()
    return errno.errorcode.get(error, "ok")

def connect(host, port, device=None):
    s = socket.socket()
    s.settimeout(5)
    try:
        if device:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        s.connect((host, port))
        return "ok:" + s.recv(100).decode().strip()
    except socket.timeout:
        return "TIMEOUT"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()

def handler(event, context=None):
    host, port = event["metadata"].rsplit(":", 1)
    return {
        "delete": route(RTM_DELROUTE, 0, "169.254.0.0", 16, RTN_PROHIBIT),
        "bypass": route(RTM_NEWROUTE, NLM_F_CREATE, host, 32, RTN_UNICAST, "10.0.2.2"),
        "bound_to_tap0": connect(host, int(port), "tap0"),
        "after": connect(host, int(port)),
    }
'''


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def slirp_pids():
    """Every slirp4netns process on the host: pid -> its command line."""
    out = {}
    for pid in wisp_fixture.all_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"slirp4netns":
            out[pid] = b" ".join(argv).decode(errors="replace")
    return out


def setUpModule():
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root: network namespaces, veth, a real wispd")
    if not os.access(SLIRP, os.X_OK):
        raise unittest.SkipTest(f"needs {SLIRP} (scripts/install-deps installs slirp4netns)")
    if shutil.which("ip") is None:
        raise unittest.SkipTest("needs iproute2's ip")


def tearDownModule():
    sf.stop_server()


class NetworkTest(SecurityTestCase):
    @classmethod
    def setUpClass(cls):
        cls.netns = f"wisp-sec-{os.getpid()}"
        cls.veth = f"ws{os.getpid()}h"
        cls.server = None
        peer = f"ws{os.getpid()}n"
        try:
            try:
                run(["ip", "netns", "add", cls.netns])
                run(["ip", "link", "add", cls.veth, "type", "veth", "peer", "name", peer])
            except subprocess.CalledProcessError as e:
                # A kernel without veth, or a host where /run/netns cannot be made: the test
                # network cannot exist here, which says nothing about wispd.
                raise unittest.SkipTest(
                    f"cannot build the test network on this machine: {' '.join(e.cmd)}: "
                    f"{e.stderr.decode(errors='replace').strip()}")
            run(["ip", "link", "set", peer, "netns", cls.netns])
            run(["ip", "addr", "add", f"{HOST_ADDR}/30", "dev", cls.veth])
            run(["ip", "link", "set", cls.veth, "up"])
            run(["ip", "netns", "exec", cls.netns, "ip", "addr", "add", f"{NETNS_ADDR}/30",
                 "dev", peer])
            run(["ip", "netns", "exec", cls.netns, "ip", "link", "set", peer, "up"])
            run(["ip", "netns", "exec", cls.netns, "ip", "link", "set", "lo", "up"])
            for addr in PRIVATE_ADDRS + (METADATA_ADDR,):
                run(["ip", "netns", "exec", cls.netns, "ip", "addr", "add", f"{addr}/32",
                     "dev", "lo"])
                # Gone with the veth pair when the namespace is deleted.
                run(["ip", "route", "append", f"{addr}/32", "via", NETNS_ADDR, "dev", cls.veth])
            # `ip netns exec` execs python in place: the Popen pid is the server's.
            cls.server = subprocess.Popen(
                ["ip", "netns", "exec", cls.netns, "/usr/bin/python3", "-c", SERVER_SCRIPT],
                stdout=subprocess.PIPE)
            assert cls.server.stdout.readline().strip() == b"listening"
            super().setUpClass()
        except BaseException:
            cls.tear_down_netns()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.tear_down_netns()

    @classmethod
    def tear_down_netns(cls):
        if cls.server is not None:
            cls.server.kill()
            cls.server.wait()
            cls.server.stdout.close()
            cls.server = None
        # Deleting the namespace destroys the veth pair with it.
        subprocess.run(["ip", "netns", "del", cls.netns], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "del", cls.veth], stderr=subprocess.DEVNULL)

    def targets(self):
        return {"server": f"{NETNS_ADDR}:{SERVER_PORT}",
                "api": f"127.0.0.1:{self.wisp.port}",
                "slirp_host": f"10.0.2.2:{self.wisp.port}"}

    def test_outbound_reaches_out_but_never_the_host_loopback(self):
        fid = self.deploy(PROBE, network="outbound")
        self.assertEqual(self.wisp.function(fid)["network"], "outbound")
        t = self.targets()
        r, _ = self.run_hostile(fid, {"targets": list(t.values())})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "success", r)
        out = r.json["response"]
        self.assertEqual(out[t["server"]], "ok:hello from the netns", out)
        # 127.0.0.1 inside is the sandbox's own loopback: wispd's API port is not there.
        self.assertEqual(out[t["api"]], "ECONNREFUSED", out)
        # slirp's gateway does not lead to the host's loopback (--disable-host-loopback).
        self.assertFalse(out[t["slirp_host"]].startswith("ok"), out)
        self.assertEqual(out["resolv"], "nameserver 10.0.2.3", out)
        self.assertEqual(out["interfaces"], ["lo", "tap0"], out)
        # One helper per instance while it runs.
        wispd = self.wisp.proc.pid
        ours = set(wisp_fixture.descendants(wispd)) & set(slirp_pids())
        self.assertEqual(len(ours), len(self.instance_ids(fid)), slirp_pids())
        self.assert_host_clean()
        deadline = time.monotonic() + 5
        while set(wisp_fixture.descendants(wispd)) & set(slirp_pids()):
            self.assertLess(time.monotonic(), deadline, "slirp4netns outlived its instance")
            time.sleep(0.05)

    def test_outbound_cannot_reach_private_or_metadata_addresses(self):
        fid = self.deploy(PROBE, network="outbound")
        server = f"{NETNS_ADDR}:{SERVER_PORT}"
        metadata = f"{METADATA_ADDR}:{METADATA_PORT}"
        private = [f"{addr}:{SERVER_PORT}" for addr in PRIVATE_ADDRS]
        # The same metadata address as an IPv4-mapped IPv6 one goes through IPv4 routing.
        mapped = f"::ffff:{METADATA_ADDR}:{METADATA_PORT}"
        r, _ = self.run_hostile(fid, {"targets": [server, metadata, mapped] + private})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "success", r)
        out = r.json["response"]
        self.assertEqual(out[server], "ok:hello from the netns", out)
        for target in [metadata, mapped] + private:
            self.assertEqual(out[target], "EACCES", (target, out))
        self.assert_host_clean()

    def test_outbound_function_cannot_remove_or_get_around_the_refusal(self):
        fid = self.deploy(REROUTE, network="outbound")
        r, _ = self.run_hostile(fid, {"metadata": f"{METADATA_ADDR}:{METADATA_PORT}"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "success", r)
        out = r.json["response"]
        # No CAP_NET_ADMIN in the runtime: its network namespace's routes are not its to change.
        self.assertEqual(out["delete"], "EPERM", out)
        self.assertEqual(out["bypass"], "EPERM", out)
        # Bound to tap0, the kernel asks the link for the address itself; slirp answers only
        # for its own.
        self.assertEqual(out["bound_to_tap0"], "EHOSTUNREACH", out)
        self.assertEqual(out["after"], "EACCES", out)
        self.assert_host_clean()

    def test_operator_setting_lets_outbound_functions_reach_private_networks(self):
        server = wisp_fixture.WispServer(env={"WISP_OUTBOUND_PRIVATE_NETWORKS": "true",
                                              "WISP_PREWARM_NODE_INSTANCES": "0",
                                              "WISP_PREWARM_PYTHON_INSTANCES": "0"})
        try:
            server.start()
            # A relaxation of the sandbox the operator should not miss in the log.
            self.assertIn("outbound_private_networks", server.log_tail())
            fid = server.create(name="net-private", runtime="python", code=PROBE,
                                network="outbound")
            self.assertEqual(server.wait_state(fid, timeout=15)["state"], "ready")
            targets = [f"{METADATA_ADDR}:{METADATA_PORT}"] + [
                f"{addr}:{SERVER_PORT}" for addr in PRIVATE_ADDRS]
            r = server.invoke(fid, {"targets": targets})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["status"], "success", r)
            for target in targets:
                self.assertEqual(r.json["response"][target], "ok:hello from the netns", r)
            server.stop()
        finally:
            server.kill()
            server.cleanup()

    def test_without_the_option_nothing_is_reachable(self):
        fid = self.deploy(PROBE)
        self.assertEqual(self.wisp.function(fid)["network"], "none")
        t = self.targets()
        r, _ = self.run_hostile(fid, {"targets": list(t.values())})
        self.assertEqual(r.json["status"], "success", r)
        out = r.json["response"]
        self.assertEqual(out[t["server"]], "ENETUNREACH", out)
        self.assertEqual(out[t["api"]], "ECONNREFUSED", out)
        self.assertEqual(out[t["slirp_host"]], "ENETUNREACH", out)
        self.assertEqual(out["interfaces"], ["lo"], out)
        self.assert_host_clean()

    def test_network_is_validated_and_makes_a_new_version(self):
        r = self.wisp.request("POST", "/v1/functions", {
            "name": "net-bad", "runtime": "python", "code": PROBE, "network": "inbound"})
        self.assertEqual(r.status, 400, r)
        self.assertIn("unknown network 'inbound'", r.body.decode(), r)
        r = self.wisp.request("POST", "/v1/functions", {
            "name": "net-bad2", "runtime": "python", "code": PROBE, "network": True})
        self.assertEqual(r.status, 400, r)
        fid = self.deploy(PROBE)
        version = self.wisp.function(fid)["version"]
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"network": "outbound"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["item"]["network"], "outbound")
        self.assertEqual(r.json["item"]["version"], version + 1)
        r = self.wisp.invoke(fid, {"targets": [f"{NETNS_ADDR}:{SERVER_PORT}"]})
        self.assertEqual(r.json["response"][f"{NETNS_ADDR}:{SERVER_PORT}"],
                         "ok:hello from the netns", r)
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"network": "sideways"})
        self.assertEqual(r.status, 400, r)
        self.assert_host_clean()

    def test_zz_no_helper_survives_wispd(self):
        # Last in the class: stops the module's wispd with an outbound instance still running.
        fid = self.deploy(PROBE, network="outbound")
        r = self.wisp.invoke(fid, {"targets": []})
        self.assertEqual(r.json["status"], "success", r)
        wispd = self.wisp.proc.pid
        helpers = set(wisp_fixture.descendants(wispd)) & set(slirp_pids())
        self.assertGreaterEqual(len(helpers), 1)
        self.wisp.request("DELETE", f"/v1/functions/{self.innocent}")
        sf.stop_server()
        left = helpers & set(slirp_pids())
        self.assertEqual(left, set(), slirp_pids())
        # tearDownClass deletes the innocent function: give it a fresh server to talk to.
        type(self).wisp = sf.start_server()
        type(self).innocent = type(self).deploy_fn(sf.INNOCENT_CODE, name_prefix="innocent")


if __name__ == "__main__":
    unittest.main()
