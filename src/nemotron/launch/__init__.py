"""From a CLI invocation to submitted jobs: resolve config, write job directories, plan, submit."""
