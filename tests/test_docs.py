"""The documents' plugin strings keep secrets out, and the README says what Bareos shows.

Bareos stores the plugin string in the catalog, writes it to the volume ahead of every object and
quotes it in some of its own job messages, so an example that puts a key into it teaches users
to leak it.
"""

import glob
import os
import re

from harness import REPO

from bareos_libcloud.options import is_secret_option, split_plugin_string

DOCUMENTS = [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))


def plugin_strings(text):
    """Every plugin string of a Markdown text: ``Plugin = "..."`` lines with their ``"..."``
    continuation lines, and inline ``python3:...`` strings."""
    found = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        match = re.match(r'\s*Plugin\s*=\s*"([^"]*)"', line)
        if not match:
            continue
        parts = [match.group(1)]
        for following in lines[number + 1:]:
            more = re.match(r'\s*"([^"]*)"\s*$', following)
            if not more:
                break
            parts.append(more.group(1))
        found.append("".join(parts))
    found.extend(re.findall(r"`(python3:[^`]*)`", text))
    return found


def test_no_example_plugin_string_holds_a_secret():
    seen = 0
    for path in DOCUMENTS:
        with open(path, encoding="utf-8") as handle:
            strings = plugin_strings(handle.read())
        for string in strings:
            seen += 1
            options = string.split(":", 1)[1] if ":" in string else ""
            names = [name for name, _ in split_plugin_string(options)]
            assert not [n for n in names if is_secret_option(n)], (path, string)
    assert seen >= 3  # the README's FileSet, install.md's, scale-out.md's


def test_the_readme_says_where_bareos_shows_the_plugin_string():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        text = " ".join(handle.read().split())
    assert "never shown in any message" not in text
    assert "credentials_file" in text and "ahead of every object" in text


#: Directories that are not the project's files: git's, and what run.py, pytest and pip make.
NOT_THE_PROJECT = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist", ".work",
                   "node_modules"}


def project_files():
    for top, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in NOT_THE_PROJECT and not d.endswith(".egg-info")]
        for name in files:
            if name != ".git" and not name.endswith(".pyc"):
                yield os.path.join(top, name)


def test_nothing_points_outside_the_repository():
    """The project carries what its tests, benchmarks and docs need: no file names the directory
    beside the repository or the machine it was written on."""
    needles = [b".." + b"/shared", b"/work" + b"/shared"]
    offenders = []
    for path in project_files():
        with open(path, "rb") as handle:
            data = handle.read()
        for number, line in enumerate(data.splitlines(), 1):
            if any(needle in line for needle in needles):
                offenders.append("%s:%d: %s" % (os.path.relpath(path, REPO), number,
                                                line.decode("utf-8", "replace").strip()))
    assert not offenders, "\n".join(offenders)
