"""C libinjection as an oracle for the differential tests of portcullis-waf.

Loads the C library that the PyPI package `libinjection-python` compiles into
its extension module, and calls its C functions through ctypes so that inputs
are raw bytes (the package's Python functions accept only text). Reads one
hex-encoded input per line on stdin and writes one line per input:
`<sqli fingerprint or -> <xss 0/1>`.
"""

import ctypes
import importlib.util
import sys


def load():
    spec = importlib.util.find_spec("libinjection")
    if spec is None or spec.origin is None:
        sys.exit("libinjection-python is not installed")
    lib = ctypes.CDLL(spec.origin)
    lib.libinjection_sqli.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    lib.libinjection_sqli.restype = ctypes.c_int
    lib.libinjection_xss.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.libinjection_xss.restype = ctypes.c_int
    lib.libinjection_version.restype = ctypes.c_char_p
    return lib


def main():
    lib = load()
    if len(sys.argv) > 1 and sys.argv[1] == "--version":
        print(lib.libinjection_version().decode())
        return
    fingerprint = ctypes.create_string_buffer(16)
    out = sys.stdout
    for line in sys.stdin:
        data = bytes.fromhex(line.strip())
        sqli = lib.libinjection_sqli(data, len(data), fingerprint)
        xss = lib.libinjection_xss(data, len(data))
        fp = fingerprint.value.decode() if sqli else "-"
        out.write("%s %d\n" % (fp, 1 if xss else 0))
    out.flush()


if __name__ == "__main__":
    main()
