"""Maximum-entropy RL (issue 12, in progress): environments so far (``stochgrad.rl.envs``)."""
