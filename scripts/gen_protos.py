"""Generate Python code and mypy stubs for every proto under protos/ into gen/python/."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "gen" / "python"


def main() -> int:
    bin_dir = Path(sys.executable).parent
    if shutil.which("protoc-gen-mypy", path=str(bin_dir)) is None:
        print("protoc-gen-mypy not found next to", sys.executable, file=sys.stderr)
        return 1
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))

    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    well_known = Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{well_known}",
            f"--python_out={OUT}",
            f"--grpc_python_out={OUT}",
            f"--mypy_out={OUT}",
            f"--mypy_grpc_out={OUT}",
            *files,
        ]
    )
    if code != 0:
        return int(code)
    # The generated tree is a regular package hierarchy so installers and mypy find it.
    for directory in [OUT / "proofline", *(p for p in (OUT / "proofline").rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    (OUT / "proofline" / "py.typed").touch()
    print(f"generated {len(files)} protos into {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
