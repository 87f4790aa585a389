"""medmm.reports stage."""
