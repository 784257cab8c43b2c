#!/usr/bin/env python3
"""Every README snippet that names its source must be that source's text.

A line "From `PATH`:" right before a fenced block says the block is taken from
PATH. The block, dedented, must appear in the file as consecutive lines at one
indentation, so that the README cannot drift from the programs CI runs.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
readme = (root / "README.md").read_text().splitlines()
failed = 0
checked = 0


def dedent(lines):
    widths = [len(l) - len(l.lstrip()) for l in lines if l.strip()]
    cut = min(widths, default=0)
    return [l[cut:] for l in lines]


def contains(text, block):
    for start, line in enumerate(text):
        if line.strip() != block[0].strip() or not block[0].strip():
            continue
        indent = line[: len(line) - len(block[0])]
        window = text[start : start + len(block)]
        if len(window) == len(block) and all(
            (got.strip() == "" and want.strip() == "") or got == indent + want
            for got, want in zip(window, block)
        ):
            return True
    return False


i = 0
while i < len(readme):
    m = re.match(r"^From `([^`]+)`:\s*$", readme[i])
    if not m:
        i += 1
        continue
    path = root / m.group(1)
    j = i + 1
    while j < len(readme) and not readme[j].strip():
        j += 1
    if j >= len(readme) or not readme[j].startswith("```"):
        print(f"README.md:{i + 1}: 'From `{m.group(1)}`:' is not followed by a code block")
        failed += 1
        i += 1
        continue
    end = j + 1
    while end < len(readme) and not readme[end].startswith("```"):
        end += 1
    block = dedent(readme[j + 1 : end])
    checked += 1
    if not path.is_file():
        print(f"README.md:{i + 1}: {m.group(1)} does not exist")
        failed += 1
    elif not contains(path.read_text().splitlines(), block):
        print(f"README.md:{j + 1}: the snippet is not the text of {m.group(1)}")
        failed += 1
    i = end + 1

minimum = int(sys.argv[sys.argv.index("--min") + 1]) if "--min" in sys.argv else 0
if checked < minimum:
    print(f"README.md has {checked} snippets naming their source, expected at least {minimum}")
    failed += 1
if failed:
    sys.exit(1)
print(f"{checked} README snippets match their sources")
