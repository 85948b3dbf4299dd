"""Generated protobuf and gRPC code for allsuse.v1. Never edit by hand: run `make proto`."""
