"""The grpc.aio server: health, reflection and (later) the allsuse.v1 services."""
