"""``python -m atlas_stream.devkafka resolve``: fetch the Kafka jars now (setup does this)."""

from __future__ import annotations

import sys

from ..errors import BrokerUnavailable
from .jars import java_problem, resolve_jars


def main(argv: list[str]) -> int:
    if argv != ["resolve"]:
        print("usage: python -m atlas_stream.devkafka resolve", file=sys.stderr)
        return 2
    problem = java_problem()
    if problem:
        print(f"kafka: not resolved: {problem}; tests and `up` fall back to the PyPI brokers", file=sys.stderr)
        return 0
    try:
        resolve_jars()
    except BrokerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
