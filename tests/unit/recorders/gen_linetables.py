"""Generates the recorded line tables in test_linetable.cpp (run by hand, never
by the tests). Run it with each interpreter and paste the output:

    /root/.pyenv/versions/3.10.13/bin/python3.10 gen_linetables.py
    /usr/bin/python3.11 gen_linetables.py
    /usr/bin/python3.11 -X no_debug_ranges gen_linetables.py

The expected lines come from the interpreter's own code.co_lines(), one entry
per 2-byte code unit (None: no line)."""
import sys

SRC = '''\
def f(x, items):
    y = x + 1
    with open(x) as fh:
        pass
    try:
        y = [i
             for i in items if i]
    except ValueError as e:
        return e
''' + "\n" * 150 + '''\
    while x:
        x -= 1
    w = [LIST]
    return (y,
            w)
'''

# 3.10 needs > 254 bytes of code on one line; 3.11+ needs columns > 127.
N = 140 if sys.version_info < (3, 11) else 45
SRC = SRC.replace("LIST", ", ".join(["x"] * N))
code = compile(SRC, "gen.py", "exec").co_consts[0]
units = len(code.co_code) // 2
lines = [None] * units
for start, end, line in code.co_lines():
    for u in range(start // 2, end // 2):
        lines[u] = line

tag = "%d%d" % sys.version_info[:2]
if "no_debug_ranges" in sys._xoptions:
    tag += "_nocols"
print("// %s, co_firstlineno %d" % (sys.version.split()[0], code.co_firstlineno))
print("const std::vector<std::uint8_t> kTable%s = {" % tag)
b = code.co_linetable
for i in range(0, len(b), 16):
    print("    " + ", ".join("0x%02x" % c for c in b[i:i + 16]) + ",")
print("};")
print("// line of each code unit; 0 = no line")
print("const std::vector<int> kLines%s = {" % tag)
for i in range(0, units, 20):
    print("    " + ", ".join(str(l if l is not None else 0) for l in lines[i:i + 20]) + ",")
print("};")
