"""Sockets inside the sandbox: AF_UNIX, and AF_INET/AF_INET6 over a loopback network that
lives entirely in the sandbox (by default no host socket is ever made; `--net host` opts in
to host-backed inet sockets).

- `base`: what every socket shares: the `Socket` file (read, write, poll, fstat, close),
  its receive `Queue` of `Message`s (each charged to the sandbox's socket-buffer budget),
  socket-level options, blocking with SO_RCVTIMEO/SO_SNDTIMEO, and the per-sandbox
  `Network` (names, ports, descriptors in flight).
- `unix`: AF_UNIX stream, datagram and seqpacket sockets; path names (a socket node in the
  guest's view), abstract names, autobind, SCM_RIGHTS and SCM_CREDENTIALS, and the garbage
  collector for descriptors in flight that only reach themselves (Linux's net/unix/garbage.c).
- `inet`: TCP and UDP on 127.0.0.0/8 and ::1, ports and ephemeral ports.
- `host`: with `--net host` only, inet sockets that are non-blocking host sockets.

The system calls that decode guest arguments are in sandbox/kernel/sys_net.py and
sys_netmsg.py (the msghdr calls), with their shared decoding in netargs.py.
"""
