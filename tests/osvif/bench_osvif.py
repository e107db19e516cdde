"""The os-vif side of the backport benchmark (generated/benches/backport.rs).

The Rust benchmark spawns this script with the venv's Python and a JSON spec
on stdin::

    {"example": "examples/vif-openvswitch.json",
     "cases": [{"name": "...", "target": "1.0" | null, "manifest": {...} | null}]}

For each case os-vif builds the object from the example primitive
(``obj_from_primitive``), then does what vproto does in the same case::

    json.dumps(vif.obj_to_primitive(target_version=target, version_manifest=manifest))

Modes (first argument):

* ``emit``: print ``{"osvif": VERSION, "outputs": {name: json_text}}``, the
  result of one call per case, so the benchmark can check that both sides
  produce the same JSON before it times anything;
* ``time``: time each case with ``timeit`` (``autorange``, then ``--repeat``
  repeats of that many calls) and print
  ``{"osvif": VERSION, "python": VERSION, "cases": {name: {"median_ns": ..., "calls": ..., "repeats": ...}}}``.

Only that JSON goes to stdout; warnings go to stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import timeit
import warnings
from importlib import metadata
from typing import Any

# os-vif's dependencies print deprecation noise on import (see conftest.py).
warnings.simplefilter("ignore")

from oslo_versionedobjects import base as ovo_base  # noqa: E402

from os_vif import objects as osv_objects  # noqa: E402
from os_vif.objects import base as osv_base  # noqa: E402

osv_objects.register_all()


def build(example: dict[str, Any]) -> Any:
    """The object the example primitive describes, as os-vif reads it."""
    return osv_base.VersionedObject.obj_from_primitive(example)


def check_manifest(obj: Any, manifest: dict[str, str] | None) -> None:
    """A manifest may only name objects of obj_tree_get_versions(); leaving some out is
    how a caller keeps them as they are (oslo skips children the manifest omits)."""
    if manifest is None:
        return
    tree = ovo_base.obj_tree_get_versions(obj.obj_name())
    if not set(manifest) <= set(tree):
        sys.exit(f"bench_osvif: manifest names {sorted(manifest)}, obj_tree_get_versions() names {sorted(tree)}")


def call(obj: Any, case: dict[str, Any]):
    """The measured call: backport (or not) and serialize."""
    target, manifest = case.get("target"), case.get("manifest")
    return lambda: json.dumps(obj.obj_to_primitive(target_version=target, version_manifest=manifest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["emit", "time"])
    parser.add_argument("--repeat", type=int, default=5, help="timeit repeats after autorange (default 5)")
    args = parser.parse_args()
    spec = json.load(sys.stdin)
    with open(spec["example"], encoding="utf-8") as file:
        example = json.load(file)
    obj = build(example)
    versions = {"osvif": metadata.version("os-vif"), "python": platform.python_version()}
    if args.mode == "emit":
        outputs = {}
        for case in spec["cases"]:
            check_manifest(obj, case.get("manifest"))
            outputs[case["name"]] = call(obj, case)()
        json.dump({**versions, "outputs": outputs}, sys.stdout)
        return
    results = {}
    for case in spec["cases"]:
        timer = timeit.Timer(call(obj, case))
        calls, _ = timer.autorange()
        totals = timer.repeat(repeat=args.repeat, number=calls)
        results[case["name"]] = {
            "median_ns": statistics.median(totals) / calls * 1e9,
            "calls": calls,
            "repeats": args.repeat,
        }
    json.dump({**versions, "cases": results}, sys.stdout)


if __name__ == "__main__":
    main()
