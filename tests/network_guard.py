"""The start of a script for a fresh Python process (`python -c`) in which every non-loopback
connect and DNS lookup is refused and recorded in `attempts`; the script goes on after it."""

NETWORK_GUARD = r"""
import ipaddress, json, socket, sys

attempts = []
_connect, _connect_ex, _getaddrinfo = (
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)

def _loopback(host):
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False

def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        attempts.append(["connect", str(address[0])])
        raise OSError("network blocked by test")
    return _connect(self, address)

def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        attempts.append(["connect", str(address[0])])
        return 111
    return _connect_ex(self, address)

def getaddrinfo(host, *args, **kwargs):
    if not _loopback(host if isinstance(host, str) else None):
        attempts.append(["dns", str(host)])
        raise socket.gaierror("DNS blocked by test")
    return _getaddrinfo(host, *args, **kwargs)

socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = (
    connect, connect_ex, getaddrinfo)
"""
