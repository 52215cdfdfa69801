"""Times fastloss against NumPy / JAX / PyTorch: a thin wrapper around `python -m fastloss bench`.

    python benches/bench_losses.py --quick
    python benches/bench_losses.py --losses mse_loss,huber_loss --json bench-results/run.json

Takes the same options as `fastloss bench` (see `--help`); the workloads live in `fastloss.bench`.
"""

import sys

from fastloss.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
