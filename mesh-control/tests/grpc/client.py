"""A proxyless gRPC client: calls `/test.Echo/Version` on an `xds:///`
target through the control plane named in $GRPC_XDS_BOOTSTRAP, and prints
one JSON line: how many calls each version answered (or failed with
`error:<status code>`), by request header.

Usage: client.py TARGET CALLS [HEADER=VALUE ...]. The first call waits (up
to 30 s) for the xDS config; each later call has 5 s.
"""

import json
import sys

try:
    import grpc
except ImportError:
    print("grpcio is not installed: python3 -m pip install -r requirements-dev.txt", file=sys.stderr)
    sys.exit(3)


def count(call, calls, metadata):
    seen = {}
    for i in range(calls):
        timeout = 30 if i == 0 else 5
        try:
            answer = call(b"", timeout=timeout, wait_for_ready=True, metadata=metadata).decode()
        except grpc.RpcError as error:
            answer = f"error:{error.code().name}"
        seen[answer] = seen.get(answer, 0) + 1
    return seen


def main():
    target, calls = sys.argv[1], int(sys.argv[2])
    headers = [tuple(arg.split("=", 1)) for arg in sys.argv[3:]]
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/test.Echo/Version")
        result = {"plain": count(call, calls, None)}
        for name, value in headers:
            result[f"{name}={value}"] = count(call, calls, [(name, value)])
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
