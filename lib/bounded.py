"""The limits a wheel-reading command runs under (`--cpu SECONDS`, `--memory BYTES`):
builds/inspection.py runs lib.elfarm and lib.manylinux with them, so that a parser of
untrusted binaries that spins or swells is stopped in its own process."""
import resource


def add_arguments(parser):
    parser.add_argument("--cpu", type=int, default=0, help="CPU seconds (0: no limit)")
    parser.add_argument("--memory", type=int, default=0, help="address space, bytes")


def apply(args):
    """Set this process's limits from the parsed ARGS of add_arguments."""
    if args.cpu:
        resource.setrlimit(resource.RLIMIT_CPU, (args.cpu, args.cpu + 1))
    if args.memory:
        resource.setrlimit(resource.RLIMIT_AS, (args.memory, args.memory))
