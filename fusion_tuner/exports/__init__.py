"""Writing a run's results in other projects' formats (the JARVIS leaderboard)."""
