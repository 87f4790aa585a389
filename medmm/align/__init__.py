"""medmm.align stage."""
