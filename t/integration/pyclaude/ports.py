"""Loopback ports, chosen at run time and held until their server binds them.

A port found free and closed again can be handed to the next bind(0) of
any process (a fake started a moment later, another server of the same
run) before its own server gets to bind it. So free_port() keeps the port
bound, not listening, until the server that needs it is about to start:
HttpdEnv.start() and PgCluster.start() call release_port() just before.
A held port refuses connections, as a free one would."""
import socket

_held = {}  # port -> the bound socket that keeps the kernel from reusing it


def reserve_port(port=0):
    """Bind 127.0.0.1:port (0: any free port) and hold it; the port number.
    Raises OSError (EADDRINUSE) if something else has it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(('127.0.0.1', port))
    except OSError:
        s.close()
        raise
    port = s.getsockname()[1]
    _held[port] = s
    return port


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on, held for the caller
    until release_port(port)."""
    return reserve_port(0)


def release_port(port):
    """Let port go so its server can bind it; nothing if we do not hold it."""
    s = _held.pop(port, None)
    if s is not None:
        s.close()


def wait_port(port, timeout=10.0, host='127.0.0.1'):
    """Wait until something accepts connections on port; True if it did."""
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
