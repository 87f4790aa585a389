"""medmm.models stage."""
