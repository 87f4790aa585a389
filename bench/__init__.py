"""medmm benchmarks: speed and memory as ratios against a named baseline measured in the same run."""
