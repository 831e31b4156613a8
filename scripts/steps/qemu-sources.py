"""Reads a Debian Sources index on stdin; prints one tab-separated row per
qemu source package: version, pool path of its .orig.tar.xz, sha256, size."""
import sys

def stanzas(text):
    for block in text.split("\n\n"):
        fields, key = {}, None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, val = line.partition(":")
                fields[key] = val.strip()
        if fields:
            yield fields

for st in stanzas(sys.stdin.read()):
    if st.get("Package") != "qemu":
        continue
    for line in st.get("Checksums-Sha256", "").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].endswith(".orig.tar.xz"):
            sha, size, name = parts
            print(f"{st['Version']}\t{st['Directory']}/{name}\t{sha}\t{size}")
