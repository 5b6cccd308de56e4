"""Node side: what runs inside a stage's job on the compute nodes.

``runner.main`` is the one entry every ``recipes/super3/<stage>.py`` script calls: it reads
train.yaml, resolves the input artifacts, runs the chosen backend module and publishes the output
(global rank 0 only, and only after the backend succeeded). ``commands.node_command`` tells the
submit side which command, container and environment a stage's task runs; ``results.show_results``
renders a published eval-results artifact. Only the standard library is imported here.
"""
