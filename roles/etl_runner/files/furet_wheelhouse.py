#!/usr/bin/env python3
"""Build furet's offline wheelhouse on the Ansible controller (standard library + pip).

The ETL hosts reach the Debian mirror but not PyPI, and Debian's packages are too old for
furet (pymysql 1.0, fabric 2.6, cassandra 3.25 in bookworm). So the controller builds the
furet wheel (or takes a given one) and downloads every dependency as a binary wheel for
the hosts' Python and glibc, pinned by constraints.txt. The role copies the result and
installs it with ``pip install --no-index --find-links``.

The output directory is named after a key hashed from everything that decides its content
(sources or wheel, constraints, Python, platform); a key already built is not rebuilt, so
the task reports a change only when something changed. Prints one JSON line:
``{"changed": bool, "key": ..., "dir": ..., "wheel": ..., "version": ...}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

# What goes into the furet wheel (pyproject's packages and package-data) and its metadata.
SOURCE_SUFFIXES = (".py", ".yml", ".sql", ".cql")
SOURCE_FILES = ("pyproject.toml", "README.md")
COMPLETE = ".complete"


def manylinux_platforms(glibc: str, arch: str) -> list[str]:
    """pip --platform values accepted by a host with this glibc, newest first.

    pip download does not expand ``manylinux_2_36`` to the older tags a host also accepts,
    so every one is listed (plus the manylinux2014/2010/1 aliases of 2.17/2.12/2.5).
    """
    major, minor = (int(x) for x in glibc.split(".")[:2])
    if major != 2 or minor < 5:
        raise ValueError(f"unsupported glibc {glibc}")
    tags = [f"manylinux_2_{m}_{arch}" for m in range(minor, 4, -1)]
    aliases = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{alias}_{arch}" for m, alias in aliases.items() if m <= minor]
    return tags


def source_files(source: Path) -> list[Path]:
    """The files that make the furet wheel, sorted (caches and build output excluded)."""
    found = [source / name for name in SOURCE_FILES if (source / name).is_file()]
    for path in sorted((source / "migration").rglob("*")):
        if path.is_file() and path.suffix in SOURCE_SUFFIXES and "__pycache__" not in path.parts:
            found.append(path)
    return found


def build_key(inputs: Iterable[tuple[str, bytes]], settings: Iterable[str]) -> str:
    """sha256 over (name, content) pairs and settings: the wheelhouse's identity."""
    digest = hashlib.sha256()
    for name, content in inputs:
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    for value in settings:
        digest.update(b"setting\0" + value.encode())
    return digest.hexdigest()


def _pip(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise SystemExit(f"pip {args[0]} failed (exit {result.returncode}):\n" + "\n".join(tail))


def build(args: argparse.Namespace) -> dict[str, object]:
    cache = Path(args.cache).resolve()
    source = Path(args.source).resolve() if args.source else None
    wheel = Path(args.wheel).resolve() if args.wheel else None
    constraints = Path(args.constraints).resolve() if args.constraints else None
    if wheel is not None:
        inputs = [(wheel.name, wheel.read_bytes())]
    else:
        assert source is not None
        if not (source / "pyproject.toml").is_file():
            raise SystemExit(f"{source}: no pyproject.toml (etl_runner_source_dir)")
        inputs = [(str(p.relative_to(source)), p.read_bytes()) for p in source_files(source)]
    if constraints is not None:
        inputs.append(("constraints", constraints.read_bytes()))
    platforms = manylinux_platforms(args.glibc, args.arch)
    key = build_key(inputs, [args.python_version, *platforms])[:16]
    out = cache / key
    changed = False
    if not (out / COMPLETE).is_file():
        changed = True
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache))
        try:
            if wheel is not None:
                shutil.copy2(wheel, tmp / wheel.name)
            else:
                assert source is not None
                stage = tmp / ".stage"
                for path in source_files(source):
                    target = stage / path.relative_to(source)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
                # Built from a staged copy: the repository gets no build/ or egg-info.
                _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp),
                     str(stage))
                shutil.rmtree(stage)
            built = next(tmp.glob("furet-*.whl"))
            abi = "cp" + args.python_version.replace(".", "")
            extra = ["--constraint", str(constraints)] if constraints else []
            _pip("download", "--quiet", "--dest", str(tmp), str(built), *extra,
                 "--only-binary=:all:", "--python-version", args.python_version,
                 "--implementation", "cp", "--abi", abi,
                 *[f"--platform={p}" for p in platforms])
            (tmp / COMPLETE).write_text(key + "\n")
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    furet_wheel = next(out.glob("furet-*.whl")).name
    return {"changed": changed, "key": key, "dir": str(out), "wheel": furet_wheel,
            "version": furet_wheel.split("-")[1],
            "wheels": sorted(p.name for p in out.glob("*.whl"))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    origin = parser.add_mutually_exclusive_group(required=True)
    origin.add_argument("--source", help="furet source tree (pyproject.toml) to build")
    origin.add_argument("--wheel", help="a furet wheel already built")
    parser.add_argument("--cache", required=True, help="controller cache directory")
    parser.add_argument("--constraints", default="", help="pip constraints file")
    parser.add_argument("--python-version", default="3.11")
    parser.add_argument("--glibc", default="2.36", help="oldest glibc of the hosts")
    parser.add_argument("--arch", default="x86_64")
    print(json.dumps(build(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
