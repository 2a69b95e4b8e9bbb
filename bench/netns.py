"""A network namespace of the benchmark's own, for real TCP latency (scenario h).

    with Netns(delay_ms=50, loss_pct=1.0) as ns:
        subprocess.Popen([*ns.exec_prefix, "python", "bench/range_server.py",
                          "--host", ns.inside, ...])
        # reach it from here at http://<ns.inside>:PORT/

Sets up `tessera-bench-<pid>`, a veth pair with a free 10.200.N.0/30 (N chosen so that
no address or route of this machine is in it), and `tc netem` delay and loss on the
namespace's end: every packet the namespace sends (answers, ACKs, SYN-ACKs) waits
`delay_ms`, so a round trip from the root namespace costs that much and a lost
segment costs TCP's own retransmission. The namespace and both veth ends are removed
on exit, also on Ctrl-C and SIGTERM (turned into KeyboardInterrupt while inside).

Needs root, `ip` and `tc` (iproute2); `unavailable()` says why not when one is missing.
Without the kernel's netem qdisc the namespace is set up all the same, `netem` is False
and `no_netem` says why: scenario (h) then relays through bench/delay_relay.py for the
delay, and the loss comes from iptables' `statistic` match on the namespace's end of the
pair (`-m statistic --mode random`, each way), which drops real packets that TCP then
retransmits; `loss_by` names the tool (empty when neither netem nor iptables can drop)
and `dropped()` counts the packets dropped so far.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess


def unavailable() -> str | None:
    """Why a namespace cannot be set up here, or None."""
    if os.geteuid() != 0:
        return "not root (network namespaces and tc need root)"
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found (iproute2)"
    return None


def _run(*args: str) -> str:
    out = subprocess.run(list(args), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"`{' '.join(args)}` failed: {out.stderr.strip() or out.returncode}")
    return out.stdout


def _free_subnet() -> int:
    """N such that no address or route here lies in 10.200.N.0/24."""
    used = _run("ip", "-o", "addr") + _run("ip", "route") + _run("ip", "netns", "list")
    for n in range(0, 256):
        if f"10.200.{n}." not in used:
            return n
    raise RuntimeError("every 10.200.N.0/24 is in use")


class Netns:
    """The namespace, its veth pair and netem; see the module doc."""

    def __init__(self, delay_ms: int, loss_pct: float) -> None:
        self.delay_ms = delay_ms
        self.loss_pct = loss_pct
        pid = os.getpid()
        self.name = f"tessera-bench-{pid}"
        # Interface names are at most 15 bytes.
        self.outer_dev, self.inner_dev = f"tb{pid}h", f"tb{pid}n"
        self.outside = self.inside = ""
        self._previous_sigterm = None
        # Whether netem delays the namespace's packets (else why not).
        self.netem = False
        self.no_netem = ""
        # Without netem: the iptables that drops loss_pct of the packets ("" if none).
        self.loss_by = ""

    @property
    def exec_prefix(self) -> list[str]:
        """Runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def __enter__(self) -> Netns:
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._interrupt)
        try:
            n = _free_subnet()
            self.outside, self.inside = f"10.200.{n}.1", f"10.200.{n}.2"
            _run("ip", "netns", "add", self.name)
            _run("ip", "link", "add", self.outer_dev, "type", "veth", "peer", "name", self.inner_dev)
            _run("ip", "link", "set", self.inner_dev, "netns", self.name)
            _run("ip", "addr", "add", f"{self.outside}/30", "dev", self.outer_dev)
            _run("ip", "link", "set", self.outer_dev, "up")
            inside = self.exec_prefix
            _run(*inside, "ip", "addr", "add", f"{self.inside}/30", "dev", self.inner_dev)
            _run(*inside, "ip", "link", "set", self.inner_dev, "up")
            _run(*inside, "ip", "link", "set", "lo", "up")
            try:
                _run(*inside, "tc", "qdisc", "add", "dev", self.inner_dev, "root", "netem",
                     "delay", f"{self.delay_ms}ms", "loss", f"{self.loss_pct}%")
                self.netem = True
            except RuntimeError as e:
                if "kind is unknown" not in str(e):
                    raise
                # No netem in this kernel: the caller puts bench/delay_relay.py on the path,
                # and the loss comes from iptables.
                self.netem = False
                self.no_netem = "this kernel has no netem qdisc (sch_netem, CONFIG_NET_SCH_NETEM)"
                self._drop_with_iptables()
        except BaseException:
            self.cleanup()
            raise
        return self

    def _drop_with_iptables(self) -> None:
        """Drops loss_pct of the packets the namespace's veth end receives and sends."""
        if self.loss_pct <= 0:
            return
        probability = f"{self.loss_pct / 100:g}"
        for tool in ("iptables-legacy", "iptables"):
            if shutil.which(tool) is None:
                continue
            try:
                for chain, direction in (("INPUT", "-i"), ("OUTPUT", "-o")):
                    _run(*self.exec_prefix, tool, "-A", chain, direction, self.inner_dev, "-m", "statistic",
                         "--mode", "random", "--probability", probability, "-j", "DROP")
                self.loss_by = tool
                return
            except RuntimeError:
                subprocess.run([*self.exec_prefix, tool, "-F"], capture_output=True)

    def dropped(self) -> int:
        """Packets the iptables rules have dropped so far (0 without them)."""
        if not self.loss_by:
            return 0
        total = 0
        for chain in ("INPUT", "OUTPUT"):
            out = _run(*self.exec_prefix, self.loss_by, "-L", chain, "-v", "-x", "-n")
            total += sum(int(line.split()[0]) for line in out.splitlines() if "DROP" in line.split()[2:3])
        return total

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def _interrupt(self, _signum, _frame) -> None:
        raise KeyboardInterrupt("SIGTERM")

    def cleanup(self) -> None:
        """Removes the namespace (which takes its veth end, and so the pair, with it)."""
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.outer_dev], capture_output=True)
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
