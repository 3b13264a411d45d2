"""Generated gRPC code for photoseek.proto, built on first import (or `python -m photoseek.serving.protos`).

The generated modules are not committed: they are rebuilt whenever the .proto is newer than them, so the
code always matches the installed grpcio-tools and protobuf. Serve's gRPC proxy imports
`photoseek.serving.protos.photoseek_pb2_grpc`, which lands here first and so finds them built.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "photoseek.proto"
OUTPUTS = (HERE / "photoseek_pb2.py", HERE / "photoseek_pb2_grpc.py")
SERVICER = "photoseek.serving.protos.photoseek_pb2_grpc.add_PhotoSeekServicer_to_server"


def _stale() -> bool:
    return any(not o.exists() or o.stat().st_mtime < PROTO.stat().st_mtime for o in OUTPUTS)


def generate(force: bool = False) -> None:
    """Run protoc (grpcio-tools) when the generated modules are missing or older than the .proto."""
    if not force and not _stale():
        return
    from grpc_tools import protoc

    root = HERE.parents[2]  # the folder holding the photoseek package, so imports come out package-qualified
    with open(HERE / ".generate.lock", "w") as lock:  # replicas and the proxy may import at the same moment
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and not _stale():
            return
        include = Path(protoc.__file__).parent / "_proto"
        rc = protoc.main(["grpc_tools.protoc", f"-I{root}", f"-I{include}", f"--python_out={root}",
                          f"--grpc_python_out={root}", str(PROTO.relative_to(root))])
        if rc != 0:
            raise RuntimeError(f"protoc failed ({rc}) on {PROTO}")
        for out in OUTPUTS:
            os.utime(out)


generate()
