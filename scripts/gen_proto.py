"""Regenerates python/allsuse/v1 from proto/allsuse/v1 (the only way generated code is written).

`--check` regenerates into a temporary folder and fails if the committed files differ, so a
change to a .proto without a regeneration cannot land.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT_PACKAGE = Path("allsuse") / "v1"
TARGET = ROOT / "python" / OUT_PACKAGE
HEADER_INIT = '"""Generated protobuf and gRPC code for allsuse.v1. Never edit by hand: run `make proto`."""\n'


def generate(out_root: Path) -> None:
    """Runs protoc (with the gRPC and mypy plugins) on every .proto into out_root/allsuse/v1."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / OUT_PACKAGE).glob("*.proto"))
    if not protos:
        raise SystemExit("no .proto files under proto/allsuse/v1")
    include = Path(protoc.__file__).parent / "_proto"
    # The mypy plugins live beside this interpreter (the project's virtual environment).
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out_root / OUT_PACKAGE / "__init__.py").write_text(HEADER_INIT)
    (out_root / "allsuse" / "__init__.py").unlink(missing_ok=True)


def differences(a: Path, b: Path) -> list[str]:
    """Relative paths of files that differ between two generated trees."""
    names = {p.name for p in a.glob("*") if p.is_file()} | {p.name for p in b.glob("*") if p.is_file()}
    out = []
    for name in sorted(names):
        pa, pb = a / name, b / name
        if not (pa.exists() and pb.exists() and filecmp.cmp(pa, pb, shallow=False)):
            out.append(name)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out_root = Path(tmp)
        (out_root / OUT_PACKAGE).mkdir(parents=True)
        generate(out_root)
        fresh = out_root / OUT_PACKAGE
        if args.check:
            stale = differences(fresh, TARGET)
            if stale:
                print(f"generated code is stale (run `make proto`): {', '.join(stale)}", file=sys.stderr)
                return 1
            print("generated code is up to date")
            return 0
        if TARGET.exists():
            shutil.rmtree(TARGET)
        shutil.copytree(fresh, TARGET, ignore=shutil.ignore_patterns("__pycache__"))
        print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
