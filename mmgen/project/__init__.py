"""A user's mmgen project as a whole: ``scaffold`` (the files ``mmgen init`` writes)."""
