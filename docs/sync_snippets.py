#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Rewrites every code block marked <!-- snippet: PATH --> in docs/*.md and README.md with the file
PATH (without its SPDX line). docs/check_snippets.cmake (ctest docs_snippets_in_sync) checks it."""
import glob
import os
import re

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
block = re.compile(r"<!-- snippet: (\S+) -->\n```cpp\n.*?```", re.S)


def code(path):
    text = open(os.path.join(root, path)).read()
    return re.sub(r"^// SPDX-License-Identifier: [^\n]*\n", "", text)


for doc in glob.glob(os.path.join(root, "docs", "*.md")) + [os.path.join(root, "README.md")]:
    text = open(doc).read()
    new = block.sub(lambda m: "<!-- snippet: %s -->\n```cpp\n%s```" % (m.group(1), code(m.group(1))),
                    text)
    if new != text:
        open(doc, "w").write(new)
        print("updated", os.path.relpath(doc, root))
