"""Saved runs: the store on disk, bundles, evaluation, comparison, ensembles and the class leaderboard."""
