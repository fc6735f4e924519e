"""Benchmarks (`make bench`): each module's `run() -> dict` result is written as JSON
under outputs/bench/<name>.json. Speeds are quoted as ratios to a large matmul measured
in the same process (`reference_matmul_flops`), never as bare seconds."""
