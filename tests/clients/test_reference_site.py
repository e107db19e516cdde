"""The reference site (docs/reference, generated from templates/reference) in a real browser:
Debian's headless Chromium, driven by playwright-core (tests/clients/browser/site.mjs), loads
it from a local HTTP server. Every page reachable from index.html renders its heading and
content without JavaScript, every link resolves (fragments included), every method, event and
object of the schema has its page, each object page has a section per version, and the search
page filters with JavaScript."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile

import pytest

from client_harness import HERE, REPO, can_connect, free_port, node_tools, stop, wait_until

SITE = REPO / "docs" / "reference"
BROWSER = HERE / "browser"


def chromium() -> str:
    found = shutil.which("chromium")
    if not found:
        pytest.fail("Debian's chromium is needed (cargo xtask test installs it)", pytrace=False)
    return found


@pytest.fixture(scope="module")
def site():
    """What the browser saw: {pages, problems, search}."""
    node, npm = node_tools()
    browser = chromium()
    install = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=BROWSER, capture_output=True,
                             timeout=600, check=False)
    assert install.returncode == 0, install.stderr.decode()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=SITE,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: can_connect(f"tcp:127.0.0.1:{port}"), "the site's HTTP server", server)
        with tempfile.TemporaryDirectory() as profile:
            run = subprocess.run([node, str(BROWSER / "site.mjs"), f"http://127.0.0.1:{port}/", browser,
                                  f"{profile}/chromium"], capture_output=True, timeout=600, check=False)
    finally:
        stop(server)
    assert run.stdout, run.stderr.decode()
    seen = json.loads(run.stdout)
    assert run.returncode == 0 and not seen["problems"], "\n".join(seen["problems"]) or run.stderr.decode()
    return seen


def schema() -> dict:
    return json.loads((REPO / "schema" / "vproto.json").read_text(encoding="utf-8"))


def test_every_method_and_event_page_renders(site):
    pages = site["pages"]
    for service, body in schema()["services"].items():
        for kind, entries in (("method", body.get("methods", {})), ("event", body.get("events", {}))):
            for name in entries:
                page = pages.get(f"{kind}-{service}.{name}.html")
                assert page is not None, f"no page reached for {kind} {service}.{name}"
                assert page["h1"].startswith(f"{service}.{name}"), page


def test_every_object_page_has_each_version(site):
    pages = site["pages"]
    for name, body in schema()["objects"].items():
        page = pages.get(f"object-{name}.html")
        assert page is not None and page["h1"] == name, f"no page for object {name}"
        for entry in body["history"]:
            major, minor = entry["version"].split(".")
            assert f"v{major}_{minor}" in page["ids"], f"{name} {entry['version']} has no section"
        fields = sum(1 for _ in body.get("fields", {}))
        assert page["rows"] >= fields + 1, f"{name}: {page['rows']} table rows for {fields} fields"


def test_every_data_tree_and_the_index(site):
    pages = site["pages"]
    assert pages["index.html"]["h1"].startswith(schema()["protocol"]["name"])
    for name in schema().get("data_trees", {}):
        assert f"tree-{name}.html" in pages, name


def test_search_filters_with_javascript(site):
    search = site["search"]
    assert search["shown"] and len(search["shown"]) < search["total"], search
    assert all("list_hardware" in entry or "(method)" in entry or "(event)" in entry for entry in search["shown"])
    assert any(entry.startswith("driver.list_hardware") for entry in search["shown"]), search
