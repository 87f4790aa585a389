"""medmm.predict stage."""
