"""A gRPC server that answers `/test.Echo/Version` with its version.

Usage: server.py VERSION. Listens on an ephemeral loopback port, prints
`port <number>` once serving, and stops when its stdin closes (so it never
outlives the test that started it).
"""

import sys

try:
    import grpc
except ImportError:
    print("grpcio is not installed: python3 -m pip install -r requirements-dev.txt", file=sys.stderr)
    sys.exit(3)

from concurrent import futures


def main():
    version = sys.argv[1].encode()

    def answer(request, context):
        return version

    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Version": grpc.unary_unary_rpc_method_handler(answer)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"port {port}", flush=True)
    sys.stdin.read()
    server.stop(grace=None)


if __name__ == "__main__":
    main()
