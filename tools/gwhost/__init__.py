"""Host-side (CPython) tooling for the gateway: runners, plant simulator, benchmarks."""
